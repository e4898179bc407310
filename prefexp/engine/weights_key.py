"""Which weights a cache entry was computed from, known without re-reading them.

The rule (docs/scaling.md, "Cache keys"):

* **Local folder**: the sha256 of its weight files' names and contents (``*.safetensors``, then
  ``*.bin``, sorted), hashed once and memoised in a small JSON file keyed by each file's
  (name, size, mtime_ns, ctime_ns, inode). While those are unchanged the memo is the answer: a
  few ``stat`` calls, nothing read. Any write to a weight file changes its mtime and ctime (and a
  file replaced by a new one has a new inode), so changed weights are re-hashed and miss; a
  ``touch`` without a change re-hashes once and still hits. ctime cannot be set back by a user,
  so restoring the mtime after an edit does not fool it. The memo lives in the cache dir,
  ``<cache_dir>/weights_fingerprints/<sha256 of the folder's resolved path>.json`` (the per-user
  ``$XDG_CACHE_HOME/prefexp/weights_fingerprints/`` when no cache dir is given), never in the model
  folder: model folders are often read-only or shared (a hub cache, a cluster's model store).
* **Hub id** (not a local folder): the id plus the commit that ``refs/main`` points to in the local
  Hugging Face cache (``HF_HUB_CACHE``), read from disk, never from the network; a new revision
  is a new commit and misses. An id absent from the local cache is keyed by its name and
  ``unresolved`` (with a warning), which a later run with the model downloaded does not reuse.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Optional

from ..cachefs import write_text_atomic

log = logging.getLogger(__name__)

MEMO_VERSION = 1


def weight_files(folder: Path) -> list[Path]:
    """The files that hold a model's weights, in hashing order."""
    return sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))


def content_fingerprint(files: list[Path]) -> str:
    """sha256 of every file's name and bytes, first 16 hex digits (reads everything: GBs)."""
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 24), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def file_identity(f: Path) -> list:
    """What changes when a file's content may have changed: name, size, mtime, ctime, inode
    (``stat`` follows the symlinks of a hub snapshot to the blobs)."""
    st = f.stat()
    return [f.name, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def memo_path(folder: Path, cache_dir: Optional[Path] = None) -> Path:
    """Where the memo of ``folder`` lives: under ``cache_dir``, keyed by the folder's resolved path."""
    root = Path(cache_dir) if cache_dir is not None else \
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "prefexp"
    digest = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]
    return root / "weights_fingerprints" / f"{digest}.json"


def _read_memo(path: Path, identity: list) -> Optional[str]:
    try:
        memo = json.loads(path.read_text())
    except (OSError, ValueError):  # none yet, or cut off: hash again (the memo is only a shortcut)
        return None
    if isinstance(memo, dict) and memo.get("version") == MEMO_VERSION and memo.get("files") == identity:
        return memo.get("fingerprint")
    return None


def _write_memo(path: Path, folder: Path, identity: list, fingerprint: str) -> None:
    text = json.dumps({"version": MEMO_VERSION, "folder": str(folder.resolve()), "files": identity,
                       "fingerprint": fingerprint}) + "\n"
    try:
        write_text_atomic(path, text)
    except OSError as err:
        log.warning("weights fingerprint of %s could not be memoised in %s (%s); it will be re-hashed next time",
                    folder, path, err)


def folder_fingerprint(folder: Path, cache_dir: Optional[Path] = None) -> str:
    """Fingerprint of a local model folder, from the memo when the files are unchanged."""
    files = weight_files(folder)
    identity = [file_identity(f) for f in files]
    path = memo_path(folder, cache_dir)
    fingerprint = _read_memo(path, identity)
    if fingerprint is None:
        log.info("weights fingerprint: hashing %d file(s) of %s once (memoised for later runs)", len(files), folder)
        fingerprint = content_fingerprint(files)
        if [file_identity(f) for f in files] == identity:  # not rewritten while we read it
            _write_memo(path, folder, identity, fingerprint)
    return fingerprint


def hub_commit(repo_id: str, revision: str = "main", hub_cache: Optional[str] = None) -> Optional[str]:
    """The commit ``revision`` of ``repo_id`` resolves to in the local Hugging Face cache, or None."""
    if hub_cache is None:
        from huggingface_hub import constants

        hub_cache = constants.HF_HUB_CACHE
    repo = Path(hub_cache) / ("models--" + repo_id.replace("/", "--"))
    ref = repo / "refs" / revision
    if ref.is_file():
        return ref.read_text().strip() or None
    if (repo / "snapshots" / revision).is_dir():  # the revision is itself a commit hash
        return revision
    return None


def weights_fingerprint(model_dir: str, cache_dir: Optional[Path] = None) -> str:
    """16 hex digits that identify a model's weights (see the module docstring for the rule);
    ``cache_dir`` is where a local folder's memo is kept."""
    path = Path(model_dir)
    if path.is_dir():
        return folder_fingerprint(path, cache_dir)
    commit = hub_commit(model_dir)
    if commit is None:
        log.warning("weights fingerprint: %s is neither a local folder nor in the local Hugging Face cache; "
                    "keyed by its name only until it is downloaded", model_dir)
        commit = "unresolved"
    return hashlib.sha256(f"hub:{model_dir}@{commit}".encode()).hexdigest()[:16]
