"""beta-DPO (methods.md 2.13): dynamic beta + beta-guided filtering, official-code semantics.

Hand values (beta0 = 0.1, a = 0.6, rho = 0):
- M0 = mean(h): beta_used = beta0, and Case B equals DPO, sp(-1) = 0.313262.
- Case B with M0 = 0: beta_used = 0.1 (1 + 0.6 * 10) = 0.7, L = sp(-7) = 0.000911.
- Cold start, h = [1, 3]: EMA first gives M0 = 0.1 * 2 = 0.2, sigma_M = 0.1 * sqrt(2) = 0.141421;
  beta_used = 0.1 (1 + 0.6 (2 - 0.2)) = 0.208; L = [sp(-0.208), sp(-0.624)] = [0.594545, 0.429049],
  mean 0.511797.
- Clamp: a = 10 with mean(h) - M0 = -1 gives 0.1 (1 - 10) < 0, clamped to 1e-3.
Objective invariant: unselected examples get 0, selected ones are scaled by B / n_selected.
"""

import pytest
import torch
import torch.nn.functional as F

from prefexp.losses.beta_dpo import BetaDPOLoss, beta_dpo_losses, dynamic_beta, sample_selection
from prefexp.losses.dpo import DPOLoss

from .cases import case_b, close, pair, random_pairs

F64 = torch.float64


def _t(*x):
    return torch.tensor(x, dtype=F64)


def test_mean_gap_is_dpo():
    h, sel = _t(10.0), torch.tensor([True])
    beta_used = dynamic_beta(h, sel, _t(10.0)[0], 0.1, 0.6)
    close(beta_used, 0.1)
    close(beta_dpo_losses(h, sel, beta_used).mean(), 0.313262)
    close(beta_dpo_losses(h, sel, beta_used).mean(), DPOLoss()(**case_b()).loss)


def test_case_b_zero_mean():
    h, sel = _t(10.0), torch.tensor([True])
    beta_used = dynamic_beta(h, sel, _t(0.0)[0], 0.1, 0.6)
    close(beta_used, 0.7)
    close(beta_dpo_losses(h, sel, beta_used), [0.000911])


def test_cold_start_through_the_class():
    loss = BetaDPOLoss(rho=0.0)
    out = loss(**pair([1.0, 3.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]))
    close(loss.gap_mean, 0.2)
    close(loss.gap_std, 0.141421)
    close(out.metrics["beta_dpo/beta_used"], 0.208)
    close(out.losses, [0.594545, 0.429049])
    close(out.loss, 0.511797)
    close(out.metrics["beta_dpo/selected_fraction"], 1.0)


def test_clamp():
    close(dynamic_beta(_t(1.0), torch.tensor([True]), _t(2.0)[0], 0.1, 10.0), 1e-3)


def test_filtering_keeps_the_objective_a_mean_over_selected():
    loss = BetaDPOLoss(rho=0.2, seed=3)
    inputs = random_pairs(batch=10)
    out = loss(**inputs)
    selected = out.losses != 0
    assert int(selected.sum()) == 8
    h = (inputs["policy_chosen_logps"] - inputs["reference_chosen_logps"]
         - inputs["policy_rejected_logps"] + inputs["reference_rejected_logps"])
    expected = F.softplus(-out.metrics["beta_dpo/beta_used"] * h)[selected].mean()
    torch.testing.assert_close(out.losses.mean(), expected)
    close(out.metrics["beta_dpo/selected_fraction"], 0.8)


def test_outliers_are_filtered():
    h = torch.cat([torch.zeros(9, dtype=F64), _t(1000.0)])
    for seed in range(5):
        mask = sample_selection(h, _t(10.0)[0], _t(31.6)[0], 0.2, torch.Generator().manual_seed(seed))
        assert int(mask.sum()) == 8 and not mask[-1]


def test_seeded_and_resumable():
    inputs = random_pairs(batch=10, requires_grad=False)
    a, b = BetaDPOLoss(seed=7), BetaDPOLoss(seed=7)
    torch.testing.assert_close(a(**inputs).losses, b(**inputs).losses)
    state = a.state_dict()
    first = a(**inputs).losses
    c = BetaDPOLoss(seed=0)
    c.load_state_dict(state)
    torch.testing.assert_close(c(**inputs).losses, first)


def test_update_state_false_keeps_state():
    loss = BetaDPOLoss()
    loss(**random_pairs(requires_grad=False))
    before = (loss.gap_mean.clone(), loss.gap_std.clone())
    loss(**random_pairs(seed=1, requires_grad=False), update_state=False)
    assert torch.equal(loss.gap_mean, before[0]) and torch.equal(loss.gap_std, before[1])


def test_zero_variance_and_single_pair_are_finite():
    loss = BetaDPOLoss()
    for inputs in (pair([-10.0] * 4, [-10.0] * 4, [-10.0] * 4, [-10.0] * 4, requires_grad=True),
                   pair(-10.0, -20.0, -15.0, -15.0, requires_grad=True)):
        out = loss(**inputs)
        (grad,) = torch.autograd.grad(out.loss, inputs["policy_chosen_logps"])
        assert torch.isfinite(out.losses).all() and torch.isfinite(grad).all()
        assert int((out.losses != 0).sum()) >= 1  # at least one pair is always kept


@pytest.mark.parametrize("key,value", [("rho", 1.0), ("gamma", 1.0), ("a", -0.1), ("beta", 0.0)])
def test_validation(key, value):
    with pytest.raises(ValueError, match=f"loss.{key}="):
        BetaDPOLoss(**{key: value})


def _two_rank_step(rank, world):
    full = random_pairs(batch=10, seed=11, requires_grad=False)
    half = {k: v[5 * rank: 5 * rank + 5] for k, v in full.items()}
    out = BetaDPOLoss(seed=2)(**half)
    return out.losses, out.metrics["beta_dpo/beta_used"]


@pytest.mark.slow
def test_two_ranks_match_one_process():
    """Statistics and the selection are global (all-gathered h, same seeded sampler on every
    rank); the objective is each rank's mean over its selected pairs, as the official code."""
    from .dist_utils import run_ranks

    full = random_pairs(batch=10, seed=11, requires_grad=False)
    single = BetaDPOLoss(seed=2)(**full)
    n_global = (single.losses != 0).sum()
    ranks = run_ranks(_two_rank_step, world=2)
    for rank, (losses, beta_used) in enumerate(ranks):
        torch.testing.assert_close(beta_used, single.metrics["beta_dpo/beta_used"])
        ref = single.losses[5 * rank: 5 * rank + 5]
        selected = ref != 0
        assert torch.equal(losses != 0, selected)
        raw = ref * n_global / 10  # undo the single-process B / n_selected scale
        torch.testing.assert_close(losses, raw * 5 / selected.sum().clamp(min=1))
