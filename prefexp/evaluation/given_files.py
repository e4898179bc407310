"""Reading what a researcher already has: answers, AlpacaEval annotations, MT-Bench judgments.

Formats (``.json`` list, ``.jsonl``, either gzipped):
* AlpacaEval outputs: rows with ``instruction`` and ``output`` (``generator`` optional);
* MT-Bench answers: FastChat's ``model_answer`` rows (``question_id``, ``choices[0].turns``,
  ``model_id``);
* AlpacaEval annotations: alpaca_eval's ``annotations.json`` rows (``instruction``,
  ``preference`` in [1, 2], ``output_2`` / ``generator_2`` = the evaluated model);
* MT-Bench judgments: FastChat's ``model_judgment/*_single.jsonl`` rows (``question_id``,
  ``model``, ``turn``, ``score``).

A file with several models needs ``eval.model_name``; a bad row stops with the file and its
1-based line (or list position) named.
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Optional

from .config import EvalConfigError

MODEL_FIELD = {"alpaca_outputs": "generator", "mt_answers": "model_id",
               "alpaca_annotations": "generator_2", "mt_judgments": "model"}
REQUIRED = {"alpaca_outputs": ("instruction", "output"), "mt_answers": ("question_id", "choices"),
            "alpaca_annotations": ("instruction", "preference"),
            "mt_judgments": ("question_id", "turn", "score")}


def _text(path: Path) -> str:
    raw = path.read_bytes()
    return gzip.decompress(raw).decode() if raw[:2] == b"\x1f\x8b" else raw.decode()


def read_rows(path: Path) -> list[tuple[int, dict]]:
    """(1-based line or list position, row) for a JSON list or JSONL file, gzipped or not."""
    text = _text(path)
    if text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as err:
            raise EvalConfigError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from err
        return list(enumerate(rows, 1))
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                out.append((n, json.loads(line)))
            except json.JSONDecodeError as err:
                raise EvalConfigError(f"{path}:{n}: not valid JSON ({err.msg}); fix or delete the line") from err
    return out


def read_given(path: Path, kind: str, model_name: Optional[str]) -> tuple[list[dict], str]:
    """The rows of one model from ``path`` and that model's name. ``kind`` is a key of REQUIRED."""
    rows = read_rows(path)
    if not rows:
        raise EvalConfigError(f"{path}: no rows")
    for n, row in rows:
        missing = [k for k in REQUIRED[kind] if not isinstance(row, dict) or k not in row]
        if missing:
            raise EvalConfigError(f"{path}:{n}: row lacks {missing} (expected {', '.join(REQUIRED[kind])})")
    field = MODEL_FIELD[kind]
    models = sorted({str(r[field]) for _, r in rows if r.get(field) is not None})
    if model_name is not None:
        if models and model_name not in models:
            raise EvalConfigError(f"eval.model_name={model_name!r}: {path} holds {models}")
        picked = [r for _, r in rows if not models or str(r.get(field)) == model_name]
        return picked, model_name
    if len(models) > 1:
        raise EvalConfigError(f"{path} holds {len(models)} models {models}: pick one with eval.model_name=<name>")
    name = models[0] if models else path.name.split(".")[0]
    return [r for _, r in rows], name


def check_preferences(path: Path, rows: list[dict]) -> None:
    for i, r in enumerate(rows, 1):
        p = r["preference"]
        if p is not None and not (isinstance(p, (int, float)) and (p == 0 or 1 <= p <= 2)):
            raise EvalConfigError(f"{path}: row {i} ({r['instruction'][:40]!r}) has preference {p!r}; "
                                  "alpaca_eval preferences are in [1, 2] (0 = draw)")
