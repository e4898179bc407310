"""Stage 6b, displacement probes: fixed pairs whose chosen / rejected log-probs are tracked over
training for every loss (``prefexp.engine.probes``), and the difficulty label of each training
example in order (which learning rate each route was trained at)."""
from __future__ import annotations

from dataclasses import dataclass

from ..config.settings import Settings
from ..difficulty.plan import rating_margins
from ..difficulty.router import difficulty_cut
from ..engine.probes import probe_sets, training_labels
from .load import PairData
from .tokens import TokenisedPairs


@dataclass
class DisplacementProbes:
    sets: dict[str, list[dict]]  # "difficult" / "easy" (rating margin < the router's cut) / "all" -> tokenised pairs
    labels_in_order: list[str]  # the label of every training example, in training order


def displacement_probes(settings: Settings, data: PairData, tokens: TokenisedPairs,
                        examples: list[dict]) -> DisplacementProbes:
    """No sets with ``trainer.probes.enabled=false`` (route_learning_rates.json is still written).
    Drawn from all pairs (discarded ones too) by the rating margin, with a fixed seed, so every
    arm of a sweep (DPO, MixDPO, discard) is probed on the same pairs. Difficult: rating margin
    below the router's cut (``difficulty_cut``: tau, or under router=quantile the margin at the
    tau-quantile, so tau keeps its meaning of a fraction there)."""
    c = settings.config
    margin_of = {p.index: m for p, m in zip(data.pairs, rating_margins(data.pairs))}
    cut = difficulty_cut(settings.router, list(margin_of.values()))
    sets = probe_sets(tokens.examples, margin_of, cut, per_set=c.trainer.probes.n_pairs) if c.trainer.probes.enabled else {}
    return DisplacementProbes(sets, training_labels([e["index"] for e in examples], margin_of, cut))
