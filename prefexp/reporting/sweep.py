"""The sweep-level summary: a Hydra Callback run once when a multirun ends (any launcher).

``<sweep dir>/sweep_summary.json`` lists every job: its dir, overrides, status (ok / failed /
incomplete, with the error line of a failed one) and final training metrics (plus eval results if
any). The report (report.md, report.csv, plots) is written next to it. Registered in
``conf/hydra/default.yaml`` under ``hydra.callbacks``; neither step can fail the sweep.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Optional, Sequence

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from ..config import layout
from .collect import collect_runs

log = logging.getLogger(__name__)


def write_summary(sweep_dir: Path) -> Path:
    runs = collect_runs(sweep_dir)
    counts = {s: sum(r.status == s for r in runs) for s in ("ok", "failed", "incomplete")}
    summary = {"sweep_dir": str(Path(sweep_dir).resolve()), "jobs": len(runs), **counts,
               "runs": [r.summary(Path(sweep_dir)) for r in runs]}
    path = Path(sweep_dir) / layout.SWEEP_SUMMARY
    path.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return path


class SweepSummary(Callback):
    """``baseline`` / ``metrics``: the report's paired differences (as ``python -m prefexp.report
    --baseline B --metric M ...``); an experiment sets them under ``hydra.callbacks.sweep_summary``."""

    def __init__(self, report: bool = True, baseline: Optional[str] = None, metrics: Sequence[str] = ()) -> None:
        self.report, self.baseline, self.metrics = report, baseline, list(metrics or ())

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        if not sweep_dir.is_dir():
            return
        try:
            path = write_summary(sweep_dir)
            summary = json.loads(path.read_text())
            log.info("sweep summary: %d jobs, %d ok, %d failed, %d incomplete -> %s", summary["jobs"], summary["ok"],
                     summary["failed"], summary["incomplete"], path)
            for run in summary["runs"]:
                if run["status"] == "failed":
                    log.error("failed job %s (%s): %s", run["job_num"], ",".join(run["overrides"]), run["error"])
        except Exception:  # noqa: BLE001 - a summary problem must not turn a finished sweep into an error
            log.exception("could not write the sweep summary in %s", sweep_dir)
            return
        if self.report:
            try:
                from .write import write_report

                log.info("sweep report: %s", write_report(sweep_dir, baseline=self.baseline, metrics=self.metrics))
            except Exception:  # noqa: BLE001
                log.exception("could not write the sweep report in %s", sweep_dir)
