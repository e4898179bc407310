"""The sandbox model build: loadable with from_pretrained, chat template, cache reuse, atomicity."""
from __future__ import annotations

import time

import pytest

from prefexp.sandbox import model as sandbox_model
from prefexp.sandbox.generate import generate_responses, mean_gold_score

# A deliberately useless model: the test checks the plumbing, not the learning.
SMALL = dict(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, max_length=64, sft_steps=4,
             sft_batch_size=8, num_prompts=24, eval_prompts=4)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    cache = tmp_path_factory.mktemp("sandbox-cache")
    t0 = time.perf_counter()
    path = sandbox_model.ensure_sandbox_model(cache, **SMALL)
    return cache, path, time.perf_counter() - t0


def test_build_loads_with_auto_classes(built):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cache, path, _ = built
    assert path.parent == cache and path.name.startswith("sandbox-model-")
    assert (path / "DONE").is_file()
    assert not [p for p in cache.iterdir() if p.name.startswith(".building")]
    model = AutoModelForCausalLM.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    assert model.config.hidden_size == 16 and model.config.num_hidden_layers == 1
    assert model.config.vocab_size == len(tok)
    assert tok.pad_token and tok.eos_token and tok.bos_token
    assert model.generation_config.eos_token_id == tok.eos_token_id


def test_chat_template(built):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(built[1])
    user = [{"role": "user", "content": "sort: 3 1 2"}]
    prompt = tok.apply_chat_template(user, add_generation_prompt=True, tokenize=False)
    assert prompt == "<bos><|user|>sort: 3 1 2\n<|assistant|>"
    full = tok.apply_chat_template(user + [{"role": "assistant", "content": "1 2 3"}], tokenize=False)
    assert full == prompt + "1 2 3" + tok.eos_token  # the assistant turn ends with eos
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    assert ids[0] == tok.bos_token_id and tok.convert_ids_to_tokens(ids[-1]) == "<|assistant|>"
    assert tok.decode(ids, skip_special_tokens=True) == "sort: 3 1 2\n"  # one token per character


def test_second_call_reuses_cache(built, monkeypatch):
    cache, path, first_seconds = built
    weights = path / "model.safetensors"
    mtime = weights.stat().st_mtime_ns

    def no_build(*a, **k):
        raise AssertionError("the cached model was rebuilt")

    monkeypatch.setattr(sandbox_model, "_build", no_build)
    t0 = time.perf_counter()
    again = sandbox_model.ensure_sandbox_model(cache, **SMALL)
    assert again == path
    assert time.perf_counter() - t0 < min(0.5, first_seconds / 2)
    assert weights.stat().st_mtime_ns == mtime


def test_cache_dir_covers_every_argument(built):
    cache, path, _ = built
    assert sandbox_model.sandbox_model_dir(cache, **SMALL) == path
    full = {**sandbox_model._build_args({**SMALL, "learning_rate": 3e-3, "seed": 0}), **SMALL}
    assert set(full) > set(SMALL) and sandbox_model.sandbox_model_dir(cache, **full) == path
    for key, value in full.items():
        assert sandbox_model.sandbox_model_dir(cache, **{**full, key: value * 2 + 1}) != path, key


def test_failed_or_interrupted_build_is_not_reused(tmp_path, monkeypatch):
    def crash(out, args):
        (out / "config.json").write_text("{}")
        raise RuntimeError("killed mid-build")

    monkeypatch.setattr(sandbox_model, "_build", crash)
    with pytest.raises(RuntimeError, match="killed"):
        sandbox_model.ensure_sandbox_model(tmp_path, **SMALL)
    assert list(tmp_path.iterdir()) == []  # no final dir, no temp dir left behind

    # A final dir without DONE (e.g. copied by hand, or an older non-atomic build) is rebuilt.
    stale = sandbox_model.sandbox_model_dir(tmp_path, **SMALL)
    stale.mkdir()
    monkeypatch.setattr(sandbox_model, "_build", lambda out, args: (out / "marker").write_text("x") and {
        "build_seconds": 0.0, "parameters": 0, "final_sft_loss": 0.0, "mean_gold_score": 1.0})
    assert sandbox_model.ensure_sandbox_model(tmp_path, **SMALL) == stale
    assert (stale / "DONE").is_file() and (stale / "marker").is_file()


def test_generation_and_mean_gold_score(built):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = built[1]
    prompts = ["sort: 3 1 2", "add: 10 + 20", "count a: banana"]
    score = mean_gold_score(path, prompts, max_new_tokens=8)
    assert 1.0 <= score <= 10.0
    model, tok = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    side = tok.padding_side
    out = generate_responses(model, tok, prompts, max_new_tokens=8, batch_size=2)
    assert len(out) == 3 and all(isinstance(o, str) for o in out)
    # greedy and left-padded: the batch composition does not change an answer
    assert out == generate_responses(model, tok, prompts, max_new_tokens=8, batch_size=3)
    assert tok.padding_side == side  # restored for the caller
    with pytest.raises(ValueError, match="tokenizer"):
        mean_gold_score(model, prompts)
