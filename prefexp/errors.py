"""Errors the entry points turn into one ``error:`` line and exit 2.

Anything the user can fix by changing an input (a file, a row, a config key, a path) raises
:class:`InputError` (or a subclass) with a message naming the file and 1-based line, or the key,
its value and the fix. The entry points catch this one class; no stage needs to know how the
message is printed.
"""
from __future__ import annotations


class InputError(ValueError):
    """Bad user input: printed as ``error: <message>``, exit code 2."""


def print_error(message: object) -> None:
    """Print ``error: <message>`` to stderr, secrets redacted (``prefexp.redact``): the one way the
    entry points report a problem."""
    import sys

    from .redact import redact

    print(f"error: {redact(str(message))}", file=sys.stderr, flush=True)
