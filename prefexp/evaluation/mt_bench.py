"""MT-Bench benchmark: generate two-turn answers, grade them with a judge, score.

Files in the eval dir (FastChat's layout, so its tools can read them too):
* ``model_answer/<model>.jsonl``: answers (``question_id, answer_id, model_id, choices, tstamp``)
  plus ``<model>.meta.json`` (checkpoint + generation settings; reused only if unchanged);
* ``model_judgment/<judge>_single.jsonl``: one row per final judgment (its rating parsed),
  appended and fsynced as it arrives; a re-run asks the judge only for (question, turn, prompt)
  not already there. Unparseable answers go to ``<judge>_single.failed.jsonl`` (a record, never
  reused), so a failure is asked again next run instead of being cached as -1;
* ``data/``: the public data, downloaded once when no ``eval.data_dir`` is given.
"""
from __future__ import annotations

import logging
import re
import time
import uuid
from pathlib import Path

from . import subsets
from .config import EvalConfigError, MTBenchConfig
from .generation import GenRequest, describe, open_backend
from .judge_client import JudgeClient, check_reachable
from .judging import Failure, ItemFailed, ask_all
from .given_files import read_given
from .mt_bench_data import MTBenchData, load_mt_bench
from .mt_bench_score import UNPARSEABLE, build_messages, parse_rating, prompt_name, score_judgments
from .sources import Source
from .store import JsonlAppender, generation_meta, read_jsonl, reusable, save_outputs

log = logging.getLogger(__name__)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def question_temperature(cfg: MTBenchConfig, question: dict) -> float:
    """FastChat's rule: a question's own ``required_temperature``, else its category's, else 0.7;
    a number in ``eval.generation.temperature`` overrides all (recorded in results)."""
    if cfg.generation.temperature is not None:
        return cfg.generation.temperature
    if "required_temperature" in question:
        return float(question["required_temperature"])
    return cfg.category_temperatures.get(question["category"], 0.7)


def generate_answers(cfg: MTBenchConfig, ckpt: Source, questions: list[dict], model_id: str,
                     out_dir: Path) -> list[dict]:
    """Answers for ``questions`` (turn 2 sees turn 1's answer), reused from disk when possible."""
    path = out_dir / "model_answer" / f"{model_id}.jsonl"
    meta = generation_meta(ckpt.describe(), describe(cfg.generation),
                           {"category_temperatures": cfg.category_temperatures})
    saved = {r["question_id"]: r for r in read_jsonl(path)} if reusable(path, meta, cfg.generation.regenerate) else {}
    todo = [q for q in questions if q["question_id"] not in saved]
    if todo:
        log.info("mt_bench: generating answers to %d questions (%d reused)", len(todo), len(saved))
        g = cfg.generation
        with open_backend(g, str(ckpt.model_dir), ckpt.chat_template, out_dir) as backend:
            convs = [[{"role": "user", "content": q["turns"][0]}] for q in todo]
            first = backend.generate([GenRequest.chat(c, question_temperature(cfg, q), g.max_new_tokens, g.top_p)
                                      for c, q in zip(convs, todo)])
            for c, q, a in zip(convs, todo, first):
                c += [{"role": "assistant", "content": a}, {"role": "user", "content": q["turns"][1]}]
            second = backend.generate([GenRequest.chat(c, question_temperature(cfg, q), g.max_new_tokens, g.top_p)
                                       for c, q in zip(convs, todo)])
        for q, a1, a2 in zip(todo, first, second):
            saved[q["question_id"]] = {"question_id": q["question_id"], "answer_id": uuid.uuid4().hex[:22],
                                       "model_id": model_id, "choices": [{"index": 0, "turns": [a1, a2]}],
                                       "tstamp": time.time()}
        rows = sorted(saved.values(), key=lambda r: r["question_id"])
        save_outputs(path, rows, meta, jsonl=True)
    return [saved[q["question_id"]] for q in questions]


def judgment_files(judgment_path: Path) -> tuple[Path, Path]:
    """(final judgments in FastChat's format, failed attempts kept for the record)."""
    return judgment_path, judgment_path.with_name(judgment_path.stem + ".failed.jsonl")


def judge_answers(data: MTBenchData, questions: list[dict], answers: list[dict], model_id: str,
                  client: JudgeClient, judgment_path: Path, concurrency: int,
                  reparse_retries: int = 0) -> tuple[list[dict], list[Failure]]:
    """Grade every (question, turn). A judgment is final once its rating parses; final rows with
    the same (question, turn, judge, prompt) are reused, never asked again. An unparseable answer
    is asked again up to ``reparse_retries`` times, then reported as a failure (its text is kept
    in the ``.failed.jsonl`` file, not in the judgment file). Returns (rows, failures)."""
    judge_model = client.cfg.model
    final_path, failed_path = judgment_files(judgment_path)
    done = {(r["question_id"], r["turn"], r["user_prompt"]): r for r in read_jsonl(final_path)
            if r.get("model") == model_id and r.get("judge", [None])[0] == judge_model
            and r.get("score", UNPARSEABLE) != UNPARSEABLE}  # old -1 rows: ask again
    out, failed_out = JsonlAppender(final_path), JsonlAppender(failed_path)
    jobs, rows = [], []
    for q, ans in zip(questions, answers):
        for turn in (1, 2):
            name = prompt_name(q["category"], turn)
            messages, user = build_messages(q, ans["choices"][0]["turns"], data.judge_prompts[name], turn,
                                            data.references.get(int(q["question_id"])))
            key = (q["question_id"], turn, user)
            if key in done:
                rows.append(done[key])
            else:
                jobs.append((q["question_id"], turn, name, messages, user))
    log.info("mt_bench: %d judgments reused, %d to ask %s", len(rows), len(jobs), client.cfg.base_url)

    def ask(job):
        qid, turn, name, messages, user = job
        base = {"question_id": qid, "model": model_id, "judge": [judge_model, name], "user_prompt": user,
                "turn": turn}
        for attempt in range(reparse_retries + 1):
            judgment, _ = client.chat(messages)
            score = parse_rating(judgment)
            row = {**base, "judgment": judgment, "score": score, "tstamp": time.time()}
            if score != UNPARSEABLE:
                out.append(row)  # kept on disk before anything else can fail
                return row
            failed_out.append({**row, "attempt": attempt + 1, "reason": "no [[rating]] in the answer"})
        raise ItemFailed(f"no [[rating]] after {reparse_retries + 1} answer(s) "
                         f"(eval.judge.reparse_retries={reparse_retries}): {judgment[-80:]!r}")

    new_rows, failures = ask_all(jobs, ask, concurrency)
    for f in failures:
        qid, turn = f.job[0], f.job[1]
        f.job = {"question_id": qid, "turn": turn}
        log.warning("mt_bench: question %s turn %s: %s", qid, turn, f.reason)
    rows += new_rows
    return sorted(rows, key=lambda r: (r["question_id"], r["turn"])), failures


def _given_answers(path: Path, questions: list[dict], model_name) -> tuple[list[dict], str]:
    given, name = read_given(path, "mt_answers", model_name)
    by_id = {int(a["question_id"]): a for a in given}
    missing = [q["question_id"] for q in questions if int(q["question_id"]) not in by_id]
    if missing:
        raise EvalConfigError(f"outputs={path}: no answer for questions {missing[:10]}"
                              f"{' ...' if len(missing) > 10 else ''}; give all, or set eval.limit")
    picked = [by_id[int(q["question_id"])] for q in questions]
    for answer in picked:
        choices = answer["choices"] if isinstance(answer["choices"], list) else []
        turns = choices[0].get("turns") if choices and isinstance(choices[0], dict) else None
        if not (isinstance(turns, list) and len(turns) == 2 and all(isinstance(t, str) for t in turns)):
            raise EvalConfigError(f"outputs={path}: question {answer['question_id']} needs choices[0].turns "
                                  "= 2 answers (FastChat's model_answer format)")
    return picked, name


def _given_judgments(path: Path, questions: list[dict], model_name) -> tuple[list[dict], str]:
    given, name = read_given(path, "mt_judgments", model_name)
    wanted = {int(q["question_id"]) for q in questions}
    return [r for r in given if int(r["question_id"]) in wanted], name


def run(cfg: MTBenchConfig, source: Source, out_dir: Path) -> dict:
    """Generate (model entries), judge (all but judgments files) and score."""
    data = load_mt_bench(cfg.data_dir, out_dir / "data", cfg.fastchat_commit, cfg.reference_answers)
    category = lambda q: q["category"]  # noqa: E731
    questions = subsets.stratified_sample(data.questions, category, cfg.limit, cfg.limit_seed)
    subset = subsets.describe(questions, category, len(data.questions), cfg.limit_seed, "questions")
    failures: list[Failure] = []
    files: dict = {}
    if source.kind == "annotations":
        rows, model_id = _given_judgments(source.path, questions, cfg.model_name)
        judge = {"judgments": str(source.path), "model": sorted({r["judge"][0] for r in rows if r.get("judge")})}
        judge["model"] = ",".join(judge["model"]) or None
    else:
        check_reachable(cfg.judge.base_url, cfg.judge.connect_timeout_s)  # fail before generating
        if source.kind == "outputs":
            answers, model_id = _given_answers(source.path, questions, cfg.model_name)
        else:
            model_id = cfg.model_name or source.default_model_name()
            answers = generate_answers(cfg, source, questions, model_id, out_dir)
            files["answers"] = f"model_answer/{model_id}.jsonl"
        client = JudgeClient(cfg.judge)
        try:
            path = out_dir / "model_judgment" / f"{_safe(cfg.judge.model)}_single.jsonl"
            rows, failures = judge_answers(data, questions, answers, model_id, client, path,
                                           cfg.judge.concurrency, cfg.judge.reparse_retries)
        finally:
            client.close()
        files["judgments"] = str(path.relative_to(out_dir))
        files["failed_judgments"] = str(judgment_files(path)[1].relative_to(out_dir))
        judge = {"base_url": cfg.judge.base_url, "model": cfg.judge.model, "mode": "single",
                 "prompts": sorted({r["judge"][1] for r in rows}), "temperature": cfg.judge.temperature,
                 "prompt_version": f"FastChat judge_prompts.jsonl sha256:{data.version['sha256_judge_prompts']}",
                 "reparse_retries": cfg.judge.reparse_retries}
    metrics = score_judgments(rows, {int(q["question_id"]): q["category"] for q in questions})
    metrics["n_failed"] = len(failures)
    notes = []
    if subset is not None:
        notes.append(subset["note"])
    if metrics["n_unparseable"]:
        notes.append(f"{metrics['n_unparseable']} judgment(s) had no [[rating]] and are excluded (FastChat rule)")
    if failures:
        notes.append(f"{len(failures)} judgment(s) failed and are left out of every mean; "
                     "re-run the same command to ask for them")
    return {
        "metrics": metrics,
        "model_name": model_id,
        "n_items": len(questions),
        "n_judgments_expected": 2 * len(questions),  # two turns each
        "subset": subset,
        "failed_items": [{**f.job, "reason": f.reason} for f in failures],
        "data": data.describe(),
        "judge": judge,
        "generation": ({**describe(cfg.generation), "category_temperatures": cfg.category_temperatures}
                       if source.kind in ("checkpoint", "model") else None),
        "files": files,
        "notes": notes,
    }
