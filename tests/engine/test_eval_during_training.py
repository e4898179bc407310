"""Evaluation during training: held-out pairs, eval metrics under TRL's names, generations.

The end-to-end run trains with learning_rate=0, so the policy stays the reference and every eval
number has a closed form: cDPO at log-ratio 0 is ln 2 whatever the label smoothing, the implicit
reward margins are 0 (accuracy 0: a margin must be > 0 to count), the held-out routes follow
margin < tau on the sandbox ratings, and the generations are the same at every step.
"""
from __future__ import annotations

import json
import math
import random
import warnings
from pathlib import Path

import pytest

from tests.conftest import compose
from tests.helpers import read_jsonl, run_train

# synthetic responses: the held-out draw below is re-derived from the rows without the model
SMALL = ["dataset.sandbox.num_prompts=400", "model.sandbox.sft_steps=80", "model.sandbox.num_prompts=400",
         "dataset.sandbox.responses=synthetic"]


def settings_for(*overrides: str):
    """Synthetic sandbox rows: splitting needs no model (the sampled rows would build the default
    3000-step reference first, and a prompt whose samples tie gives no pair)."""
    from prefexp.setup.validate import validate

    return validate(compose(["dataset.sandbox.responses=synthetic", *overrides]))


def test_eval_fraction_split_is_seeded_and_disjoint():
    from prefexp.pipeline.heldout import split_heldout
    from prefexp.pipeline.load import load_data

    s = settings_for("dataset.eval_fraction=0.1", "dataset.sandbox.num_prompts=200")
    data = load_data(s)
    train, held = split_heldout(s, data)
    assert len(held.pairs) == 20 and len(train.pairs) == 180
    held_ids = {p.index for p in held.pairs}
    assert held_ids.isdisjoint(p.index for p in train.pairs)
    assert held_ids == set(random.Random("heldout-0").sample(range(200), 20))  # the documented draw
    again = split_heldout(s, load_data(s))[1]
    assert [p.index for p in again.pairs] == [p.index for p in held.pairs]
    other = split_heldout(settings_for("dataset.eval_fraction=0.1", "dataset.sandbox.num_prompts=200", "seed=1"),
                          data)[1]
    assert {p.index for p in other.pairs} != held_ids


def test_no_heldout_keys_means_no_split():
    from prefexp.pipeline.heldout import split_heldout
    from prefexp.pipeline.load import load_data

    s = settings_for("dataset.sandbox.num_prompts=50")
    data = load_data(s)
    assert split_heldout(s, data) == (data, None)


@pytest.mark.parametrize("overrides, message", [
    (["dataset.eval_fraction=1.5"], "dataset.eval_fraction=1.5 is outside [0, 1)"),
    (["dataset.eval_split=test"], "dataset.eval_split='test' needs dataset.source=hf"),
    (["trainer.generation_steps=5"], "trainer.generation_steps=5 generates from held-out prompts and there are none"),
    (["trainer.eval_steps=0", "dataset.eval_fraction=0.1"], "trainer.eval_steps=0 must be >= 1"),
])
def test_bad_eval_keys_name_key_value_and_fix(overrides, message):
    from prefexp.config.settings import ConfigError

    with pytest.raises(ConfigError) as err:
        settings_for(*overrides)
    assert message in str(err.value)


@pytest.mark.parametrize("checkpointing", [False, True])
def test_training_arguments_raise_no_deprecation_warning(tmp_path, checkpointing):
    from prefexp.pipeline.trainer_setup import training_arguments

    c = settings_for(f"trainer.gradient_checkpointing={checkpointing}", "logger=none").config
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        args = training_arguments(c, tmp_path, evaluating=True)
    assert [str(w.message) for w in caught if issubclass(w.category, (FutureWarning, DeprecationWarning))] == []
    assert args.activation_checkpointing is checkpointing and args.eval_strategy == "steps"


@pytest.fixture(scope="module")
def eval_run(tmp_path_factory) -> tuple[Path, str]:
    run_dir = tmp_path_factory.mktemp("eval-run")
    proc = run_train(run_dir, "loss=mixdpo", "tau=0.5", "trainer.learning_rate=0", "trainer.max_steps=4",
                     "trainer.logging_steps=2", "dataset.eval_fraction=0.05", "trainer.eval_steps=2",
                     "trainer.eval_batch_size=32", "trainer.generation_steps=2", "trainer.generation_prompts=3",
                     "trainer.generation_max_new_tokens=16", *SMALL)  # logger: W&B offline (the default)
    return run_dir, proc.stderr


def heldout_margins() -> list[float]:
    """The 20 held-out sandbox pairs' rating margins, re-derived from the documented draw."""
    from prefexp.sandbox.data import build_sandbox_rows

    rows = build_sandbox_rows(num_prompts=400, seed=0)
    return [rows[i]["score_chosen"] - rows[i]["score_rejected"] for i in random.Random("heldout-0").sample(range(400), 20)]


def test_eval_metrics_at_configured_steps(eval_run):
    run_dir, stderr = eval_run
    rows = read_jsonl(run_dir / "eval_metrics.jsonl")
    assert [r["step"] for r in rows] == [2, 4]
    difficult = sum(m < 0.5 for m in heldout_margins())  # 4 of 20 with this seed
    assert difficult > 0
    for r in rows:
        # one batch of 20, averaged in float32 (eps 1.2e-7)
        assert r["eval_route/sft_fraction"] == pytest.approx(difficult / 20, abs=2e-7)
        assert r["eval_loss/easy"] == pytest.approx(math.log(2), abs=1e-5)
        assert r["eval_rewards/margins"] == pytest.approx(0.0, abs=1e-6)
        assert r["eval_rewards/accuracies"] == 0.0
        assert r["eval_rewards/accuracies/difficult"] == 0.0 and r["eval_rewards/accuracies/easy"] == 0.0
        f = difficult / 20  # eval_loss = the per-pair mean over both routes
        assert r["eval_loss"] == pytest.approx((1 - f) * math.log(2) + f * r["eval_loss/difficult"], rel=1e-5)
    train_rows = read_jsonl(run_dir / "metrics.jsonl")
    assert not any(k.startswith("eval_") for r in train_rows for k in r), "eval metrics leaked into training logs"
    assert "FutureWarning" not in stderr and "DeprecationWarning" not in stderr
    plan = read_jsonl(run_dir / "routing_plan.jsonl")
    assert len(plan) == 380, "held-out pairs must not be trained on"


def test_generations_logged_with_gold_scores(eval_run):
    from prefexp.sandbox.task import gold_score

    run_dir, _ = eval_run
    rows = read_jsonl(run_dir / "generations.jsonl")
    assert [r["step"] for r in rows] == [2, 2, 2, 4, 4, 4]
    for r in rows:
        assert r["score"] == gold_score(r["prompt"], r["completion"])
    assert [r["completion"] for r in rows[:3]] == [r["completion"] for r in rows[3:]]  # lr 0: same policy
    tables = list((run_dir / "wandb").glob("offline-run-*/files/media/table/generations_*.table.json"))
    assert len(tables) == 2
    table = json.loads(sorted(tables)[0].read_text())
    assert table["columns"] == ["step", "prompt", "completion", "score"] and len(table["data"]) == 3
    # W&B: one history row per logging step (1, 2, 4); the evaluation and generations of steps 2
    # and 4 join that step's training row instead of making rows of their own
    from prefexp.tracking.files import history_rows

    (segment,) = (run_dir / "wandb").glob("offline-run-*/run-*.wandb")
    history = history_rows(segment)
    assert [r["_step"] for r in history] == [1, 2, 4] == [r["train/global_step"] for r in history]
    for r in history[1:]:
        assert "train/loss" in r and "eval/loss" in r and r["generations/_type"] == "table-file", sorted(r)


def test_eval_split_reads_the_other_split_of_a_folder(tmp_path, shared_data):
    """dataset.eval_split: a folder with train.jsonl and test.jsonl (the layout datasets resolves
    splits from), filled from the shared UltraFeedback slices; nothing is drawn from the train split."""
    import gzip

    from prefexp.pipeline.heldout import split_heldout
    from prefexp.pipeline.load import load_data

    folder = tmp_path / "uf"
    folder.mkdir()
    uf = shared_data / "preference" / "ultrafeedback"
    for name, source, n in (("train", "trl_ultrafeedback_binarized_train1000", 30),
                            ("test", "trl_ultrafeedback_binarized_eval200", 12)):
        with gzip.open(uf / f"{source}.jsonl.gz", "rt") as f:
            lines = [next(f) for _ in range(n)]
        (folder / f"{name}.jsonl").write_text("".join(lines))
    s = settings_for("dataset=ultrafeedback", f"dataset.path={folder}", "dataset.split=train",
                     "dataset.eval_split=test")
    data = load_data(s)
    train, held = split_heldout(s, data)
    assert train is data and len(train.pairs) == 30
    test_rows = [json.loads(line) for line in (folder / "test.jsonl").read_text().splitlines()]
    assert [p.chosen for p in held.pairs] == [r["chosen"] for r in test_rows]  # text responses in this slice
