"""Padding-free, shared-prompt batches: one forward per pair instead of two padded rows.

``PairCollator`` writes each pair twice, ``[prompt, chosen]`` and ``[prompt, rejected]``, and pads
all 2B rows to the longest. Here a pair is one segment ``[prompt, chosen, rejected]``:

    tokens     p0 p1 p2 | c0 c1 c2 | r0 r1
    positions   0  1  2 |  3  4  5 |  3  4      (rejected restarts after the prompt)
    branch      0  0  0 |  1  1  1 |  2  2      (0 prompt, 1 chosen, 2 rejected)

and a token may attend to an earlier token of its own segment that is in the prompt or in its own
branch, so every chosen and rejected token sees exactly the context (and RoPE positions) it has in
its padded row: the log-probs are the same up to float rounding, the prompt is run once, and no
row carries another row's padding. Segments are first-fit packed, longest first, into rows no wider
than the longest segment, so short pairs share a row.

The batch carries compact descriptors; ``prefexp.engine.logps.forward_logps`` builds the 4-D mask on
the device (``tree_attention_mask``). It needs ``attn_implementation`` ``sdpa`` or ``eager`` (a
custom mask; FlashAttention-2 cannot take one).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from .batching import pair_fields, token_row

PAD_BRANCH = 3


def _first_fit(lengths: Sequence[int]) -> list[list[int]]:
    """Indices grouped into rows of width max(lengths), longest first (first-fit decreasing)."""
    width = max(lengths)
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for r, free in enumerate(room):
            if lengths[i] <= free:
                rows[r].append(i)
                room[r] -= lengths[i]
                break
        else:
            rows.append([i])
            room.append(width - lengths[i])
    return rows


class PackedPairCollator:
    """Collate pairs into shared-prompt segments (see the module docstring).

    Returns ``input_ids, position_ids, segment_ids, branch_ids`` [R, W] (padding: segment -1, branch
    3), the flat scoring plan ``logp_positions`` (index into R*W of the position that predicts each
    response token), ``logp_targets`` and ``logp_sequences`` (0..B-1 chosen, B..2B-1 rejected) [M],
    ``response_lengths`` [2B], ``index`` [B] and the per-pair floats ``PairCollator`` passes through.
    ``pack=False`` keeps one pair per row.
    """

    def __init__(self, pad_token_id: int, pack: bool = True):
        self.pad_token_id = pad_token_id
        self.pack = pack

    def __call__(self, examples: Sequence[dict]) -> dict[str, Tensor]:
        b = len(examples)
        seg_len = [len(e["prompt_ids"]) + len(e["chosen_ids"]) + len(e["rejected_ids"]) for e in examples]
        rows = _first_fit(seg_len) if self.pack else [[i] for i in range(b)]
        width = max(seg_len)
        input_ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)  # [R, W]
        position_ids = torch.zeros((len(rows), width), dtype=torch.long)  # [R, W]
        segment_ids = torch.full((len(rows), width), -1, dtype=torch.long)  # [R, W]
        branch_ids = torch.full((len(rows), width), PAD_BRANCH, dtype=torch.long)  # [R, W]
        positions, targets, sequences = [], [], []
        lengths = [0.0] * (2 * b)
        for r, members in enumerate(rows):
            offset = 0
            for i in members:
                e = examples[i]
                p, c, j = e["prompt_ids"], e["chosen_ids"], e["rejected_ids"]
                np_, nc, nr = len(p), len(c), len(j)
                end = offset + np_ + nc + nr
                input_ids[r, offset:end] = token_row(p, c, j)
                position_ids[r, offset:end] = torch.cat([torch.arange(np_ + nc), torch.arange(np_, np_ + nr)])
                segment_ids[r, offset:end] = i
                branch_ids[r, offset:end] = torch.tensor([0] * np_ + [1] * nc + [2] * nr)
                base = r * width + offset
                for seq, resp, first in ((i, c, np_), (b + i, j, np_ + nc)):
                    # token k of a response is predicted by the previous token of the same branch; the
                    # first by the prompt's last token. Without a prompt the first token has no predictor
                    # (as in the padded layout, which scores response_mask[:, 1:]).
                    skip = 0 if np_ > 0 else 1
                    pred = [base + (np_ - 1 if k == 0 else first + k - 1) for k in range(skip, len(resp))]
                    positions += pred
                    targets.append(token_row(resp[skip:]))
                    sequences += [seq] * len(pred)
                    lengths[seq] = float(len(pred))
                offset = end
        batch = {"input_ids": input_ids, "position_ids": position_ids, "segment_ids": segment_ids,
                 "branch_ids": branch_ids,
                 "logp_positions": torch.tensor(positions, dtype=torch.long),
                 "logp_targets": torch.cat(targets) if targets else torch.zeros(0, dtype=torch.long),
                 "logp_sequences": torch.tensor(sequences, dtype=torch.long),
                 "response_lengths": torch.tensor(lengths, dtype=torch.float32)}
        batch.update(pair_fields(examples))
        return batch


def is_packed(batch: dict) -> bool:
    return "segment_ids" in batch


def tree_attention_mask(segment_ids: Tensor, branch_ids: Tensor) -> Tensor:
    """Boolean [R, 1, W, W] mask (True = attend) for packed segments.

    Query q may see key k when both are in the same segment, k is not after q in its branch's
    order, and k is in the prompt or in q's own branch. Padding attends only to padding, so no
    softmax row is empty.
    """
    w = segment_ids.shape[1]
    col = torch.arange(w, device=segment_ids.device)
    same_segment = segment_ids[:, :, None] == segment_ids[:, None, :]  # [R, W, W]
    not_after = col[None, None, :] <= col[None, :, None]  # [1, W, W]; within a segment, layout order is causal
    visible = (branch_ids[:, None, :] == 0) | (branch_ids[:, :, None] == branch_ids[:, None, :])  # [R, W, W]
    return (same_segment & not_after & visible)[:, None]  # [R, 1, W, W]
