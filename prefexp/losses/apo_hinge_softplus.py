"""APO-hinge-softplus (Yao, Yuan, Chen 2025, arXiv 2508.08466; the authors' report, eq. 12).

    lr_c = logp_c - ref_c,  lr_r = logp_r - ref_r                              [B]
    L    = softplus(m - b lr_c) + softplus(m + b lr_r)                          [B]

The smooth counterpart of APO-hinge-zero (same anchored directions, never exactly zero
gradient, never shift-invariant).

Hyperparameters:
    beta: in (0, inf), default 0.1 (the authors' own value was "set too high" and not given);
    m: margin in [0, inf), default 1;  beta_squared: default false (see apo_hinge_zero.py).
Rewards: ``b * (logp - ref)``, detached. Not in TRL.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from .apo_hinge_zero import APOHingeZeroLoss


class APOHingeSoftplusLoss(APOHingeZeroLoss):
    name = "apo_hinge_softplus"

    def side_losses(self, chosen: Tensor, rejected: Tensor) -> Tensor:
        return F.softplus(self.m - chosen) + F.softplus(self.m + rejected)
