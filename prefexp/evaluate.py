"""Entry point: ``python -m prefexp.evaluate checkpoint=<run or checkpoint dir> eval=<benchmark>``.

Composes ``conf/evaluate.yaml`` (benchmarks: ``conf/eval/{alpaca_eval,mt_bench,sandbox}.yaml``),
turns it into typed dataclasses once (``prefexp.evaluation.config``), validates them, and hands
them to ``prefexp.evaluation.runner``. Only this module touches the DictConfig.

Exit codes: 0 done, 2 config error (every problem listed), 3 judge unreachable or failing.
"""
from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from .evaluation.config import EvalConfigError, EvaluateConfig, register_schemas

CONFIG_DIR = Path(__file__).resolve().parents[1] / "conf"
register_schemas()


def to_settings(cfg: DictConfig) -> EvaluateConfig:
    """The composed config as dataclasses; a missing mandatory value becomes one clear error."""
    if OmegaConf.is_missing(cfg, "checkpoint"):
        raise EvalConfigError("checkpoint is not set: python -m prefexp.evaluate "
                              "checkpoint=<run dir or checkpoint dir> eval=<alpaca_eval|mt_bench|sandbox>")
    missing = sorted(f"eval.{k}" for k in OmegaConf.missing_keys(cfg.eval))
    if missing:
        raise EvalConfigError(f"mandatory keys not set: {missing}")
    settings = OmegaConf.to_object(cfg)
    assert isinstance(settings, EvaluateConfig)
    return settings


@hydra.main(config_path=str(CONFIG_DIR), config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    import logging

    from .evaluation.judge_client import JudgeError
    from .evaluation.runner import evaluate

    try:
        settings = to_settings(cfg)
        logging.getLogger().setLevel(settings.log_level)
        evaluate(settings)
    except EvalConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except JudgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(3)


if __name__ == "__main__":
    main()
