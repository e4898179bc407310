"""Fixtures of the evaluation tests: a tiny checkpoint on disk, a fake judge, the real config.

The checkpoint is built once per session from the random tiny GPT-2 in ../shared/data/models
(it generates noise, which is all the pipeline needs) and copied per test, so every test owns
its run dir. Nothing here touches the network.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
TINY_GPT2 = SHARED / "data" / "models" / "tiny-gpt2"
KEY_ENV = "PREFEXP_TEST_JUDGE_KEY"
SECRET = "sk-test-never-on-disk-4242"
CHAT_TEMPLATE = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}assistant:{% endif %}")

from tests.evaluation.fake_openai import FakeOpenAI


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, or a clean skip when that folder is not beside the repo."""
    path = SHARED.joinpath("data", *parts)
    if not path.exists():
        pytest.skip(f"{path} not available (../shared/data is not beside the repo)")
    return path


def write_manifest(ckpt: Path, run_dir: Path, reference_model: str) -> None:
    manifest = {"base_model": str(TINY_GPT2), "loss": "dpo", "config_hash": "abc123", "git_commit": None,
                "step": 7, "chat_template": CHAT_TEMPLATE, "model_dir": ".",
                "reference_model": reference_model, "run_dir": str(run_dir)}
    (ckpt / "manifest.json").write_text(json.dumps(manifest, indent=2))


@pytest.fixture(scope="session")
def tiny_run_template(tmp_path_factory) -> Path:
    """<tmp>/run/checkpoint: tiny GPT-2 + tokenizer with a chat template + manifest.json."""
    if not TINY_GPT2.is_dir():
        pytest.skip(f"{TINY_GPT2} not available")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = tmp_path_factory.mktemp("template") / "run"
    ckpt = run / "checkpoint"
    tok = AutoTokenizer.from_pretrained(TINY_GPT2)
    tok.chat_template = CHAT_TEMPLATE
    AutoModelForCausalLM.from_pretrained(TINY_GPT2).save_pretrained(ckpt)
    tok.save_pretrained(ckpt)
    write_manifest(ckpt, run, str(TINY_GPT2))
    return run


@pytest.fixture
def tiny_run(tiny_run_template, tmp_path) -> Path:
    """A private copy of the tiny run dir (manifest pointing at the copy)."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run_template, run)
    write_manifest(run / "checkpoint", run, str(TINY_GPT2))
    return run


@pytest.fixture
def judge_key(monkeypatch) -> str:
    monkeypatch.setenv(KEY_ENV, SECRET)
    return KEY_ENV


@pytest.fixture
def fake_judge():
    with FakeOpenAI() as server:
        yield server


def compose(overrides: list[str]):
    """The real conf/evaluate.yaml composed with overrides, as prefexp.evaluate sees it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from prefexp.evaluate import CONFIG_DIR

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose(config_name="evaluate", overrides=overrides)


def settings(overrides: list[str]):
    from prefexp.evaluate import to_settings

    return to_settings(compose(overrides))


def assert_secret_nowhere(root: Path) -> None:
    """The API key must not be in any file the evaluation wrote."""
    for path in root.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), f"API key written to {path}"
