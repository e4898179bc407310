"""SimPO (methods.md 2.7); TRL 1.16 experimental CPOTrainer ``loss_type="simpo"``, cpo_alpha = 0.

Hand values (beta = 2, gamma = 1, i.e. gamma_beta_ratio = 0.5): Case Z sp(1) = 1.313262; Case B
(u_c - u_r = 1) sp(-1) = 0.313262; changing lengths without changing u leaves the loss unchanged.
TRL parity runs ``CPOTrainer.get_batch_loss_metrics`` on a leaf of logits (TRL's own
length-averaged log-probs); TRL's ``simpo_gamma`` is gamma = gamma_beta_ratio * beta.
"""
import pytest
import torch

from prefexp.losses.simpo import SimPOLoss

from . import trl_harness as H
from .trl_harness import needs_trl
from .cases import case_b, case_z, close, pair


def test_canonical_cases():
    close(SimPOLoss(beta=2.0, gamma_beta_ratio=0.5)(**case_z()).loss, 1.313262)
    close(SimPOLoss(beta=2.0, gamma_beta_ratio=0.5)(**case_b()).loss, 0.313262)


def test_length_invariance():
    loss = SimPOLoss()
    short = pair(-10.0, -20.0, 0.0, 0.0, len_c=10, len_r=10)
    long = pair(-30.0, -60.0, 0.0, 0.0, len_c=30, len_r=30)
    torch.testing.assert_close(loss(**short).losses, loss(**long).losses)


def test_reference_free():
    assert SimPOLoss.needs_reference is False
    inputs = {k: v for k, v in case_b().items() if not k.startswith("reference")}
    close(SimPOLoss()(**inputs).loss, 0.313262)


@needs_trl
@pytest.mark.parametrize("beta,ratio,eps", [(2.0, 0.5, 0.0), (2.5, 0.55, 0.0), (2.0, 0.5, 0.1)])
def test_trl_parity(beta, ratio, eps):
    len_c, len_r = torch.tensor([3, 5, 4, 7]), torch.tensor([6, 2, 5, 3])
    batch, logits = H.logits_batch(len_c, len_r)
    trl_value, metrics = H.cpo_loss(batch, logits, loss_type="simpo", beta=beta, cpo_alpha=0.0,
                                    simpo_gamma=ratio * beta, label_smoothing=eps)
    logp_c, logp_r, lc, lr = H.summed_logps(batch, logits)
    out = SimPOLoss(beta, ratio, eps)(policy_chosen_logps=logp_c, policy_rejected_logps=logp_r,
                                      chosen_lengths=lc, rejected_lengths=lr)
    H.assert_grads_match(trl_value, out.loss, logits)
    torch.testing.assert_close(out.chosen_rewards.mean().item(), metrics["rewards/chosen"])
