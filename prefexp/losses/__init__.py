"""Preference losses: one module per objective, each registered by ``conf/loss/<name>.yaml``.

See ``docs/losses.md`` for the table of losses and how to add one.
"""
from .alpha_dpo import AlphaDPOLoss
from .amapo import AMaPOLoss
from .apo_down import APODownLoss
from .apo_hinge_softplus import APOHingeSoftplusLoss
from .apo_hinge_zero import APOHingeZeroLoss
from .apo_zero import APOZeroLoss
from .base import LossOutput, PreferenceLoss, gather_across_ranks
from .beta_dpo import BetaDPOLoss
from .cdpo import CDPOLoss
from .cpo import CPOLoss
from .dpo import DPOLoss
from .hinge import HingeLoss
from .ipo import IPOLoss
from .kto import KTOLoss
from .madpo import MADPOLoss
from .margin_sigmoid import MarginSigmoidLoss
from .maxneg_minpos import MaxNegMinPosLoss
from .mixdpo import MixDPOLoss
from .orpo import ORPOLoss
from .robust import RobustDPOLoss
from .rpo import RPOLoss
from .sft import SFTLoss
from .simpo import SimPOLoss
from .smooth_maxneg_minpos import SmoothMaxNegMinPosLoss

__all__ = [
    "LossOutput", "PreferenceLoss", "gather_across_ranks",
    "AlphaDPOLoss", "AMaPOLoss", "APODownLoss", "APOHingeSoftplusLoss", "APOHingeZeroLoss",
    "APOZeroLoss", "BetaDPOLoss", "CDPOLoss", "CPOLoss", "DPOLoss", "HingeLoss", "IPOLoss",
    "KTOLoss", "MADPOLoss", "MarginSigmoidLoss", "MaxNegMinPosLoss", "MixDPOLoss", "ORPOLoss",
    "RobustDPOLoss", "RPOLoss", "SFTLoss", "SimPOLoss", "SmoothMaxNegMinPosLoss",
]
