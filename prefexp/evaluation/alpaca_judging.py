"""AlpacaEval annotation with every paid judgment kept: alpaca_eval builds, orders and parses,
prefexp asks and persists.

alpaca_eval's ``PairwiseAnnotator`` is used as the package does in ``alpaca_eval.evaluate``
(same prompts, same seeded output order, same logprob parser, same draw rule), with two
changes that make a judge affordable:
* its cache is off (``caching_path=None``): it rewrote a JSON file per chunk of 16, so a kill lost
  up to a chunk of paid answers, and it cached failed ones as final;
* its ``fn_completions`` is ``PersistentCompletions``: each judge answer is appended (fsynced) to
  ``judge_completions.jsonl`` the moment it arrives, keyed by the exact request (judge model,
  decoding settings, prompt). A re-run answers from that file and asks only for what is missing.

An answer without logprobs, or whose logprobs hold neither ``m`` nor ``M`` (no preference), is a
failure: logged to ``judge_completions.failed.jsonl`` (a record, never reused) and asked again on
the next run. If no answer of the run had logprobs and two did not, the judge does not return
logprobs at all: ``JudgeSetupError`` names the annotator setting (exit 2).
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from .config import AlpacaEvalConfig
from .judge_client import JudgeClient
from .judging import Failure, ItemFailed, JudgeSetupError, ask_all
from .store import JsonlAppender, read_jsonl

log = logging.getLogger(__name__)
NO_LOGPROBS_SETUP_LIMIT = 2  # answers without logprobs, none with: the judge never returns them
# What alpaca_eval's logprob parser reads as "no preference" (NaN) without raising.
PLACEHOLDER = {"text": " ", "logprobs": {"content": [{"top_logprobs": []}]}, "total_tokens": 0}
# completions_kwargs that steer alpaca_eval's own openai helper, not the request
HELPER_KWARGS = {"client_config_path", "num_procs", "requires_chatml", "is_chat", "batch_size",
                 "price_per_token", "tokens_to_favor", "tokens_to_avoid", "is_skip_multi_tokens_to_avoid",
                 "is_strip", "sleep_time", "n_retries", "client_kwargs"}


def request_key(judge_model: str, params: dict, messages: list[dict]) -> str:
    blob = json.dumps({"model": judge_model, "params": params, "messages": messages}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _has_logprobs(choice: dict) -> bool:
    content = (choice.get("logprobs") or {}).get("content") or []
    return bool(content) and all(c.get("top_logprobs") for c in content)


def _answer_text(message: dict) -> str:
    """What alpaca_eval's openai helper parses: a tool call's or function call's arguments, else
    the content (a space for an empty one)."""
    if message.get("tool_calls"):
        return message["tool_calls"][0]["function"]["arguments"]
    if message.get("function_call"):
        return message["function_call"]["arguments"]
    return message.get("content") or " "


def _preference_ok(values: Any) -> bool:
    """True if every parsed value is a number or label (None, NaN or no list: no preference)."""
    if not isinstance(values, (list, tuple)) or not values:
        return False
    return all(v is not None and not (isinstance(v, float) and math.isnan(v)) for v in values)


class PersistentCompletions:
    """Called by alpaca_eval like ``openai_completions(prompts, model_name, **kwargs)``."""

    def __init__(self, cfg: AlpacaEvalConfig, out_dir: Path):
        self.cfg = cfg
        self.ok_path = out_dir / "judge_completions.jsonl"
        self.failed_path = out_dir / "judge_completions.failed.jsonl"
        self.final = {r["key"]: r for r in read_jsonl(self.ok_path) if r.get("status") == "ok"}
        self._ok, self._failed = JsonlAppender(self.ok_path), JsonlAppender(self.failed_path)
        self.parse: Callable[[Any], Any] = lambda completion: [math.nan]  # the annotator's parser
        self.parse_whole_choice = True  # its completion_key: "completions_all" (choice) or text
        self.failed_prompts: dict[str, str] = {}  # prompt -> reason, this run
        self.n_requests = self.n_with_logprobs = self.n_without_logprobs = 0
        self._lock = threading.Lock()
        self._client: Optional[JudgeClient] = None

    def client(self) -> JudgeClient:
        with self._lock:
            if self._client is None:
                self._client = JudgeClient(self.cfg.judge)
            return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def _check_logprobs(self, choice: dict, wants: bool) -> None:
        if not wants:
            return
        with self._lock:
            if _has_logprobs(choice):
                self.n_with_logprobs += 1
                return
            self.n_without_logprobs += 1
            never = self.n_with_logprobs == 0 and self.n_without_logprobs >= NO_LOGPROBS_SETUP_LIMIT
        if never:
            raise JudgeSetupError(
                f"eval.annotator={self.cfg.annotator!r} reads the judge's logprobs, but judge "
                f"{self.cfg.judge.model} at {self.cfg.judge.base_url} answered without them "
                f"{self.n_without_logprobs} times and never with them: use a judge that returns "
                "logprobs, or an annotator that parses the answer's text (e.g. eval.annotator=alpaca_eval_gpt4, "
                "AlpacaEval 1's; numbers are then not comparable to AE2's)")
        raise ItemFailed("no logprobs in the judge's answer")

    def _ask(self, job: tuple[str, str, list[dict], dict]) -> tuple[str, dict]:
        prompt, key, messages, params = job
        with self._lock:
            self.n_requests += 1
        _, raw = self.client().chat(messages, **params)
        choice = dict(raw["choices"][0])
        choice["text"] = _answer_text(choice.get("message") or {})
        choice["total_tokens"] = (raw.get("usage") or {}).get("total_tokens", 0)
        row = {"key": key, "judge_model": self.cfg.judge.model, "choice": choice, "tstamp": time.time()}
        try:
            self._check_logprobs(choice, bool(params.get("logprobs")))
            try:
                values = self.parse(choice if self.parse_whole_choice else choice["text"])
            except Exception:  # alpaca_eval's parsers raise on text they cannot read: no preference
                values = None
            if not _preference_ok(values):
                tops = [t.get("token") for c in (choice.get("logprobs") or {}).get("content") or []
                        for t in c.get("top_logprobs") or []]
                raise ItemFailed(f"no preference in the judge's answer: '{choice['text'][:40]}' "
                                 f"(top tokens {tops[:5]})")
        except (ItemFailed, JudgeSetupError) as err:
            self._failed.append({**row, "status": "failed", "reason": str(err)})
            raise
        self._ok.append({**row, "status": "ok"})  # kept on disk before anything else can fail
        return prompt, choice

    def __call__(self, prompts: list[str], model_name: str, **kwargs) -> dict:
        from alpaca_eval.utils import prompt_to_chatml

        params = {k: v for k, v in kwargs.items() if k not in HELPER_KWARGS}
        params.setdefault("top_p", 1.0)  # the defaults alpaca_eval's openai helper sends
        params.setdefault("temperature", 0.7)
        choices: dict[str, dict] = {}
        jobs = []
        for prompt in prompts:
            messages = prompt_to_chatml(prompt.strip())
            key = request_key(model_name, params, messages)
            if key in self.final:
                choices[prompt] = self.final[key]["choice"]
            else:
                jobs.append((prompt, key, messages, params))
        log.info("alpaca_eval: %d judgments reused, %d to ask %s", len(choices), len(jobs), self.cfg.judge.base_url)
        answers, failures = ask_all(jobs, self._ask, self.cfg.judge.concurrency, what="annotation")
        choices.update(dict(answers))
        for f in failures:
            self.failed_prompts[f.job[0]] = f.reason
        completions_all = [choices.get(p, PLACEHOLDER) for p in prompts]
        return {"completions": [c["text"] for c in completions_all], "completions_all": completions_all,
                "price_per_example": [0.0] * len(prompts), "time_per_example": [0.0] * len(prompts)}


@dataclass
class Annotated:
    annotations: list[dict]      # alpaca_eval annotation rows with a usable preference
    failures: list[Failure]      # job = {"instruction", "index"}
    n_requests: int


def annotate(cfg: AlpacaEvalConfig, annotator_config: Path, model_outputs: list[dict],
             reference_rows: list[dict], out_dir: Path) -> Annotated:
    """Annotate model vs reference for every instruction; failures are reported, not raised."""
    from alpaca_eval.annotators import PairwiseAnnotator

    completions = PersistentCompletions(cfg, out_dir)
    annotator = PairwiseAnnotator(annotators_config=str(annotator_config), caching_path=None)
    for single in annotator.annotators.values():
        single.fn_completions = completions
        completions.parse = single.fn_completion_parser
        completions.parse_whole_choice = single.completion_key == "completions_all"
    keep = ("instruction", "output", "generator", "dataset")
    try:
        rows = annotator.annotate_head2head(
            outputs_1=[{k: r.get(k) for k in keep} for r in reference_rows],
            outputs_2=[{k: o.get(k) for k in keep} for o in model_outputs], chunksize=None)
    finally:
        completions.close()
    good = [r for r in rows if _preference_ok([r.get("preference")])]
    judged = {r["instruction"] for r in good}
    failures = []
    for r in reference_rows:
        if r["instruction"] not in judged:
            reason = next((why for p, why in completions.failed_prompts.items() if r["instruction"] in p),
                          "no annotation")
            failures.append(Failure({"instruction": r["instruction"], "index": r.get("index")}, reason))
    return Annotated(good, failures, completions.n_requests)
