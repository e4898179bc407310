"""Read a sweep dir: one RunRecord per job dir (the dirs holding ``.hydra/overrides.yaml``).

Everything comes from files the jobs wrote, so a report works offline and after the fact:
``.hydra/overrides.yaml`` (what the job varied), ``.hydra/hydra.yaml`` (job number, group
choices), ``.hydra/config.yaml`` (tau, seed, whether tau can change the run), ``metrics.jsonl``
(training curves; "final" = the last logged window, see ``final_window``), ``probes.jsonl``
(per-route log-probs on fixed probe sets, ``prefexp.engine.probes``),
``eval/<benchmark>/results.json`` (written by ``prefexp.evaluate``), and the status markers:
``FAILED`` (written by a job that raised), ``eval/<benchmark>/FAILED`` (a failed evaluation
hand-off, unless a newer results.json replaced it) or ``checkpoint/manifest.json`` (finished).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from ..benchmark_registry import BENCHMARKS
from ..config import layout
from ..config.axes import router_is_used, tau_is_used
from .final_window import final_metrics

# The headline number of each benchmark (eval score in plots); other benchmarks: first numeric key.
HEADLINE = {name: b.headline for name, b in BENCHMARKS.items()}  # prefexp/benchmark_registry.py
_NOT_METRICS = {"schema_version", "limit", "n_items"}
# ties of a pairwise judgment (sandbox: equal gold scores; AlpacaEval: draws), as a share of the items
TIE_KEYS = ("n_ties", "n_draws")
TIE_SHARE = "ties_percent"


@dataclass
class RunRecord:
    dir: Path
    job_num: Optional[int]
    overrides: list[str]
    params: dict[str, str]  # override key -> value, as typed
    loss: Optional[str]
    tau: Optional[float]
    status: str  # ok | failed | incomplete
    error: Optional[str] = None  # first line of FAILED: "<ExceptionType>: <message>"
    curves: list[dict] = field(default_factory=list)  # metrics.jsonl rows
    eval: dict[str, float] = field(default_factory=dict)  # "<benchmark>/<metric>" -> value
    headline: dict[str, str] = field(default_factory=dict)  # benchmark -> eval key used in plots
    seed: Optional[int] = None
    tau_used: bool = True  # False: the run's loss and router cannot read tau (prefexp.config.axes)
    probes: list[dict] = field(default_factory=list)  # probes.jsonl rows
    # benchmark -> metric -> {prompt id: that prompt's term of the metric}, when results.json
    # records them ("per_prompt": {metric: {prompt: value}}, the sandbox benchmark does)
    per_prompt: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    # route_learning_rates.json (prefexp.engine.probes): "<label>/<stat>" -> value
    route_lr: dict[str, float] = field(default_factory=dict)
    router_used: bool = True  # False: router=none, or a router that cannot change this loss's run
    curriculum: Optional[str] = None  # curriculum.order of .hydra/config.yaml
    source: str = ""  # the report input (sweep or run dir) it came from, when a report reads several

    @property
    def final(self) -> dict[str, float]:
        """Training metrics averaged over the last logged window (``final_window.final_metrics``)."""
        return final_metrics(self.curves)

    def summary(self, root: Path) -> dict[str, Any]:
        try:
            rel = str(self.dir.relative_to(root))
        except ValueError:
            rel = str(self.dir)
        return {"dir": rel, "job_num": self.job_num, "overrides": self.overrides, "status": self.status,
                "error": self.error, "loss": self.loss, "tau": self.tau, "final_metrics": self.final,
                "eval": self.eval}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _load_yaml(path: Path) -> Any:
    if not path.exists():
        return None
    return yaml.safe_load(path.read_text())


def _select(tree: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree


def _flat_numbers(tree: dict, prefix: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat_numbers(value, f"{prefix}/{key}"))
        elif key not in _NOT_METRICS and _is_number(value):
            out[f"{prefix}/{key}"] = float(value)
    return out


def read_eval(run_dir: Path, per_prompt: Optional[dict] = None) -> tuple[dict[str, float], dict[str, str]]:
    """``eval/<bench>/results.json`` -> ({"<bench>/<metric>": value}, {bench: headline key}); the
    per-prompt terms of a benchmark that records them go into ``per_prompt[bench][metric]``."""
    values: dict[str, float] = {}
    headline: dict[str, str] = {}
    for path in sorted((run_dir / layout.EVAL).glob(f"*/{layout.RESULTS}")):
        results = json.loads(path.read_text())
        bench = str(results.get("benchmark") or path.parent.name)
        metrics = results["metrics"] if isinstance(results.get("metrics"), dict) else results
        scores = results.get("per_prompt")
        if per_prompt is not None and isinstance(scores, dict):
            per_prompt[bench] = {str(metric): {str(k): float(v) for k, v in by_prompt.items() if _is_number(v)}
                                 for metric, by_prompt in scores.items() if isinstance(by_prompt, dict)}
        numbers = _flat_numbers({k: v for k, v in metrics.items() if k != "per_prompt"}, bench)
        ties = next((numbers.get(f"{bench}/{k}") for k in TIE_KEYS if f"{bench}/{k}" in numbers), None)
        total = numbers.get(f"{bench}/n_total", _float(results.get("n_items")))
        if ties is not None and total:
            numbers[f"{bench}/{TIE_SHARE}"] = 100.0 * ties / total
        values.update(numbers)
        preferred = f"{bench}/{HEADLINE[bench]}" if bench in HEADLINE else None
        key = preferred if preferred in numbers else next(iter(numbers), None)
        if key is not None:
            headline[bench] = key
    return values, headline


def read_metrics(run_dir: Path, name: str = layout.METRICS) -> list[dict]:
    path = run_dir / name
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def evaluation_failed(bench_dir: Path) -> bool:
    """A benchmark's FAILED marker (prefexp.evaluation.handoff) with no newer results.json."""
    marker, results = bench_dir / layout.FAILED, bench_dir / layout.RESULTS
    return marker.exists() and (not results.exists() or results.stat().st_mtime < marker.stat().st_mtime)


def status_of(run_dir: Path, config: Any) -> tuple[str, Optional[str]]:
    failed = run_dir / layout.FAILED
    if failed.exists():
        lines = [line for line in failed.read_text(errors="replace").splitlines() if line.strip()]
        return "failed", (lines[0] if lines else "failed")  # prefexp.launch.write_failure: summary first
    for marker in sorted((run_dir / layout.EVAL).glob(f"*/{layout.FAILED}")):  # prefexp.evaluation.handoff
        if evaluation_failed(marker.parent):
            lines = [line for line in marker.read_text(errors="replace").splitlines() if line.strip()]
            return "failed", (lines[0] if lines else f"evaluation {marker.parent.name} failed")
    if (run_dir / layout.FINAL_CHECKPOINT / layout.MANIFEST).exists():
        return "ok", None
    if _select(config, "dry_run") is True and (run_dir / layout.ROUTING_PLAN).exists():
        return "ok", None
    return "incomplete", None


def _float(value: Any) -> Optional[float]:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def read_run(run_dir: Path) -> RunRecord:
    overrides = [str(o) for o in (_load_yaml(run_dir / ".hydra" / "overrides.yaml") or [])]
    params = dict(o.lstrip("+~").split("=", 1) for o in overrides if "=" in o)
    hydra_cfg = _load_yaml(run_dir / ".hydra" / "hydra.yaml")
    config = _load_yaml(run_dir / ".hydra" / "config.yaml")
    job_num = _select(hydra_cfg, "hydra.job.num")
    loss = params.get("loss") or _select(hydra_cfg, "hydra.runtime.choices.loss")
    if loss is None and isinstance(_select(config, "loss._target_"), str):
        loss = _select(config, "loss._target_").rsplit(".", 1)[-1]
    tau = _float(params["tau"]) if "tau" in params else _float(_select(config, "tau"))
    seed = _float(params["seed"]) if "seed" in params else _float(_select(config, "seed"))
    status, error = status_of(run_dir, config)
    per_prompt: dict[str, dict[str, float]] = {}
    evals, headline = read_eval(run_dir, per_prompt)
    return RunRecord(dir=run_dir, job_num=job_num if isinstance(job_num, int) else None, overrides=overrides,
                     params=params, loss=loss, tau=tau, status=status, error=error, curves=read_metrics(run_dir),
                     eval=evals, headline=headline, seed=None if seed is None else int(seed),
                     tau_used=tau_is_used(config), probes=read_metrics(run_dir, layout.PROBES), per_prompt=per_prompt,
                     route_lr=read_route_lr(run_dir), router_used=router_is_used(config),
                     curriculum=_select(config, "curriculum.order"))


def read_route_lr(run_dir: Path) -> dict[str, float]:
    path = run_dir / layout.ROUTE_LEARNING_RATES
    if not path.exists():
        return {}
    return {key.lstrip("/"): value for key, value in _flat_numbers(json.loads(path.read_text()), "").items()}


def collect_runs(sweep_dir: Path, source: str = "") -> list[RunRecord]:
    """Every job dir under ``sweep_dir`` (any depth: older job dir names may contain '/'), by job
    number; ``source`` labels them (a report over several dirs)."""
    dirs = sorted({p.parent.parent for p in Path(sweep_dir).rglob(".hydra/overrides.yaml")})
    runs = [read_run(d) for d in dirs if ".submitit" not in d.parts]
    for r in runs:
        r.source = source
    return sorted(runs, key=lambda r: (r.job_num is None, r.job_num if r.job_num is not None else 0, str(r.dir)))


def collect_many(dirs: list[Path]) -> list[RunRecord]:
    """The runs of several sweep or run dirs, in the order given; each labelled with its input
    (``A``, ``B``, ... when more than one)."""
    if len(dirs) == 1:
        return collect_runs(dirs[0])
    return [r for i, d in enumerate(dirs) for r in collect_runs(d, source=_letter(i))]


def _letter(i: int) -> str:
    return chr(ord("A") + i) if i < 26 else f"S{i}"
