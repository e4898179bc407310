"""Per-sequence log-probabilities of the response tokens.

``forward_logps`` takes either batch layout: the padded one of ``PairCollator`` ([2B, T] rows) or
the shared-prompt one of ``packing.PackedPairCollator``. By default (``head="auto"``) it never
materialises [2B, T, V] logits: the model runs with ``logits_to_keep=1`` and the LM head is applied
only to the final hidden states of the positions that predict a response token, in chunks
(``fused_logps.hidden_token_logps``). Models whose head does more than ``W h + b`` (logit
soft-capping or scaling), and sharded heads (ZeRO-3, FSDP), use the full-logits path, whose
log-softmax is itself chunked over positions (``token_logps``).

``mean_logits``: a dict to receive, per sequence, the sum over its response positions of the
logits' mean over the vocabulary (TRL's ``logits/chosen`` / ``logits/rejected`` are these sums
over the batch divided by its response tokens). The fused path gets it without the logits: the
vocabulary mean of ``W h + b`` is ``h . mean_v(W) + mean_v(b)``.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .fused_logps import chunked_token_logps, hidden_token_logps
from .packing import is_packed, tree_attention_mask

# Architectures whose LM head is exactly ``lm_head(final_hidden)`` (no soft-cap, no logit scale).
FUSED_HEAD_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3", "phi3", "olmo2"})
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
    """Whether the LM head can be applied outside the model (plain Linear head, unsharded weight)."""
    base = _unwrap(model)
    config = getattr(base, "config", None)
    if config is None or getattr(config, "model_type", None) not in FUSED_HEAD_MODEL_TYPES:
        return False
    head = base.get_output_embeddings()
    if not isinstance(head, torch.nn.Linear):  # e.g. a PEFT adapter on the head
        return False
    w = head.weight
    return (type(w.data) is torch.Tensor and w.dim() == 2 and w.numel() > 0
            and not hasattr(w, "ds_id"))  # DTensor (FSDP2) or ZeRO-3 partitioned weights


def _final_hidden(model, **inputs) -> Tensor:
    """Final (post-norm) hidden states [N, T, H]; the model's own head runs on one position only."""
    out = model(**inputs, use_cache=False, output_hidden_states=True, logits_to_keep=1)
    return out.hidden_states[-1]


def _head_mean_logits(model, hidden: Tensor) -> Tensor:
    """[M] vocabulary mean of the head's logits of hidden states [M, H], in float32, exactly
    (the mean of a linear map is the map of the mean row)."""
    head = _unwrap(model).get_output_embeddings()
    w_mean = head.weight.detach().float().mean(0)  # [H]
    b_mean = head.bias.detach().float().mean() if head.bias is not None else 0.0
    return hidden.detach().float() @ w_mean + b_mean


def _per_sequence(values: Tensor, sequences: Tensor, n: int) -> Tensor:
    return torch.zeros(n, dtype=torch.float32, device=values.device).index_add(0, sequences, values.float())


def _head_logps(model, hidden: Tensor, targets: Tensor) -> Tensor:
    head = _unwrap(model).get_output_embeddings()
    return hidden_token_logps(hidden, head.weight, head.bias, targets)  # [M]


def _use_fused(model, head: str) -> bool:
    if head not in HEADS:
        raise ValueError(f"head={head!r}; expected one of {HEADS}")
    if head == "fused" and not fused_head_supported(model):
        raise ValueError(f"head='fused' is not supported for {type(_unwrap(model)).__name__}; use head='auto'")
    return head == "fused" or (head == "auto" and fused_head_supported(model))


def _packed_mask(model, batch: dict[str, Tensor]) -> Tensor:
    mask = tree_attention_mask(batch["segment_ids"], batch["branch_ids"])  # [R, 1, W, W] bool
    impl = getattr(_unwrap(model).config, "_attn_implementation", "sdpa")
    if impl == "sdpa":
        return mask
    if impl == "eager":  # eager adds the mask to the scores
        dtype = next(model.parameters()).dtype
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, torch.finfo(dtype).min)
    raise ValueError(f"packed batches need attn_implementation 'sdpa' or 'eager' (a custom 4-D mask); got {impl!r}")


def _forward_packed(model, batch: dict[str, Tensor], fused: bool, mean_logits: dict | None = None) -> tuple[Tensor, Tensor]:
    inputs = {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"],
              "attention_mask": _packed_mask(model, batch)}
    positions, targets = batch["logp_positions"], batch["logp_targets"]  # [M], [M]
    if fused:
        hidden = _final_hidden(model, **inputs)  # [R, W, H]
        picked_hidden = hidden.reshape(-1, hidden.shape[-1])[positions]  # [M, H]
        per_token = _head_logps(model, picked_hidden, targets)  # [M]
        token_means = _head_mean_logits(model, picked_hidden) if mean_logits is not None else None
    else:
        logits = model(**inputs, use_cache=False).logits  # [R, W, V]
        picked = logits.reshape(-1, logits.shape[-1])[positions]  # [M, V]
        per_token = chunked_token_logps(picked[None], targets[None])[0]  # [M]
        token_means = picked.detach().float().mean(-1) if mean_logits is not None else None
    lengths = batch["response_lengths"]  # [2B]
    if mean_logits is not None:
        mean_logits["sums"] = _per_sequence(token_means, batch["logp_sequences"], lengths.shape[0])
    logps = torch.zeros(lengths.shape[0], dtype=torch.float32, device=per_token.device)
    return logps.index_add(0, batch["logp_sequences"], per_token), lengths


def forward_logps(model, batch: dict[str, Tensor], head: str = "auto",
                  mean_logits: dict | None = None) -> tuple[Tensor, Tensor]:
    """One forward over the concatenated batch; returns ([2B] summed logps, [2B] lengths).

    Rows 0..B-1 are the chosen responses, B..2B-1 the rejected ones, in either layout. ``head``:
    ``"fused"`` (LM head on response positions only), ``"logits"`` (the model's full logits) or
    ``"auto"`` (fused when ``fused_head_supported(model)``). Log-probs are float32. A
    ``mean_logits`` dict receives ``"sums"`` [2B] (see the module docstring).
    """
    fused = _use_fused(model, head)
    if is_packed(batch):
        return _forward_packed(model, batch, fused, mean_logits)
    logps, lengths, _ = forward_token_logps(model, batch, head, mean_logits)
    return logps, lengths


def forward_token_logps(model, batch: dict[str, Tensor], head: str = "auto",
                        mean_logits: dict | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """As :func:`forward_logps` for the padded layout, plus the per-token log-probs [N, T-1]
    (column j scores token j+1; 0 outside the response), which token cleaning masks."""
    if is_packed(batch):
        raise ValueError("per-token log-probs need the padded batch layout (trainer.packing=false)")
    input_ids, response_mask = batch["input_ids"], batch["response_mask"]
    scored = response_mask[:, 1:]  # [N, T-1]; position t predicts token t+1
    if not _use_fused(model, head):
        out = model(input_ids=input_ids, attention_mask=batch["attention_mask"], use_cache=False)
        dense = token_logps(out.logits, input_ids) * scored  # [N, T-1]
        if mean_logits is not None:
            mean_logits["sums"] = (out.logits[:, :-1].detach().float().mean(-1) * scored).sum(-1)
        return dense.sum(-1), scored.sum(-1).to(torch.float32), dense
    hidden = _final_hidden(model, input_ids=input_ids, attention_mask=batch["attention_mask"])  # [N, T, H]
    rows, cols = scored.nonzero(as_tuple=True)  # [M] each
    per_token = _head_logps(model, hidden[rows, cols], input_ids[rows, cols + 1])  # [M]
    if mean_logits is not None:
        mean_logits["sums"] = _per_sequence(_head_mean_logits(model, hidden[rows, cols]), rows, scored.shape[0])
    dense = torch.zeros(scored.shape, dtype=torch.float32, device=per_token.device).index_put((rows, cols), per_token)
    return dense.sum(-1), scored.sum(-1).to(torch.float32), dense
