"""The diff a resume is checked with (prefexp/config/resume_changes.py), on hand-built run records:
what counts as another run, what a resume may change, and how the refusal names it."""
from __future__ import annotations

import copy

from prefexp.config.resume_changes import MAY_CHANGE_ON_RESUME, Change, describe_changes, record_changes


DELETE = object()


def record(**edits) -> dict:
    """A small run record (the shape of run_config.json); ``edits``: dotted key -> value."""
    base = {
        "world_size": 1,
        "choices": {"loss": "mixdpo", "logger": "wandb", "debug": None, "local": "default"},
        "config": {
            "loss": {"_target_": "prefexp.losses.mixdpo.MixDPOLoss", "beta": 0.01, "tau": 0.5},
            "dataset": {"max_rows": None, "sandbox": {"cache_dir": "/c", "seed": 0}},
            "trainer": {"max_steps": 4, "learning_rate": 5e-5, "resume": "auto", "save_steps": 2,
                        "logging_steps": 5, "eval_steps": 100, "devices": 1, "num_threads": None},
            "curriculum": {"order": "easy_to_hard", "stages": []},
            "logger": {"mode": "offline", "tags": []},
            "paths": {"cache_dir": "/c", "run_dir": "/runs/a", "root_dir": "/repo"},
            "evaluate": [], "seed": 0, "dry_run": False, "local": None,
        },
    }
    out = copy.deepcopy(base)
    for key, value in edits.items():
        *path, last = key.split(".")
        node = out
        for part in path:
            node = node[part]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return out


def keys(changes: list[Change]) -> list[str]:
    return [c.key for c in changes]


def test_the_same_config_has_no_changes():
    assert record_changes(record(), record()) == []


def test_the_issue_case_names_exactly_the_loss_the_learning_rate_and_the_rows():
    """loss=mixdpo -> loss=dpo (its own keys differ too: folded into the option), a new learning rate
    and dataset.max_rows; the larger trainer.max_steps is allowed and not named."""
    new = record(**{"choices.loss": "dpo", "config.loss": {"_target_": "prefexp.losses.dpo.DPOLoss", "beta": 0.1},
                    "config.trainer.learning_rate": 1e-3, "config.dataset.max_rows": 32,
                    "config.trainer.max_steps": 6})
    changes = record_changes(record(), new)
    assert changes == [Change("loss", "mixdpo", "dpo"), Change("dataset.max_rows", None, 32),
                       Change("trainer.learning_rate", 5e-5, 1e-3)]
    assert describe_changes(changes) == "loss: mixdpo -> dpo, dataset.max_rows: null -> 32, trainer.learning_rate: 5e-05 -> 0.001"


def test_allowlisted_keys_may_change():
    new = record(**{"config.trainer.max_steps": 100, "config.trainer.resume": "never", "config.trainer.save_steps": 50,
                    "config.trainer.logging_steps": 1, "config.trainer.eval_steps": 7,
                    "config.logger.mode": "online", "config.logger.tags": ["x"], "choices.logger": "none",
                    "config.evaluate": ["sandbox"], "config.paths.cache_dir": "/d", "config.paths.run_dir": "/runs/b",
                    "config.dataset.sandbox.cache_dir": "/d"})
    assert record_changes(record(), new) == []


def test_a_hyperparameter_under_an_unchanged_option_is_named_by_its_key():
    assert keys(record_changes(record(), record(**{"config.loss.beta": 0.1}))) == ["loss.beta"]


def test_a_key_on_one_side_only_is_a_change():
    changes = record_changes(record(), record(**{"config.loss.tau": DELETE}))
    assert changes == [Change("loss.tau", 0.5, "<unset>")]


def test_lists_are_compared_whole():
    new = record(**{"config.curriculum.stages": [{"routes": ["all"], "epochs": 1.0}]})
    assert keys(record_changes(record(), new)) == ["curriculum.stages"]


def test_the_devices_are_compared_as_the_world_size_they_give():
    same_ranks = record(**{"config.trainer.devices": "auto"})  # auto on a 1-GPU node: 1 rank, the same run
    assert record_changes(record(), same_ranks) == []
    more = record(**{"config.trainer.devices": "auto", "world_size": 4})
    assert record_changes(record(), more) == [Change("trainer.devices", "1 rank", "4 ranks")]


def test_seed_dry_run_and_threads_are_not_allowlisted():
    new = record(**{"config.seed": 1, "config.dry_run": True, "config.trainer.num_threads": 2})
    assert keys(record_changes(record(), new)) == ["trainer.num_threads", "seed", "dry_run"]
    for key in ("seed", "dry_run", "trainer.devices", "trainer.learning_rate", "dataset", "loss", "model"):
        assert key not in MAY_CHANGE_ON_RESUME


def test_a_top_level_group_is_named_by_the_keys_it_sets():
    """debug=fast sets trainer.max_steps (allowed) and dataset.max_rows (not): only the latter."""
    new = record(**{"choices.debug": "fast", "config.trainer.max_steps": 3, "config.dataset.max_rows": 96})
    assert keys(record_changes(record(), new)) == ["dataset.max_rows"]
    assert record_changes(record(), record(**{"choices.debug": "fast", "config.trainer.max_steps": 3})) == []


def test_many_changes_are_summarised_and_long_values_cut():
    new = record(**{f"config.trainer.extra{i}": i for i in range(10)}, **{"config.loss.beta": "x" * 200})
    text = describe_changes(record_changes(record(), new))
    assert text.endswith("... and 3 more") and text.count(" -> ") == 8
    assert "loss.beta: 0.01 -> " + "x" * 57 + "..." in text
