"""CPO (methods.md 2.8); TRL 1.16 experimental CPOTrainer ``loss_type="sigmoid"``.

Hand values (beta = 0.1, alpha = 1): Case Z 0.693147 + 1.0 = 1.693147; Case B 0.313262 + 1.0 =
1.313262. TRL parity runs ``CPOTrainer.get_batch_loss_metrics`` (its log-probs, its chosen
cross-entropy over completion tokens and its loss) on a leaf of logits; values and gradients
match ours computed from the same logits.
"""
import pytest
import torch

from prefexp.losses.cpo import CPOLoss

from . import trl_harness as H
from .trl_harness import needs_trl
from .cases import case_b, case_z, close


def test_canonical_cases():
    close(CPOLoss()(**case_z()).loss, 1.693147)
    close(CPOLoss()(**case_b()).loss, 1.313262)


def test_nll_metric_and_flags():
    out = CPOLoss()(**case_b())
    close(out.metrics["nll_loss"], 1.0)
    assert CPOLoss.needs_reference is False


@needs_trl
@pytest.mark.parametrize("beta,alpha,eps", [(0.1, 1.0, 0.0), (0.5, 0.3, 0.1), (0.1, 0.0, 0.0)])
def test_trl_parity(beta, alpha, eps):
    len_c, len_r = torch.tensor([3, 5, 4, 7, 1]), torch.tensor([6, 2, 5, 3, 4])
    batch, logits = H.logits_batch(len_c, len_r, prompt=3, seed=1)
    trl_value, metrics = H.cpo_loss(batch, logits, loss_type="sigmoid", beta=beta, cpo_alpha=alpha,
                                    label_smoothing=eps)
    logp_c, logp_r, lc, lr = H.summed_logps(batch, logits)
    out = CPOLoss(beta, alpha, eps)(policy_chosen_logps=logp_c, policy_rejected_logps=logp_r,
                                    chosen_lengths=lc, rejected_lengths=lr)
    H.assert_grads_match(trl_value, out.loss, logits)
    if alpha:  # TRL skips (reports 0 for) the NLL when cpo_alpha = 0
        torch.testing.assert_close(out.metrics["nll_loss"].item(), metrics["nll_loss"])
    torch.testing.assert_close(out.rejected_rewards.mean().item(), metrics["rewards/rejected"])
