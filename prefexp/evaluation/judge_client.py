"""A judge reached through any OpenAI-compatible chat-completions endpoint.

Faults are handled here, not by the openai client (built with ``max_retries=0``), so that the
policy is explicit and testable: 429, 5xx and time-outs are retried with exponential backoff
(honouring ``Retry-After``); a refused connection or an unknown host fails at once with the
endpoint's address; other 4xx (bad model name, bad key) fail at once with the status. The key is
read from the environment variable the config names and is never logged.
"""
from __future__ import annotations

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

    def chat(self, messages: list[dict], **kwargs: Any) -> tuple[str, dict]:
        """One completion; kwargs override the configured temperature / max_tokens."""
        oa = self._openai
        params = {"temperature": self.cfg.temperature, "max_tokens": self.cfg.max_tokens, **kwargs}
        for attempt in range(self.cfg.max_retries + 1):
            try:
                resp = self._client.chat.completions.create(model=self.cfg.model, messages=messages, **params)
                text = resp.choices[0].message.content or ""
                return text, resp.model_dump()
            except oa.APITimeoutError as err:  # subclass of APIConnectionError: check first
                fault: Exception = err
                what = f"time-out after {self.cfg.timeout_s}s"
            except oa.APIConnectionError as err:
                raise JudgeUnreachable(f"judge endpoint {self.cfg.base_url} is unreachable: {err}") from err
            except (oa.RateLimitError, oa.InternalServerError) as err:
                fault, what = err, f"HTTP {err.status_code}"
            except oa.APIStatusError as err:
                raise JudgeError(f"judge endpoint {self.cfg.base_url} (model {self.cfg.model}) "
                                 f"refused the request: HTTP {err.status_code}: {err.message}") from err
            if attempt == self.cfg.max_retries:
                raise JudgeError(f"judge endpoint {self.cfg.base_url}: {what}, "
                                 f"still failing after {self.cfg.max_retries} retries") from fault
            wait = self._wait(attempt, fault)
            log.warning("judge %s: %s; retry %d/%d in %.1fs", self.cfg.base_url, what,
                        attempt + 1, self.cfg.max_retries, wait)
            time.sleep(wait)
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._client.close()
