"""Generation backends: batched HF generate on the tiny checkpoint; vLLM through its HTTP API."""
from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest

from prefexp.evaluation.config import GenerationConfig
from prefexp.evaluation.generation import GenRequest, HFBackend, open_backend
from prefexp.evaluation.vllm_backend import VLLMBackend, VLLMServer
from tests.evaluation.conftest import CHAT_TEMPLATE
from tests.evaluation.fake_openai import MODEL_ID

REPO = Path(__file__).resolve().parents[2]


def _req(text, temperature=0.0, n=5):
    return GenRequest.chat([{"role": "user", "content": text}], temperature, n)


def test_hf_batched_greedy_matches_one_by_one(tiny_run):
    """Left padding must not change greedy answers: batch of 4 == 4 batches of 1."""
    ckpt = tiny_run / "checkpoint"
    prompts = ["hi", "a much longer question about many things", "2+2?", "tell me a story please"]
    batched = HFBackend(str(ckpt), GenerationConfig(device="cpu", batch_size=4)).generate([_req(p) for p in prompts])
    single = HFBackend(str(ckpt), GenerationConfig(device="cpu", batch_size=1)).generate([_req(p) for p in prompts])
    assert batched == single
    assert all(isinstance(a, str) for a in batched)


def test_hf_mixed_temperatures_keep_order_and_seed(tiny_run):
    backend = HFBackend(str(tiny_run / "checkpoint"), GenerationConfig(device="cpu", batch_size=8, seed=3))
    reqs = [_req("x", 0.7), _req("y", 0.0), _req("z", 0.1), _req("y", 0.0)]
    first = backend.generate(reqs)
    assert first[1] == first[3]  # same greedy request, same answer, wherever it sits
    assert backend.generate(reqs) == first  # the seed makes sampling repeatable


def test_hf_long_prompt_is_left_truncated(tiny_run):
    backend = HFBackend(str(tiny_run / "checkpoint"), GenerationConfig(device="cpu"))
    (answer,) = backend.generate([_req("word " * 3000 + "final question?", 0.0, 3)])
    assert isinstance(answer, str)


def test_hf_needs_a_chat_template(tiny_run):
    (tiny_run / "checkpoint" / "chat_template.jinja").unlink(missing_ok=True)
    cfg_path = tiny_run / "checkpoint" / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.pop("chat_template", None)
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="no chat template"):
        HFBackend(str(tiny_run / "checkpoint"), GenerationConfig(device="cpu"))
    HFBackend(str(tiny_run / "checkpoint"), GenerationConfig(device="cpu"), chat_template=CHAT_TEMPLATE)


def test_vllm_backend_by_url(fake_judge, tmp_path):
    settings = GenerationConfig(backend="vllm", vllm_url=fake_judge.url, seed=5)
    with open_backend(settings, "unused", None, tmp_path) as backend:
        assert isinstance(backend, VLLMBackend) and backend.model == MODEL_ID
        answers = backend.generate([_req("first q", 0.0, 50), _req("second q", 0.7, 50)])
    assert answers == ["fake answer to: first q", "fake answer to: second q"]
    bodies = sorted((p["body"] for p in fake_judge.posts("generate")), key=lambda b: b["seed"])
    assert [(b["model"], b["temperature"], b["max_tokens"], b["seed"]) for b in bodies] == [
        (MODEL_ID, 0.0, 50, 5), (MODEL_ID, 0.7, 50, 6)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_vllm_server_is_started_and_stopped(tmp_path, monkeypatch):
    """``vllm_python`` runs ``-m vllm.entrypoints.openai.api_server``: here a stand-in module that
    records its argv and serves the fake API, so the start/wait/stop path runs for real."""
    pkg = tmp_path / "fakevllm" / "vllm" / "entrypoints" / "openai"
    pkg.mkdir(parents=True)
    for d in (pkg, pkg.parent, pkg.parent.parent):
        (d / "__init__.py").write_text("")
    (pkg / "api_server.py").write_text(
        "import json, os, sys\n"
        "open(os.environ['FAKE_VLLM_ARGV'], 'w').write(json.dumps(sys.argv[1:]))\n"
        "from tests.evaluation.fake_openai import main\nmain()\n")
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path / 'fakevllm'}:{REPO}")
    monkeypatch.setenv("FAKE_VLLM_ARGV", str(tmp_path / "argv.json"))
    settings = GenerationConfig(backend="vllm", vllm_python=sys.executable, vllm_port=_free_port(),
                                vllm_startup_timeout_s=60, vllm_args=["--max-model-len", "512"])
    server = VLLMServer(settings, "/models/ckpt", CHAT_TEMPLATE, tmp_path / "work")
    with server as url:
        answers = VLLMBackend(url, settings).generate([_req("hello", 0.0, 50)])
        assert answers == ["fake answer to: hello"]
        proc = server.proc
    assert proc.poll() is not None  # stopped on exit
    argv = json.loads((tmp_path / "argv.json").read_text())
    assert argv[argv.index("--model") + 1] == "/models/ckpt"
    assert argv[-2:] == ["--max-model-len", "512"]
    assert (tmp_path / "work" / "chat_template.jinja").read_text() == CHAT_TEMPLATE
