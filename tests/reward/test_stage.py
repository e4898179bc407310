"""The reward stage end to end: the CLI trains and caches; the library finds the same cache.

One CLI run (module fixture) trains the tiny GPT-2 reward model on 64 synthetic pairs whose chosen
response ends in "good" and rejected in "bad". Every other test reads that cache in-process.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from prefexp.config.schema import DatasetConfig, ModelConfig
from prefexp.cachefs import read_checked_json
from prefexp.reward import RewardScoresMissing, cached_reward_scores, reward_command, reward_margins
from prefexp.reward.cache import reward_model_dir, scores_path
from tests.conftest import REPO
from tests.reward.conftest import FAST, fast_hparams, synthetic_pairs, synthetic_rows, write_jsonl


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, tiny_gpt2):
    """(cache dir, run dir, jsonl path) after `python -m prefexp.reward` on the synthetic pairs."""
    root = tmp_path_factory.mktemp("reward")
    data = write_jsonl(root / "pairs.jsonl", synthetic_rows(64))
    cache, run = root / "cache", root / "run"
    overrides = [f"reward_model.{k}={v}" for k, v in FAST.items()]
    cmd = [sys.executable, "-m", "prefexp.reward", "model=hf", f"model.name_or_path={tiny_gpt2}", "dataset=jsonl",
           f"dataset.path={data}", f"paths.cache_dir={cache}", f"hydra.run.dir={run}", "num_threads=1", *overrides]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return cache, run, data


def test_cli_writes_model_scores_and_summary(cli_run):
    cache, run, _ = cli_run
    summary = json.loads((run / "reward_summary.json").read_text())
    rm_dir = Path(summary["reward_model_dir"])
    assert rm_dir.parent == cache / "reward_models" and (rm_dir / "DONE").is_file()
    assert (rm_dir / "config.json").is_file() and not list(rm_dir.glob("trainer"))
    config = json.loads((rm_dir / "config.json").read_text())
    assert config["num_labels"] == 1 if "num_labels" in config else len(config["id2label"]) == 1
    assert config["pad_token_id"] == 50256  # tiny GPT-2 has no pad token: pad = eos
    done = json.loads((rm_dir / "DONE").read_text())
    assert done["steps"] == FAST["max_steps"] and done["pairs"] == 64
    scores = read_checked_json(Path(summary["scores_file"]))  # the checked envelope (cachefs.py)
    assert Path(summary["scores_file"]).parent == cache / "reward_scores"
    assert sorted(scores, key=int) == [str(i) for i in range(64)]
    assert all(len(v) == 2 and all(isinstance(x, float) for x in v) for v in scores.values())
    assert summary["command"].startswith("python -m prefexp.reward model=hf ")


def test_reward_model_learns_good_over_bad(cli_run):
    """Untrained: BT loss ln 2 (test_model.py). After 80 steps at lr 1e-3 the fit must exceed 0.8
    accuracy with a BT loss well below ln 2 = 0.693 (0.54 observed)."""
    _, run, _ = cli_run
    summary = json.loads((run / "reward_summary.json").read_text())
    assert summary["pairwise_accuracy"] > 0.8, summary
    assert summary["bt_loss"] < math.log(2) - 0.08, summary


def test_library_finds_cli_cache_without_retraining(cli_run, tiny_gpt2, tokenizer, monkeypatch):
    """Same model, data and recipe -> same keys: build_if_missing=False must not raise, and no
    training or scoring code may run (both patched to fail); the scores file is not rewritten."""
    cache, run, _ = cli_run
    import prefexp.reward.model as rm_model

    def fail(*args, **kwargs):
        raise AssertionError("cache miss: the reward model was retrained or rescored")

    monkeypatch.setattr(rm_model, "train_reward_model", fail)
    monkeypatch.setattr(rm_model, "score_pairs", fail)
    scores_file = Path(json.loads((run / "reward_summary.json").read_text())["scores_file"])
    before = scores_file.stat().st_mtime_ns
    margins = reward_margins(tiny_gpt2, fast_hparams(), synthetic_pairs(64), tokenizer, 512, 256, cache,
                             build_if_missing=False)
    again = reward_margins(tiny_gpt2, fast_hparams(), synthetic_pairs(64), tokenizer, 512, 256, cache,
                           build_if_missing=False)
    assert margins == again and sorted(margins) == list(range(64))
    assert sum(m > 0 for m in margins.values()) / 64 > 0.8
    assert scores_file.stat().st_mtime_ns == before
    stored = read_checked_json(scores_file)
    assert margins[5] == pytest.approx(stored["5"][0] - stored["5"][1])
    # score_batch_size / logging_steps are not part of the key
    assert reward_margins(tiny_gpt2, fast_hparams(score_batch_size=3, logging_steps=1), synthetic_pairs(64),
                          tokenizer, 512, 256, cache, build_if_missing=False) == margins


def test_missing_scores_raise_with_the_command(cli_run, tiny_gpt2, tokenizer, tmp_path):
    _, _, data = cli_run
    model = ModelConfig(name_or_path=tiny_gpt2, dtype="bfloat16")
    dataset = DatasetConfig(source="jsonl", path=str(data))
    command = reward_command(model, dataset, fast_hparams(), tmp_path)
    with pytest.raises(RewardScoresMissing) as err:
        reward_margins(tiny_gpt2, fast_hparams(), synthetic_pairs(64), tokenizer, 512, 256, tmp_path,
                       build_if_missing=False, command=command)
    message = str(err.value)
    assert command in message and "python -m prefexp.reward model=hf" in message
    assert f"dataset=jsonl dataset.path={data}" in message and "reward_model.max_steps=80" in message
    assert not (tmp_path / "reward_models").exists()
    # a different recipe is a different reward model: the CLI's cache does not match it
    with pytest.raises(RewardScoresMissing, match="python -m prefexp.reward"):
        reward_margins(tiny_gpt2, fast_hparams(learning_rate=2e-3), synthetic_pairs(64), tokenizer, 512, 256,
                       cli_run[0], build_if_missing=False)


def test_new_score_dataset_reuses_the_trained_model(cli_run, tiny_gpt2, tokenizer, monkeypatch):
    cache, _, _ = cli_run
    import prefexp.reward.model as rm_model
    from prefexp.engine.tokenize import tokenize_pairs

    def fail(*args, **kwargs):
        raise AssertionError("the reward model was retrained")

    monkeypatch.setattr(rm_model, "train_reward_model", fail)
    train, _ = tokenize_pairs(synthetic_pairs(64), tokenizer, 512, 256)
    other, _ = tokenize_pairs(synthetic_pairs(16, seed=7), tokenizer, 512, 256)
    scores, path = cached_reward_scores(tiny_gpt2, fast_hparams(), train, other, tokenizer, cache,
                                        build_if_missing=True)
    assert sorted(scores) == list(range(16)) and path.is_file()
    assert sum(c > r for c, r in scores.values()) / 16 > 0.8  # generalises to fresh prompts


def test_build_in_process(tmp_path, tiny_gpt2, tokenizer):
    """build_if_missing=True trains and caches under <cache>/reward_models/<key>/ and reward_scores/."""
    from prefexp.engine.reference import examples_fingerprint
    from prefexp.engine.tokenize import tokenize_pairs

    pairs = synthetic_pairs(8)
    hp = fast_hparams(max_steps=2)
    margins = reward_margins(tiny_gpt2, hp, pairs, tokenizer, 512, 256, tmp_path, build_if_missing=True)
    assert sorted(margins) == list(range(8))
    (rm_dir,) = (tmp_path / "reward_models").iterdir()
    assert (rm_dir / "DONE").is_file() and json.loads((rm_dir / "DONE").read_text())["steps"] == 2
    examples, _ = tokenize_pairs(pairs, tokenizer, 512, 256)
    assert scores_path(tmp_path, rm_dir.name, examples_fingerprint(examples)).is_file()
    assert reward_model_dir(tmp_path, rm_dir.name) == rm_dir
    assert not [p for p in (tmp_path / "reward_models").iterdir() if p.name.startswith(".building")]
    # TRL-style: after two steps every trainable tensor moved away from the base weights, except
    # ln_f.bias: it adds the same w.b to every reward, which r_c - r_r cancels (zero BT gradient)
    import torch
    from transformers import AutoModelForCausalLM

    from prefexp.reward.cache import load_reward_model

    trained = dict(load_reward_model(rm_dir).named_parameters())
    base = dict(AutoModelForCausalLM.from_pretrained(tiny_gpt2).transformer.named_parameters())
    assert trained["score.weight"].shape == (1, 2)
    for name, param in base.items():
        if name == "ln_f.bias":
            # Its BT gradient is zero only up to rounding (~1e-9 here, machine-dependent), and Adam
            # rescales any gradient to a step of about lr: the bound is the optimiser's, not the
            # CPU's. 2 x lr per step covers Adam's bias-corrected first steps (|m_hat / sqrt(v_hat)|
            # <= ~1.4 for t <= 2) and weight decay on a near-zero bias; a learned bias would move
            # by the same order as the others, so this still says "no BT signal reached it".
            drift = (param - trained[f"transformer.{name}"]).abs().max().item()
            assert drift <= 2 * hp.learning_rate * hp.max_steps, drift
            continue
        assert not torch.equal(param, trained[f"transformer.{name}"]), f"{name} did not change"
