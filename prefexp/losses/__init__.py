"""Preference losses: one module per objective, each registered by ``conf/loss/<name>.yaml``."""
from .base import LossOutput, PreferenceLoss

__all__ = ["LossOutput", "PreferenceLoss"]
