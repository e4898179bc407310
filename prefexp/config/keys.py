"""Unknown config keys, found by walking the composed config against the schema dataclasses.

Hydra's schema rejects ``trainer.foo=1`` at composition, but ``+trainer.foo=1`` is merged under
``open_dict`` and then silently ignored by ``OmegaConf.to_object``: a typo with ``+`` would be
stored and never used. This walk finds every key of the composed config that no schema field
declares and suggests the closest declared name (difflib, as lm-evaluation-harness's registry
does). Nodes the schema declares open (``Any`` or ``dict``: ``loss``, ``local``,
``deepspeed.config``) stay open; the loss keys are checked against the loss class elsewhere.
"""
from __future__ import annotations

import dataclasses
import difflib
import typing
from typing import Any

from omegaconf import DictConfig, OmegaConf


def _dataclass_of(annotation: Any) -> type | None:
    """The dataclass behind a field annotation (``Foo`` or ``Optional[Foo]``), else None (open)."""
    if dataclasses.is_dataclass(annotation):
        return annotation
    for arg in typing.get_args(annotation):
        if dataclasses.is_dataclass(arg):
            return arg
    return None


def unknown_keys(cfg: DictConfig, schema: type, prefix: str = "") -> list[str]:
    """One message per key of ``cfg`` that ``schema`` does not declare, with a did-you-mean."""
    hints = typing.get_type_hints(schema)
    declared = [f.name for f in dataclasses.fields(schema)]
    errors = []
    for key in cfg.keys():
        key = str(key)
        full = f"{prefix}{key}"
        if key not in declared:
            value = OmegaConf.select(cfg, key, throw_on_missing=False)
            close = difflib.get_close_matches(key, declared, n=1, cutoff=0.6)
            fix = f"did you mean {prefix}{close[0]}?" if close else f"keys of {prefix.rstrip('.') or 'the config'}: {declared}"
            errors.append(f"{full}={value} is not a config key; {fix}")
            continue
        child_schema = _dataclass_of(hints[key])
        node = cfg._get_node(key)
        if child_schema is not None and isinstance(node, DictConfig) and not node._is_none():
            errors.extend(unknown_keys(node, child_schema, f"{full}."))
    return errors
