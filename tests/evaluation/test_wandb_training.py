"""The training side of "results on the training run": W&B identity kept in the run dir, the
same id on resume, and one W&B history row per logging step (read back from the offline run
file). A real transformers Trainer with its WandbCallback and prefexp's ThroughputCallback, on
the tiny GPT-2, 3 steps. Checked to fail with the former ThroughputCallback (throughput in a
second row of its own)."""
from __future__ import annotations

import json

import pytest

from prefexp.config.schema import LoggerConfig
from prefexp.logger import start_wandb
from tests.evaluation.conftest import TINY_GPT2
from tests.evaluation.wandb_records import history_rows, run_identity

wandb = pytest.importorskip("wandb")


def _train(run_dir, steps: int) -> None:
    import torch
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

    from prefexp.engine.throughput import ThroughputCallback

    model = AutoModelForCausalLM.from_pretrained(TINY_GPT2)
    rows = [{"input_ids": torch.arange(i, i + 8), "attention_mask": torch.ones(8, dtype=torch.long),
             "labels": torch.arange(i, i + 8)} for i in range(8)]
    args = TrainingArguments(output_dir=str(run_dir / "checkpoints"), max_steps=steps, logging_steps=1,
                             per_device_train_batch_size=2, report_to=["wandb"], save_strategy="no",
                             use_cpu=True, disable_tqdm=True)
    Trainer(model=model, args=args, train_dataset=rows, callbacks=[ThroughputCallback()]).train()


@pytest.mark.slow  # ~55 s on the shared 2 cores: two W&B service start-ups plus a Trainer
def test_one_row_per_logging_step_and_same_id_on_resume(tmp_path, monkeypatch):
    if not TINY_GPT2.is_dir():
        pytest.skip(f"{TINY_GPT2} not available")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = LoggerConfig(project="prefexp-trainlog", mode="offline")
    run = start_wandb(cfg, {"seed": 0}, tmp_path, "first", [])
    first_id = run.id
    _train(tmp_path, steps=3)
    run.finish()
    wandb.teardown()
    record = json.loads((tmp_path / "wandb_run.json").read_text())
    assert record["id"] == first_id and record["project"] == "prefexp-trainlog"

    (segment,) = (tmp_path / "wandb").glob(f"offline-run-*-{first_id}/run-{first_id}.wandb")
    steps = [r for r in history_rows(segment) if "train/loss" in r]
    assert [r["train/global_step"] for r in steps] == [1, 2, 3]  # each logging step exactly once
    assert all(r["train/throughput/tokens_per_second"] > 0 for r in steps)
    assert not [r for r in history_rows(segment) if "train/throughput/tokens_per_second" in r
                and "train/loss" not in r]  # no second, throughput-only row

    # The same run dir started again (a resumed training run) keeps the W&B id.
    again = start_wandb(cfg, {"seed": 0}, tmp_path, "first", [])
    assert again.id == first_id
    again.finish()
    wandb.teardown()
    segments = sorted((tmp_path / "wandb").glob(f"offline-run-*-{first_id}/run-{first_id}.wandb"))
    assert len(segments) == 2 and {run_identity(p)["id"] for p in segments} == {first_id}
