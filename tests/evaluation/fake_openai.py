"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests (stdlib ThreadingHTTPServer).

It speaks enough of the chat-completions API for everything the evaluation stage calls:
* AlpacaEval's weighted annotator (``logprobs`` + ``top_logprobs`` asked): it replays
  ``replay_logprobs[instruction]`` when given (a real judge's stored top logprobs), else reads
  the two outputs (``m`` and ``M``) out of alpaca_eval's prompt and prefers the one containing
  ``[GOOD]``, else the longer one, answering with ``choices[0].logprobs.content[0].top_logprobs``
  (the shape alpaca_eval's ``logprob_parser`` reads; ../shared/docs/packages.md §4);
* MT-Bench judging (``[[rating]]`` in the prompt): ``rate(user_prompt) -> judgment text``,
  by default replaying ``replay[user_prompt]`` when given, else ``"... Rating: [[5]]"``;
* generation (anything else, e.g. the vLLM backend): a deterministic short answer;
* ``GET /v1/models`` and ``POST /v1/completions``.

Faults are injected per request, in order: ``fail_next(n, status)`` answers the next n POSTs
with that HTTP status; ``hang_next(n, seconds)`` delays them past a client's time-out;
``unreadable_next(n, kind)`` answers them HTTP 200 with a body that is no chat completion (kinds
in ``UNREADABLE``: cut-off JSON, an HTML page as a proxy sends, ``choices: []``, a choice without
a message, a message with null content). Standing faults: ``fail_always(status)`` (every POST),
``unreadable_always(kind, after=0)`` (every POST once ``after`` more have been answered),
``drop_logprobs_every(n)`` (every n-th logprob request is answered without logprobs; n=1: a
judge that never returns them),
``garbage_every(n)`` (every n-th judge request gets an answer with no usable verdict: no
``[[rating]]`` for MT-Bench, top tokens other than m/M for AlpacaEval), ``delay_s`` (each
judge answer takes that long). ``item_counts(kind)`` counts the requests per judged item (the
AlpacaEval instruction, or the MT-Bench judge prompt), so tests can see what was paid twice.
Use as a context manager; ``url`` is the base URL (``http://127.0.0.1:<port>/v1``).
Run standalone (``python fake_openai.py --port N``) to stand in for a vLLM server process.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Optional

MODEL_ID = "fake-model"
# anchored on what follows it: an instruction may itself end with a quote
_INSTRUCTION_RE = re.compile(r'"instruction": """(.*?)""",\s*\}\s*## Model Outputs', re.S)
# HTTP 200 bodies that are no chat completion (what a misbehaving gateway or server sends)
UNREADABLE = ("truncated", "html", "no_choices", "no_message", "null_content")
HTML_PAGE = (b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
             b"<body><h1>Bad Gateway</h1><p>The upstream server returned an invalid response.</p></body></html>\n")
_OUTPUT_RE = {tok: re.compile(r'"model_identifier": "%s",\s*"output": """(.*?)"""\s*}' % tok, re.S)
              for tok in ("m", "M")}


def _alpaca_winner(prompt: str) -> str:
    outs = {tok: (rx.search(prompt).group(1) if rx.search(prompt) else "") for tok, rx in _OUTPUT_RE.items()}
    key = {tok: ("[GOOD]" in text, len(text)) for tok, text in outs.items()}
    return "m" if key["m"] > key["M"] else "M"


def _envelope(body: dict, choice: dict, text_completion: bool = False) -> dict:
    """A completion reply around one choice (chat.completion, or text_completion)."""
    return {"id": "fake-1", "object": "text_completion" if text_completion else "chat.completion",
            "created": int(time.time()), "model": body.get("model", MODEL_ID), "choices": [choice],
            "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11}}


class _BackloggedServer(ThreadingHTTPServer):
    """The stdlib server listens with a backlog of 5: under CPU load, 16 concurrent judge calls
    (``eval.judge.concurrency=16``) then find the queue full and the connection refused, which the
    client rightly reports as an unreachable endpoint. A real endpoint queues them."""
    request_queue_size = 128


class FakeOpenAI:
    def __init__(self, rate: Optional[Callable[[str], str]] = None, replay: Optional[dict] = None,
                 port: int = 0):
        self.replay = dict(replay or {})
        self.replay_logprobs: dict[str, list[dict]] = {}  # AlpacaEval instruction -> top_logprobs to answer
        self.rate = rate or self._default_rate
        self.requests: list[dict] = []     # {"path", "body", "auth"} per request, in arrival order
        self._faults: deque = deque()
        self.always_status: Optional[int] = None
        self.always_unreadable: Optional[tuple[str, int]] = None  # (kind, POSTs still answered first)
        self.logprobs_drop_every: Optional[int] = None
        self.garbage_every_n: Optional[int] = None
        self.delay_s = 0.0
        self._counts = {"alpaca": 0, "judge": 0}
        self._lock = threading.Lock()
        self._server = _BackloggedServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: Optional[threading.Thread] = None

    # -- control ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def fail_next(self, n: int, status: int = 429) -> None:
        with self._lock:
            self._faults.extend([("status", status)] * n)

    def hang_next(self, n: int, seconds: float) -> None:
        with self._lock:
            self._faults.extend([("hang", seconds)] * n)

    def unreadable_next(self, n: int, kind: str = "truncated") -> None:
        assert kind in UNREADABLE, kind
        with self._lock:
            self._faults.extend([("unreadable", kind)] * n)

    def clear_faults(self) -> None:
        """Back to a healthy judge (queued and standing faults off; the request log is kept)."""
        with self._lock:
            self._faults.clear()
            self.always_status = self.logprobs_drop_every = self.garbage_every_n = None
            self.always_unreadable = None

    def fail_always(self, status: int = 500) -> None:
        self.always_status = status

    def unreadable_always(self, kind: str = "truncated", after: int = 0) -> None:
        """Answer ``after`` more POSTs as usual, then every one with an unreadable 200 of ``kind``."""
        assert kind in UNREADABLE, kind
        with self._lock:
            self.always_unreadable = (kind, after)

    def drop_logprobs_every(self, n: int) -> None:
        self.logprobs_drop_every = n

    def garbage_every(self, n: int) -> None:
        self.garbage_every_n = n

    def item_counts(self, kind: str) -> dict[str, int]:
        """Requests per judged item of ``kind`` ("alpaca" or "judge"), answered or not."""
        counts: dict[str, int] = {}
        for r in self.posts():
            if r.get("item_kind") == kind:
                counts[r["item"]] = counts.get(r["item"], 0) + 1
        return counts

    def _nth(self, kind: str) -> int:
        with self._lock:
            self._counts[kind] += 1
            return self._counts[kind]

    def posts(self, kind: str = "") -> list[dict]:
        """Recorded POST bodies; kind in {"", "judge", "alpaca", "generate"} filters them."""
        with self._lock:
            rows = [r for r in self.requests if r["method"] == "POST"]
        return [r for r in rows if not kind or r["kind"] == kind]

    def start(self) -> "FakeOpenAI":
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FakeOpenAI":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- behaviour -------------------------------------------------------------------------
    def _default_rate(self, user_prompt: str) -> str:
        if user_prompt in self.replay:
            return self.replay[user_prompt]
        return "The answer is adequate. Rating: [[5]]"

    def _take_fault(self):
        """The fault for this POST: queued ones first, then the standing ones."""
        with self._lock:
            if self._faults:
                return self._faults.popleft()
            if self.always_status is not None:
                return ("status", self.always_status)
            if self.always_unreadable is not None:
                kind, healthy_left = self.always_unreadable
                if healthy_left <= 0:
                    return ("unreadable", kind)
                self.always_unreadable = (kind, healthy_left - 1)
            return None

    @staticmethod
    def unreadable_body(kind: str, completion: dict) -> tuple[bytes, str]:
        """(body, Content-Type) of an HTTP 200 reply of ``kind`` that no client can read as a chat
        completion; ``completion`` is the healthy answer it spoils."""
        if kind == "html":
            return HTML_PAGE, "text/html; charset=utf-8"
        if kind == "truncated":  # the connection dropped mid-body behind a proxy
            data = json.dumps(completion).encode()
            return data[: len(data) // 2], "application/json"
        choice = dict(completion["choices"][0])
        if kind == "no_message":
            choice.pop("message")
        elif kind == "null_content":
            choice["message"] = {"role": "assistant", "content": None}
        choices = [] if kind == "no_choices" else [choice]
        return json.dumps({**completion, "choices": choices}).encode(), "application/json"

    def answer_chat(self, body: dict) -> tuple[str, str, Optional[dict]]:
        """(kind, content, logprobs) for a chat-completions body."""
        messages = body.get("messages", [])
        user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        everything = " ".join(str(m.get("content", "")) for m in messages)
        if body.get("logprobs"):
            n = self._nth("alpaca")
            win = _alpaca_winner(user)
            lose = "M" if win == "m" else "m"
            if self.garbage_every_n and n % self.garbage_every_n == 0:
                win, lose = "Both", "Neither"  # logprobs, but no verdict token
            top = [{"token": win, "logprob": math.log(0.9), "bytes": list(win.encode())},
                   {"token": lose, "logprob": math.log(0.1), "bytes": list(lose.encode())}]
            found = _INSTRUCTION_RE.search(user)
            if found and found.group(1) in self.replay_logprobs:  # a real judge's answer, replayed
                top = [{**t, "bytes": list(t["token"].encode())} for t in self.replay_logprobs[found.group(1)]]
                win = top[0]["token"]
            if self.logprobs_drop_every and n % self.logprobs_drop_every == 0:
                return "alpaca", win, None
            return "alpaca", win, {"content": [{**top[0], "top_logprobs": top}]}
        if "[[rating]]" in everything:
            n = self._nth("judge")
            if self.garbage_every_n and n % self.garbage_every_n == 0:
                return "judge", "Both answers have merits; I cannot decide.", None
            return "judge", self.rate(user), None
        words = f"fake answer to: {user[:40]}".split()
        return "generate", " ".join(words[: max(1, int(body.get("max_tokens") or 64))]), None

    def _handler_class(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, status: int, payload: dict) -> None:
                self._send_bytes(status, json.dumps(payload).encode(), "application/json")

            def _send_bytes(self, status: int, data: bytes, content_type: str) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (time-out test)

            def do_GET(self):
                with fake._lock:
                    fake.requests.append({"method": "GET", "path": self.path, "kind": "models"})
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": MODEL_ID, "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                fault = fake._take_fault()
                if fault and fault[0] == "status":
                    fake._record(self, body, "fault")
                    kind = "rate_limit_error" if fault[1] == 429 else "server_error"
                    return self._send(fault[1], {"error": {"message": f"injected {fault[1]}", "type": kind}})
                if fault and fault[0] == "hang":
                    fake._record(self, body, "hang")
                    time.sleep(fault[1])
                    return self._send(200, {"error": "too late"})
                if fault and fault[0] == "unreadable":  # not answered: answer_chat's counters stay put
                    fake._record(self, body, "unreadable")
                    choice = {"index": 0, "message": {"role": "assistant", "content": "spoilt"},
                              "finish_reason": "stop", "logprobs": None}
                    return self._send_bytes(200, *fake.unreadable_body(fault[1], _envelope(body, choice)))
                if self.path.endswith("/chat/completions"):
                    if fake.delay_s:
                        time.sleep(fake.delay_s)
                    kind, content, logprobs = fake.answer_chat(body)
                    fake._record(self, body, kind)
                    choice = {"index": 0, "message": {"role": "assistant", "content": content},
                              "finish_reason": "stop", "logprobs": logprobs}
                elif self.path.endswith("/completions"):
                    fake._record(self, body, "completion")
                    choice = {"index": 0, "text": "fake completion", "finish_reason": "stop", "logprobs": None}
                else:
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                self._send(200, _envelope(body, choice, "text" in choice))

        return Handler

    def _record(self, handler, body: dict, kind: str) -> None:
        messages = body.get("messages", [])
        user = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
        if body.get("logprobs"):
            found = _INSTRUCTION_RE.search(user)
            item_kind, item = "alpaca", (found.group(1) if found else user)
        elif "[[rating]]" in " ".join(str(m.get("content", "")) for m in messages):
            item_kind, item = "judge", user
        else:
            item_kind, item = None, None
        with self._lock:
            self.requests.append({"method": "POST", "path": handler.path, "body": body, "kind": kind,
                                  "auth": handler.headers.get("Authorization"), "item_kind": item_kind,
                                  "item": item})


def main() -> None:
    """Serve until killed (stands in for ``python -m vllm.entrypoints.openai.api_server``)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args, _ = parser.parse_known_args()
    server = FakeOpenAI(port=args.port)
    server._server.serve_forever()


if __name__ == "__main__":
    main()
