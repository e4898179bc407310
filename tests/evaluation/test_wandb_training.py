"""The training side of "results on the training run": W&B identity kept in the run dir, the
same id on resume, and one W&B history row per logging step (read back from the offline run
file). A real transformers Trainer with prefexp's WandbCallback and ThroughputCallback, on the
tiny GPT-2, 3 steps; the Trainer's arguments sit under one config key. Checked to fail with the
former ThroughputCallback (throughput in a second row of its own)."""
from __future__ import annotations

import json

import pytest

from prefexp.config.schema import LoggerConfig
from prefexp.tracking.run import start_wandb
from tests.evaluation.conftest import TINY_GPT2
from prefexp.tracking.files import config, history_rows, records, run_identity

wandb = pytest.importorskip("wandb")


def _train(run_dir, steps: int) -> None:
    import torch
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

    from prefexp.engine.throughput import ThroughputCallback
    from prefexp.engine.wandb_callback import PrefexpWandbCallback

    model = AutoModelForCausalLM.from_pretrained(TINY_GPT2)
    rows = [{"input_ids": torch.arange(i, i + 8), "attention_mask": torch.ones(8, dtype=torch.long),
             "labels": torch.arange(i, i + 8)} for i in range(8)]
    args = TrainingArguments(output_dir=str(run_dir / "checkpoints"), max_steps=steps, logging_steps=1,
                             per_device_train_batch_size=2, report_to="none", save_strategy="no",
                             use_cpu=True, disable_tqdm=True)
    Trainer(model=model, args=args, train_dataset=rows, callbacks=[ThroughputCallback(), PrefexpWandbCallback()]).train()


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
    assert [r["_step"] for r in steps] == [1, 2, 3]  # W&B's own step is the global step
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
    saved = config(segment)
    assert {"seed", "trainer_args", "model_config"} <= saved.keys() and "learning_rate" not in saved, saved.keys()
    assert saved["trainer_args"]["learning_rate"] == 5e-05 and saved["seed"] == 0


@pytest.mark.slow  # ~2 min on the shared 2 cores: three training starts and one evaluation on the sandbox
def test_a_killed_resumed_and_evaluated_run_is_one_clean_wandb_run(tmp_path):
    """The issue's dashboard check through the real entry point: SIGKILL after step 3 (checkpoint
    at step 2), the same command again (resume), the sandbox evaluation at the end; every offline
    file under the run dir is one run id, the history has strictly increasing ``_step``, one row
    per logging step 1..6 (the steps the killed process lost are logged again from metrics.jsonl),
    and the evaluation's summary and generations Table are in that run."""
    from prefexp.tracking.files import summary
    from tests.reliability.faults import finish, kill9, logged_step, start, wait_for

    run_dir = tmp_path / "run"
    cmd = ["loss=mixdpo", "tau=0.5", "seed=1", "logger=wandb", "trainer.max_steps=6", "trainer.save_steps=2",
           "evaluate=[sandbox]", "evaluate_overrides=['eval.limit=8']"]
    proc, log = start(run_dir, *cmd, log_name="first")
    wait_for(lambda: logged_step(run_dir) >= 3, proc, log)
    kill9(proc)
    proc, log = start(run_dir, *cmd, log_name="second")
    assert finish(proc, log) == 0, log.read_text()[-3000:]
    assert "resuming from" in log.read_text()

    files = sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 3 and len({p.name for p in files}) == 1, files  # killed, resumed, evaluation: one id
    # SIGKILL: W&B's service never wrote what it buffered (here the killed file is its 7-byte header)
    identities = [run_identity(p) for p in files if records(p)]
    assert len({i["id"] for i in identities}) == 1 and identities[0]["id"] in files[0].name
    assert {(i["name"], tuple(i["tags"])) for i in identities} == {
        ("mixdpo-tau0.5-s1", ("loss:mixdpo", "seed:1", "router:threshold", "curriculum:easy_to_hard", "tau:0.5"))}
    rows = [r for p in files for r in history_rows(p)]
    steps = [r["_step"] for r in rows]
    assert steps == sorted(set(steps)), steps  # strictly increasing over the killed and the resumed part
    train = [r for r in rows if "train/loss" in r]
    assert [r["train/global_step"] for r in train] == [1, 2, 3, 4, 5, 6]  # one row per logging step
    assert all("train/logits/chosen" in r and "train/memory/peak_rss_mb/rank0" in r for r in train), sorted(train[-1])
    (evaluated,) = [r for r in rows if "eval/sandbox/win_rate" in r]
    assert evaluated["train/global_step"] == 6 and evaluated["_step"] == 7
    assert evaluated["eval/sandbox/generations/nrows"] == 8
    results = json.loads((run_dir / "eval" / "sandbox" / "results.json").read_text())
    assert summary(files)["eval/sandbox/win_rate"] == pytest.approx(results["metrics"]["win_rate"], abs=1e-9)
