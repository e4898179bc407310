"""ORPO (methods.md 2.9); TRL 1.16 experimental ORPOTrainer.

Hand values (lambda = 0.1): Case Z 1.0 + 0.1 ln 2 = 1.069315; Case B lo(-1) - lo(-2) = 1.313262,
L_OR = sp(-1.313262) = 0.238183, L = 1.023818. u = 0 would give lo = inf: guarded.
TRL parity runs ``ORPOTrainer.get_batch_loss_metrics`` on a leaf of logits with a ONE-token
prompt, where TRL's full-sequence NLL equals our response-only NLL; with a longer prompt TRL
adds the prompt tokens to its NLL (documented departure, tested). TRL computes the odds ratio
in float32, hence the float32-level tolerance.
"""
import math

import torch
import torch.nn.functional as F

from prefexp.losses.orpo import ORPOLoss, log1mexp

from . import trl_harness as H
from .trl_harness import needs_trl
from .cases import case_b, case_z, close, pair


def test_canonical_cases():
    close(ORPOLoss()(**case_z()).loss, 1.0 + 0.1 * math.log(2))
    close(ORPOLoss()(**case_b()).loss, 1.023818)
    close(ORPOLoss()(**case_b()).metrics["orpo/log_odds_chosen"], 1.313262)


@needs_trl
def test_log1mexp_matches_trl_and_is_stable():
    from trl.experimental.orpo.orpo_trainer import log1mexp as trl_log1mexp

    x = -torch.logspace(-6, 2, 200, dtype=torch.float64)
    torch.testing.assert_close(log1mexp(x), trl_log1mexp(x))
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(log1mexp(x).sum(), x)
    assert torch.isfinite(grad).all()


def test_u_zero_guard():
    inputs = pair(0.0, -5.0, 0.0, 0.0, requires_grad=True)
    out = ORPOLoss()(**inputs)
    grads = torch.autograd.grad(out.loss, [inputs["policy_chosen_logps"], inputs["policy_rejected_logps"]])
    assert torch.isfinite(out.losses).all() and all(torch.isfinite(g).all() for g in grads)


def _ours(batch, logits, beta):
    logp_c, logp_r, lc, lr = H.summed_logps(batch, logits)
    return ORPOLoss(beta)(policy_chosen_logps=logp_c, policy_rejected_logps=logp_r,
                          chosen_lengths=lc, rejected_lengths=lr)


@needs_trl
def test_trl_parity_one_token_prompt():
    len_c, len_r = torch.tensor([3, 5, 4, 7]), torch.tensor([6, 2, 5, 3])
    for beta in (0.1, 1.0):
        batch, logits = H.logits_batch(len_c, len_r, prompt=1, seed=2)
        trl_value, metrics = H.orpo_loss(batch, logits, beta=beta)
        out = _ours(batch, logits, beta)
        H.assert_grads_match(trl_value, out.loss, logits, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(out.metrics["orpo/log_odds_ratio"].item(), metrics["log_odds_ratio"],
                                   rtol=1e-5, atol=1e-6)


@needs_trl
def test_trl_nll_includes_prompt_tokens():
    """Departure: TRL's ORPO NLL covers prompt + response; the difference is exactly that."""
    len_c, len_r = torch.tensor([3, 5]), torch.tensor([6, 2])
    batch, logits = H.logits_batch(len_c, len_r, prompt=4, seed=3)
    trl_value, _ = H.orpo_loss(batch, logits)
    out = _ours(batch, logits, 0.1)
    ids, attention = batch["chosen_input_ids"], batch["chosen_attention_mask"]
    labels = torch.where(attention == 1, ids, -100)[:, 1:]
    full_nll = F.cross_entropy(logits[:2, :-1].reshape(-1, logits.shape[-1]), labels.reshape(-1))
    torch.testing.assert_close(trl_value - full_nll, out.loss - out.metrics["nll_loss"], rtol=1e-5, atol=1e-6)
    assert abs(float(full_nll.detach() - out.metrics["nll_loss"])) > 1e-3
