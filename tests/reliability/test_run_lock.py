"""One live run per run dir (prefexp/launch/run_lock.py): a live holder is refused by pid and
host, a dead one's lock is taken over, only the holder's release removes it."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from prefexp.errors import InputError
from prefexp.launch.run_lock import LOCK_NAME, RunLock


def test_a_live_holder_is_refused_with_its_pid_and_host(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname(),
                                                      "since": "2026-01-01 00:00:00"}))
        with pytest.raises(InputError) as err:
            RunLock(tmp_path).acquire()
        message = str(err.value)
        assert f"pid {holder.pid} on host {socket.gethostname()}" in message
        assert str(tmp_path / LOCK_NAME) in message, "names the file to delete if that run is gone"
    finally:
        holder.kill()
        holder.wait()


def test_a_dead_holders_lock_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # reaped: its pid is free (pid reuse within this test is not a concern in practice)
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    lock = RunLock(tmp_path).acquire()
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    lock.release()
    assert not (tmp_path / LOCK_NAME).exists()


def test_another_hosts_lock_is_refused_not_guessed(tmp_path):
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "some-other-node"}))
    with pytest.raises(InputError, match="pid 1 on host some-other-node"):
        RunLock(tmp_path).acquire()


def test_second_acquire_in_the_same_dir_is_refused_and_release_only_removes_ones_own(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(InputError, match=f"pid {os.getpid()}"):
            RunLock(tmp_path).acquire()
        other = RunLock(tmp_path)
        other.release()  # never acquired: must not remove the holder's lock
        assert (tmp_path / LOCK_NAME).exists()
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_held_run_dir_is_refused_before_hydra_rewrites_its_config(tmp_path):
    """An explicit hydra.run.dir held by a live run is refused before Hydra writes D/.hydra/."""
    from prefexp.launch.run_lock import refusal_before_hydra

    with RunLock(tmp_path):
        message = refusal_before_hydra(["loss=dpo", f"hydra.run.dir='{tmp_path}'"])
        assert message and f"pid {os.getpid()} on host {socket.gethostname()}" in message
        assert refusal_before_hydra(["loss=dpo"]) is None, "a fresh timestamped dir is nobody's"
    assert refusal_before_hydra([f"hydra.run.dir={tmp_path}"]) is None, "released: free again"
