"""Each artifact of a run dir is named once, in prefexp/config/layout.py: no other module of
prefexp/ spells one as a string literal (writers and prefexp.reporting, which reads, share the names)."""
from __future__ import annotations

import ast
from pathlib import Path

from prefexp.config import layout

PACKAGE = Path(__file__).resolve().parents[2] / "prefexp"
NAMES = {v for k, v in vars(layout).items() if k.isupper() and isinstance(v, str)}
# "eval" and "checkpoint" are also words of messages, config keys and conf/ paths: only the file names
FILE_NAMES = {n for n in NAMES if "." in n or n == "FAILED"}


def literals(path: Path) -> list[tuple[int, str]]:
    """String constants that are whole artifact names (docstrings and f-string prose do not count)."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in FILE_NAMES
            and id(node) not in docstrings]


def test_layout_names_every_artifact_once():
    assert len(NAMES) == len([k for k in vars(layout) if k.isupper()]), "one constant per name"
    assert {"metrics.jsonl", "routing_plan.jsonl", "run_config.json", "manifest.json", "results.json", "FAILED"} <= NAMES


def test_no_module_spells_an_artifact_name():
    found = {f"{p.relative_to(PACKAGE.parent)}:{line}: {value!r}" for p in PACKAGE.rglob("*.py") if p.name != "layout.py"
             for line, value in literals(p)}
    found = {f for f in found if not f.startswith("prefexp/launch/__init__.py")}  # __all__ exports the name FAILED
    assert not found, sorted(found)


def test_the_check_sees_a_literal(tmp_path):
    module = tmp_path / "m.py"
    module.write_text('"""Writes metrics.jsonl."""\nPATH = "metrics.jsonl"\n')
    assert literals(module) == [(2, "metrics.jsonl")]
