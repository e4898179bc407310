"""One training job, stage by stage: validated settings in, a run directory of artifacts out.

Each stage is a function in its own module with one typed hand-off to the next; the list below is
the whole job (docs/architecture.md draws it with the data that flows between the stages).
"""
from __future__ import annotations

import logging
from pathlib import Path

from ..config.settings import Settings
from .checkpoint import save_final_checkpoint
from .difficulty import score_difficulty
from .examples import training_examples
from .fit import fit
from .heldout import heldout_examples, split_heldout
from .load import check_step_fits_data, load_data
from .model_source import ModelSource
from .planning import plan_training
from .probes import displacement_probes
from .reference import reference_pass
from .token_cleaning import clean_tokens
from .tokens import tokenise
from .trained_pairs import trained_plan
from .trainer_setup import build_trainer

log = logging.getLogger(__name__)


def train(settings: Settings, resolved: dict, run_dir: Path) -> Path | None:
    """Run the whole job; returns the final checkpoint dir (None for a dry run)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    data = load_data(settings)                                   # rows -> pairs (+ K-response groups)
    data, held = split_heldout(settings, data)                   # held-out pairs, never trained on (or None)
    check_step_fits_data(settings, data)                         # batch x accumulation x ranks <= pairs
    model = ModelSource(settings.config)                         # found (or built) on first use
    margins = score_difficulty(settings, data, model)            # every margin metric the run needs
    plan = plan_training(settings, data, margins, run_dir)       # route, weight, order: written once
    if settings.config.dry_run:
        log.info("dry_run=true: routing plan written to %s; no training", run_dir)
        return None
    trained = trained_plan(settings, plan, data.use_groups)     # the prefix max_steps reaches (or all)
    tokens = tokenise(settings.config, data, model, run_dir)     # prompt / response token ids
    reference = reference_pass(settings, tokens, model, {e.index for e in trained})  # cached on disk
    masks = clean_tokens(settings.config, tokens, model, run_dir)  # token-cleaning masks (or none)
    examples = training_examples(tokens, reference, masks, trained,  # one dict per example, plan order
                                 settings.config.trainer.length_group_block)
    probes = displacement_probes(settings, data, tokens, examples)  # fixed pairs, every loss
    heldout = heldout_examples(settings, held, model) if held is not None else None  # eval examples
    trainer = build_trainer(settings, examples, probes, model, run_dir, heldout)  # arguments, model, callbacks
    fit(trainer, settings)                                       # resumes from the last checkpoint
    return save_final_checkpoint(settings, trainer, model, resolved, run_dir)
