"""KTO, paired form (methods.md 2.10); TRL 1.16 KTOTrainer ``loss_type="kto"``.

Hand values (beta = 0.1, z0 = 0): Case Z 0.5 (both terms 1 - sigma(0) = 0.5); Case B both terms
1 - sigma(0.5) = 0.377541. z0 = 2 in Case B: desirable 1 - sigma(0.3) = 0.425557, undesirable
1 - sigma(0.7) = 0.331812, loss their mean 0.378685.
TRL parity runs ``KTOTrainer._compute_loss`` on 2B examples (B desirable then B undesirable)
with its own KL estimate from mismatched completions; we pass that mean as ``kl_baseline``.
"""
import pytest
import torch

from prefexp.losses.kto import KTOLoss

from . import trl_harness as H
from .trl_harness import needs_trl
from .cases import case_b, case_z, close


def test_canonical_cases():
    close(KTOLoss()(**case_z()).loss, 0.5)
    close(KTOLoss()(**case_b()).loss, 0.377541)


def test_kl_baseline():
    out = KTOLoss()(**case_b(kl_baseline=torch.tensor(2.0, dtype=torch.float64)))
    close(out.loss, (0.425557 + 0.331812) / 2)
    close(out.metrics["kto/kl"], 2.0)
    # a negative estimate is clamped at 0, as TRL's max(0, .)
    close(KTOLoss()(**case_b(kl_baseline=torch.tensor(-3.0, dtype=torch.float64))).loss, 0.377541)


def test_weights_and_detached_baseline():
    z0 = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    out = KTOLoss(desirable_weight=2.0, undesirable_weight=1.0)(**case_b(kl_baseline=z0, requires_grad=True))
    assert out.loss.requires_grad
    assert torch.autograd.grad(out.loss, z0, allow_unused=True)[0] is None
    close(KTOLoss(desirable_weight=2.0)(**case_z()).loss, (2 * 0.5 + 0.5) / 2)


@needs_trl
@pytest.mark.parametrize("weights", [(1.0, 1.0), (1.33, 1.0)])
def test_trl_parity(weights):
    b = 4
    lengths = torch.tensor([3, 5, 4, 7, 6, 2, 5, 3])
    per_token, completion = H.token_logps(lengths, seed=4)
    kl_tokens, _ = H.token_logps(lengths, seed=5)
    g = torch.Generator().manual_seed(6)
    logps = (per_token * completion[:, 1:]).sum(1)
    ref = logps.detach() + torch.randn(2 * b, generator=g, dtype=torch.float64)
    kl_logps = (kl_tokens.detach() * completion[:, 1:]).sum(1)
    ref_kl = kl_logps - 0.5 - torch.rand(2 * b, generator=g, dtype=torch.float64)  # positive KL estimate
    labels = torch.tensor([True] * b + [False] * b)
    trl_value = H.kto_loss(per_token, completion, kl_tokens, ref, ref_kl, labels, desirable_weight=weights[0],
                           undesirable_weight=weights[1])
    out = KTOLoss(desirable_weight=weights[0], undesirable_weight=weights[1])(
        policy_chosen_logps=logps[:b], policy_rejected_logps=logps[b:], reference_chosen_logps=ref[:b],
        reference_rejected_logps=ref[b:], kl_baseline=(kl_logps - ref_kl).mean())
    assert out.metrics["kto/kl"] > 0
    H.assert_grads_match(trl_value, out.loss, per_token)
