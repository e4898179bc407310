"""MT-Bench data: 80 two-turn questions, FastChat's judge prompts, GPT-4 reference answers.

The fschat wheel ships none of these files (../shared/docs/packages.md §5, beside the repository),
so they come either from a local copy (``eval.data_dir``; layout of ../shared/data/mt_bench or of FastChat's
``llm_judge/data``) or from FastChat's GitHub repository at a pinned commit, downloaded once into
the eval output dir. The data version recorded in results.json is the commit (public) and the
files' sha256 either way.
"""
from __future__ import annotations

import logging
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .store import read_jsonl, sha256_file

log = logging.getLogger(__name__)

RAW_URL = "https://raw.githubusercontent.com/lm-sys/FastChat/{commit}/fastchat/llm_judge/data/{path}"
# Where each file lives upstream, and the names a local copy may use (first found wins).
FILES = {
    "question": ("mt_bench/question.jsonl", ["question.jsonl", "mt_bench/question.jsonl"]),
    "judge_prompts": ("judge_prompts.jsonl", ["judge_prompts.jsonl"]),
    "reference": ("mt_bench/reference_answer/{ref}.jsonl",
                  ["reference_answer_{ref}.jsonl", "reference_answer/{ref}.jsonl",
                   "mt_bench/reference_answer/{ref}.jsonl"]),
}
# FastChat common.py: categories judged against a reference answer.
NEED_REF_CATS = ("math", "reasoning", "coding")


@dataclass
class MTBenchData:
    questions: list[dict]
    judge_prompts: dict[str, dict]
    references: dict[int, dict]   # question_id -> reference answer row (choices[0].turns)
    source: str
    version: dict

    def describe(self) -> dict:
        return {"source": self.source, **self.version, "n_questions": len(self.questions)}


def _local_file(data_dir: Path, names: list[str], ref: str) -> Optional[Path]:
    for name in names:
        path = data_dir / name.format(ref=ref)
        if path.is_file():
            return path
    return None


def _download(commit: str, upstream: str, dest: Path) -> Path:
    if dest.is_file():
        return dest
    url = RAW_URL.format(commit=commit, path=upstream)
    dest.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s", url)
    with urllib.request.urlopen(url, timeout=60) as resp:
        body = resp.read()
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_bytes(body)
    tmp.replace(dest)
    return dest


def load_mt_bench(data_dir: Optional[str], cache_dir: Path, commit: str, reference: str) -> MTBenchData:
    """Load the benchmark from ``data_dir`` if given, else from FastChat at ``commit``."""
    paths: dict[str, Path] = {}
    for key, (upstream, local_names) in FILES.items():
        if data_dir is not None:
            found = _local_file(Path(data_dir), local_names, reference)
            if found is None:
                raise FileNotFoundError(f"eval.data_dir={data_dir}: none of "
                                        f"{[n.format(ref=reference) for n in local_names]} found")
            paths[key] = found
        else:
            upstream_path = upstream.format(ref=reference)
            paths[key] = _download(commit, upstream_path, cache_dir / upstream_path)
    questions = read_jsonl(paths["question"])
    prompts = {row["name"]: row for row in read_jsonl(paths["judge_prompts"])}
    references = {int(row["question_id"]): row for row in read_jsonl(paths["reference"])}
    source = (f"local:{Path(data_dir).resolve()}" if data_dir is not None
              else f"github:lm-sys/FastChat@{commit}")
    version = {f"sha256_{k}": sha256_file(p) for k, p in paths.items()}
    missing = [q["question_id"] for q in questions
               if q["category"] in NEED_REF_CATS and int(q["question_id"]) not in references]
    if missing:
        raise ValueError(f"MT-Bench reference answers ({reference}) lack questions {missing}")
    return MTBenchData(questions, prompts, references, source, version)
