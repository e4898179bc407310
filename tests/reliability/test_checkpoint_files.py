"""Checkpoint files a kill cannot poison (prefexp/engine/checkpoints.py), on hand-made run dirs:
what a kill leaves (a staged save, an empty or half-written checkpoint-N) is set aside by name,
never deleted and never resumed from; a publish is one rename."""
from __future__ import annotations

from pathlib import Path

from prefexp.engine.checkpoints import (complete_checkpoints, newest_complete_checkpoint, publish, set_aside_incomplete,
                                        staging_dir)


def complete(path: Path, step_marker: str = "") -> Path:
    path.mkdir(parents=True)
    (path / "model.safetensors").write_text("weights" + step_marker)
    (path / "trainer_state.json").write_text("{}")
    return path


def test_newest_complete_wins_over_a_newer_half_written_one(tmp_path):
    out = tmp_path / "checkpoints"
    complete(out / "checkpoint-2")
    complete(out / "checkpoint-10")  # numeric order, not text order: 10 > 2
    (out / "checkpoint-12").mkdir()  # empty: what a kill during an old-style save left
    half = out / "checkpoint-11"
    half.mkdir()
    (half / "model.safetensors").write_text("weights")  # no trainer_state.json: the Trainer writes it last
    assert newest_complete_checkpoint(out) == out / "checkpoint-10"
    moved = set_aside_incomplete(out)
    assert sorted(p.name for p in moved) == ["incomplete-checkpoint-11", "incomplete-checkpoint-12"]
    assert (out / "incomplete-checkpoint-11" / "model.safetensors").read_text() == "weights", "renamed, not deleted"
    assert [p.name for p in complete_checkpoints(out)] == ["checkpoint-2", "checkpoint-10"]


def test_a_staged_save_is_set_aside_and_never_resumed(tmp_path):
    out = tmp_path / "checkpoints"
    complete(out / "checkpoint-2")
    complete(staging_dir(out) / "checkpoint-3")  # fully written but never renamed: the kill came first
    assert newest_complete_checkpoint(out) == out / "checkpoint-2"
    set_aside_incomplete(out)
    assert not staging_dir(out).exists()
    assert (out / "incomplete-checkpoint-3" / "trainer_state.json").exists()
    # a second kill at the same step later: the name is taken, the next one gets a suffix
    complete(staging_dir(out) / "checkpoint-3")
    set_aside_incomplete(out)
    assert (out / "incomplete-checkpoint-3-2").is_dir()
    assert newest_complete_checkpoint(out) == out / "checkpoint-2"


def test_set_aside_names_never_match_the_trainers_rotation_glob(tmp_path):
    """transformers' rotate_checkpoints globs checkpoint-* and deletes the oldest: a set-aside
    checkpoint must not be counted there (nor deleted by it)."""
    from transformers.trainer_utils import sort_checkpoints

    out = tmp_path / "checkpoints"
    complete(out / "checkpoint-4")
    (out / "checkpoint-5").mkdir()
    set_aside_incomplete(out)
    assert sort_checkpoints(str(out)) == [str(out / "checkpoint-4")]


def test_publish_is_a_rename_and_replaces_a_same_step_checkpoint(tmp_path):
    out = tmp_path / "checkpoints"
    complete(out / "checkpoint-3", "old")
    staged = complete(staging_dir(out) / "checkpoint-3", "new")
    publish(staged, out / "checkpoint-3")
    assert (out / "checkpoint-3" / "model.safetensors").read_text() == "weightsnew"
    assert (out / "incomplete-checkpoint-3" / "model.safetensors").read_text() == "weightsold"
    assert not staging_dir(out).exists(), "the empty staging dir is removed"


def test_deepspeed_checkpoint_counts_as_complete(tmp_path):
    """ZeRO writes global_stepN/ and a 'latest' pointer; with trainer_state.json it is complete."""
    ckpt = tmp_path / "checkpoint-7"
    (ckpt / "global_step7").mkdir(parents=True)
    (ckpt / "latest").write_text("global_step7")
    (ckpt / "trainer_state.json").write_text("{}")
    assert newest_complete_checkpoint(tmp_path) == ckpt
