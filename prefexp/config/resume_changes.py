"""Which config changes a resume may carry: the diff between a run's recorded config and a new one.

A resume (``trainer.resume=auto`` finding a complete checkpoint) continues a training trajectory:
the same data in the same order, the same model, loss and optimizer. A command that changes any of
those would silently train steps N+1.. on something else (and the restored scheduler would ignore a
new learning rate), so the entry point compares the new config with ``<run>/run_config.json``
(``prefexp.launch.run_config``) and refuses a difference. Every key may differ except these, which
change neither the data, the model, the loss nor the optimizer's arithmetic up to the checkpoint:

* ``trainer.max_steps``, ``trainer.num_epochs``: extend (or shorten) the run. The schedule is rebuilt
  for the new length and continues at the restored step, so the learning rate after the checkpoint
  follows the new horizon: what extending a run means.
* ``trainer.resume``: how this launch treats the checkpoints, not what they are.
* ``trainer.logging_steps``, ``trainer.save_steps``, ``trainer.save_total_limit``: when metrics are
  logged and checkpoints written. Logging, probes and saves read the model, never the RNG.
* ``trainer.eval_steps``, ``trainer.eval_batch_size``, ``trainer.generation_steps``,
  ``trainer.generation_prompts``, ``trainer.generation_max_new_tokens``: evaluation during training
  (no-grad, greedy). Which pairs are held out is ``dataset.eval_fraction`` / ``eval_split``: checked.
* ``trainer.rdzv_endpoint``: where node 0 listens (a resubmitted job may land on other hosts).
* ``logger.*``: W&B settings (mode, project, name, tags, objective).
* ``evaluate``, ``evaluate_overrides``: benchmarks run on the final checkpoint, after training.
* ``paths.*`` and ``dataset.sandbox.cache_dir`` (an interpolation of ``paths.cache_dir``): where the
  repo, the caches and the run dir are; cache entries are keyed by content, not by their folder.
* ``reward_model.score_batch_size``, ``reward_model.logging_steps``, ``reward_model.build_if_missing``:
  the reward model's settings that are not in its cache key (``prefexp.reward.hparams.NOT_IN_KEY``).

Deliberately checked: ``trainer.devices`` (with ``trainer.nodes``) is compared as the world size it gives (a change of rank
count changes which pairs each rank sees, hence the data order; ``1`` vs ``auto`` on a 1-GPU node is
the same run), ``dry_run``, ``trainer.num_threads`` / ``tf32`` / ``torch_compile`` / ``precision``
(they change the arithmetic, so a resumed run would no longer match an uninterrupted one), and every
``seed``.

A group option that changed (``loss=mixdpo`` -> ``loss=dpo``) is reported once, as the option, not as
every key under ``loss``; groups placed at the top level (``experiment``, ``debug``, ``local``)
are reported through the keys they set.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterator

MAY_CHANGE_ON_RESUME = (
    "trainer.max_steps", "trainer.num_epochs", "trainer.resume",
    "trainer.logging_steps", "trainer.save_steps", "trainer.save_total_limit",
    "trainer.eval_steps", "trainer.eval_batch_size", "trainer.generation_steps", "trainer.generation_prompts",
    "trainer.generation_max_new_tokens", "trainer.rdzv_endpoint",
    "logger", "evaluate", "evaluate_overrides", "paths", "dataset.sandbox.cache_dir",
    "reward_model.score_batch_size", "reward_model.logging_steps", "reward_model.build_if_missing",
)
WORLD_SIZE_KEY = "trainer.devices"  # reported with the world size the devices gave
UNSET = "<unset>"
SHOWN_CHANGES = 8  # more are summarised as "... and N more": the refusal stays one readable line
SHOWN_VALUE_CHARS = 60


@dataclass(frozen=True)
class Change:
    key: str
    old: Any
    new: Any


def may_change(key: str) -> bool:
    """``key`` (dotted) is on the allowlist, itself or under an allowlisted group."""
    return any(key == allowed or key.startswith(allowed + ".") for allowed in MAY_CHANGE_ON_RESUME)


def _flat(tree: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Dotted keys of nested dicts; lists and empty dicts are values (compared whole)."""
    if isinstance(tree, dict) and tree:
        for key, value in tree.items():
            yield from _flat(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1], tree


def _comparable(record: dict) -> dict[str, Any]:
    flat = dict(_flat(record.get("config") or {}))
    flat.pop("trainer.nodes", None)  # part of the world size below: 2 nodes x 1 rank resume as 1 node x 2
    if "world_size" in record:  # the devices as ranks: "auto" and 1 on a 1-GPU node are the same run
        n = record["world_size"]
        flat[WORLD_SIZE_KEY] = f"{n} rank" if n == 1 else f"{n} ranks"
    return flat


def _packaged_groups(old: dict, new: dict) -> set[str]:
    """Config groups with a node of their own (``loss``, ``model`` ...), not those merged at the top."""
    trees = (old.get("config") or {}, new.get("config") or {})
    return {g for g in {*(old.get("choices") or {}), *(new.get("choices") or {})}
            if "/" not in g and any(isinstance(t.get(g), dict) for t in trees)}


def record_changes(old: dict, new: dict) -> list[Change]:
    """The differences between two run records ``{"config": {...}, "choices": {group: option},
    "world_size": N}`` that a resume must not carry, in the new config's key order (group options
    first). A changed option of a packaged group stands for every key under it."""
    old_choices, new_choices = old.get("choices") or {}, new.get("choices") or {}
    changes, collapsed = [], []
    for group in sorted(_packaged_groups(old, new)):
        before, after = old_choices.get(group, UNSET), new_choices.get(group, UNSET)
        if before != after and not may_change(group):
            changes.append(Change(group, before, after))
            collapsed.append(group)
    before, after = _comparable(old), _comparable(new)
    for key in [*after, *(k for k in before if k not in after)]:
        if may_change(key) or any(key == g or key.startswith(g + ".") for g in collapsed):
            continue
        a, b = before.get(key, UNSET), after.get(key, UNSET)
        if a != b:
            changes.append(Change(key, a, b))
    return changes


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= SHOWN_VALUE_CHARS else text[:SHOWN_VALUE_CHARS - 3] + "..."


def describe_changes(changes: list[Change]) -> str:
    """``key: old -> new, ...`` (the first :data:`SHOWN_CHANGES`, then how many more)."""
    parts = [f"{c.key}: {_shown(c.old)} -> {_shown(c.new)}" for c in changes[:SHOWN_CHANGES]]
    if len(changes) > SHOWN_CHANGES:
        parts.append(f"... and {len(changes) - SHOWN_CHANGES} more")
    return ", ".join(parts)


__all__ = ["Change", "MAY_CHANGE_ON_RESUME", "describe_changes", "may_change", "record_changes"]
