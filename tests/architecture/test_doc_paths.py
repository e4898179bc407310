"""Docs, docstrings, comments and configs name only files that exist: every repo path written in
README.md, docs/, prefexp/, conf/ and scripts/ (``docs/x.md``, ``prefexp/a/b.py``,
``../shared/data/...``) is checked; a pattern (``test_<name>.py``, ``*.jinja``) must have an
existing folder."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROOTS = ("../shared/", "docs/", "conf/", "prefexp/", "scripts/", "tests/", "requirements/", ".ci/")
PATH = re.compile(r"(?<![\w./-])((?:%s)[\w./<>*{}$-]*[\w>*}/])" % "|".join(re.escape(r) for r in ROOTS))
FILE = re.compile(r"\.(py|md|yaml|yml|sh|json|jsonl|txt|jinja|gz|toml|cfg)$")
# Named on purpose though absent: a per-machine git-ignored file, and the worked example of
# docs/losses.md ("adding a loss") that the reader is to create.
ABSENT_ON_PURPOSE = {"conf/local/default.yaml", "prefexp/losses/scaled_dpo.py", "conf/loss/scaled_dpo.yaml",
                     "tests/losses/test_scaled_dpo.py"}


def _sources() -> list[Path]:
    files = [REPO / "README.md", *(REPO / "docs").rglob("*.md"), *(REPO / "prefexp").rglob("*.py"),
             *(REPO / "conf").rglob("*.yaml"), *(p for p in (REPO / "scripts").rglob("*") if p.is_file())]
    return sorted(files)


def _target(ref: str) -> Path:
    return REPO.parent / ref[3:] if ref.startswith("../") else REPO / ref


def missing_paths(sources: list[Path] | None = None) -> list[str]:
    shared = (REPO.parent / "shared").is_dir()
    out = []
    for source in sources or _sources():
        for n, line in enumerate(source.read_text(errors="replace").splitlines(), 1):
            for match in PATH.finditer(line):
                ref = match.group(1).rstrip(".")
                if ref in ABSENT_ON_PURPOSE or (ref.startswith("../shared/") and not shared):
                    continue
                pattern = re.search(r"[<>*{}$]", ref)
                if pattern:  # a pattern: its folder must exist
                    ref = ref[: pattern.start()].rsplit("/", 1)[0] + "/"
                elif not (FILE.search(ref) or ref.endswith("/")):
                    continue  # "prefexp/TRL" (a ratio), a module path in prose: not a file name
                if not _target(ref).exists():
                    out.append(f"{source.name}:{n}: {match.group(1)}")
    return out


def test_every_named_path_exists():
    assert missing_paths() == []


def test_the_check_sees_a_missing_file_and_a_pattern_in_a_missing_folder(tmp_path):
    doc = tmp_path / "probe.md"
    doc.write_text("see docs/packages.md, prefexp/data/chat_templates/*.jinja and tests/losses/test_<name>.py;\n"
                   "docs/sandbox.md exists, prefexp/TRL is a ratio\n")
    assert missing_paths([doc]) == ["probe.md:1: docs/packages.md", "probe.md:1: prefexp/data/chat_templates/*.jinja"]
