"""Per-sequence log-probabilities of the response tokens.

``forward_logps`` takes either batch layout: the padded one of ``PairCollator`` ([2B, T] rows) or
the shared-prompt one of ``packing.PackedPairCollator``. By default (``head="auto"``) it never
materialises [2B, T, V] logits: the model runs with ``logits_to_keep=1`` and the LM head is applied
only to the final hidden states of the positions that predict a response token, in chunks
(``fused_logps.hidden_token_logps``). Which models qualify is read from the model itself
(:mod:`.fused_head`: a Linear output layer, a known post-head transform such as Gemma's soft-cap,
ZeRO-3 partitioned weights included) and checked against the model's own logits on first use;
the others use the full-logits path, whose log-softmax is itself chunked over positions
(``token_logps``).

``mean_logits``: a dict to receive, as ``"sums"`` [2B], per sequence the sum over its response
positions of the logits' mean over the vocabulary (TRL's ``logits/chosen`` / ``logits/rejected``
are these sums over the batch divided by its response tokens). The fused path gets it without the
logits: the vocabulary mean of ``s (W h + b)`` is ``s (h . mean_v(W) + mean_v(b))``; a soft-capped
or ZeRO-3 sharded head leaves the dict empty (the mean of ``tanh`` is not linear, and gathering
the weight for a logged metric is not worth a collective).
"""
from __future__ import annotations

import torch
from torch import Tensor

from .fused_head import CHECKED, head_agrees, head_logps, head_mean_logits, linear_head
from .fused_logps import chunked_token_logps
from .packing import is_packed, tree_attention_mask

HEADS = ("auto", "fused", "logits")


def token_logps(logits: Tensor, input_ids: Tensor) -> Tensor:
    """Log-prob of each next token [N, T-1] float32 from logits [N, T, V].

    ``gather - logsumexp`` over chunks of positions: neither the [N, T, V] log-softmax nor a full
    float32 copy of low-precision logits is ever alive.
    """
    return chunked_token_logps(logits, input_ids[:, 1:])  # position t predicts token t+1


def sequence_logps(logits: Tensor, input_ids: Tensor, response_mask: Tensor) -> tuple[Tensor, Tensor]:
    """(summed response log-probs [N], response lengths [N]); prompt and padding masked out."""
    mask = response_mask[:, 1:].to(logits.dtype if logits.is_floating_point() else torch.float32)  # [N, T-1]
    per_token = token_logps(logits, input_ids)  # [N, T-1]
    return (per_token * mask).sum(-1), mask.sum(-1)


def _unwrap(model):
    while hasattr(model, "module"):  # DistributedDataParallel, DeepSpeed engine
        model = model.module
    return model


def fused_head_supported(model) -> bool:
    """Whether the LM head can be applied outside the model (see :func:`fused_head.linear_head`);
    a model that failed its first-use check (:func:`fused_head.head_agrees`) is not."""
    base = _unwrap(model)
    return linear_head(base) is not None and CHECKED.get(base, True)


def _use_fused(model, head: str) -> bool:
    if head not in HEADS:
        raise ValueError(f"head={head!r}; expected one of {HEADS}")
    if head == "fused" and not fused_head_supported(model):
        raise ValueError(f"head='fused' is not supported for {type(_unwrap(model)).__name__}; use head='auto'")
    return head == "fused" or (head == "auto" and fused_head_supported(model))


def _fused_logps(model, inputs: dict[str, Tensor], flat_positions: Tensor, targets: Tensor,
                 head: str, mean_logits: dict | None = None) -> Tensor | None:
    """Log-probs [M] of ``targets`` predicted from the final hidden states at ``flat_positions``
    (indices into the [N * T] positions); None when the model's first-use check failed.

    The model's own head runs on the last position of each row only (``logits_to_keep=1``); on a
    model's first use those logits are compared with the fused head's (:func:`head_agrees`)."""
    base = _unwrap(model)
    spec = linear_head(base)
    out = model(**inputs, use_cache=False, output_hidden_states=True, logits_to_keep=1)
    if not out.hidden_states:  # a model that cannot return them: full logits from now on
        CHECKED[base] = False
        if head == "fused":
            raise ValueError(f"head='fused': {type(base).__name__} returns no hidden states; use head='auto'")
        return None
    hidden = out.hidden_states[-1]  # [N, T, H], post-norm: what the model's head sees
    rows = hidden.reshape(-1, hidden.shape[-1])[flat_positions]  # [M, H]
    if mean_logits is not None:
        token_means = head_mean_logits(spec, rows)  # [M] or None
        if token_means is not None:
            mean_logits["token_means"] = token_means
    if base in CHECKED:
        return head_logps(spec, rows, targets)
    per_token, own = head_logps(spec, rows, targets, check_rows=hidden[:, -1].detach())
    CHECKED[base] = head_agrees(own, out.logits[:, -1].detach(), type(base).__name__)
    if CHECKED[base]:
        return per_token
    if mean_logits is not None:
        mean_logits.pop("token_means", None)  # the full-logits path recomputes it
    if head == "fused":
        raise ValueError(f"head='fused': the fused LM head of {type(base).__name__} does not reproduce its "
                         "logits (see the warning above); use head='auto'")
    return None


def _packed_mask(model, batch: dict[str, Tensor]) -> Tensor:
    mask = tree_attention_mask(batch["segment_ids"], batch["branch_ids"])  # [R, 1, W, W] bool
    impl = getattr(_unwrap(model).config, "_attn_implementation", "sdpa")
    if impl == "sdpa":
        return mask
    if impl == "eager":  # eager adds the mask to the scores
        dtype = next(model.parameters()).dtype
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, torch.finfo(dtype).min)
    raise ValueError(f"packed batches need attn_implementation 'sdpa' or 'eager' (a custom 4-D mask); got {impl!r}")


def _per_sequence(values: Tensor, sequences: Tensor, n: int) -> Tensor:
    return torch.zeros(n, dtype=torch.float32, device=values.device).index_add(0, sequences, values.float())


def _forward_packed(model, batch: dict[str, Tensor], head: str, mean_logits: dict | None) -> tuple[Tensor, Tensor]:
    inputs = {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"],
              "attention_mask": _packed_mask(model, batch)}
    positions, targets = batch["logp_positions"], batch["logp_targets"]  # [M], [M]
    per_token = (_fused_logps(model, inputs, positions, targets, head, mean_logits)
                 if _use_fused(model, head) else None)
    if per_token is None:
        logits = model(**inputs, use_cache=False).logits  # [R, W, V]
        picked = logits.reshape(-1, logits.shape[-1])[positions]  # [M, V]
        per_token = chunked_token_logps(picked[None], targets[None])[0]  # [M]
        if mean_logits is not None:
            mean_logits["token_means"] = picked.detach().mean(-1, dtype=torch.float32)
    lengths = batch["response_lengths"]  # [2B]
    sequences = batch["logp_sequences"]
    if mean_logits is not None and "token_means" in mean_logits:
        mean_logits["sums"] = _per_sequence(mean_logits.pop("token_means"), sequences, lengths.shape[0])
    return _per_sequence(per_token, sequences, lengths.shape[0]), lengths


def forward_logps(model, batch: dict[str, Tensor], head: str = "auto",
                  mean_logits: dict | None = None) -> tuple[Tensor, Tensor]:
    """One forward over the concatenated batch; returns ([2B] summed logps, [2B] lengths).

    Rows 0..B-1 are the chosen responses, B..2B-1 the rejected ones, in either layout. ``head``:
    ``"fused"`` (LM head on response positions only), ``"logits"`` (the model's full logits) or
    ``"auto"`` (fused when ``fused_head_supported(model)``). Log-probs are float32. A
    ``mean_logits`` dict receives ``"sums"`` [2B] (see the module docstring).
    """
    if is_packed(batch):
        return _forward_packed(model, batch, head, mean_logits)
    logps, lengths, _ = forward_token_logps(model, batch, head, mean_logits)
    return logps, lengths


def forward_token_logps(model, batch: dict[str, Tensor], head: str = "auto",
                        mean_logits: dict | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """As :func:`forward_logps` for the padded layout, plus the per-token log-probs [N, T-1]
    (column j scores token j+1; 0 outside the response), which token cleaning masks."""
    if is_packed(batch):
        raise ValueError("per-token log-probs need the padded batch layout (trainer.packing=false)")
    input_ids, response_mask = batch["input_ids"], batch["response_mask"]
    inputs = {"input_ids": input_ids, "attention_mask": batch["attention_mask"]}
    scored = response_mask[:, 1:]  # [N, T-1]; position t predicts token t+1
    lengths = scored.sum(-1).to(torch.float32)
    if _use_fused(model, head):
        rows, cols = scored.nonzero(as_tuple=True)  # [M] each
        per_token = _fused_logps(model, inputs, rows * input_ids.shape[1] + cols, input_ids[rows, cols + 1], head,
                                 mean_logits)
        if per_token is not None:
            dense = torch.zeros(scored.shape, dtype=torch.float32, device=per_token.device)
            dense = dense.index_put((rows, cols), per_token)  # [N, T-1]
            if mean_logits is not None and "token_means" in mean_logits:
                mean_logits["sums"] = _per_sequence(mean_logits.pop("token_means"), rows, scored.shape[0])
            return dense.sum(-1), lengths, dense
    out = model(**inputs, use_cache=False)
    dense = token_logps(out.logits, input_ids) * scored  # [N, T-1]
    if mean_logits is not None:
        mean_logits["sums"] = (out.logits[:, :-1].detach().mean(-1, dtype=torch.float32) * scored).sum(-1)
    return dense.sum(-1), lengths, dense
