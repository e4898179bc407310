"""MT-Bench scoring and judge prompts checked against stored real GPT-4 judgments."""
from __future__ import annotations

import csv
import gzip
import json

import pytest

from prefexp.evaluation.mt_bench_data import load_mt_bench
from prefexp.evaluation.mt_bench_score import build_messages, parse_rating, prompt_name, score_judgments
from prefexp.evaluation.store import read_jsonl
from tests.evaluation.conftest import shared_path


@pytest.mark.parametrize("text, expected", [
    ("Good. Rating: [[7]]", 7), ("Rating: [[8.5]]", 8.5), ("[[10]] overall", 10),
    ("no double brackets, score [6]", 6),          # FastChat's fallback pattern
    ("first [[3]] then [[9]]", 3),                  # first match wins, like re.search
    ("[[A]] is better", -1), ("Rating: 7/10", -1), ("", -1),
    ("[2] items, then Rating: [[4]]", 4),           # [[N]] is tried before the fallback
])
def test_parse_rating_like_fastchat(text, expected):
    assert parse_rating(text) == expected


def test_prompt_choice():
    assert prompt_name("writing", 1) == "single-v1" and prompt_name("stem", 2) == "single-v1-multi-turn"
    assert [prompt_name(c, 1) for c in ("math", "reasoning", "coding")] == ["single-math-v1"] * 3
    assert prompt_name("coding", 2) == "single-math-v1-multi-turn"


@pytest.fixture(scope="module")
def mt_data(tmp_path_factory):
    return load_mt_bench(str(shared_path("mt_bench")), tmp_path_factory.mktemp("mt"), "unused", "gpt-4")


def _judgments(name: str) -> list[dict]:
    with gzip.open(shared_path("mt_bench", "model_judgment", name), "rt") as f:
        return [json.loads(line) for line in f]


def test_data_shape(mt_data):
    assert len(mt_data.questions) == 80 and all(len(q["turns"]) == 2 for q in mt_data.questions)
    assert len(mt_data.references) == 30 and len(mt_data.judge_prompts) == 8


def test_scorer_reproduces_expected_averages_exactly(mt_data):
    """Every row of model_judgment/expected_scores_show_result_rule.csv, to its 6 printed
    decimals, including llama-3.1-8b-instruct's one unparseable (-1) judgment dropped."""
    categories = {q["question_id"]: q["category"] for q in mt_data.questions}
    with open(shared_path("mt_bench", "model_judgment", "expected_scores_show_result_rule.csv")) as f:
        expected = list(csv.DictReader(f))
    assert len(expected) == 5
    for row in expected:
        rows = [r for r in _judgments(row["judgment_file"]) if r["model"] == row["model"]]
        m = score_judgments(rows, categories)
        assert m["n_judgments"] == int(row["n_judgments"])
        assert m["n_unparseable"] == int(row["n_score_minus1_dropped"])
        for key, col in (("turn_1", "turn1_mean"), ("turn_2", "turn2_mean"), ("score", "average")):
            assert f"{m[key]:.6f}" == row[col], (row["model"], key, m[key], row[col])
        assert set(m["per_category"]) == set(categories.values())
        # The judgments' own text, re-parsed here, gives the stored scores.
        assert [parse_rating(r["judgment"]) for r in rows] == [r["score"] for r in rows]


@pytest.mark.parametrize("model", ["mistral-7b-instruct-v0.2", "llama-3.1-8b-instruct"])
def test_judge_prompts_match_what_gpt4_was_sent(mt_data, model):
    """The user prompt built here from the official answers equals, byte for byte, the one
    stored with each real GPT-4 judgment (prompt choice, reference answers, multi-turn layout)."""
    answers = {r["question_id"]: r for r in read_jsonl(shared_path("mt_bench", "model_answer", f"{model}.jsonl"))}
    questions = {q["question_id"]: q for q in mt_data.questions}
    rows = _judgments(f"eva_{model}_gpt-4_single.jsonl.gz")
    assert len(rows) == 160
    for r in rows:
        q = questions[r["question_id"]]
        name = prompt_name(q["category"], r["turn"])
        assert name == r["judge"][1]
        turns = answers[q["question_id"]]["choices"][0]["turns"]
        messages, user = build_messages(q, turns, mt_data.judge_prompts[name], r["turn"],
                                        mt_data.references.get(q["question_id"]))
        assert user == r["user_prompt"]
        assert messages[0] == {"role": "system", "content": mt_data.judge_prompts[name]["system_prompt"]}


def test_public_source_is_downloaded_once(tmp_path, monkeypatch):
    """No data_dir: the three files come over HTTP from FastChat's layout at the pinned commit
    (here a local static server standing in for raw.githubusercontent.com), cached in the eval
    dir, and a second load does not download again."""
    import functools
    import shutil
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from prefexp.evaluation import mt_bench_data

    src = shared_path("mt_bench")
    site = tmp_path / "site" / "abc123" / "fastchat" / "llm_judge" / "data"
    (site / "mt_bench" / "reference_answer").mkdir(parents=True)
    shutil.copy(src / "question.jsonl", site / "mt_bench" / "question.jsonl")
    shutil.copy(src / "judge_prompts.jsonl", site / "judge_prompts.jsonl")
    shutil.copy(src / "reference_answer_gpt-4.jsonl", site / "mt_bench" / "reference_answer" / "gpt-4.jsonl")
    hits = []

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            hits.append(self.path)

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(tmp_path / "site")))
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{{commit}}/fastchat/llm_judge/data/{{path}}"
        monkeypatch.setattr(mt_bench_data, "RAW_URL", url)
        data = mt_bench_data.load_mt_bench(None, tmp_path / "cache", "abc123", "gpt-4")
        again = mt_bench_data.load_mt_bench(None, tmp_path / "cache", "abc123", "gpt-4")
    finally:
        server.shutdown()
        server.server_close()
    assert len(hits) == 3 and len(data.questions) == 80 and len(data.references) == 30
    assert data.source == "github:lm-sys/FastChat@abc123" and again.version == data.version
    assert (tmp_path / "cache" / "mt_bench" / "question.jsonl").is_file()
