"""Cache entries on disk that concurrent processes build once and a kill cannot poison.

Every cache of the project (reference log-probs, reward models and their scores, the sandbox
model) stores one entry per key at a final path, a file or a folder. :func:`build_once` is the one
way to create such an entry:

1. Fast path: the entry is complete -> return at once (no lock, nothing read).
2. Else take the lock ``.<final name>.lock`` (:class:`BuildLock`, an ``flock``). Concurrent cold
   runs of the same key queue there: one builds, the others wait and then find the entry complete
   and reuse it.
3. Under the lock, anything left by a killed build of this key is removed: temporary siblings
   ``.<final name>.building-*`` and an incomplete final entry. Safe, because the kernel drops an
   ``flock`` when its holder dies, so holding it proves no live build of this key.
4. Build into a unique temporary sibling ``.<final name>.building-<host>-<pid>-<random>`` (same
   folder, hence same filesystem) and rename it into place: a reader sees nothing or everything.

Locks need a filesystem with working ``flock`` (local disks; NFSv4 and Lustre mounted with
``flock``). The lock file is removed by its holder on release, so cache folders hold entries only.
(Not the ``filelock`` package: its 4.x line silently falls back to a lock file that a killed
process leaves held forever where ``flock`` is missing, and it keeps the lock files.)
"""
from __future__ import annotations

import fcntl
import glob
import logging
import os
import shutil
import socket
import time
import uuid
from pathlib import Path
from typing import Callable, Iterable

log = logging.getLogger(__name__)

BUILDING = ".building-"
WAIT_NOTICE_S = 60.0  # how often a waiting process says whom it waits for
POLL_S = 0.1


def lock_path(final: Path) -> Path:
    """The lock file that serialises builds of ``final``."""
    final = Path(final)
    return final.with_name(f".{final.name}.lock")


class BuildLock:
    """An exclusive ``flock`` on ``path`` that removes its file on release.

    Removing a lock file is safe only with this protocol: after ``flock`` succeeds, the holder
    checks that ``path`` still names the inode it locked (a previous holder may have unlinked it
    between our ``open`` and our ``flock``) and retries otherwise; the holder unlinks the file
    *before* it unlocks. ``notice(waited_s)`` is called every :data:`WAIT_NOTICE_S` seconds of waiting.
    """

    def __init__(self, path: Path, notice: Callable[[float], None] = lambda waited_s: None):
        self.path, self.notice, self.fd = Path(path), notice, None

    def acquire(self) -> None:
        start = next_notice = time.monotonic()
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if time.monotonic() >= next_notice:
                    self.notice(time.monotonic() - start)
                    next_notice += WAIT_NOTICE_S
                time.sleep(POLL_S)
                continue
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                self.fd = fd
                return
            os.close(fd)  # we locked a file the previous holder already removed: try the new one

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self.fd)  # closing drops the flock
            self.fd = None

    def __enter__(self) -> "BuildLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def temp_path(final: Path) -> Path:
    """A fresh temporary sibling of ``final``, unique across hosts, processes and calls, that names
    its builder (so a waiting process can say whom it waits for)."""
    final = Path(final)
    tag = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    return final.with_name(f".{final.name}{BUILDING}{tag}")


def leftovers(final: Path) -> list[Path]:
    """Temporary siblings of ``final``: builds in progress, or left by a killed build."""
    final = Path(final)
    if not final.parent.is_dir():
        return []
    return sorted(final.parent.glob(f".{glob.escape(final.name)}{BUILDING}*"))


def remove(path: Path) -> None:
    """Remove a file or folder if present."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a unique temporary sibling and a rename; concurrent writers
    of the same content never see each other's half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def file_complete(path: Path) -> bool:
    """Completeness of a single-file entry: it exists (files only ever appear by rename)."""
    return Path(path).is_file()


def done_marker_complete(path: Path) -> bool:
    """Completeness of a folder entry whose builder writes ``DONE`` last."""
    return (Path(path) / "DONE").is_file()


def _waiting_notice(final: Path, what: str) -> Callable[[float], None]:
    def notice(waited_s: float) -> None:
        builders = ", ".join(p.name.split(BUILDING, 1)[1] for p in leftovers(final)) or "unknown"
        log.info("%s: another process is building %s (host-pid-id: %s); waiting for it (%.0f s so far)",
                 what, final, builders, waited_s)
    return notice


def build_once(final: Path, build: Callable[[Path], None], *, complete: Callable[[Path], bool] = file_complete,
               directory: bool = False, what: str = "cache") -> bool:
    """Make sure the cache entry ``final`` exists, building it at most once across processes.

    Args:
        final: the entry's path (a file, or a folder when ``directory``).
        build: ``build(tmp)`` writes the entry to ``tmp`` (for a folder: into the empty folder
            ``tmp``, which exists). It must finish the entry, including any completion marker.
        complete: whether an existing ``final`` is a finished entry (:func:`file_complete` for
            files, :func:`done_marker_complete` for folders with a ``DONE`` marker).
        directory: the entry is a folder.
        what: a short name for log lines ("reference log-probs").

    Returns True if this call built the entry, False if it was already there (or another process
    built it while this one waited). A failing ``build`` leaves nothing behind and re-raises.
    """
    final = Path(final)
    if complete(final):
        return False
    final.parent.mkdir(parents=True, exist_ok=True)
    with BuildLock(lock_path(final), _waiting_notice(final, what)):
        if complete(final):
            log.info("%s: built by another process, reusing %s", what, final)
            return False
        _clean_killed_build(final, what)
        tmp = temp_path(final)
        if directory:
            tmp.mkdir()
        try:
            build(tmp)
            os.replace(tmp, final)  # atomic on one filesystem; final was removed above if incomplete
        finally:
            remove(tmp)
        return True


def _clean_killed_build(final: Path, what: str) -> None:
    """Under the lock: whatever a previous builder of ``final`` left is from a dead process."""
    stale: Iterable[Path] = leftovers(final)
    if final.exists() or final.is_symlink():
        stale = [*stale, final]  # exists but incomplete (complete() said no)
    for path in stale:
        log.warning("%s: removing %s, left by an interrupted build", what, path)
        remove(path)

