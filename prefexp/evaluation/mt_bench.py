"""MT-Bench benchmark: generate two-turn answers, grade them with a judge, score.

Files in the eval dir (FastChat's layout, so its tools can read them too):
* ``model_answer/<model>.jsonl``: answers (``question_id, answer_id, model_id, choices, tstamp``)
  plus ``<model>.meta.json`` (checkpoint + generation settings; reused only if unchanged);
* ``model_judgment/<judge>_single.jsonl``: one row per judgment, appended as it arrives; a re-run
  asks the judge only for (question, turn, prompt) not already there;
* ``data/``: the public data, downloaded once when no ``eval.data_dir`` is given.
"""
from __future__ import annotations

import logging
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from .config import MTBenchConfig
from .generation import GenRequest, describe, open_backend
from .judge_client import JudgeClient, JudgeError, check_reachable
from .manifest import Checkpoint
from .mt_bench_data import MTBenchData, load_mt_bench
from .mt_bench_score import build_messages, parse_rating, prompt_name, score_judgments
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


def generate_answers(cfg: MTBenchConfig, ckpt: Checkpoint, questions: list[dict], model_id: str,
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


def judge_answers(data: MTBenchData, questions: list[dict], answers: list[dict], model_id: str,
                  client: JudgeClient, judgment_path: Path, concurrency: int) -> list[dict]:
    """Grade every (question, turn); rows already in ``judgment_path`` with the same prompt are
    kept and not asked again. Returns this model's rows for these questions."""
    judge_model = client.cfg.model
    done = {(r["question_id"], r["turn"], r["user_prompt"]): r for r in read_jsonl(judgment_path)
            if r.get("model") == model_id and r.get("judge", [None])[0] == judge_model}
    out = JsonlAppender(judgment_path)
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
        judgment, _ = client.chat(messages)
        row = {"question_id": qid, "model": model_id, "judge": [judge_model, name], "user_prompt": user,
               "judgment": judgment, "score": parse_rating(judgment), "turn": turn, "tstamp": time.time()}
        out.append(row)  # kept on disk before anything else can fail
        return row

    pool = ThreadPoolExecutor(max_workers=concurrency)
    futures = [pool.submit(ask, job) for job in jobs]
    try:
        for future in as_completed(futures):
            rows.append(future.result())
    except JudgeError as err:
        pool.shutdown(wait=True, cancel_futures=True)  # stop asking; finished rows are on disk
        kept = sum(1 for r in read_jsonl(judgment_path) if r.get("model") == model_id)
        raise type(err)(f"{err}\n{kept} judgment(s) of {model_id} are kept in {judgment_path}; "
                        "a re-run resumes from them") from err
    pool.shutdown()
    return sorted(rows, key=lambda r: (r["question_id"], r["turn"]))


def run(cfg: MTBenchConfig, ckpt: Checkpoint, out_dir: Path) -> dict:
    """Generate, judge and score; returns the benchmark part of results.json."""
    check_reachable(cfg.judge.base_url, cfg.judge.connect_timeout_s)  # fail before generating
    data = load_mt_bench(cfg.data_dir, out_dir / "data", cfg.fastchat_commit, cfg.reference_answers)
    questions = data.questions[: cfg.limit] if cfg.limit is not None else data.questions
    model_id = cfg.model_name or ckpt.default_model_name()
    answers = generate_answers(cfg, ckpt, questions, model_id, out_dir)
    client = JudgeClient(cfg.judge)
    try:
        path = out_dir / "model_judgment" / f"{_safe(cfg.judge.model)}_single.jsonl"
        rows = judge_answers(data, questions, answers, model_id, client, path, cfg.judge.concurrency)
    finally:
        client.close()
    metrics = score_judgments(rows, {int(q["question_id"]): q["category"] for q in questions})
    notes = []
    if metrics["n_unparseable"]:
        notes.append(f"{metrics['n_unparseable']} judgment(s) had no [[rating]] and are excluded (FastChat rule)")
    return {
        "metrics": metrics,
        "model_name": model_id,
        "n_items": len(questions),
        "data": data.describe(),
        "judge": {"base_url": cfg.judge.base_url, "model": cfg.judge.model, "mode": "single",
                  "prompts": sorted({r["judge"][1] for r in rows}), "temperature": cfg.judge.temperature},
        "generation": {**describe(cfg.generation), "category_temperatures": cfg.category_temperatures},
        "files": {"answers": f"model_answer/{model_id}.jsonl", "judgments": str(path.relative_to(out_dir))},
        "notes": notes,
    }
