"""Stage 1, load: source rows -> validated preference pairs (and their K-response groups)."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..config import layout
from ..config.settings import Settings
from ..data.records import PreferencePair, negative_margin_warning, read_pairs
from ..data.skips import collect_skips
from ..data.sources import describe, load_rows
from ..engine.distributed import is_main_process
from ..engine.groups import has_groups, keep_contrastive_groups

log = logging.getLogger(__name__)
SKIPPED_ROWS_FILE = layout.SKIPPED_ROWS


@dataclass
class PairData:
    """The pairs the run trains on, in source order."""
    pairs: list[PreferencePair]
    use_groups: bool = False  # the loss reads all K responses of each prompt (pairs carry them)
    summary: dict = field(default_factory=dict)  # what loading left out, for routing_summary.json


def load_data(settings: Settings) -> PairData:
    c = settings.config
    needs_rating = "rating" in settings.metrics
    with collect_skips() as skipped:
        try:
            pairs, counts = read_pairs(load_rows(c.dataset), describe(c.dataset), c.dataset.on_invalid,
                                       require_scores=needs_rating)
        finally:  # also when nothing valid is left: the error says how many, the file says which
            if is_main_process():  # every rank reads the same rows; one writes the file
                write_skipped_rows(Path(c.paths.run_dir), skipped)
    summary = {"data": counts}  # what loading skipped or kept twice, beside the routing counts
    columns = c.dataset.columns
    swapped = negative_margin_warning(pairs, columns.chosen or "chosen", columns.rejected or "rejected")
    if swapped:
        log.warning(swapped)
    if not settings.loss.needs_groups:
        return PairData(pairs, summary=summary)
    if not has_groups(pairs):
        log.warning("loss needs K responses per prompt but the data has none: training on pairs as groups of 2")
        return PairData(pairs, summary=summary)
    # K responses per prompt; groups with no contrast (no positive or no negative) cannot train
    kept, dropped = keep_contrastive_groups(pairs, c.dataset.group_positive, c.dataset.group_positive_min)
    summary["groups"] = {"trained": len(kept), "left_out_without_contrast": dropped,
                         "group_positive": c.dataset.group_positive}
    return PairData(kept, use_groups=True, summary=summary)


def write_skipped_rows(run_dir: Path, skipped: list[dict]) -> None:
    """``skipped_rows.jsonl``: every row the readers skipped (dataset.on_invalid=skip), in order."""
    if skipped:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / SKIPPED_ROWS_FILE).write_text("".join(json.dumps(row) + "\n" for row in skipped))


def check_step_fits_data(settings: Settings, data: PairData) -> None:
    """Raise :class:`InputError` when one optimizer step needs more pairs than the data holds."""
    from ..setup.inputs import accumulation_problem
    from ..engine.distributed import world_size
    from ..errors import InputError

    problem = accumulation_problem(settings.config, world_size(), len(data.pairs))
    if problem:
        raise InputError(problem)
