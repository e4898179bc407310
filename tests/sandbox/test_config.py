"""The sandbox dataset samples the run's own reference: config wiring and bad values."""
from __future__ import annotations

import pytest
from omegaconf import OmegaConf, open_dict

from prefexp.config.schema import SandboxModelSpec
from prefexp.data.sources import load_rows
from prefexp.errors import InputError
from tests.conftest import compose


def job(overrides: list[str]):
    cfg = compose(overrides)
    with open_dict(cfg):
        cfg.pop("hydra")
    return OmegaConf.to_object(cfg)


def test_dataset_reference_is_the_models_sandbox_spec():
    c = job(["model.sandbox.sft_steps=77", "paths.cache_dir=/tmp/a cache"])
    s = c.dataset.sandbox
    assert s.responses == "reference_samples" and s.temperature == 1.0
    assert isinstance(s.reference, SandboxModelSpec) and s.reference == c.model.sandbox
    assert s.reference.sft_steps == 77 and s.cache_dir == "/tmp/a cache"


def test_bad_response_source_is_an_input_error():
    c = job(["dataset.sandbox.responses=handwritten"])
    with pytest.raises(InputError, match=r"dataset.sandbox.responses='handwritten' is not one of"):
        load_rows(c.dataset)
    c = job([])
    c.dataset.sandbox.cache_dir = None
    with pytest.raises(InputError, match="dataset.sandbox.cache_dir"):
        load_rows(c.dataset)


def test_synthetic_rows_need_no_model():
    c = job(["dataset.sandbox.responses=synthetic", "dataset.sandbox.num_prompts=5", "paths.cache_dir=/nonexistent"])
    rows = load_rows(c.dataset)
    assert len(rows) == 5 and all(len(r["responses"]) == 4 for r in rows)
