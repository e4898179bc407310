"""A run dir's artifacts, named once: the stages that write them (``prefexp.pipeline``,
``prefexp.engine``, ``prefexp.launch``, ``prefexp.evaluation``) and ``prefexp.reporting``, which
reads them, use these names; ``docs/architecture.md`` lists which stage writes which.

    <run dir>/
      run_config.json  train.log  .run.lock  ds_config.json
      skipped_rows.jsonl  tokenization_summary.json
      routing_plan.jsonl  routing_summary.json  margins.png
      metrics.jsonl  eval_metrics.jsonl  probes.jsonl  route_learning_rates.json  nonfinite.json
      generations.jsonl  token_cleaning.json  wandb_run.json
      checkpoints/checkpoint-N/   checkpoint/ (final, with manifest.json, loss_state.pt)
      eval/<benchmark>/results.json (or FAILED)   wandb/   FAILED (a failed sweep job)
    <sweep dir>/sweep_summary.json  report.md
"""
from __future__ import annotations

RUN_CONFIG = "run_config.json"
TRAIN_LOG = "train.log"
RUN_LOCK = ".run.lock"
DS_CONFIG = "ds_config.json"
SKIPPED_ROWS = "skipped_rows.jsonl"
TOKENIZATION_SUMMARY = "tokenization_summary.json"
ROUTING_PLAN = "routing_plan.jsonl"
ROUTING_SUMMARY = "routing_summary.json"
MARGINS_PLOT = "margins.png"
METRICS = "metrics.jsonl"
EVAL_METRICS = "eval_metrics.jsonl"
PROBES = "probes.jsonl"
ROUTE_LEARNING_RATES = "route_learning_rates.json"
NONFINITE = "nonfinite.json"
GENERATIONS = "generations.jsonl"
TOKEN_CLEANING = "token_cleaning.json"
WANDB_RUN = "wandb_run.json"
LOSS_STATE = "loss_state.pt"
CHECKPOINTS = "checkpoints"
FINAL_CHECKPOINT = "checkpoint"
MANIFEST = "manifest.json"
EVAL = "eval"
RESULTS = "results.json"
FAILED = "FAILED"
WANDB = "wandb"
SWEEP_SUMMARY = "sweep_summary.json"
REPORT = "report.md"
