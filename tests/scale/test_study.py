"""experiment=sandbox_study: the MixDPO ablation design as one multirun recipe. Every arm composes,
validates and sets exactly the design of docs/study.md; the sweep covers every arm x 3 seeds."""
from __future__ import annotations

import pytest
from hydra.core.hydra_config import HydraConfig

from prefexp.config import CONFIG_DIR
from prefexp.setup.validate import validate
from tests.conftest import compose

# arm -> (loss, beta, label_smoothing, router, on_selected, curriculum, tau)
DESIGN = {
    "dpo_shuffled": ("dpo", 0.1, None, "none", None, "none", None),
    "dpo_easy_to_hard": ("dpo", 0.1, None, "none", None, "easy_to_hard", None),
    "dpo_discard": ("dpo", 0.1, None, "threshold", "discard", "none", 0.5),
    "sft": ("sft", None, None, "none", None, "none", None),
    "mixdpo_tau05": ("mixdpo", 0.1, 0.0, "threshold", "route", "easy_to_hard", 0.5),
    "mixdpo_tau10": ("mixdpo", 0.1, 0.0, "threshold", "route", "easy_to_hard", 1.0),
    "mixdpo_two_stage": ("mixdpo", 0.1, 0.0, "threshold", "route", "easy_to_hard", 0.5),  # + stages
    "mixdpo_hard_to_easy": ("mixdpo", 0.1, 0.0, "threshold", "route", "hard_to_easy", 0.5),
    "mixdpo_random": ("mixdpo", 0.1, 0.0, "random", "route", "easy_to_hard", 0.5),
    "mixdpo_paper": ("mixdpo", 0.01, 0.1, "threshold", "route", "easy_to_hard", 0.5),
    "apo_hinge_zero": ("apo_hinge_zero", 0.1, None, "none", None, "none", None),
    "madpo": ("madpo", 0.1, None, "none", None, "none", None),
}


def sweep_params() -> dict[str, list[str]]:
    cfg = compose(["experiment=sandbox_study"])
    return {k: str(v).split(",") for k, v in cfg.hydra.sweeper.params.items()}


def test_the_sweep_is_every_arm_times_three_seeds():
    params = sweep_params()
    assert params["seed"] == ["0", "1", "2"]
    assert params["+study_arm"] == list(DESIGN)
    assert sorted(p.stem for p in (CONFIG_DIR / "study_arm").glob("*.yaml")) == sorted(DESIGN)


def test_the_sweep_report_compares_every_arm_with_dpo_on_both_metrics_under_both_protocols():
    cfg = compose(["experiment=sandbox_study"])
    callback = cfg.hydra.callbacks.sweep_summary
    assert callback.baseline == "study_arm=dpo_shuffled" and "dpo_shuffled" in DESIGN
    assert list(callback.metrics) == ["eval/sandbox/win_rate", "eval/sandbox/mean_gold_score",
                                      "eval/sandbox/greedy/win_rate", "eval/sandbox/greedy/mean_gold_score"]
    assert compose([]).hydra.callbacks.sweep_summary.baseline is None  # other sweeps: no baseline assumed


@pytest.mark.parametrize("arm", list(DESIGN))
def test_each_arm_composes_to_its_design(arm):
    cfg = compose(["experiment=sandbox_study", f"+study_arm={arm}", "seed=1"])
    HydraConfig.instance().set_config(cfg)
    settings = validate(cfg)
    c = settings.config
    loss, beta, smoothing, router, on_selected, curriculum, tau = DESIGN[arm]
    assert settings.loss_name == loss
    assert (c.model.name_or_path, c.dataset.source, c.evaluate, c.seed) == ("sandbox", "sandbox", ["sandbox"], 1)
    assert c.trainer.max_steps == -1 and c.trainer.num_epochs == 1, "a curriculum's tail must be trained"
    if beta is not None:
        assert settings.loss.beta == beta
    if smoothing is not None:
        assert settings.loss.label_smoothing == smoothing
    assert c.router.name == router and c.curriculum.order == curriculum
    if on_selected is not None:
        assert c.router.on_selected == on_selected
    if tau is not None:
        assert c.tau == tau


def test_the_two_stage_arm_trains_the_routed_pairs_in_a_stage_of_their_own():
    cfg = compose(["experiment=sandbox_study", "+study_arm=mixdpo_two_stage"])
    HydraConfig.instance().set_config(cfg)
    stages = validate(cfg).config.curriculum.stages
    assert [(list(s.routes), s.epochs) for s in stages] == [(["preference"], 1.0), (["sft"], 1.0)]
    assert all(s.lr_scheduler is None and s.warmup_ratio is None for s in stages)  # the trainer's schedule, restarted
