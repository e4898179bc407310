"""The training pipeline: one job as a short list of named stages (docs/architecture.md)."""
from .job import train

__all__ = ["train"]
