"""AlpacaEval data: the 805 instructions with a baseline's outputs, and the LC GLM's inputs.

alpaca_eval itself fetches these from the HF hub and caches into its install folder. Here they
come from a local copy (``eval.data_dir``, layout of ../shared/data/alpaca_eval) or from the hub
into ``<eval dir>/cache/hf_hub``, never into site-packages.

The length-controlled win rate needs ``df_gamed.csv`` (the gamed-baseline annotations and the
per-instruction difficulties), which exists only on the hub. ``find_df_gamed`` looks for a real
copy (``eval.lc_df_gamed``, data_dir, the user's HF cache, this run's cache, then the hub if online); when there is
none the LC win rate is reported as null with the reason, never as a number made up offline.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from .store import read_jsonl, sha256_file

log = logging.getLogger(__name__)

HUB_REPO = "tatsu-lab/alpaca_eval"
# Baseline name -> file in the hub dataset (AE2 baseline = gpt4_1106_preview, "gpt4_turbo").
HUB_FILES = {"gpt4_1106_preview": "alpaca_eval_gpt4_baseline.json", "text_davinci_003": "alpaca_eval.json"}
DF_GAMED = "df_gamed.csv"


@dataclass
class ReferenceSet:
    rows: list[dict]      # instruction, output, generator (+ dataset, index when known)
    source: str
    version: str

    def describe(self) -> dict:
        return {"source": self.source, "version": self.version, "n_instructions": len(self.rows)}


def hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


@contextlib.contextmanager
def offline_hub(enabled: bool = True) -> Iterator[None]:
    """Force huggingface_hub offline (read at call time) for the duration, then restore."""
    from huggingface_hub import constants

    old_const, old_env = constants.HF_HUB_OFFLINE, os.environ.get("HF_HUB_OFFLINE")
    if enabled:
        constants.HF_HUB_OFFLINE = True
        os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = old_const
        if old_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old_env


def _read_rows(path: Path) -> list[dict]:
    rows = read_jsonl(path) if path.suffix == ".jsonl" else json.loads(path.read_text())
    for i, row in enumerate(rows):
        row.setdefault("index", i)
    return rows


def load_reference(reference: str, data_dir: Optional[str], hub_cache: Path) -> ReferenceSet:
    """The baseline's outputs on the evaluation set (their instructions are the eval set)."""
    if data_dir is not None:
        root = Path(data_dir)
        names = [f"reference_outputs/{reference}.jsonl", f"reference_outputs/{reference}.json",
                 f"{reference}.jsonl", f"{reference}.json", HUB_FILES.get(reference, "-")]
        for name in names:
            if (root / name).is_file():
                path = root / name
                return ReferenceSet(_read_rows(path), f"local:{path.resolve()}", f"sha256:{sha256_file(path)}")
        raise FileNotFoundError(f"eval.data_dir={data_dir}: no reference outputs for {reference!r} "
                                f"(looked for {names})")
    if reference not in HUB_FILES:
        raise ValueError(f"eval.reference={reference!r}: known public baselines are {sorted(HUB_FILES)}; "
                         "give others through eval.data_dir")
    from huggingface_hub import hf_hub_download

    path = Path(hf_hub_download(HUB_REPO, HUB_FILES[reference], repo_type="dataset", cache_dir=hub_cache))
    revision = path.parent.name  # .../snapshots/<commit>/<file>
    return ReferenceSet(_read_rows(path), f"hf:{HUB_REPO}/{HUB_FILES[reference]}",
                        f"{revision} sha256:{sha256_file(path)}")


def find_df_gamed(explicit: Optional[str], data_dir: Optional[str], hub_cache: Path) -> tuple[Optional[Path], str]:
    """A real df_gamed.csv and where it came from, or (None, why not). ``explicit`` is
    ``eval.lc_df_gamed`` (the file, or a folder holding it), checked first."""
    from huggingface_hub import try_to_load_from_cache

    if explicit is not None:
        path = Path(explicit).expanduser()
        path = path / DF_GAMED if path.is_dir() else path
        if path.is_file():
            return path, f"local:{path.resolve()}"
        return None, f"eval.lc_df_gamed={explicit}: no {DF_GAMED} there"
    if data_dir is not None and (Path(data_dir) / DF_GAMED).is_file():
        return Path(data_dir) / DF_GAMED, f"local:{(Path(data_dir) / DF_GAMED).resolve()}"
    for cache in (None, hub_cache):  # the user's HF cache, then this run's
        hit = try_to_load_from_cache(HUB_REPO, DF_GAMED, cache_dir=cache, repo_type="dataset")
        if isinstance(hit, str):
            return Path(hit), f"hf-cache:{hit}"
    if data_dir is not None or hub_offline():
        return None, (f"{DF_GAMED} (the LC GLM's gamed-baseline annotations and instruction "
                      f"difficulties) exists only on the HF hub ({HUB_REPO}); it is not in "
                      f"eval.data_dir nor in an HF cache and the hub is offline; download it once "
                      f"and point eval.lc_df_gamed at it")
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(HUB_REPO, DF_GAMED, repo_type="dataset", cache_dir=hub_cache)), f"hf:{HUB_REPO}"
    except Exception as err:  # any hub/network failure means: no LC, said so
        return None, f"could not download {DF_GAMED} from {HUB_REPO}: {type(err).__name__}: {err}"


def stage_df_gamed(path: Path, lc_cache: Path) -> Path:
    """Lay ``path`` out as an HF-hub cache entry under ``lc_cache`` (what alpaca_eval's
    ``hf_hub_download`` reads when offline); returns the cache root."""
    digest = hashlib.sha1(path.read_bytes()).hexdigest()  # a 40-hex stand-in revision
    repo = lc_cache / f"datasets--{HUB_REPO.replace('/', '--')}"
    snap = repo / "snapshots" / digest
    snap.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, snap / DF_GAMED)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(digest)
    return lc_cache
