"""The token cache (issue 20, item 4; prefexp/engine/token_cache.py): a second identical run reads
the token ids instead of tokenising, any input of the ids misses, a hit equals a fresh tokenisation
(ids and truncation counts), and a damaged entry is moved aside and rebuilt with one warning.

Real tokenizers (the tiny GPT-2 of ../shared/data/models) on real UltraFeedback rows; nothing is
patched. "Nothing was tokenised" is read from the log: ``responses end with ...`` is logged by the
first response a process tokenises (``engine.tokenize.end_of_turn_ids``), so its absence means
``tokenize_pairs`` and the group tokenisation never ran.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from prefexp.setup.validate import validate
from prefexp.engine.reference import examples_fingerprint
from prefexp.engine.token_cache import tokenizer_fingerprint
from prefexp.engine.tokenize import tokenize_pairs
from prefexp.pipeline.load import load_data
from prefexp.pipeline.model_source import ModelSource
from prefexp.pipeline.tokens import tokenise
from tests.conftest import SHARED, compose
from tests.helpers import run_train

TINY_GPT2 = SHARED / "data" / "models" / "tiny-gpt2"
ULTRAFEEDBACK = SHARED / "data" / "preference" / "ultrafeedback" / "trl_ultrafeedback_binarized_train1000.jsonl.gz"
FIRST_TOKENISATION = "responses end with"
pytestmark = pytest.mark.skipif(not (TINY_GPT2.is_dir() and ULTRAFEEDBACK.is_file()),
                                reason="../shared/data is not beside the repo")


def settings_for(cache_dir: Path, *overrides: str):
    """40 UltraFeedback rows cut to 64 tokens (32 of prompt): many prompts and responses truncated."""
    return validate(compose(["model=hf", f"model.name_or_path={TINY_GPT2}", "dataset=ultrafeedback",
                             f"dataset.path={ULTRAFEEDBACK}", "dataset.max_rows=40", "dataset.max_length=64",
                             "dataset.max_prompt_length=32", f"paths.cache_dir={cache_dir}", "logger=none",
                             *overrides]))


def tokenise_logged(settings, caplog, run_dir: Path | None = None):
    """(TokenisedPairs, the log records of the call) from a fresh ModelSource (a new tokenizer)."""
    caplog.clear()
    with caplog.at_level(logging.INFO):
        tokens = tokenise(settings.config, load_data(settings), ModelSource(settings.config), run_dir)
    return tokens, list(caplog.records)


def messages(records, logger: str = "prefexp.engine.token_cache", level: int = logging.INFO) -> list[str]:
    return [r.getMessage() for r in records if r.name == logger and r.levelno == level]


def entries(cache_dir: Path) -> list[Path]:
    return sorted(p for p in (cache_dir / "tokens").iterdir() if not p.name.startswith("."))


def test_second_identical_run_reads_the_token_cache(tmp_path):
    """The real entry point twice: the first run tokenises and writes, the second logs one hit and
    tokenises nothing, writes the same truncation counts and trains on the same reference cache."""
    cache = tmp_path / "cache"
    args = ["model=hf", f"model.name_or_path={TINY_GPT2}", "dataset=ultrafeedback", f"dataset.path={ULTRAFEEDBACK}",
            "dataset.max_rows=16", "trainer.max_steps=1", "dataset.max_length=128", "dataset.max_prompt_length=64",
            f"paths.cache_dir={cache}", "logger=none"]
    run_train(tmp_path / "first", *args)
    run_train(tmp_path / "second", *args)
    first, second = ((tmp_path / run / "train.log").read_text() for run in ("first", "second"))
    assert "token cache miss: tokenising 16 pairs" in first and FIRST_TOKENISATION in first
    [entry] = entries(cache)
    assert [line for line in second.splitlines() if "token cache" in line] == [
        next(line for line in second.splitlines() if line.endswith(f"token cache hit: {entry} (16 pairs)"))]
    assert FIRST_TOKENISATION not in second and "reference log-probs: cache hit" in second
    summaries = [json.loads((tmp_path / run / "tokenization_summary.json").read_text()) for run in ("first", "second")]
    assert summaries[0] == summaries[1] and summaries[0]["prompt_truncated"] > 0


def test_a_hit_equals_a_fresh_tokenisation(tmp_path, caplog):
    settings = settings_for(tmp_path / "cache", "dataset.on_invalid=skip")
    miss, miss_log = tokenise_logged(settings, caplog, tmp_path)
    miss_summary = (tmp_path / "tokenization_summary.json").read_text()
    (tmp_path / "tokenization_summary.json").unlink()
    hit, hit_log = tokenise_logged(settings, caplog, tmp_path)
    [entry] = entries(tmp_path / "cache")
    assert messages(hit_log) == [f"token cache hit: {entry} ({len(hit.examples)} pairs)"]
    assert not any(FIRST_TOKENISATION in r.getMessage() for r in hit_log)
    assert (tmp_path / "tokenization_summary.json").read_text() == miss_summary
    warned = [messages(log, "prefexp.engine.tokenize", logging.WARNING) for log in (miss_log, hit_log)]
    assert warned[0] == warned[1] and "truncated" in warned[0][-1]  # the same truncation warnings on a hit

    model = ModelSource(settings.config)
    fresh, stats = tokenize_pairs(load_data(settings).pairs, model.tokenizer, 64, 32)  # plain lists
    assert json.loads(miss_summary) == {**vars(stats), "max_length": 64, "max_prompt_length": 32}
    assert stats.prompt_truncated > 0 and stats.response_truncated > 0
    for tokens in (miss, hit):
        assert [e["index"] for e in tokens.examples] == [e["index"] for e in fresh]
        for got, want in zip(tokens.examples, fresh):
            for key in ("prompt_ids", "chosen_ids", "rejected_ids"):
                assert got[key].dtype == np.int32 and got[key].tolist() == want[key], (got["index"], key)
    assert examples_fingerprint(hit.examples) == examples_fingerprint(fresh)  # the reference cache key is unchanged


def test_hit_ids_are_read_only_views_of_one_array(tmp_path, caplog):
    settings = settings_for(tmp_path / "cache", "dataset.on_invalid=skip")
    tokenise_logged(settings, caplog)
    hit, _ = tokenise_logged(settings, caplog)
    ids = [e[k] for e in hit.examples for k in ("prompt_ids", "chosen_ids", "rejected_ids")]
    base = ids[0].base
    assert base is not None and all(a.base is base for a in ids)  # views, not copies
    with pytest.raises(ValueError, match="read-only"):
        ids[0][0] = 1


@pytest.mark.parametrize("override", ["model.chat_template=chatml", "dataset.max_length=96",
                                      "dataset.max_prompt_length=16", "dataset.max_rows=39"])
def test_any_input_of_the_ids_misses(tmp_path, caplog, override):
    cache = tmp_path / "cache"
    before, _ = tokenise_logged(settings_for(cache, "dataset.on_invalid=skip"), caplog)
    after, log = tokenise_logged(settings_for(cache, "dataset.on_invalid=skip", override), caplog)
    assert messages(log)[0] == f"token cache miss: tokenising {len(after.examples)} pairs"
    assert len(entries(cache)) == 2 and any(FIRST_TOKENISATION in r.getMessage() for r in log)
    assert examples_fingerprint(after.examples) != examples_fingerprint(before.examples)  # so the reference misses too


def test_tokenizer_fingerprint_is_its_content_not_its_name_or_call_state(tmp_path):
    from transformers import AutoTokenizer

    def load(path):
        return AutoTokenizer.from_pretrained(path)

    original = tokenizer_fingerprint(load(TINY_GPT2))
    copy = tmp_path / "renamed-tokenizer"
    load(TINY_GPT2).save_pretrained(copy)
    assert tokenizer_fingerprint(load(copy)) == original  # same content elsewhere: the same key
    truncating = load(TINY_GPT2)
    truncating.backend_tokenizer.enable_truncation(max_length=8)
    assert tokenizer_fingerprint(truncating) == original  # truncation is state of a call, not content
    grown = load(TINY_GPT2)
    grown.add_tokens(["<new-token>"])
    assert tokenizer_fingerprint(grown) != original
    retrained = load(copy)
    retrained.add_special_tokens({"pad_token": "<pad>"})
    assert tokenizer_fingerprint(retrained) != original


@pytest.mark.parametrize("damage, why", [
    (lambda entry: _flip_one_id(entry / "tokens.npz"), "checksum mismatch on tokens.npz"),
    (lambda entry: (entry / "tokens.npz").write_bytes((entry / "tokens.npz").read_bytes()[:100]), "checksum mismatch"),
    (lambda entry: (entry / "DONE").write_text("{"), "checksum mismatch on DONE"),
    (lambda entry: (entry / "tokens.npz").unlink(), "tokens.npz missing"),
])
def test_a_damaged_entry_is_moved_aside_and_rebuilt_with_one_warning(tmp_path, caplog, damage, why):
    settings = settings_for(tmp_path / "cache", "dataset.on_invalid=skip")
    good, _ = tokenise_logged(settings, caplog)
    [entry] = entries(tmp_path / "cache")
    damage(entry)
    rebuilt, log = tokenise_logged(settings, caplog)
    warnings = [r.getMessage() for r in log if r.levelno == logging.WARNING and r.name == "prefexp.cachefs"]
    assert len(warnings) == 1 and why in warnings[0] and f"{entry.name}.corrupt" in warnings[0]
    assert entries(tmp_path / "cache") == [entry, entry.with_name(f"{entry.name}.corrupt")]  # kept as evidence
    assert messages(log)[0].startswith("token cache miss")
    assert [e["chosen_ids"].tolist() for e in rebuilt.examples] == [e["chosen_ids"].tolist() for e in good.examples]
    _, again = tokenise_logged(settings, caplog)
    assert messages(again) == [f"token cache hit: {entry} ({len(good.examples)} pairs)"]


def _flip_one_id(path: Path) -> None:
    """One token id changed, the .npz still a valid file: only the checksum can tell."""
    with np.load(path) as f:
        arrays = {k: f[k].copy() for k in f.files}
    arrays["ids"][0] += 1
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def test_groups_hit_and_their_labels_follow_the_group_settings(tmp_path, caplog):
    """K-response data: the group responses' ids come from the cache; the labels (dataset.group_positive)
    are recomputed from the ratings, so another labelling rule reuses the entry with its own labels."""
    def settings(*extra: str):
        return validate(compose(["model=hf", f"model.name_or_path={TINY_GPT2}", "dataset.sandbox.responses=synthetic",
                                 "dataset.sandbox.num_prompts=4", "loss=maxneg_minpos", "router=none",
                                 "curriculum=none", f"paths.cache_dir={tmp_path / 'cache'}", "logger=none", *extra]))

    miss, _ = tokenise_logged(settings(), caplog)
    relabelled, log = tokenise_logged(settings("dataset.group_positive=threshold", "dataset.group_positive_min=7"),
                                      caplog)
    assert messages(log)[0].startswith("token cache hit") and not any(FIRST_TOKENISATION in r.getMessage() for r in log)
    assert miss.has_groups and len(miss.examples[0]["group_ids"]) == 4
    assert [e["index"] for e in relabelled.examples] == [e["index"] for e in miss.examples]  # no group left out
    for a, b in zip(miss.examples, relabelled.examples):
        assert [g.tolist() for g in a["group_ids"]] == [g.tolist() for g in b["group_ids"]]
        assert (a["chosen_slot"], a["rejected_slot"]) == (b["chosen_slot"], b["rejected_slot"])
    assert [e["group_positive"] for e in miss.examples] != [e["group_positive"] for e in relabelled.examples]
    assert [e["group_positive"] for e in relabelled.examples] == [
        [s >= 7 for s in p.extra["rater_scores"]] for p in load_data(settings("dataset.group_positive=threshold",
                                                                              "dataset.group_positive_min=7")).pairs]
