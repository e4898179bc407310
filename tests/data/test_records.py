"""Bad rows stop the run naming file and row, or are counted and skipped on request."""
from __future__ import annotations

import gzip
import json
import logging

import pytest

from prefexp.data.records import InvalidRowError, to_pairs
from prefexp.data.sources import load_hf, load_jsonl

GOOD = {"prompt": "hi", "chosen": "hello there", "rejected": "go away", "score_chosen": 8, "score_rejected": 3}


@pytest.mark.parametrize("bad,reason", [
    ({"prompt": "hi", "rejected": "x", "score_chosen": 1, "score_rejected": 1}, "missing field 'chosen'"),
    ({**GOOD, "chosen": "  "}, "empty chosen response"),
    ({**GOOD, "rejected": ""}, "empty rejected response"),
    ({**GOOD, "rejected": "hello there"}, "identical"),
    ({**GOOD, "score_chosen": float("nan")}, "'score_chosen' is nan"),
    ({**GOOD, "score_rejected": "high"}, "'score_rejected'='high' is not a number"),
])
def test_bad_row_error_names_file_and_row(tmp_path, bad, reason):
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [GOOD, GOOD, bad]) + "\n")
    with pytest.raises(InvalidRowError) as err:
        to_pairs(load_jsonl(path), str(path), "error", require_scores=True)
    msg = str(err.value)
    assert str(path) in msg and "line 3" in msg and reason in msg and "on_invalid=skip" in msg


def test_skip_counts_and_logs(caplog):
    rows = [GOOD, {**GOOD, "chosen": ""}, {**GOOD, "score_chosen": None}, GOOD]
    with caplog.at_level(logging.WARNING):
        pairs = to_pairs(rows, "mem", "skip", require_scores=True)
    assert [p.index for p in pairs] == [0, 3]
    assert "skipped 2 invalid row(s) of mem" in caplog.text


def test_many_skips_warn_five_times_count_the_rest_and_keep_every_one(caplog):
    """8 bad rows among 10 (file rows 2-9): 5 "skipping" warnings (rows 2-6), one summary line that
    says 3 more were not shown, and all 8 in the collector (the run dir's skipped_rows.jsonl)."""
    from prefexp.data.skips import collect_skips

    rows = [GOOD] + [{**GOOD, "chosen": ""}] * 8 + [GOOD]
    with caplog.at_level(logging.WARNING), collect_skips() as skipped:
        pairs = to_pairs(rows, "mem", "skip", require_scores=True)
    assert [p.index for p in pairs] == [0, 9]
    warned = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipping mem")]
    assert warned == [f"skipping mem, row {n}: empty chosen response" for n in range(2, 7)]
    assert ("skipped 8 invalid row(s) of mem: {'empty chosen response': 8} (5 shown above, 3 more not "
            "shown; every one: skipped_rows.jsonl in the run dir)") in caplog.text
    assert skipped == [{"source": "mem", "where": f"row {n}", "reason": "empty chosen response"} for n in range(2, 10)]


def test_chat_message_fields_are_split_into_prompt_and_reply():
    row = {"prompt": "2+2?",
           "chosen": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],
           "rejected": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "5"}],
           "score_chosen": 9.0, "score_rejected": 2.0}
    (pair,) = to_pairs([row], "mem", "error", require_scores=True)
    assert pair.prompt == [{"role": "user", "content": "2+2?"}]
    assert (pair.chosen, pair.rejected, pair.score_chosen) == ("4", "5", 9.0)


def test_ultrafeedback_loader_on_shared_rows(shared_data, tmp_path):
    """The hub loader (datasets.load_dataset) on the shared UltraFeedback rows, from a local path."""
    src = shared_data / "preference/ultrafeedback/trl_ultrafeedback_binarized_train1000.jsonl.gz"
    rows = load_hf(str(src), "train_prefs")
    assert len(rows) == 1000
    pairs = to_pairs(rows, str(src), "skip", require_scores=True)
    margins = [p.score_chosen - p.score_rejected for p in pairs]
    assert min(margins) >= 0 and sum(m == 0 for m in margins) > 50
    # a folder laid out like the hub repo (one file per split) goes through the same call
    folder = tmp_path / "uf"
    (folder / "data").mkdir(parents=True)
    with gzip.open(src, "rt") as f, (folder / "data/train_prefs-00000-of-00001.jsonl").open("w") as out:
        out.writelines(line for _, line in zip(range(20), f))
    assert len(load_hf(str(folder), "train_prefs")) == 20
