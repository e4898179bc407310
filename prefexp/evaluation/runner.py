"""The evaluation stage from typed settings: checkpoint -> benchmark -> results.json (+ W&B).

A benchmark is a function ``run(cfg, checkpoint, out_dir) -> dict`` with ``metrics``, ``data``,
``judge``, ``generation``, ``n_items`` and ``notes``; adding one is one module, one schema and one
YAML file. The runner never asks which benchmark it runs beyond picking it from the registry.
"""
from __future__ import annotations

import dataclasses
import importlib
import logging
from pathlib import Path

from . import results
from .store import write_json
from .config import EvaluateConfig, validate
from .manifest import resolve_checkpoint

log = logging.getLogger("prefexp.evaluate")

# name -> module with a ``run`` function (imported on use: each pulls in heavy packages).
BENCHMARKS = {"alpaca_eval": "prefexp.evaluation.alpaca", "mt_bench": "prefexp.evaluation.mt_bench",
              "sandbox": "prefexp.evaluation.sandbox_bench"}


def output_dir(cfg: EvaluateConfig, output_root: Path) -> Path:
    return Path(cfg.output_dir) if cfg.output_dir is not None else output_root / "eval" / cfg.eval.name


def _file_log(out_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(out_dir / "eval.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    return handler


def evaluate(cfg: EvaluateConfig) -> dict:
    """Run one benchmark on one checkpoint; returns what results.json holds."""
    validate(cfg)
    ckpt = resolve_checkpoint(cfg.checkpoint)
    out_dir = output_dir(cfg, ckpt.output_root)
    out_dir.mkdir(parents=True, exist_ok=True)
    handler = _file_log(out_dir)
    write_json(out_dir / "config.json", dataclasses.asdict(cfg))  # holds no key: keys are never config
    try:
        log.info("evaluating %s on %s -> %s", ckpt.path, cfg.eval.name, out_dir)
        bench = importlib.import_module(BENCHMARKS[cfg.eval.name])
        res = results.build(cfg.eval.name, bench.run(cfg.eval, ckpt, out_dir), ckpt.describe(), cfg.eval.limit)
        path = results.write(out_dir, res)
        if cfg.wandb:
            res["wandb"] = results.log_to_wandb(ckpt.run_dir, cfg.eval.name, res["metrics"])
            results.write(out_dir, res)
            log.info("W&B: %s", res["wandb"])
        log.info("results: %s", path)
        print(results.summary_line(res), flush=True)
        return res
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
