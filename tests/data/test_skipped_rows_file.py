"""The load stage keeps every skipped row in the run dir (skipped_rows.jsonl), also when the data
leaves nothing valid and the run stops."""
from __future__ import annotations

import json

import pytest

from prefexp.setup.validate import validate
from prefexp.data.records import InvalidRowError
from prefexp.pipeline.load import load_data
from tests.conftest import compose

GOOD = {"prompt": "hi", "chosen": "hello there", "rejected": "go away", "score_chosen": 8, "score_rejected": 3}


def _settings(tmp_path, rows):
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows) + "not json\n")
    return validate(compose(["dataset.source=jsonl", f"dataset.path={data}", "dataset.on_invalid=skip",
                             f"paths.run_dir={tmp_path / 'run'}", "logger=none"])), data


def _file(tmp_path):
    return [json.loads(line) for line in (tmp_path / "run" / "skipped_rows.jsonl").read_text().splitlines()]


def test_every_skip_of_every_reader_lands_in_the_run_dir(tmp_path):
    settings, data = _settings(tmp_path, [GOOD, {**GOOD, "rejected": ""}, GOOD])
    assert len(load_data(settings).pairs) == 2
    assert [(r["source"], r["where"]) for r in _file(tmp_path)] == [(str(data), "line 4"), (str(data), "line 2")]
    assert _file(tmp_path)[1]["reason"] == "empty rejected response"  # the file reader's skip comes first


def test_the_file_is_written_when_nothing_valid_is_left(tmp_path):
    settings, _ = _settings(tmp_path, [{**GOOD, "chosen": ""}] * 7)
    with pytest.raises(InvalidRowError, match="no valid rows; skipped 7"):
        load_data(settings)
    assert len(_file(tmp_path)) == 8  # 7 rows + the unreadable line
