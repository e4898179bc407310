"""One live run per run dir: ``<run>/.run.lock`` holds the pid and host of the process that owns it.

A second launch into a run dir a live run holds is refused (two runs writing one set of
checkpoints would each resume from the other's half-written state). A lock whose pid no longer
runs on this host (a run killed with SIGKILL, a crashed node that came back) is stale and taken
over. A lock from another host cannot be checked from here; it is refused, naming the file to
delete once that host's run is known to be gone.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import socket
import time
from pathlib import Path

from ..config import layout
from ..errors import InputError

log = logging.getLogger(__name__)

LOCK_NAME = layout.RUN_LOCK


class RunDirBusy(InputError):
    """The run dir is held by a live run (printed as one ``error:`` line, exit 2)."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM  # exists, owned by someone else
    return True


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # being written right now, or garbage: treated below as unknown holder


class RunLock:
    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_NAME
        self.held = False

    def acquire(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = _read(self.path)
                if not self._stale(holder):
                    raise RunDirBusy(self._busy_message(holder)) from None
                self._take_over(holder)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.held = True
            return self
        raise RunDirBusy(self._busy_message(_read(self.path)))

    def _stale(self, holder: dict) -> bool:
        if not holder:  # empty: a holder between create and write (or a crash right there)
            try:
                return time.time() - self.path.stat().st_mtime > 10
            except FileNotFoundError:
                return True
        return holder.get("host") == socket.gethostname() and not _pid_alive(int(holder.get("pid", -1)))

    def _take_over(self, holder: dict) -> None:
        # Rename, not unlink: of two processes taking over the same stale lock, only one rename
        # succeeds, and the other's O_EXCL create then sees the winner's lock.
        aside = self.path.with_name(f"{LOCK_NAME}.stale-{os.getpid()}")
        try:
            os.replace(self.path, aside)
        except FileNotFoundError:
            return
        if _read(aside) != holder:  # we moved a fresh lock, not the stale one: put it back
            os.replace(aside, self.path)
            return
        aside.unlink()
        log.warning("took over the stale lock of pid %s on %s (no longer running): %s",
                    holder.get("pid"), holder.get("host"), self.path)

    def _busy_message(self, holder: dict) -> str:
        who = f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')} (since {holder.get('since', '?')})"
        return (f"run dir {self.path.parent} is in use by a live run: {who}; wait for it, stop it, or pass another "
                f"hydra.run.dir=... (if that run is gone, delete {self.path})")

    def release(self) -> None:
        if self.held and _read(self.path).get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)
        self.held = False

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def refusal_before_hydra(argv: list[str]) -> str | None:
    """The busy-run-dir message for an explicit ``hydra.run.dir=D`` that a live run holds, checked
    before Hydra starts: Hydra would otherwise first rewrite the live run's ``D/.hydra/``. (Without
    an explicit dir Hydra picks a new timestamped one, which nobody holds.) None: go ahead; the
    lock itself is taken later, in the job (this check alone would race)."""
    if (os.environ.get("PREFEXP_SPAWNED") or os.environ.get("RANK", "0") != "0" or "-m" in argv or "--multirun" in argv
            or os.environ.get("NODE_RANK", "0") != "0" or os.environ.get("SLURM_NODEID", "0") != "0"):  # node 0 locks
        return None
    values = [a.split("=", 1)[1] for a in argv if a.startswith("hydra.run.dir=")]
    if not values:
        return None
    lock = RunLock(Path(values[-1].strip("'\"")))
    holder = _read(lock.path) if lock.path.is_file() else None
    return lock._busy_message(holder) if holder and not lock._stale(holder) else None
