"""router=random: the random-routing control keeps MixDPO's SFT share (the count threshold selects)
and draws the pairs at random, seeded."""
from __future__ import annotations

import json

import pytest
from hydra.core.hydra_config import HydraConfig

from prefexp.setup.validate import validate
from prefexp.difficulty.router import RouterSpec, select
from prefexp.pipeline import train
from tests.conftest import compose
from tests.difficulty.test_dry_run_plans import MARGINS, data  # noqa: F401  (the module's JSONL fixture)


def test_same_count_as_threshold_and_a_seeded_draw():
    threshold = select(MARGINS, RouterSpec("threshold", 0.5))
    assert sum(threshold) == 2  # margins 0.0, 0.25 (0.5 is not < 0.5)
    draws = {seed: tuple(select(MARGINS, RouterSpec("random", 0.5, seed=seed))) for seed in range(20)}
    assert all(sum(d) == 2 for d in draws.values())
    assert draws[3] == tuple(select(MARGINS, RouterSpec("random", 0.5, seed=3))), "same seed, same pairs"
    assert len(set(draws.values())) > 10, "seeds draw different subsets (66 possible)"
    assert select(MARGINS, RouterSpec("random", 0.0)) == [False] * 12  # nothing below tau: nothing drawn


def test_the_draw_ignores_the_margins():
    """Over 3000 seeds every pair is drawn with probability 2/12 = 1/6, whatever its margin:
    binomial sd sqrt(1/6 * 5/6 / 3000) = 0.0068, so 0.035 is 5 sd."""
    counts = [0] * 12
    for seed in range(3000):
        for i, chosen in enumerate(select(MARGINS, RouterSpec("random", 0.5, seed=seed))):
            counts[i] += chosen
    assert all(abs(c / 3000 - 1 / 6) < 0.035 for c in counts), counts


def test_dry_run_routes_the_threshold_share_to_sft(data, tmp_path):  # noqa: F811
    cfg = compose(["dataset=jsonl", f"dataset.path={data}", "dry_run=true", "logger=none", "loss=mixdpo",
                   "router=random", "tau=0.5", "curriculum=none", f"paths.run_dir={tmp_path}"])
    HydraConfig.instance().set_config(cfg)
    settings = validate(cfg)
    assert settings.config.router.name == "random"
    train(settings, {}, tmp_path)
    plan = [json.loads(line) for line in (tmp_path / "routing_plan.jsonl").read_text().splitlines()]
    summary = json.loads((tmp_path / "routing_summary.json").read_text())
    assert summary["router"] == "random" and summary["routes"] == {"sft": 2, "dpo": 10}
    assert sum(r["route"] == "sft" for r in plan) == 2
