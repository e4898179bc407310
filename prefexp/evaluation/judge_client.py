"""A judge reached through any OpenAI-compatible chat-completions endpoint.

Faults are handled here, not by the openai client (built with ``max_retries=0``), so that the
policy is explicit and testable: 429, 5xx and time-outs are retried with exponential backoff
(honouring ``Retry-After``); a refused connection or an unknown host fails at once with the
endpoint's address; other 4xx (bad model name, bad key) fail at once with the status. An HTTP 200
whose body is no chat completion (cut-off JSON, a proxy's HTML page, no choices, a choice without
a message or without content) is retried the same way, then ``JudgeBadReply``: such a reply is
the endpoint misbehaving, not the judge's verdict, so it is never handed on to be kept. The key is
read from the environment variable the config names and is never logged.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import time
from typing import Any, Optional
from urllib.parse import urlsplit

from .config import JudgeConfig

log = logging.getLogger(__name__)


class JudgeError(RuntimeError):
    """The judge could not answer; the message names the endpoint, never the key."""


class JudgeUnreachable(JudgeError):
    """Nothing listens at the endpoint (refused, unknown host, no route)."""


class JudgeBadReply(JudgeError):
    """The endpoint kept answering HTTP 200 with something that is no chat completion."""


class _Unreadable(Exception):
    """One 200 reply that is no chat completion; the message is the short reason."""


def api_key(env_var: str) -> str:
    key = os.environ.get(env_var)
    if not key:
        raise JudgeError(f"environment variable {env_var} (eval.judge.api_key_env) is not set")
    return key


def check_reachable(base_url: str, timeout_s: float) -> None:
    """Open (and close) a TCP connection to the endpoint, so a wrong address fails in seconds,
    before any generation, instead of after minutes of retries."""
    parts = urlsplit(base_url)
    host = parts.hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if not host:
        raise JudgeUnreachable(f"judge endpoint {base_url!r} has no host")
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as err:
        raise JudgeUnreachable(f"judge endpoint {base_url} ({host}:{port}) is unreachable: {err}") from err


def _retry_after(err: Exception) -> Optional[float]:
    response = getattr(err, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _excerpt(text: str, n: int = 60) -> str:
    return repr(" ".join(text.split())[:n])


def reply_text(resp: Any) -> str:
    """The answer's text from what the openai client returned for a 200, or ``_Unreadable``.

    The client does not validate a 200: a body that is not a JSON object (an HTML page) comes
    back as a ``str``, and a JSON one is built into a completion whatever it holds (``choices``
    empty or absent, ``message`` None), so each case is checked here, not left to fail later."""
    if isinstance(resp, str):
        raise _Unreadable(f"body is not a JSON object, it begins {_excerpt(resp)}")
    choices = getattr(resp, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise _Unreadable("no choices in the completion")
    message = getattr(choices[0], "message", None)
    if message is None or not hasattr(message, "content"):
        raise _Unreadable("choice without a message")
    content = message.content
    # A tool / function call or a refusal is a real answer without content: the benchmark reads
    # it (or fails that one item); only a message with nothing at all is the endpoint's fault.
    answered = any(getattr(message, field, None) for field in ("tool_calls", "function_call", "refusal"))
    if content is None and not answered:
        raise _Unreadable("message without content")
    if content is not None and not isinstance(content, str):
        raise _Unreadable(f"message content is a {type(content).__name__}, not text")
    return content or ""


class JudgeClient:
    """``chat(messages) -> (text, raw)`` with the retry policy above; thread-safe."""

    def __init__(self, cfg: JudgeConfig):
        import openai

        self.cfg = cfg
        self._openai = openai
        self._client = openai.OpenAI(base_url=cfg.base_url, api_key=api_key(cfg.api_key_env),
                                     timeout=cfg.timeout_s, max_retries=0)

    def _wait(self, attempt: int, err: Exception) -> float:
        hinted = _retry_after(err)
        backoff = min(self.cfg.backoff_s * 2 ** attempt, self.cfg.max_backoff_s)
        return min(hinted, self.cfg.max_backoff_s) if hinted is not None else backoff

    def _complete(self, messages: list[dict], params: dict) -> tuple[str, dict]:
        """One request; an unreadable 200 becomes ``_Unreadable``, HTTP faults stay openai's."""
        try:
            resp = self._client.chat.completions.create(model=self.cfg.model, messages=messages, **params)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:  # a JSON Content-Type, a body cut off
            raise _Unreadable(f"truncated or invalid JSON: {err}") from err
        return reply_text(resp), resp.model_dump()

    def chat(self, messages: list[dict], **kwargs: Any) -> tuple[str, dict]:
        """One completion; kwargs override the configured temperature / max_tokens."""
        oa = self._openai
        params = {"temperature": self.cfg.temperature, "max_tokens": self.cfg.max_tokens, **kwargs}
        for attempt in range(self.cfg.max_retries + 1):
            try:
                return self._complete(messages, params)
            except _Unreadable as err:
                fault: Exception = err
                what = f"unreadable reply ({err})"
            except oa.APITimeoutError as err:  # subclass of APIConnectionError: check first
                fault, what = err, f"time-out after {self.cfg.timeout_s}s"
            except oa.APIConnectionError as err:
                raise JudgeUnreachable(f"judge endpoint {self.cfg.base_url} is unreachable: {err}") from err
            except (oa.RateLimitError, oa.InternalServerError) as err:
                fault, what = err, f"HTTP {err.status_code}"
            except oa.APIStatusError as err:
                raise JudgeError(f"judge endpoint {self.cfg.base_url} (model {self.cfg.model}) "
                                 f"refused the request: HTTP {err.status_code}: {err.message}") from err
            if attempt == self.cfg.max_retries:
                failed = JudgeBadReply if isinstance(fault, _Unreadable) else JudgeError
                raise failed(f"judge endpoint {self.cfg.base_url}: {what}, "
                             f"still failing after {self.cfg.max_retries} retries") from fault
            wait = self._wait(attempt, fault)
            log.warning("judge %s: %s; retry %d/%d in %.1fs", self.cfg.base_url, what,
                        attempt + 1, self.cfg.max_retries, wait)
            time.sleep(wait)
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._client.close()
