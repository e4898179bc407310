"""Rows skipped at the user's request (``dataset.on_invalid=skip``): the first ``SHOWN`` of each
reader are warned about one by one, the rest only counted in the reader's summary line, and every
one is kept for the run dir's ``skipped_rows.jsonl`` (source, where, reason), so a file with
thousands of bad rows gives a readable console and loses nothing.

The readers (data files, pair rows, K-response groups) call :func:`skip`; the load stage opens
:func:`collect_skips` around them and writes what it collected.
"""
from __future__ import annotations

import contextvars
import logging
from contextlib import contextmanager
from typing import Iterator

SHOWN = 5  # per reader: enough to see the pattern

_collector: contextvars.ContextVar[list[dict] | None] = contextvars.ContextVar("skipped_rows", default=None)


def skip(log: logging.Logger, source: str, where: str, reason: str, n_before: int) -> None:
    """Record one skipped row; warn about it if it is among the reader's first ``SHOWN``
    (``n_before``: rows this reader skipped before it)."""
    rows = _collector.get()
    if rows is not None:
        rows.append({"source": source, "where": where, "reason": reason})
    if n_before < SHOWN:
        log.warning("skipping %s, %s: %s", source, where, reason)


def not_shown(n_skipped: int) -> str:
    """The tail of a reader's summary line: how many skips were not warned about one by one."""
    if n_skipped <= SHOWN:
        return ""
    where = "skipped_rows.jsonl in the run dir" if _collector.get() is not None else "not kept"
    return f" ({SHOWN} shown above, {n_skipped - SHOWN} more not shown; every one: {where})"


@contextmanager
def collect_skips() -> Iterator[list[dict]]:
    """Every row :func:`skip` records while the block runs, in order."""
    rows: list[dict] = []
    token = _collector.set(rows)
    try:
        yield rows
    finally:
        _collector.reset(token)
