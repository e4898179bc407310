"""MixDPO (methods.md 3.1): SFT on difficult pairs (margin < tau), cDPO on the rest.

Hand values: Case Z with M >= tau: ln 2 = 0.693147 for every eps; with M < tau: 1.0. Case B,
M = 1.0, tau = 0.5, beta = 0.01: eps = 0: sp(-0.1) = 0.644397, eps = 0.1: 0.654397; M = 0.25:
SFT = 1.0. M == tau takes the DPO branch. The SFT branch gives zero gradient to logp_r and ref.
Reductions: tau = -inf equals cDPO (same beta, eps), tau = +inf the per-sequence SFT; the ipo
and simpo branches equal the standalone ipo / simpo losses.
"""
import math

import pytest
import torch

from prefexp.losses.cdpo import CDPOLoss
from prefexp.losses.ipo import IPOLoss
from prefexp.losses.mixdpo import MixDPOLoss
from prefexp.losses.sft import SFTLoss
from prefexp.losses.simpo import SimPOLoss

from .cases import case_b, case_z, close, random_pairs

F64 = torch.float64


def _m(*values):
    return torch.tensor(values, dtype=F64)


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_case_z(eps):
    loss = MixDPOLoss(label_smoothing=eps, tau=0.5)
    close(loss(**case_z(margins=_m(1.0))).loss, math.log(2))
    close(loss(**case_z(margins=_m(0.25))).loss, 1.0)


def test_case_b():
    close(MixDPOLoss(beta=0.01, label_smoothing=0.0, tau=0.5)(**case_b(margins=_m(1.0))).loss, 0.644397)
    close(MixDPOLoss(beta=0.01, label_smoothing=0.1, tau=0.5)(**case_b(margins=_m(1.0))).loss, 0.654397)
    close(MixDPOLoss(tau=0.5)(**case_b(margins=_m(0.25))).loss, 1.0)


def test_boundary_is_dpo():
    out = MixDPOLoss(label_smoothing=0.0, tau=0.5)(**case_b(margins=_m(0.5)))
    close(out.loss, 0.644397)
    close(out.metrics["route/sft_fraction"], 0.0)


def test_sft_branch_gradients():
    inputs = case_b(margins=_m(0.0), requires_grad=True)
    inputs["reference_chosen_logps"].requires_grad_(True)
    out = MixDPOLoss(tau=0.5)(**inputs)
    grads = torch.autograd.grad(out.loss, [inputs["policy_chosen_logps"], inputs["policy_rejected_logps"],
                                           inputs["reference_chosen_logps"]])
    close(grads[0], -0.1)
    assert float(grads[1].abs().sum()) == 0.0 and float(grads[2].abs().sum()) == 0.0


@pytest.mark.parametrize("eps,beta", [(0.1, 0.01), (0.0, 0.1), (0.3, 0.5)])
def test_all_dpo_is_cdpo(eps, beta):
    inputs = random_pairs(margins=torch.randn(8, dtype=F64))
    ours = MixDPOLoss(beta=beta, label_smoothing=eps, tau=-math.inf)(**inputs)
    expected = CDPOLoss(beta=beta, label_smoothing=eps)(**inputs)
    torch.testing.assert_close(ours.losses, expected.losses, rtol=0, atol=0)
    torch.testing.assert_close(ours.chosen_rewards, expected.chosen_rewards)


def test_all_sft_is_sequence_sft():
    inputs = random_pairs(margins=torch.randn(8, dtype=F64))
    torch.testing.assert_close(MixDPOLoss(tau=math.inf)(**inputs).losses,
                               SFTLoss(normalize="sequence")(**inputs).losses, rtol=0, atol=0)


def test_ipo_branch_is_ipo():
    inputs = random_pairs(margins=torch.randn(8, dtype=F64))
    torch.testing.assert_close(MixDPOLoss(beta=0.1, preference_branch="ipo", tau=-math.inf)(**inputs).losses,
                               IPOLoss(beta=0.1)(**inputs).losses, rtol=0, atol=0)


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_simpo_branch_is_simpo(eps):
    inputs = random_pairs(margins=torch.randn(8, dtype=F64))
    inputs = {k: v for k, v in inputs.items() if not k.startswith("reference")}
    loss = MixDPOLoss(beta=2.0, label_smoothing=eps, preference_branch="simpo", gamma_beta_ratio=0.5, tau=-math.inf)
    assert loss.needs_reference is False
    torch.testing.assert_close(loss(**inputs).losses,
                               SimPOLoss(beta=2.0, gamma_beta_ratio=0.5, label_smoothing=eps)(**inputs).losses,
                               rtol=0, atol=0)


def test_mixed_batch_plain_mean():
    inputs = random_pairs(batch=2, margins=_m(0.0, 1.0))
    out = MixDPOLoss(tau=0.5)(**inputs)
    sft = SFTLoss(normalize="sequence")(**inputs).losses[0]
    dpo = CDPOLoss(beta=0.01, label_smoothing=0.1)(**inputs).losses[1]
    torch.testing.assert_close(out.loss, (sft + dpo) / 2)


def test_router_override():
    inputs = case_b(margins=_m(10.0), difficult=torch.tensor([True]))
    close(MixDPOLoss(tau=0.5)(**inputs).loss, 1.0)


def test_token_cleaning_path():
    """Two tokens with NLL 1 and 3, only the first kept: SFT = 1.0; an all-ones mask is plain SFT."""
    token_logps = torch.tensor([[-1.0, -3.0]], dtype=F64)
    inputs = case_b(margins=_m(0.0), chosen_token_logps=token_logps, chosen_token_mask=torch.tensor([[1, 0]]))
    close(MixDPOLoss(tau=0.5)(**inputs).loss, 1.0)
    inputs = case_b(margins=_m(0.0), chosen_token_logps=torch.full((1, 10), -1.0, dtype=F64),
                    chosen_token_mask=torch.ones(1, 10))
    close(MixDPOLoss(tau=0.5)(**inputs).loss, SFTLoss("sequence")(**inputs).loss)


def test_validation():
    with pytest.raises(ValueError, match="loss.preference_branch='orpo'"):
        MixDPOLoss(preference_branch="orpo")
    with pytest.raises(ValueError, match=r"loss.label_smoothing=0.5 .*\[0, 0.5\)"):
        MixDPOLoss(label_smoothing=0.5)
