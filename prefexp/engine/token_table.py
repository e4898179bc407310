"""The token ids of many examples in two flat arrays: int32 ids and int64 segment bounds.

A Python list holds each id as a pointer to its own int object (about 36 bytes a token), so 60k
UltraFeedback pairs (~40M tokens) took ~1.4 GB on every rank. Here a token takes 4 bytes, and each
example's ``prompt_ids`` / ``chosen_ids`` / ``rejected_ids`` (and ``group_ids``) is a read-only
numpy view into the one flat array: no copy per example, and an in-place edit fails loudly instead
of changing what another stage reads.

Layout: pair n owns 3 + K_n consecutive segments (prompt, chosen, rejected, then the K_n responses
of its group; K_n = 0 without groups), in pair order; segment s is ``ids[bounds[s]:bounds[s + 1]]``.
This is also the on-disk form of the token cache (``prefexp.engine.token_cache``), one ``.npz``.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..cachefs import CacheCorrupt

FIELDS = {"index": np.int64, "group_sizes": np.int32, "bounds": np.int64, "ids": np.int32}
PAIR_SEGMENTS = ("prompt_ids", "chosen_ids", "rejected_ids")


@dataclass
class TokenTable:
    index: np.ndarray  # [N] int64: each pair's index (its source row)
    group_sizes: np.ndarray  # [N] int32: K_n, the responses of pair n's group (0 without groups)
    bounds: np.ndarray  # [S + 1] int64, S = sum(3 + K_n): segment s is ids[bounds[s]:bounds[s + 1]]
    ids: np.ndarray  # [T] int32: every segment's token ids, end to end

    @classmethod
    def from_examples(cls, examples: Sequence[dict],
                      group_ids: Optional[Sequence[Sequence[Sequence[int]]]] = None) -> "TokenTable":
        """Pack ``tokenize_pairs`` examples (and each one's group response ids, if any)."""
        groups = group_ids if group_ids is not None else [()] * len(examples)
        segments = [seg for e, g in zip(examples, groups, strict=True) for seg in (*(e[k] for k in PAIR_SEGMENTS), *g)]
        lengths = np.fromiter((len(s) for s in segments), dtype=np.int64, count=len(segments))
        bounds = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        ids = np.fromiter(chain.from_iterable(segments), dtype=np.int32, count=int(bounds[-1]))
        return cls(np.array([e["index"] for e in examples], dtype=np.int64),
                   np.array([len(g) for g in groups], dtype=np.int32), bounds, ids)

    def examples(self) -> tuple[list[dict], list[list[np.ndarray]]]:
        """(one ``{index, prompt_ids, chosen_ids, rejected_ids}`` per pair, each pair's group
        response ids: empty lists without groups); every ids value is a read-only int32 view."""
        self.ids.flags.writeable = False
        b = self.bounds.tolist()
        views = [self.ids[b[s]: b[s + 1]] for s in range(len(b) - 1)]
        examples, groups, s = [], [], 0
        for index, k in zip(self.index.tolist(), self.group_sizes.tolist()):
            examples.append({"index": index, **dict(zip(PAIR_SEGMENTS, views[s: s + 3]))})
            groups.append(views[s + 3: s + 3 + k])
            s += 3 + k
        return examples, groups

    def save(self, path: Path) -> None:
        """One uncompressed ``.npz`` (int32 ids compress little, and a hit must load fast)."""
        with open(path, "wb") as f:
            np.savez(f, **{name: getattr(self, name) for name in FIELDS})

    @classmethod
    def load(cls, path: Path) -> "TokenTable":
        """The table in ``path``; :class:`prefexp.cachefs.CacheCorrupt` if it is not a consistent one."""
        try:
            with np.load(path, allow_pickle=False) as f:
                table = cls(**{name: f[name] for name in FIELDS})
        except (OSError, ValueError, KeyError) as err:
            raise CacheCorrupt(f"{Path(path).name} unreadable ({err})") from None
        problem = table.problem()
        if problem:
            raise CacheCorrupt(f"{Path(path).name}: {problem}")
        return table

    def problem(self) -> Optional[str]:
        """Why the arrays do not form a table (None if they do)."""
        for name, dtype in FIELDS.items():
            value = getattr(self, name)
            if value.dtype != dtype or value.ndim != 1:
                return f"{name} is {value.dtype}[{value.ndim}-d], expected 1-d {np.dtype(dtype)}"
        if len(self.group_sizes) != len(self.index):
            return f"{len(self.group_sizes)} group sizes for {len(self.index)} pairs"
        if len(self.bounds) != int((3 + self.group_sizes.astype(np.int64)).sum()) + 1:
            return f"{len(self.bounds) - 1} segments, the group sizes need {int((3 + self.group_sizes).sum())}"
        if self.bounds[0] != 0 or self.bounds[-1] != len(self.ids) or (np.diff(self.bounds) < 0).any():
            return "segment bounds do not cover the ids in order"
        return None
