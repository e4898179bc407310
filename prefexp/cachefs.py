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
import hashlib
import json
import logging
import os
import shutil
import socket
import time
import uuid
from pathlib import Path
from typing import Callable, Iterable, Optional

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



# --- Checked entries: a checksum and the expected shape, verified on every read ------------------
#
# A file entry is JSON ``{"format": 1, "sha256": <of the canonical data>, "n": len(data), "data": ...}``:
# the manifest travels inside the entry, so it is written in the same rename as the values. A folder
# entry (a model) holds ``MANIFEST.json`` (sha256 of every file the build wrote), written by
# :func:`build_folder_once` before the folder is renamed into place. A read that fails the check
# (edited values, truncated or empty file, missing key, wrong pair count) moves the entry aside as
# ``<name>.corrupt`` (``.corrupt-N`` if taken; never deleted: it is evidence), logs one warning and
# rebuilds. Legacy entries (written before checksums): a file is rebuilt once (cheap, and its values
# cannot be trusted); a model folder is adopted with a warning and checksummed from then on,
# because rebuilding one costs minutes to hours and its builds are deterministic by key.

CHECKED_FORMAT = 1
MANIFEST = "MANIFEST.json"


class CacheCorrupt(Exception):
    """A cache entry failed its check; the message says why."""


def _canonical(data) -> tuple[object, str]:
    """``data`` as JSON reads it back (str keys, lists) and its sha256 over sorted-key JSON."""
    plain = json.loads(json.dumps(data))
    return plain, hashlib.sha256(json.dumps(plain, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def write_checked_json(path: Path, data) -> None:
    """Write ``data`` (a dict or list) to ``path`` with its checksum and size embedded."""
    plain, digest = _canonical(data)
    Path(path).write_text(json.dumps({"format": CHECKED_FORMAT, "sha256": digest, "n": len(plain), "data": plain}))


def read_checked_json(path: Path, *, keys: Optional[Iterable[str]] = None,
                      check: Optional[Callable[[object], Optional[str]]] = None):
    """The data of a checked entry; :class:`CacheCorrupt` if it fails its checksum, its size, the
    expected top-level ``keys`` (exactly these) or ``check(data)`` (a problem string or None)."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise CacheCorrupt(f"unreadable ({err})") from None
    if not text.strip():
        raise CacheCorrupt("empty file")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise CacheCorrupt(f"not valid JSON ({err.msg} at char {err.pos}): truncated or edited") from None
    if not (isinstance(doc, dict) and doc.get("format") == CHECKED_FORMAT and {"sha256", "n", "data"} <= doc.keys()):
        raise CacheCorrupt("no checksum: written by an older prefexp version, so unverified")
    data, digest = _canonical(doc["data"])
    if digest != doc["sha256"]:
        raise CacheCorrupt("checksum mismatch: values edited or partly written")
    if len(data) != doc["n"]:
        raise CacheCorrupt(f"{len(data)} items, manifest says {doc['n']}")
    if keys is not None and isinstance(data, dict):
        want = set(keys)
        missing, extra = sorted(want - data.keys()), sorted(data.keys() - want)
        if missing or extra:
            raise CacheCorrupt(f"{len(missing)} expected key(s) missing (e.g. {missing[:3]}), "
                               f"{len(extra)} unexpected (e.g. {extra[:3]})")
    problem = check(data) if check else None
    if problem:
        raise CacheCorrupt(problem)
    return data


def quarantine(final: Path, why: str, what: str) -> Path:
    """Move a failed entry aside as ``<name>.corrupt`` (or ``.corrupt-N``) and say so in one line."""
    final = Path(final)
    aside, n = final.with_name(final.name + ".corrupt"), 1
    while aside.exists() or aside.is_symlink():
        aside, n = final.with_name(f"{final.name}.corrupt-{n}"), n + 1
    os.replace(final, aside)
    log.warning("%s: cache entry %s failed its check (%s); moved aside to %s, rebuilding", what, final, why, aside.name)
    return aside


def cached_json(final: Path, compute: Callable[[], object], *, what: str, keys: Optional[Iterable[str]] = None,
                check: Optional[Callable[[object], Optional[str]]] = None, force: bool = False) -> tuple[object, bool]:
    """``(data, built)``: the checked entry ``final``, computed by ``compute()`` (at most once across
    processes, :func:`build_once`) if missing, failed (moved aside, one warning) or ``force``.
    ``data`` is always what JSON reads back (str keys, lists), whether built or read."""
    keys = None if keys is None else list(keys)
    built = build_once(final, lambda tmp: write_checked_json(tmp, compute()), what=what,
                       complete=(lambda p: False) if force else file_complete)
    try:
        return read_checked_json(final, keys=keys, check=check), built
    except CacheCorrupt as err:
        if built:
            raise  # what we just wrote fails: a bug or a broken disk, not something to loop on
        with BuildLock(lock_path(final), _waiting_notice(final, what)):
            try:  # under the lock: another process may have replaced it already
                return read_checked_json(final, keys=keys, check=check), False
            except FileNotFoundError:
                pass
            except CacheCorrupt as again:
                quarantine(final, str(again), what)
    build_once(final, lambda tmp: write_checked_json(tmp, compute()), what=what)
    return read_checked_json(final, keys=keys, check=check), True


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_folder_manifest(folder: Path) -> None:
    """``MANIFEST.json``: the sha256 of every file now in ``folder`` (files added later, such as
    cached samples inside a model folder, are separate entries and not covered)."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
    (folder / MANIFEST).write_text(json.dumps(
        {"format": CHECKED_FORMAT, "files": {str(p.relative_to(folder)): _file_digest(p) for p in files}}, indent=1))


def verify_folder(folder: Path) -> None:
    """:class:`CacheCorrupt` unless every file the manifest lists is there with its checksum."""
    try:
        files = json.loads((Path(folder) / MANIFEST).read_text())["files"]
    except FileNotFoundError:
        raise CacheCorrupt("no checksum: written by an older prefexp version") from None
    except (ValueError, KeyError, TypeError):
        raise CacheCorrupt(f"{MANIFEST} unreadable") from None
    for rel, digest in files.items():
        path = Path(folder) / rel
        if not path.is_file():
            raise CacheCorrupt(f"{rel} missing")
        if _file_digest(path) != digest:
            raise CacheCorrupt(f"checksum mismatch on {rel}")


def build_folder_once(final: Path, build: Callable[[Path], None], *, what: str, force: bool = False) -> bool:
    """:func:`build_once` for a folder entry with a ``DONE`` marker, checksummed (``MANIFEST.json``)
    and verified on every use; a failed folder is moved aside and rebuilt, a legacy one (no
    manifest) adopted with a warning. Returns True if this call built it."""
    def checked_build(tmp: Path) -> None:
        build(tmp)
        write_folder_manifest(tmp)

    complete = (lambda p: False) if force else done_marker_complete
    if build_once(final, checked_build, complete=complete, directory=True, what=what):
        return True
    try:
        verify_folder(final)
        return False
    except CacheCorrupt:
        pass
    with BuildLock(lock_path(final), _waiting_notice(final, what)):
        try:
            verify_folder(final)
            return False
        except CacheCorrupt as err:
            if not (final / MANIFEST).exists():
                log.warning("%s: %s has no checksum (written by an older prefexp version); adopted as is "
                            "and checksummed from now on", what, final)
                write_folder_manifest(final)
                return False
            quarantine(final, str(err), what)
    return build_once(final, checked_build, complete=done_marker_complete, directory=True, what=what)
