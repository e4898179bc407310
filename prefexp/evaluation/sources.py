"""What ``python -m prefexp.evaluate`` was given to evaluate, as one of four typed entries.

* ``checkpoint=``: a prefexp run or checkpoint dir (``manifest.Checkpoint``): generate, judge, score;
  results land in the run dir and on the training run's W&B run;
* ``hf_model=``: any HF model folder or hub id (``HFModel``, no manifest): generate, judge, score;
  the chat template is the tokenizer's unless ``chat_template=`` gives one (``model`` is taken: it is training's config group);
* ``outputs=``: an AlpacaEval ``model_outputs.json`` or MT-Bench answers file (``GivenFile``):
  judge and score, no generation;
* ``annotations=``: AlpacaEval annotations or MT-Bench judgments (``GivenFile``): score only.

Model entries expose ``model_dir``, ``chat_template``, ``describe()``, ``default_model_name()``
and ``run_dir``; benchmarks branch on ``kind`` only to skip the stages the entry already did.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

from ..config import layout
from .config import EvalConfigError, EvaluateConfig, entry_of
from .manifest import Checkpoint, resolve_checkpoint

DEFAULT_ROOT = Path("outputs") / layout.EVAL


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "model"


def template_hash(template: Optional[str]) -> Optional[str]:
    return hashlib.sha256(template.encode()).hexdigest()[:16] if template is not None else None


@dataclass
class HFModel:
    """Any transformers model, by folder or hub id; nothing prefexp-specific is needed."""

    name_or_path: str
    template_override: Optional[str] = None
    run_dir: None = None
    kind: str = "model"
    _template: Optional[str] = field(default=None, repr=False)

    @property
    def model_dir(self) -> str:
        path = Path(self.name_or_path).expanduser()
        return str(path.resolve()) if path.exists() else self.name_or_path

    @property
    def output_root(self) -> Path:
        return DEFAULT_ROOT

    @property
    def chat_template(self) -> Optional[str]:
        """The override (a template, or a file holding one), else the tokenizer's own."""
        if self._template is None:
            given = self.template_override
            if given is not None and "{" not in given and Path(given).expanduser().is_file():
                given = Path(given).expanduser().read_text()
            if given is None:
                from transformers import AutoTokenizer

                given = AutoTokenizer.from_pretrained(self.model_dir).chat_template
            self._template = given
        return self._template

    def default_model_name(self) -> str:
        return safe_name(Path(self.name_or_path.rstrip("/")).name)

    def describe(self) -> dict:
        return {"kind": "model", "path": self.model_dir,
                "chat_template_source": "chat_template=" if self.template_override else "tokenizer"}


@dataclass(frozen=True)
class GivenFile:
    """A file of answers (``kind="outputs"``) or of judgments (``kind="annotations"``)."""

    path: Path
    kind: str
    run_dir: None = None  # no training run to attach W&B numbers to

    @property
    def output_root(self) -> Path:
        return DEFAULT_ROOT

    def default_model_name(self) -> str:
        name = self.path.name
        for suffix in (".gz", ".jsonl", ".json"):
            name = name[: -len(suffix)] if name.endswith(suffix) else name
        return safe_name(name)

    def describe(self) -> dict:
        from .store import sha256_file

        return {"kind": self.kind, "path": str(self.path), "sha256": sha256_file(self.path)}


Source = Union[Checkpoint, HFModel, GivenFile]


def resolve_source(cfg: EvaluateConfig) -> Source:
    entry, value = entry_of(cfg)
    if entry == "checkpoint":
        return resolve_checkpoint(value)
    if entry == "hf_model":
        return HFModel(value, cfg.chat_template)
    path = Path(value).expanduser().resolve()
    if not path.is_file():
        raise EvalConfigError(f"{entry}={value!r} is not a file")
    return GivenFile(path, entry)


def output_dir(cfg: EvaluateConfig, source: Source, model_name: str) -> Path:
    """``output_dir=`` if given; a checkpoint's run dir; else ``outputs/eval/<benchmark>/<model>``."""
    if cfg.output_dir is not None:
        return Path(cfg.output_dir)
    if isinstance(source, Checkpoint):
        return source.output_root / layout.EVAL / cfg.eval.name
    return source.output_root / cfg.eval.name / safe_name(model_name)
