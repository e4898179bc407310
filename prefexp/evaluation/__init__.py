"""Evaluation stage: checkpoint -> generations -> judge -> ``<run>/eval/<benchmark>/results.json``.

Entry point: ``python -m prefexp.evaluate``; see docs/evaluation.md.
"""
from .config import (AlpacaEvalConfig, EvalConfigError, EvaluateConfig, GenerationConfig, JudgeConfig,
                     MTBenchConfig, SandboxConfig)
from .runner import evaluate

__all__ = ["AlpacaEvalConfig", "EvalConfigError", "EvaluateConfig", "GenerationConfig", "JudgeConfig",
           "MTBenchConfig", "SandboxConfig", "evaluate"]
