"""Shared test inputs: methods.md's canonical cases (float64) and random batches."""
from __future__ import annotations

import torch

F64 = torch.float64


def pair(logp_c, logp_r, ref_c, ref_r, len_c=10, len_r=10, requires_grad=False, **extra) -> dict:
    """Loss inputs for a batch of pairs; scalars become [1] tensors, lists [B] tensors."""
    def t(x, dtype=F64):
        return torch.as_tensor(x, dtype=dtype).reshape(-1).clone()

    inputs = {"policy_chosen_logps": t(logp_c), "policy_rejected_logps": t(logp_r),
              "reference_chosen_logps": t(ref_c), "reference_rejected_logps": t(ref_r),
              "chosen_lengths": t(len_c, torch.long), "rejected_lengths": t(len_r, torch.long)}
    n = max(v.numel() for v in inputs.values())
    inputs = {k: v.expand(n).clone() if v.numel() == 1 else v for k, v in inputs.items()}
    if requires_grad:
        inputs["policy_chosen_logps"].requires_grad_(True)
        inputs["policy_rejected_logps"].requires_grad_(True)
    for key, value in extra.items():
        inputs[key] = value if isinstance(value, torch.Tensor) else t(value)
    return inputs


def case_z(**extra) -> dict:
    """logp_c = logp_r = ref_c = ref_r = -10, len 10: h = 0, u = -1, hbar = 0."""
    return pair(-10.0, -10.0, -10.0, -10.0, **extra)


def case_b(**extra) -> dict:
    """logp_c = -10, logp_r = -20, ref = -15, len 10: lr_c = 5, lr_r = -5, h = 10, hbar = 1."""
    return pair(-10.0, -20.0, -15.0, -15.0, **extra)


def close(actual, expected, atol: float = 1e-6) -> None:
    """methods.md values are given to 6 decimals."""
    actual = torch.as_tensor(actual).detach().to(F64)
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=F64).reshape(actual.shape), atol=atol, rtol=0)


def random_pairs(batch: int = 8, seed: int = 0, requires_grad: bool = True, dtype=F64, **extra) -> dict:
    """Plausible random pairs: lengths 3-40, per-token log-probs in (-3, 0)."""
    g = torch.Generator().manual_seed(seed)
    len_c = torch.randint(3, 40, (batch,), generator=g)
    len_r = torch.randint(3, 40, (batch,), generator=g)
    logp_c = -torch.rand(batch, generator=g, dtype=dtype) * 3 * len_c
    logp_r = -torch.rand(batch, generator=g, dtype=dtype) * 3 * len_r
    ref_c = logp_c + torch.randn(batch, generator=g, dtype=dtype)
    ref_r = logp_r + torch.randn(batch, generator=g, dtype=dtype)
    inputs = pair(logp_c, logp_r, ref_c, ref_r, len_c, len_r, **extra)
    if requires_grad:
        inputs["policy_chosen_logps"].requires_grad_(True)
        inputs["policy_rejected_logps"].requires_grad_(True)
    return inputs
