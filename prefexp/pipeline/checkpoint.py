"""Stage 9, save: the final model and tokenizer in <run>/checkpoint with manifest.json (what it is,
where it came from: base and reference model, loss, config hash, commit, step, chat template)."""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from ..config import layout
from ..config.settings import Settings
from ..engine.adapters import save_adapter_extras
from ..engine.artifacts import write_manifest
from ..engine.checkpoints import writing_checkpoint
from .model_source import ModelSource

log = logging.getLogger(__name__)


def config_hash(resolved: dict) -> str:
    keep = {k: v for k, v in resolved.items() if k not in ("paths", "hydra", "logger")}
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:12]


def save_final_checkpoint(settings: Settings, trainer, model: ModelSource, resolved: dict, run_dir: Path) -> Path:
    c = settings.config
    final = run_dir / layout.FINAL_CHECKPOINT
    with writing_checkpoint(final, trainer.state.global_step, trainer.args.output_dir):
        _write_final(settings, trainer, model, resolved, run_dir, final)
    return final


def _write_final(settings: Settings, trainer, model: ModelSource, resolved: dict, run_dir: Path, final: Path) -> None:
    c = settings.config
    trainer.save_model(str(final))
    if trainer.is_world_process_zero():
        model.tokenizer.save_pretrained(str(final))
        base = c.model.name_or_path if c.model.name_or_path != "sandbox" else model.path
        write_manifest(final, base_model=base, reference_model=model.path, loss=settings.loss_name,
                       config_hash=config_hash(resolved), step=trainer.state.global_step,
                       chat_template=model.tokenizer.chat_template, run_dir=run_dir)
        if c.adapter.kind != "none":  # an adapter folder (base named inside), or merged with merge_on_save
            save_adapter_extras(final, c.adapter, model)
        log.info("final checkpoint: %s (step %d)", final, trainer.state.global_step)
