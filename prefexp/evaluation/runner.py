"""The evaluation stage from typed settings: entry -> benchmark -> results.json (+ W&B).

A benchmark is a function ``run(cfg, source, out_dir) -> dict`` with ``metrics``, ``data``,
``judge``, ``generation``, ``n_items``, ``notes`` (and ``subset``, ``failed_items`` when they
apply); adding one is one registry entry (``prefexp/benchmark_registry.py``), one module, one
schema and one YAML file. The runner never asks which benchmark it runs beyond picking it from the
registry. When judgments are missing at the end it raises ``IncompleteJudging`` (exit 3) after
results.json is written.
"""
from __future__ import annotations

import dataclasses
import importlib
import logging
from pathlib import Path

from .. import benchmark_registry as registry
from . import results
from .config import EvaluateConfig, validate
from .judging import IncompleteJudging, item_label, reason_counts
from .sources import output_dir, resolve_source
from .store import write_json

log = logging.getLogger("prefexp.evaluate")

# name -> module with a ``run`` function (imported on use: each pulls in heavy packages).
BENCHMARKS = {name: b.module for name, b in registry.BENCHMARKS.items()}


def _file_log(out_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(out_dir / "eval.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    return handler


def evaluate(cfg: EvaluateConfig) -> dict:
    """Run one benchmark on one entry; returns what results.json holds."""
    validate(cfg)
    source = resolve_source(cfg)
    name = cfg.eval.model_name or source.default_model_name()
    out_dir = output_dir(cfg, source, name)
    out_dir.mkdir(parents=True, exist_ok=True)
    handler = _file_log(out_dir)
    write_json(out_dir / "config.json", dataclasses.asdict(cfg))  # holds no key: keys are never config
    try:
        log.info("evaluating %s on %s -> %s", source.describe().get("path"), cfg.eval.name, out_dir)
        bench = importlib.import_module(BENCHMARKS[cfg.eval.name])
        res = results.build(cfg.eval.name, bench.run(cfg.eval, source, out_dir), source, cfg.eval.limit)
        path = results.write(out_dir, res)
        if cfg.wandb:
            res["wandb"] = results.log_to_wandb(source.run_dir, cfg.eval.name, res, out_dir)
            results.write(out_dir, res)
            log.info("W&B: %s", res["wandb"])
        log.info("results: %s", path)
        print("\n".join([results.summary_line(res), *results.protocol_lines(res)]), flush=True)
        failed = res.get("failed_items") or []
        if failed:
            reasons = reason_counts([f["reason"] for f in failed])
            raise IncompleteJudging(len(failed), res.get("n_judgments_expected", res["n_items"]), path, reasons,
                                    [item_label(f) for f in failed])
        return res
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()

