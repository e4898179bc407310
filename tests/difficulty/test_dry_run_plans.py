"""dry_run=true on a JSONL dataset with known margins: every router x curriculum writes the
documented plan (routing_plan.jsonl, routing_summary.json, margins.png) and loads no model.

The pipeline is called in-process as ``prefexp.train`` calls it (compose -> validate -> train);
one case also goes through the real ``python -m prefexp.train`` entry point.
"""
from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig

from prefexp.config.settings import ConfigError
from prefexp.setup.validate import validate
from prefexp.pipeline import train
from tests.conftest import REPO, compose

# Row i has rating margin MARGINS[i] (chosen 10, rejected 10 - margin).
MARGINS = [2.0, 0.0, 0.5, 3.0, 0.25, 0.5, 6.0, 1.0, 0.75, 5.0, 1.5, 4.0]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "pairs.jsonl"
    rows = [{"prompt": f"question {i}", "chosen": f"good answer {i}", "rejected": f"bad answer {i}",
             "score_chosen": 10.0, "score_rejected": 10.0 - m} for i, m in enumerate(MARGINS)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def dry_run(data: Path, run_dir: Path, *overrides: str) -> tuple[list[dict], dict]:
    cfg = compose(["dataset=jsonl", f"dataset.path={data}", "dry_run=true", "logger=none",
                   f"paths.run_dir={run_dir}", *overrides])
    HydraConfig.instance().set_config(cfg)
    settings = validate(cfg)
    assert train(settings, {}, run_dir) is None  # a dry run hashes no config
    assert not (run_dir / "checkpoint").exists()
    assert (run_dir / "margins.png").read_bytes()[:8] == PNG
    plan = [json.loads(line) for line in (run_dir / "routing_plan.jsonl").read_text().splitlines()]
    return plan, json.loads((run_dir / "routing_summary.json").read_text())


def expected_order(curriculum: str, kept: list[int]) -> list[int]:
    """By margin; equal margins in the order of the seed-0 shuffle of all 12 rows."""
    shuffled = list(range(12))
    random.Random(0).shuffle(shuffled)
    sign = -1.0 if curriculum == "easy_to_hard" else 1.0
    return [i for i in sorted(shuffled, key=lambda i: sign * MARGINS[i]) if i in kept]


# router -> (overrides, {index: expected route}); tau=0.5 threshold, 0.25 quantile, band [0.5, 5]
ROUTERS = {
    "none": ([], {i: "dpo" for i in range(12)}),
    "threshold": (["tau=0.5"], {i: "sft" if m < 0.5 else "dpo" for i, m in enumerate(MARGINS)}),
    # floor(0.25 * 12) = 3 lowest margins: 0.0 (row 1), 0.25 (row 4), then 0.5 of row 2 before row 5
    "quantile": (["tau=0.25"], {i: "sft" if i in (1, 4, 2) else "dpo" for i in range(12)}),
    "band": (["tau=0.5"], {i: "dpo" if 0.5 <= m <= 5.0 else "discard" for i, m in enumerate(MARGINS)}),
}


@pytest.mark.parametrize("curriculum", ["easy_to_hard", "hard_to_easy", "none"])
@pytest.mark.parametrize("router", list(ROUTERS))
def test_plan_for_every_router_and_curriculum(data, tmp_path, router, curriculum):
    overrides, routes = ROUTERS[router]
    plan, summary = dry_run(data, tmp_path, "loss=mixdpo", f"router={router}", f"curriculum={curriculum}", *overrides)
    kept = [i for i in range(12) if routes[i] != "discard"]
    indices = [row["index"] for row in plan]
    if curriculum == "none":
        assert sorted(indices) == kept and indices != kept
        shuffled = list(range(12))
        random.Random(0).shuffle(shuffled)  # seed=0: the plan is the shuffle with discarded rows left out
        assert indices == [i for i in shuffled if i in kept]
    else:
        assert indices == expected_order(curriculum, kept)
    for row in plan:
        assert row["margin"] == MARGINS[row["index"]] and row["metric"] == "rating"
        assert row["route"] == routes[row["index"]]
    counts = {}
    for route in routes.values():
        counts[route] = counts.get(route, 0) + 1
    assert summary["routes"] == counts and summary["pairs"] == 12 and summary["trained"] == len(kept)
    assert summary["router"] == router and summary["curriculum"] == curriculum and summary["metric"] == "rating"
    assert summary["margin_quantiles"]["0.0"] == 0.0 and summary["margin_quantiles"]["1.0"] == 6.0
    assert summary["margin_quantiles"]["0.5"] == sorted(MARGINS)[6]
    assert "dataset.source=jsonl" in summary["gold_composition"]["absent"]  # no gold scorer off the sandbox


def test_weight_action_is_written_in_the_plan(data, tmp_path):
    plan, _ = dry_run(data, tmp_path, "loss=dpo", "router=threshold", "tau=1.0", "router.on_selected=weight",
                      "router.selected_weight=0.25")
    for row in plan:
        assert row.get("weight", 1.0) == (0.25 if MARGINS[row["index"]] < 1.0 else 1.0)


def test_entry_point_dry_run(data, tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "prefexp.train", "dataset=jsonl", f"dataset.path={data}",
                           "dry_run=true", "logger=none", f"hydra.run.dir={run_dir}"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    plan = [json.loads(line) for line in (run_dir / "routing_plan.jsonl").read_text().splitlines()]
    assert [row["route"] for row in plan].count("sft") == 2  # margins 0.0 and 0.25 < tau = 0.5
    assert not (run_dir / "checkpoint").exists()


@pytest.mark.parametrize("overrides,message", [
    (["router=quantile", "tau=1.5"], "tau=1.5 is outside (0, 1)"),
    (["router=band", "router.band_low=3", "router.band_high=1"], "router.band_low=3.0 > router.band_high=1.0"),
    (["router.metric=margin"], "router.metric='margin' is not one of"),
    (["token_cleaning=global", "loss=dpo"], "token_cleaning=global needs a loss with an SFT term"),
    (["reward_model.learning_rate=0", "loss=madpo"], "reward_model.learning_rate=0.0 must be > 0"),
    (["dataset.group_positive=threshold"], "dataset.group_positive_min"),
])
def test_bad_difficulty_settings_fail_naming_the_key(data, tmp_path, overrides, message):
    cfg = compose(["dataset=jsonl", f"dataset.path={data}", f"paths.run_dir={tmp_path}", *overrides])
    HydraConfig.instance().set_config(cfg)
    with pytest.raises(ConfigError, match=None) as err:
        validate(cfg)
    assert message in str(err.value)


def test_rating_metric_on_data_without_scores_names_the_row(tmp_path):
    from prefexp.data.records import InvalidRowError

    path = tmp_path / "noscores.jsonl"
    path.write_text(json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}) + "\n")
    cfg = compose(["dataset=jsonl", f"dataset.path={path}", "dry_run=true", f"paths.run_dir={tmp_path}"])
    HydraConfig.instance().set_config(cfg)
    with pytest.raises(InvalidRowError, match=r"noscores.jsonl, line 1: missing field 'score_chosen'.*difficulty metric 'rating'"):
        train(validate(cfg), {}, tmp_path)
