"""Call TRL 1.16.0's real loss code on given per-token log-probs, without a model or a dataset.

TRL computes its DPO, KTO, CPO and ORPO losses inline in trainer methods that run a model. The
trainers are instantiated with ``__new__`` (no ``__init__``: no model, no tokenizer, no dataset)
and given only the attributes those methods read; the "model" is a stub returning a leaf tensor
of per-token log-probs (DPO, KTO: TRL's fused LM head output ``log_probs``) or of logits (CPO,
ORPO: TRL runs ``get_batch_logps`` and its cross-entropy on them). Everything after the forward
is TRL's own code, so values AND gradients with respect to that leaf can be compared with ours.
"""
from __future__ import annotations

import os
import warnings
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
TRL_VERSION = "1.16.0"  # the parity tests pin TRL's behaviour (methods.md pitfall 1)
try:  # imported once here, at collection, so no single test carries the (slow) import
    import trl
    from trl import DPOTrainer, KTOTrainer
    from trl.experimental.cpo import CPOTrainer
    from trl.experimental.orpo import ORPOTrainer
    _SKIP = None if trl.__version__ == TRL_VERSION else f"parity pinned to trl {TRL_VERSION}, found {trl.__version__}"
except ImportError as exc:  # the sanity tests still run without TRL
    _SKIP = f"trl {TRL_VERSION} not importable: {exc}"

needs_trl = pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")

F64 = torch.float64
PROMPT = 2  # prompt tokens before every completion (DPO / KTO stubs)


class _Accelerator:
    device = torch.device("cpu")

    @staticmethod
    def gather_for_metrics(x):
        return x

    gather = gather_for_metrics


def _trainer(cls, **attrs):
    obj = cls.__new__(cls)
    base = dict(accelerator=_Accelerator(), aux_loss_enabled=False, _metrics=defaultdict(lambda: defaultdict(list)),
                _total_train_tokens=0, _tp_size=1, ref_model=None)
    for key, value in {**base, **attrs}.items():
        object.__setattr__(obj, key, value)
    return obj


def token_logps(lengths: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A leaf [N, T-1] of per-token log-probs (TRL's shifted layout) and its completion mask [N, T]."""
    g = torch.Generator().manual_seed(seed)
    n, width = lengths.numel(), PROMPT + int(lengths.max())
    completion = torch.zeros(n, width, dtype=torch.long)
    for i, length in enumerate(lengths.tolist()):
        completion[i, PROMPT:PROMPT + length] = 1
    per_token = (-torch.rand(n, width - 1, generator=g, dtype=F64) * 2).requires_grad_(True)
    return per_token, completion


def _fused_outputs(per_token, completion):
    shift = completion[:, 1:].to(per_token.dtype)
    zeros = torch.zeros_like(shift)
    return SimpleNamespace(log_probs=per_token * shift, entropy=zeros, mean_logits=zeros,
                           is_top1=zeros.bool(), log_sum_sq_probs=zeros, aux_loss=None)


def dpo_loss(loss_type, per_token, completion, ref_chosen, ref_rejected, beta=0.1, label_smoothing=0.0,
             loss_weights=None):
    """TRL ``DPOTrainer._compute_loss`` on per-token log-probs [2B, T-1] (chosen rows first)."""
    class Stub:
        training = True

        def __call__(self, **kwargs):
            return _fused_outputs(per_token, completion)

    types = loss_type if isinstance(loss_type, list) else [loss_type]
    trainer = _trainer(DPOTrainer, model=Stub(), loss_types=types, loss_weights=loss_weights or [1.0] * len(types),
                       beta=beta, label_smoothing=label_smoothing, ld_alpha=None, precompute_ref_logps=True,
                       f_divergence_type="reverse_kl", use_weighting=False)
    inputs = {"input_ids": torch.zeros_like(completion), "attention_mask": torch.ones_like(completion),
              "completion_mask": completion, "ref_chosen_logps": ref_chosen, "ref_rejected_logps": ref_rejected}
    loss = DPOTrainer._compute_loss(trainer, trainer.model, inputs, return_outputs=False)
    return loss, trainer._metrics["train"]


def kto_loss(per_token, completion, kl_per_token, ref_logps, ref_kl_logps, labels, beta=0.1,
             desirable_weight=1.0, undesirable_weight=1.0):
    """TRL ``KTOTrainer._compute_loss`` (loss_type="kto", precomputed reference log-probs)."""
    kl_ids = torch.ones_like(completion)

    class Stub:
        training = True

        def __call__(self, input_ids=None, **kwargs):
            if input_ids is kl_ids:
                return _fused_outputs(kl_per_token, completion)
            return _fused_outputs(per_token, completion)

    trainer = _trainer(KTOTrainer, model=Stub(), loss_type="kto", beta=beta, desirable_weight=desirable_weight,
                       undesirable_weight=undesirable_weight, calculate_KL=True, precompute_ref_logps=True)
    inputs = {"input_ids": torch.zeros_like(completion), "attention_mask": torch.ones_like(completion),
              "completion_mask": completion, "KL_input_ids": kl_ids, "KL_attention_mask": torch.ones_like(completion),
              "KL_completion_mask": completion, "label": labels, "ref_logps": ref_logps, "ref_KL_logps": ref_kl_logps}
    return KTOTrainer._compute_loss(trainer, trainer.model, inputs, return_outputs=False)


def logits_batch(len_c, len_r, prompt=1, vocab=11, seed=0):
    """A CPO/ORPO batch (prompt + completion token ids, labels with -100) and a leaf of logits."""
    g = torch.Generator().manual_seed(seed)
    width = prompt + int(max(len_c.max(), len_r.max()))
    batch = {}
    for side, lengths in (("chosen", len_c), ("rejected", len_r)):
        ids = torch.randint(0, vocab, (lengths.numel(), width), generator=g)
        attention = torch.zeros_like(ids)
        labels = torch.full_like(ids, -100)
        for i, length in enumerate(lengths.tolist()):
            attention[i, :prompt + length] = 1
            labels[i, prompt:prompt + length] = ids[i, prompt:prompt + length]
        batch.update({f"{side}_input_ids": ids, f"{side}_attention_mask": attention, f"{side}_labels": labels})
    n = len_c.numel() + len_r.numel()
    logits = torch.randn(n, width, vocab, generator=g, dtype=F64).requires_grad_(True)
    return batch, logits


def summed_logps(batch, logits):
    """Our inputs from the same logits: summed completion log-probs and lengths, chosen then rejected."""
    labels = torch.cat([batch["chosen_labels"], batch["rejected_labels"]])[:, 1:]
    mask = labels != -100
    logps = torch.log_softmax(logits[:, :-1], -1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    sums, lengths = (logps * mask).sum(-1), mask.sum(-1)
    b = batch["chosen_labels"].shape[0]
    return sums[:b], sums[b:], lengths[:b], lengths[b:]


class _LogitsModel:
    def __init__(self, logits):
        self.logits = logits

    def __call__(self, input_ids, attention_mask=None, **kwargs):
        return SimpleNamespace(logits=self.logits)


def cpo_loss(batch, logits, loss_type="sigmoid", beta=0.1, cpo_alpha=1.0, simpo_gamma=0.5, label_smoothing=0.0):
    """TRL experimental ``CPOTrainer.get_batch_loss_metrics`` on a leaf of logits."""
    trainer = _trainer(CPOTrainer, is_encoder_decoder=False, pad_token_id=0, loss_type=loss_type, beta=beta,
                       cpo_alpha=cpo_alpha, simpo_gamma=simpo_gamma, label_smoothing=label_smoothing, alpha=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loss, metrics = CPOTrainer.get_batch_loss_metrics(trainer, _LogitsModel(logits), batch)
    return loss, metrics


def orpo_loss(batch, logits, beta=0.1):
    """TRL experimental ``ORPOTrainer.get_batch_loss_metrics`` on a leaf of logits."""
    trainer = _trainer(ORPOTrainer, is_encoder_decoder=False, padding_value=0, beta=beta)
    loss, metrics = ORPOTrainer.get_batch_loss_metrics(trainer, _LogitsModel(logits), batch)
    return loss, metrics


# ----------------------------------------------------------------------------- comparisons

def assert_grads_match(trl_loss, our_loss, leaf, rtol=1e-7, atol=1e-9):
    """Same value and same gradient with respect to the shared leaf."""
    torch.testing.assert_close(our_loss.detach().to(F64), trl_loss.detach().to(F64), rtol=rtol, atol=atol)
    (trl_grad,) = torch.autograd.grad(trl_loss, leaf)
    (our_grad,) = torch.autograd.grad(our_loss, leaf)
    torch.testing.assert_close(our_grad.to(F64), trl_grad.to(F64), rtol=rtol, atol=atol)


def check_dpo_parity(ours, loss_type, beta=0.1, label_smoothing=0.0, loss_weights=None, lengths=None,
                     seed=0, compare_rewards=True, batch=5):
    """Run TRL's DPOTrainer loss and ``ours`` on the same per-token log-probs; assert equality."""
    g = torch.Generator().manual_seed(seed)
    if lengths is None:
        lengths = torch.randint(1, 12, (2 * batch,), generator=g)
    per_token, completion = token_logps(lengths, seed=seed)
    b = lengths.numel() // 2
    ref = (per_token.detach() * completion[:, 1:]).sum(1) + torch.randn(2 * b, generator=g, dtype=F64)
    trl_value, metrics = dpo_loss(loss_type, per_token, completion, ref[:b], ref[b:], beta=beta,
                                  label_smoothing=label_smoothing, loss_weights=loss_weights)
    logps = (per_token * completion[:, 1:]).sum(1)  # [2B], what our engine computes
    out = ours(policy_chosen_logps=logps[:b], policy_rejected_logps=logps[b:], reference_chosen_logps=ref[:b],
               reference_rejected_logps=ref[b:], chosen_lengths=lengths[:b], rejected_lengths=lengths[b:])
    assert_grads_match(trl_value, out.losses.mean(), per_token)
    if compare_rewards:
        torch.testing.assert_close(out.chosen_rewards.mean().item(), metrics["rewards/chosen"][-1])
        torch.testing.assert_close(out.rejected_rewards.mean().item(), metrics["rewards/rejected"][-1])
    return trl_value, out
