"""The reward-model training recipe: one dataclass, no prefexp imports.

It is the schema of the ``reward_model`` config group (``conf/reward_model/<option>.yaml``) and the
hyperparameter half of a reward model's cache key. Kept free of project imports so that
``prefexp.config.schema`` can import it too (to add a ``reward_model`` group to the training config)
without an import cycle.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

# Fields that change how a trained reward model is used or logged, not the model itself: they stay
# out of the cache key, so changing them never retrains.
NOT_IN_KEY = ("score_batch_size", "logging_steps")


@dataclass
class RewardModelConfig:
    """Bradley-Terry reward-model training (MADPO, methods.md 3.3: "trained with a Bradley-Terry loss
    on the same preference data"). The model is ``AutoModelForSequenceClassification`` with
    ``num_labels=1`` on the model entry's weights (a new, randomly initialised linear head).

    Ranges: learning_rate > 0 (1e-5 for 1-8B models, 5e-4 suits the 64-wide sandbox model);
    num_epochs > 0; max_steps = -1 (num_epochs over the data) or >= 1; warmup_ratio in [0, 1);
    per_device_batch_size counts *pairs* (each step forwards 2x that many sequences).
    """

    num_epochs: float = 1.0
    max_steps: int = -1
    per_device_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    learning_rate: float = 5e-4
    lr_scheduler: str = "cosine"  # any transformers SchedulerType name
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    precision: str = "fp32"  # fp32 | bf16 | fp16 (Trainer mixed precision)
    dtype: str = "float32"  # float32 | bfloat16 | float16: the dtype the weights are loaded in
    gradient_checkpointing: bool = False
    disable_dropout: bool = True  # as TRL's RewardTrainer: a deterministic, less noisy BT fit
    seed: int = 0  # head init and batch order
    score_batch_size: int = 32  # pairs per forward when scoring (not in the cache key)
    logging_steps: int = 10  # (not in the cache key)


def key_hparams(hparams: RewardModelConfig) -> dict:
    """The hyperparameters that identify a trained reward model (everything but :data:`NOT_IN_KEY`)."""
    return {k: v for k, v in asdict(hparams).items() if k not in NOT_IN_KEY}
