"""Local data files: every format through one reader, 1-based physical lines, skip counts undecodable lines."""
from __future__ import annotations

import gzip
import json
import logging

import pytest

from prefexp.data.files import DataFileError, read_data_file
from prefexp.data.records import InvalidRowError, read_pairs, to_pairs

ROWS = [{"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}", "score_chosen": 5.0, "score_rejected": 1.0}
        for i in range(3)]


def lines(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


@pytest.mark.parametrize("name", ["d.jsonl", "d.jsonl.gz", "d.json", "d.json-array", "d.parquet", "gz-no-suffix.txt"])
def test_every_format_gives_the_same_rows(tmp_path, name):
    path = tmp_path / name.replace("-array", "")
    if name == "d.jsonl":
        path.write_text(lines(ROWS))
    elif name in ("d.jsonl.gz", "gz-no-suffix.txt"):
        path.write_bytes(gzip.compress(lines(ROWS).encode()))  # gzip found by its magic bytes
    elif name == "d.json":
        path.write_text(lines(ROWS))  # .json holding JSON lines
    elif name == "d.json-array":
        path.write_text(json.dumps(ROWS, indent=2))
    else:
        import datasets

        datasets.Dataset.from_list(ROWS).to_parquet(str(path))
    rows = read_data_file(path)
    assert [dict(r) for r in rows] == ROWS
    expected = {"d.json-array": ["line 2", "line 9", "line 16"], "d.parquet": ["row 1", "row 2", "row 3"]}
    assert [r.where for r in rows] == expected.get(name, ["line 1", "line 2", "line 3"])


def test_physical_lines_count_blank_lines_and_a_bom(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b"\n".join([json.dumps(ROWS[0]).encode(), b"", b"  ", json.dumps(
        {**ROWS[1], "chosen": ""}).encode()]) + b"\n")
    with pytest.raises(InvalidRowError, match=rf"{path}, line 4: empty chosen response"):
        to_pairs(read_data_file(path), str(path), "error", require_scores=True)


def test_skip_also_skips_undecodable_lines_and_counts_them(tmp_path, caplog):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b"\n".join([json.dumps(ROWS[0]).encode(), b"{oops", b'{"prompt": "\xff"}',
                                 json.dumps(ROWS[1]).encode()]) + b"\n")
    with pytest.raises(DataFileError, match=rf"{path}, line 2: not valid JSON"):
        read_data_file(path)
    with caplog.at_level(logging.WARNING, logger="prefexp.data.files"):
        rows = read_data_file(path, on_invalid="skip")
    assert [r.where for r in rows] == ["line 1", "line 4"]
    assert "skipped 2 unreadable line(s)" in caplog.text
    assert "'not valid JSON': 1" in caplog.text and "'not valid UTF-8': 1" in caplog.text


def test_json_array_errors_name_the_line(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('[\n  {"prompt": "a",\n   "chosen": "b" "rejected": "c"}\n]\n')
    with pytest.raises(DataFileError, match=rf"{path}, line 3: not valid JSON"):
        read_data_file(path)


def test_duplicates_are_kept_and_reported_with_lines(tmp_path, caplog):
    path = tmp_path / "d.jsonl"
    path.write_text(lines([ROWS[0], ROWS[1], ROWS[0], ROWS[0]]))
    with caplog.at_level(logging.WARNING, logger="prefexp.data.records"):
        pairs = to_pairs(read_data_file(path), str(path), "error", require_scores=True)
    assert len(pairs) == 4
    assert "2 duplicate row(s)" in caplog.text and "line 3 = line 1; line 4 = line 1" in caplog.text


def test_skips_and_duplicates_are_counted_for_the_run_summary(tmp_path):
    path = tmp_path / "d.jsonl"
    no_chosen = {k: v for k, v in ROWS[2].items() if k != "chosen"}
    path.write_text(lines([ROWS[0], ROWS[1], ROWS[0], no_chosen]) + "not json\n")
    pairs, counts = read_pairs(read_data_file(path, on_invalid="skip"), str(path), "skip", require_scores=True)
    assert len(pairs) == 3 and counts["duplicates_kept"] == 1
    assert counts["rows_read"] == 4 and sum(counts["skipped_invalid"].values()) == 1  # the row without chosen


def test_a_directory_or_missing_path_is_named(tmp_path):
    with pytest.raises(DataFileError, match="is a directory"):
        read_data_file(tmp_path)
    with pytest.raises(DataFileError, match="does not exist"):
        read_data_file(tmp_path / "nope.jsonl")


def test_a_hub_name_that_cannot_be_loaded_is_one_input_error():
    """Neither a local path nor a loadable hub dataset (the tests run with HF_DATASETS_OFFLINE=1)."""
    from prefexp.data.sources import load_hf

    with pytest.raises(DataFileError, match=r"dataset.path='someorg/no-such-set' split='train': not a local file"):
        load_hf("someorg/no-such-set", "train")
