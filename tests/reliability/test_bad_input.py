"""The bad-input table of issue 12 through the real entry point: exit 2, one ``error:`` line naming the
file and 1-based physical line (or the config key and value), before any model loads.

Each case runs ``prefexp.train``'s ``main`` (the function ``python -m prefexp.train`` calls) in this
process with ``dry_run=true logger=none``: a subprocess per case would pay torch's import (~5 s on
two shared cores) every time. ``test_cli_subprocess`` runs two cases as real subprocesses, and the
``slow`` test runs the whole table that way.
"""
from __future__ import annotations

import gzip
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from tests.conftest import REPO

ROW = {"prompt": "2+2?", "chosen": "4", "rejected": "5", "score_chosen": 9, "score_rejected": 2}
OTHER = {"prompt": "3+3?", "chosen": "6", "rejected": "7", "score_chosen": 8, "score_rejected": 4}


def jsonl(*rows) -> bytes:
    """Rows (dicts, raw strings or bytes) as file bytes, one per line; "" is a blank line."""
    out = []
    for r in rows:
        out.append(r if isinstance(r, bytes) else (r if isinstance(r, str) else json.dumps(r)).encode())
    return b"\n".join(out) + b"\n"


@dataclass
class Case:
    name: str
    file: str | None  # data file name under tmp_path (None: the sandbox data)
    content: bytes | Callable[[Path], None] | None
    overrides: list[str]
    expect: list[str]  # substrings of the error line; {path} = the data file
    extra: list[str] = field(default_factory=list)


CASES = [
    Case("non_json_line", "bad.jsonl", jsonl(ROW, "", "{not json"), [], ["{path}, line 3: not valid JSON"]),
    Case("json_array_bad_row", "bad.json",
         b'[\n  ' + json.dumps(ROW).encode() + b',\n\n  ' + json.dumps({**ROW, "chosen": ""}).encode() + b'\n]\n', [],
         ["{path}, line 4: empty chosen response"]),
    Case("gzip_bad_line", "bad.jsonl.gz", gzip.compress(jsonl(ROW, OTHER, {"prompt": "x", "rejected": "y"})), [],
         ["{path}, line 3: missing field 'chosen'"]),
    Case("invalid_utf8", "bad.jsonl", jsonl(ROW, b'{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}'), [],
         ["{path}, line 2: not valid UTF-8 (byte 0xe9"]),
    Case("unknown_chat_role", "bad.jsonl",
         jsonl(ROW, {**ROW, "prompt": [{"role": "bot", "content": "hi"}]}), [],
         ["{path}, line 2: 'prompt' message 1 has unknown chat role 'bot'"]),
    Case("boolean_score", "bad.jsonl", jsonl(ROW, "", "", {**OTHER, "score_chosen": True}), [],
         ["{path}, line 4: 'score_chosen'=True is a boolean"]),
    Case("blank_lines_counted", "bad.jsonl", jsonl("", ROW, "", "", {**OTHER, "rejected": None}), [],
         ["{path}, line 5: missing field 'rejected'"]),
    Case("unscored_with_default_curriculum", "bad.jsonl", jsonl({"prompt": "p", "chosen": "a", "rejected": "b"}), [],
         ["{path}, line 1: missing field 'score_chosen'", "curriculum=none router=none"]),
    Case("mapped_column_missing", "bad.jsonl", jsonl(ROW),
         ["dataset.columns.score_chosen=rating_chosen"],
         ["{path}, line 1: missing field 'rating_chosen' (dataset.columns.score_chosen=rating_chosen)"]),
    Case("directory_as_file", "adir", lambda p: p.mkdir(), [], ["dataset.path='{path}' is a directory"]),
    Case("missing_file", "nope.jsonl", None, [], ["dataset.path='{path}' does not exist"]),
    Case("nonexistent_model", None, None, ["model=hf", "model.name_or_path=/nonexistent"],
         ["model.name_or_path='/nonexistent' does not exist"]),
    Case("negative_learning_rate", None, None, ["trainer.learning_rate=-1"], ["trainer.learning_rate=-1.0 must be"]),
    Case("plus_key_typo", None, None, ["+trainer.max_stepz=3"],
         ["trainer.max_stepz=3 is not a config key; did you mean trainer.max_steps?"]),
    Case("unknown_chat_template", None, None, ["model.chat_template=chatmll"],
         ["model.chat_template='chatmll' is not a built-in template"]),
    Case("probes_every_zero", None, None, ["trainer.probes.every_n_steps=0"],
         ["trainer.probes.every_n_steps=0 must be >= 1", "trainer.probes.enabled=false"]),
]


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


FP16 = Case("fp16_on_cpu", None, None, ["trainer.precision=fp16"], ["trainer.precision=fp16 needs a CUDA GPU"])


def setup(case: Case, tmp_path: Path) -> tuple[list[str], str]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    args = ["dry_run=true", "logger=none", f"hydra.run.dir={tmp_path / 'run'}"]
    path = ""
    if case.file is not None:
        p = tmp_path / case.file
        if callable(case.content):
            case.content(p)
        elif case.content is not None:
            p.write_bytes(case.content)
        path = str(p)
        args += ["dataset=jsonl", f"dataset.path={path}"]
    return args + case.overrides, path


def run_in_process(args: list[str], capsys) -> tuple[int, str]:
    """``prefexp.train.main`` with ``args`` as the command line; (exit code, stderr)."""
    from hydra.core.global_hydra import GlobalHydra

    from prefexp import train

    GlobalHydra.instance().clear()
    argv = sys.argv
    sys.argv = ["prefexp.train", *args]
    try:
        train.main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = argv
        GlobalHydra.instance().clear()
    return code, capsys.readouterr().err


def run_cli(args: list[str]) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-m", "prefexp.train", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    return proc.returncode, proc.stderr


def check(case: Case, path: str, code: int, stderr: str) -> None:
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert code == 2, stderr[-2000:]
    assert len(errors) == 1, stderr[-2000:]
    text = errors[0]  # the one line names the file and line, or the key and value
    for want in case.expect:
        assert want.format(path=path) in text, text
    assert "Traceback" not in stderr
    assert "loading weights" not in stderr.lower()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_exits_2_naming_file_and_line(case, tmp_path, capsys):
    args, path = setup(case, tmp_path)
    code, stderr = run_in_process(args, capsys)
    check(case, path, code, stderr)


def test_fp16_on_cpu_is_refused(tmp_path, capsys):
    if _cuda():
        pytest.skip("CUDA present: fp16 is allowed")
    args, path = setup(FP16, tmp_path)
    check(FP16, path, *run_in_process(args, capsys))


def test_cli_subprocess(tmp_path):
    """One data case and one config case through ``python -m prefexp.train`` itself (the printing and
    exit code of the CLI); every case runs that way in the ``slow`` test below."""
    for case in (CASES[0], CASES[13]):
        args, path = setup(case, tmp_path / case.name)
        check(case, path, *run_cli(args))


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_case_through_the_cli(case, tmp_path):
    args, path = setup(case, tmp_path)
    check(case, path, *run_cli(args))


@pytest.mark.parametrize("name", ["pairs.jsonl.gz", "pairs.json"])
def test_gzip_and_json_array_files_are_read_like_jsonl(name, tmp_path, capsys):
    """Once tracebacks (UnicodeDecodeError, JSONDecodeError): now the same rows as a .jsonl file."""
    path = tmp_path / name
    rows = [ROW, OTHER, {**OTHER, "prompt": "4+4?", "chosen": "8"}]
    path.write_bytes(gzip.compress(jsonl(*rows)) if name.endswith(".gz") else json.dumps(rows, indent=1).encode())
    run = tmp_path / "run"
    code, stderr = run_in_process(["dataset=jsonl", f"dataset.path={path}", "dry_run=true", "logger=none",
                                   f"hydra.run.dir={run}"], capsys)
    assert code == 0, stderr[-2000:]
    plan = [json.loads(line) for line in (run / "routing_plan.jsonl").read_text().splitlines()]
    # margins 7, 4, 4: easy to hard (the tie in the seed's order); every row read, with its margin
    assert [p["margin"] for p in plan] == [7.0, 4.0, 4.0] and plan[0]["index"] == 0
    assert sorted(p["index"] for p in plan[1:]) == [1, 2]
