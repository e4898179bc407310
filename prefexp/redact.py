"""Secrets never reach a message: the values of the API-key environment variables are redacted.

A key set in the environment can still surface in text: an override such as
``tau='${oc.env:OPENAI_API_KEY}'`` makes OmegaConf's error quote the resolved value, and a library
may log a header or a URL. The values of the variables below (the defaults, every ``api_key_env``
that ``conf/eval/*.yaml`` names, and any name an entry point adds) are replaced by ``<redacted $NAME>``
in every error line the entry points print (``prefexp.errors.print_error``) and in every log record
(:func:`install_log_redaction`: a record factory, so it covers each handler, Hydra's and later ones).
"""
from __future__ import annotations

import logging
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Iterable

DEFAULT_SECRET_ENVS = ("OPENAI_API_KEY", "WANDB_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "VLLM_API_KEY")
EVAL_CONF_DIR = Path(__file__).resolve().parents[1] / "conf" / "eval"
MIN_SECRET_LENGTH = 4  # a 1-3 character value is no key, and redacting it would garble every message

_extra_names: set[str] = set()


@lru_cache(maxsize=1)
def _conf_key_envs() -> frozenset[str]:
    """The ``*api_key_env: NAME`` values of the benchmark yamls (read as text: no yaml import here)."""
    names: set[str] = set()
    for path in EVAL_CONF_DIR.glob("*.yaml"):
        names.update(re.findall(r"api_key_env:\s*['\"]?([A-Za-z_][A-Za-z0-9_]*)", path.read_text()))
    return frozenset(names)


def secret_env_names() -> set[str]:
    return set(DEFAULT_SECRET_ENVS) | _conf_key_envs() | _extra_names


def add_secret_envs(names: Iterable[str]) -> None:
    """Also redact these variables (e.g. an ``eval.judge.api_key_env`` given on the command line)."""
    _extra_names.update(n for n in names if n)


def redact(text: str) -> str:
    """``text`` with the value of every secret variable set here replaced by ``<redacted $NAME>``."""
    secrets = sorted(((os.environ.get(n) or "", n) for n in secret_env_names()), key=lambda s: -len(s[0]))
    for value, name in secrets:
        if len(value) >= MIN_SECRET_LENGTH and value in text:
            text = text.replace(value, f"<redacted ${name}>")
    return text


def _redacting_factory(make_record):
    def factory(*args, **kwargs):
        record = make_record(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string: leave it to logging's own report
            return record
        record.msg, record.args = redact(message), None
        if record.exc_info:  # the formatted traceback, redacted once; the formatter reuses exc_text
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return record

    factory.prefexp_redacts = True  # type: ignore[attr-defined]
    return factory


def install_log_redaction() -> None:
    """Redact secrets in every log record from now on (idempotent)."""
    current = logging.getLogRecordFactory()
    if not getattr(current, "prefexp_redacts", False):
        logging.setLogRecordFactory(_redacting_factory(current))


__all__ = ["add_secret_envs", "install_log_redaction", "redact", "secret_env_names"]
