"""Entry point: ``python -m prefexp.evaluate <entry>=<path> eval=<benchmark>``.

Entries (exactly one): ``checkpoint=`` a prefexp run dir, ``hf_model=`` any HF model folder or hub
id, ``outputs=`` an AlpacaEval outputs / MT-Bench answers file, ``annotations=`` AlpacaEval
annotations / MT-Bench judgments (see docs/evaluation.md). This module only composes the config,
turns it into typed dataclasses once (``prefexp.evaluation.config``) and hands them to
``prefexp.evaluation.runner``, which picks the entry (``sources``) and runs the benchmark.

Exit codes: 0 done; 2 bad input (one ``error:`` line per problem, naming the key or file);
3 the judge is unreachable or failing (429/5xx, time-outs or unreadable HTTP 200 replies past
``eval.judge.max_retries``), or some judgments failed: the ``error:`` line names the failed items
(results.json holds the rest and lists them in ``failed_items``; re-running the same command asks
only for the failed ones).
"""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from .errors import InputError, print_error
from .redact import add_secret_envs, install_log_redaction
from .evaluation.config import EvalConfigError, EvaluateConfig, register_schemas

CONFIG_DIR = Path(__file__).resolve().parents[1] / "conf"
register_schemas()


def to_settings(cfg: DictConfig) -> EvaluateConfig:
    """The composed config as dataclasses; a missing mandatory value becomes one clear error."""
    missing = sorted(f"eval.{k}" for k in OmegaConf.missing_keys(cfg.eval))
    if missing:
        raise EvalConfigError(f"mandatory keys not set: {missing}")
    settings = OmegaConf.to_object(cfg)
    assert isinstance(settings, EvaluateConfig)
    return settings


def rerun_command() -> str:
    return " ".join(["python -m prefexp.evaluate", *map(shlex.quote, sys.argv[1:])])


@hydra.main(config_path=str(CONFIG_DIR), config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    import logging

    from .engine.library_noise import quiet_evaluation_libraries, quiet_libraries
    from .evaluation.judge_client import JudgeError
    from .evaluation.judging import IncompleteJudging
    from .evaluation.runner import evaluate

    install_log_redaction()  # no log line carries an API key (prefexp/redact.py)
    quiet_libraries()  # no DeepSpeed accelerator warning, no progress bars off a terminal
    try:
        settings = to_settings(cfg)
        judge = getattr(settings.eval, "judge", None)  # the sandbox benchmark has none
        add_secret_envs([judge.api_key_env if judge else "", settings.eval.generation.vllm_api_key_env])
        logging.getLogger().setLevel(settings.log_level)
        quiet_evaluation_libraries(settings.log_level)  # no line per judge request
        evaluate(settings)
    except InputError as exc:
        print_error(exc)
        sys.exit(2)
    except IncompleteJudging as exc:
        print_error(f"{exc}\nrerun: {rerun_command()}")
        sys.exit(3)
    except JudgeError as exc:
        print_error(f"{exc}\nrerun (judgments received so far are kept): {rerun_command()}")
        sys.exit(3)


if __name__ == "__main__":
    from .config.group_options import unknown_group_option

    problem = unknown_group_option(sys.argv[1:], CONFIG_DIR)  # eval=alpaca_evl: one line, exit 2
    if problem:
        print_error(problem)
        sys.exit(2)
    main()
