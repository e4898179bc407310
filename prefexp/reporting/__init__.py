"""Sweep reporting: collect run dirs, tabulate final metrics and eval results, plot; no W&B needed."""
from .collect import RunRecord, collect_runs
from .sweep import SweepSummary, write_summary
from .table import write_tables

__all__ = ["RunRecord", "collect_runs", "SweepSummary", "write_summary", "write_tables"]
