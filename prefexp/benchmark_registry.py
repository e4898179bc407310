"""The benchmarks of the evaluation stage, named once: ``BENCHMARKS[name]`` is a :class:`Benchmark`.

Every other per-benchmark table is derived from this one (all in ``prefexp.evaluation`` unless
named): the runner's module per name (``runner.BENCHMARKS``), the names the config knows
(``config.BENCHMARKS``; ``config.SCHEMAS`` is keyed by each schema's own ``name`` and checked
against this registry at import), training's ``evaluate=[...]`` check (``prefexp.setup.validate``, through
:func:`unknown_benchmark`), the
summary line's metrics and decimals (``results.HEADLINE`` / ``results.DECIMALS``) and the
report's headline metric (``prefexp.reporting.collect.HEADLINE``). Adding a benchmark is one entry here, its module, its
schema in ``prefexp/evaluation/config.py`` and its ``conf/eval/<name>.yaml``.

It lives outside ``prefexp/evaluation/`` on purpose: importing ``prefexp.evaluation.<anything>``
runs that package's ``__init__`` (config, runner, results), which the report and the training
config's validation (``prefexp.setup.validate``) need not load. This module imports nothing of
prefexp and nothing heavy.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Benchmark:
    name: str                   # the eval= option, conf/eval/<name>.yaml, eval/<name>/ in a run dir
    module: str                 # dotted path of the module whose ``run(cfg, source, out_dir)`` runs it
    headline: str               # the metric the report plots and ranks by (eval/<name>/<headline>)
    summary: tuple[str, ...]    # the metrics of the one-line summary, in order
    decimals: int               # decimals of floats in that line


BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (
    # AlpacaEval's leaderboard shows 2 decimals
    Benchmark("alpaca_eval", "prefexp.evaluation.alpaca", "length_controlled_winrate",
              ("win_rate", "length_controlled_winrate", "standard_error"), 2),
    # MT-Bench averages are k/160-type fractions that 6 decimals show exactly enough to compare
    # with FastChat's tables
    Benchmark("mt_bench", "prefexp.evaluation.mt_bench", "score", ("score", "turn_1", "turn_2", "n_unparseable"), 6),
    Benchmark("sandbox", "prefexp.evaluation.sandbox_bench", "win_rate",
              ("win_rate", "standard_error", "mean_gold_score", "reference_mean_gold_score"), 3),
)}


def unknown_benchmark(name: str, key: str = "eval") -> Optional[str]:
    """None for a known benchmark name, else one line naming it, the closest name (if one is
    close) and every option, e.g. ``eval=alpca_eval is not a benchmark; did you mean alpaca_eval?
    options: alpaca_eval, mt_bench, sandbox (conf/eval/)``. ``key`` is what the user typed before
    the ``=`` (``eval``, ``eval.name``, ``evaluate``)."""
    if name in BENCHMARKS:
        return None
    options = sorted(BENCHMARKS)
    close = difflib.get_close_matches(str(name), options, n=1, cutoff=0.5)
    hint = f"did you mean {close[0]}? " if close else ""
    return f"{key}={name} is not a benchmark; {hint}options: {', '.join(options)} (conf/eval/)"


__all__ = ["BENCHMARKS", "Benchmark", "unknown_benchmark"]
