"""Asking a paid judge for many items: in parallel, each answer kept the moment it arrives.

Both benchmarks hand ``ask_all`` their pending items and a function that asks the judge for one
of them and persists the answer (append + fsync) before returning. So a crash loses at most the
requests in flight, and a re-run asks only for what has no final answer.

What can go wrong, and what happens:
* one item's answer is unusable (no logprobs, unparseable rating, no preference): the function
  raises ``ItemFailed``; the item is reported, never cached as final, and asked again next run;
* the judge itself fails (HTTP error after retries, unreachable): ``JudgeError``; asking stops
  (no point paying for timeouts), the items not asked are reported as failed too;
* the judge setting cannot work at all (``JudgeSetupError``, e.g. the logprob annotator against a
  judge that returns no logprobs): asking stops and the error propagates (exit 2, names the key).
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ..errors import InputError
from .judge_client import JudgeError

log = logging.getLogger(__name__)


class ItemFailed(Exception):
    """This item got no usable judgment this time (the reason is the message)."""


class JudgeSetupError(InputError):
    """The judge configuration cannot produce judgments at all; names the setting to change."""


class IncompleteJudging(JudgeError):
    """Some items have no final judgment; results.json holds the rest. Exit code 3.

    The message names the first ``NAMED_ITEMS`` failed items (``item_label``), so the exit line
    (and a training run's ``eval/<name>/FAILED`` marker, which holds its stderr) says which."""

    NAMED_ITEMS = 5

    def __init__(self, n_failed: int, n_items: int, results_path, reasons: dict[str, int],
                 items: Sequence[str] = ()):
        self.n_failed, self.n_items, self.results_path, self.reasons = n_failed, n_items, results_path, reasons
        self.items = list(items)
        why = "; ".join(f"{n} x {r}" for r, n in sorted(reasons.items(), key=lambda kv: -kv[1]))
        named = ", ".join(self.items[: self.NAMED_ITEMS])
        if len(self.items) > self.NAMED_ITEMS:
            named += f" and {len(self.items) - self.NAMED_ITEMS} more"
        super().__init__(f"{n_failed} of {n_items} judgment(s) failed ({why})"
                         + (f"; failed: {named} (all listed in failed_items)" if named else "")
                         + f"; the rest are kept and scored in {results_path}; "
                         "re-running the same command asks only for the failed ones")


def _short(value: Any, n: int = 40) -> str:
    if isinstance(value, str):
        return repr(value if len(value) <= n else value[:n] + "...")
    return str(value)


def item_label(item: dict) -> str:
    """A failed item as ``key=value`` pairs (``question_id=81 turn=2``), its reason left out and
    long text cut, so any benchmark's ``failed_items`` row can be named on one line."""
    return " ".join(f"{k}={_short(v)}" for k, v in item.items() if k != "reason" and v is not None)


@dataclass
class Failure:
    job: Any
    reason: str


def ask_all(jobs: Sequence[Any], ask_one: Callable[[Any], Any], concurrency: int,
            what: str = "judgment") -> tuple[list[Any], list[Failure]]:
    """Run ``ask_one`` over ``jobs`` with ``concurrency`` in flight; returns (answers, failures),
    answers in completion order. A ``JudgeSetupError`` is re-raised after in-flight calls end."""
    answers: list[Any] = []
    failures: list[Failure] = []
    stop = threading.Event()  # set by the worker that fails, so no queued job starts after it
    stop_reason: list[str] = []
    lock = threading.Lock()

    def halt(reason: str) -> None:
        with lock:
            if not stop.is_set():
                stop_reason.append(reason)
                stop.set()

    def guarded(job):
        if stop.is_set():
            raise ItemFailed(f"not asked: {stop_reason[0]}")
        try:
            return ask_one(job)
        except JudgeSetupError as err:
            halt(str(err))
            raise
        except ItemFailed:
            raise
        except JudgeError as err:
            halt("the judge failed earlier in this run")
            log.error("%s; not asking for the remaining %ss", str(err).splitlines()[0], what)
            raise

    setup_error: list[BaseException] = []
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        futures = {pool.submit(guarded, job): job for job in jobs}
        for future in as_completed(futures):
            job = futures[future]
            try:
                answers.append(future.result())
            except ItemFailed as err:
                failures.append(Failure(job, str(err)))
            except JudgeSetupError as err:
                setup_error.append(err)
                failures.append(Failure(job, str(err)))
            except JudgeError as err:
                failures.append(Failure(job, f"judge error: {str(err).splitlines()[0]}"))
    if setup_error:
        raise setup_error[0]
    return answers, failures


def reason_counts(reasons: Sequence[str]) -> dict[str, int]:
    """Failure reasons counted, with per-item details (quoted judge text) cut off."""
    counts: dict[str, int] = {}
    for reason in reasons:
        key = reason.split(": '", 1)[0]
        counts[key] = counts.get(key, 0) + 1
    return counts
