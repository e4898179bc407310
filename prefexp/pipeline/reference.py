"""Stage 5, reference pass: the reference model's summed response log-probs of every example,
computed once (sharded over ranks; under ZeRO-3 with the weights partitioned too) and cached on disk (``prefexp.engine.reference``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from ..config.settings import Settings
from ..engine.distributed import shared_reference_logps
from ..engine.groups import group_reference_examples
from ..engine.zero3_reference import zero3_sharding
from .model_source import ModelSource
from .tokens import TokenisedPairs


@dataclass
class ReferenceLogps:
    pairs: dict[int, tuple[float, float]]  # index -> (chosen, rejected)
    groups: Optional[dict[int, list[float]]] = None  # index -> one value per response of the group


def reference_pass(settings: Settings, tokens: TokenisedPairs, model: ModelSource,
                   trained: Optional[set[int]] = None) -> Optional[ReferenceLogps]:
    """None when neither the loss nor a margin metric reads the reference (reference-free losses).
    ``trained``: the indices of the pairs the run trains on (default all): only those are scored."""
    c, loss = settings.config, settings.loss
    if not (loss.needs_reference or "reference_logp" in settings.metrics):
        return None

    # ZeRO-3 (and zero3_offload): the reference weights partitioned as the policy's will be
    zero3 = zero3_sharding(c.deepspeed.enabled, c.deepspeed.config, c.model.dtype, c.model.trust_remote_code)

    def score(items: list[dict]) -> dict:
        return shared_reference_logps(model.load, model.path, items, tokens.pad_token_id,
                                      c.trainer.reference_batch_size, model.reference_cache_dir, c.trainer.precision,
                                      zero3=zero3)

    examples = tokens.examples if trained is None else [e for e in tokens.examples if e["index"] in trained]
    pairs = score(examples)
    groups = group_logps(examples, score) if tokens.has_groups and loss.needs_reference else None
    return ReferenceLogps(pairs, groups)


def group_logps(examples: list[dict], score: Callable[[list[dict]], dict]) -> dict[int, list[float]]:
    """The reference log-prob of each of an example's K responses (scored as pseudo pairs)."""
    width = max(len(e["group_ids"]) for e in examples)
    values = score(group_reference_examples(examples, width))
    return {e["index"]: [values[e["index"] * width + k][0] for k in range(len(e["group_ids"]))] for e in examples}
