"""Judge faults against the real fake server: retries with backoff, time-outs, fail-fast,
unreadable 200 replies."""
from __future__ import annotations

import logging
import re
import socket
import time

import pytest

from prefexp.evaluation.config import JudgeConfig
from prefexp.evaluation.judge_client import (JudgeBadReply, JudgeClient, JudgeError, JudgeUnreachable,
                                             check_reachable)
from tests.evaluation.fake_openai import UNREADABLE

MSG = [{"role": "system", "content": "s"}, {"role": "user", "content": "rate [[rating]]"}]


def _client(url, key_env, **kw) -> JudgeClient:
    cfg = dict(base_url=url, model="fake-judge", api_key_env=key_env, backoff_s=0.05, max_backoff_s=0.2)
    return JudgeClient(JudgeConfig(**{**cfg, **kw}))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_retried_statuses(fake_judge, judge_key, status):
    fake_judge.fail_next(2, status)
    text, raw = _client(fake_judge.url, judge_key, max_retries=2).chat(MSG)
    assert text == "The answer is adequate. Rating: [[5]]"
    assert raw["choices"][0]["message"]["content"] == text
    assert len(fake_judge.posts("fault")) == 2 and len(fake_judge.posts("judge")) == 1


def test_backoff_doubles(fake_judge, judge_key):
    """Waits 0.05 + 0.1 + 0.2 (capped) = 0.35 s before the 4th attempt succeeds."""
    fake_judge.fail_next(3, 429)
    t0 = time.monotonic()
    _client(fake_judge.url, judge_key, max_retries=3).chat(MSG)
    assert 0.35 <= time.monotonic() - t0 < 3.0


def test_gives_up_after_max_retries(fake_judge, judge_key):
    fake_judge.fail_next(5, 500)
    with pytest.raises(JudgeError, match=r"HTTP 500, still failing after 2 retries"):
        _client(fake_judge.url, judge_key, max_retries=2).chat(MSG)
    assert len(fake_judge.posts("fault")) == 3


def test_timeout_is_retried(fake_judge, judge_key):
    fake_judge.hang_next(1, 2.0)
    text, _ = _client(fake_judge.url, judge_key, timeout_s=0.5, max_retries=1).chat(MSG)
    assert "[[5]]" in text
    assert len(fake_judge.posts("hang")) == 1


def test_client_error_is_not_retried(fake_judge, judge_key):
    fake_judge.fail_next(1, 400)
    with pytest.raises(JudgeError, match="HTTP 400"):
        _client(fake_judge.url, judge_key, max_retries=5).chat(MSG)
    assert len(fake_judge.posts("fault")) == 1


def test_unreachable_fails_fast_with_address(judge_key):
    url = f"http://127.0.0.1:{_free_port()}/v1"
    t0 = time.monotonic()
    with pytest.raises(JudgeUnreachable, match=r"127\.0\.0\.1:\d+"):
        check_reachable(url, timeout_s=2)
    with pytest.raises(JudgeUnreachable, match=url.replace(".", r"\.")):
        _client(url, judge_key, max_retries=5).chat(MSG)
    assert time.monotonic() - t0 < 2.0


def test_missing_key_env_is_named(monkeypatch):
    monkeypatch.delenv("PREFEXP_NO_SUCH_KEY", raising=False)
    with pytest.raises(JudgeError, match="PREFEXP_NO_SUCH_KEY"):
        _client("http://127.0.0.1:9/v1", "PREFEXP_NO_SUCH_KEY")


# kind -> the reason the client must give (each kind is spotted by a different check)
UNREADABLE_REASON = {"truncated": r"truncated or invalid JSON: ",
                     "html": r"body is not a JSON object, it begins '<!DOCTYPE html> <html><head><title>502 Bad",
                     "no_choices": r"no choices in the completion",
                     "no_message": r"choice without a message",
                     "null_content": r"message without content"}


def test_every_unreadable_kind_has_a_reason():
    assert set(UNREADABLE_REASON) == set(UNREADABLE) and len(UNREADABLE) == 5


@pytest.mark.parametrize("kind", UNREADABLE)
def test_unreadable_reply_is_retried_then_answered(fake_judge, judge_key, kind, caplog):
    """Two HTTP 200 replies that are no chat completion, then a healthy one: 3 requests, the
    healthy answer returned, one warning per retry naming the endpoint and the reason."""
    fake_judge.unreadable_next(2, kind)
    with caplog.at_level(logging.WARNING, logger="prefexp.evaluation.judge_client"):
        text, raw = _client(fake_judge.url, judge_key, max_retries=2).chat(MSG)
    assert text == "The answer is adequate. Rating: [[5]]"
    assert raw["choices"][0]["message"]["content"] == text
    assert len(fake_judge.posts("unreadable")) == 2 and len(fake_judge.posts("judge")) == 1
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2
    for i, line in enumerate(warnings, 1):
        assert line.startswith(f"judge {fake_judge.url}: unreadable reply (")
        assert re.search(UNREADABLE_REASON[kind], line), line
        assert re.search(rf"\); retry {i}/2 in 0\.\d+s$", line), line


@pytest.mark.parametrize("kind", UNREADABLE)
def test_persistent_unreadable_reply_raises_naming_endpoint_and_reason(fake_judge, judge_key, kind):
    fake_judge.unreadable_always(kind)
    with pytest.raises(JudgeBadReply) as err:
        _client(fake_judge.url, judge_key, max_retries=2).chat(MSG)
    message = str(err.value)
    assert message.startswith(f"judge endpoint {fake_judge.url}: unreadable reply (")
    assert re.search(UNREADABLE_REASON[kind], message) and message.endswith("still failing after 2 retries")
    assert isinstance(err.value, JudgeError)  # so the benchmarks' "judge failed" path takes it
    assert len(fake_judge.posts("unreadable")) == 3 and not fake_judge.posts("judge")


def test_unreadable_reply_backs_off_like_a_server_error(fake_judge, judge_key):
    """Waits 0.05 + 0.1 + 0.2 (capped) = 0.35 s before the 4th attempt succeeds (as for 429)."""
    fake_judge.unreadable_next(3, "html")
    t0 = time.monotonic()
    _client(fake_judge.url, judge_key, max_retries=3).chat(MSG)
    assert 0.35 <= time.monotonic() - t0 < 3.0
