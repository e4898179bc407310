"""Quote a value so that a Hydra command-line override takes it literally.

Hydra's override grammar (hydra/grammar/OverrideParser.g4, "Escaped characters in quoted values"
in Hydra's docs): inside a single-quoted value only the quote needs a backslash, and a run of
backslashes that ends right before a quote (or before the closing quote) must be doubled, or it
would escape that quote. The value then reaches OmegaConf, which would resolve ``${...}`` inside
it; ``\\${`` keeps it literal (and a run of backslashes before it is doubled, OmegaConf's rule).

A sweep job's dir (``0_loss=dpo,seed=1``) needs this: unquoted, ``=`` and ``,`` are grammar.
"""
from __future__ import annotations

import re

_BACKSLASHES_BEFORE_QUOTE_OR_END = re.compile(r"(\\+)(?='|$)")
_BACKSLASHES_BEFORE_INTERPOLATION = re.compile(r"(\\*)\$\{")


def quote_override_value(value: str) -> str:
    """``/runs/0_loss=dpo,seed=1`` -> ``'/runs/0_loss=dpo,seed=1'``; parses back to ``value``."""
    text = _BACKSLASHES_BEFORE_QUOTE_OR_END.sub(lambda m: m.group(1) * 2, value)
    text = text.replace("'", "\\'")
    text = _BACKSLASHES_BEFORE_INTERPOLATION.sub(lambda m: m.group(1) * 2 + "\\${", text)
    return f"'{text}'"


def override(key: str, value: str) -> str:
    """``key='<value, quoted>'``: one command-line argument."""
    return f"{key}={quote_override_value(value)}"
