"""Run-dir preflight: not writable, or too small for two checkpoints, stops the run before it trains."""
from __future__ import annotations

import os

import pytest

from prefexp.setup.preflight import (RunDirError, check_run_dir, preflight_run_dir, sandbox_weight_bytes,
                                      weight_bytes)
from prefexp.config.schema import SandboxModelSpec
from prefexp.errors import InputError


def test_room_for_two_checkpoints_is_three_times_the_weights_each(tmp_path):
    """1000 bytes of weights: a checkpoint is ~3000 (weights + AdamW's two moments), two need 6000."""
    check_run_dir(tmp_path / "run", 1000, free_bytes=6000)
    with pytest.raises(RunDirError) as err:
        check_run_dir(tmp_path / "run", 1000, free_bytes=5999)
    msg = str(err.value)
    assert isinstance(err.value, InputError)
    assert f"hydra.run.dir='{tmp_path / 'run'}'" in msg and "2 checkpoints need about" in msg


def test_weights_measured_from_the_model_folder(shared_data, tmp_path):
    tiny = shared_data / "models/tiny-gpt2"
    size = (tiny / "model.safetensors").stat().st_size
    assert weight_bytes(tiny) == size
    check_run_dir(tmp_path / "run", str(tiny), free_bytes=6 * size)
    with pytest.raises(RunDirError, match="need about"):
        check_run_dir(tmp_path / "run", str(tiny), free_bytes=6 * size - 1)
    assert weight_bytes("Qwen/Qwen2.5-0.5B") is None  # a hub id: size unknown, only writability checked
    check_run_dir(tmp_path / "run", "Qwen/Qwen2.5-0.5B", free_bytes=0)


def test_sandbox_estimate_bounds_the_real_model():
    """Default spec (h=64, 2 layers, MLP 256): 4 bytes x (256*64 + 2*(4*64^2 + 3*64*256 + 2*64) + 64)."""
    assert sandbox_weight_bytes(SandboxModelSpec()) == 4 * (256 * 64 + 2 * (4 * 4096 + 3 * 64 * 256 + 128) + 64)


def test_a_run_dir_that_cannot_be_created_or_written_is_named(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(RunDirError) as err:
        check_run_dir(blocker / "run", 10)
    assert f"hydra.run.dir='{blocker / 'run'}' is not writable" in str(err.value)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only dirs")
def test_a_read_only_run_dir_is_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(RunDirError, match="is not writable"):
            check_run_dir(ro, 10)
    finally:
        ro.chmod(0o700)


def test_preflight_from_the_config(tmp_path):
    from omegaconf import OmegaConf, open_dict

    from prefexp.config.schema import TrainConfig
    from tests.conftest import compose

    cfg = compose([f"paths.run_dir={tmp_path / 'run'}"])
    with open_dict(cfg):
        cfg.pop("hydra")
    c: TrainConfig = OmegaConf.to_object(cfg)
    need = 2 * 3 * sandbox_weight_bytes(c.model.sandbox)
    preflight_run_dir(c, tmp_path / "run", free_bytes=need)
    with pytest.raises(RunDirError):
        preflight_run_dir(c, tmp_path / "run", free_bytes=need - 1)
    c.dry_run = True  # a dry run saves no checkpoint
    preflight_run_dir(c, tmp_path / "run", free_bytes=0)
