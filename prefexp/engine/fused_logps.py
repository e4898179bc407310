"""Token log-probs without the [N, T, V] float32 log-softmax.

Two autograd functions, both exact (same maths as ``log_softmax(logits).gather(target)``):

* ``chunked_token_logps(logits, targets)``: logits already exist (any model); the float32 upcast,
  ``logsumexp`` and the gradient ``g * (onehot - softmax)`` run over chunks of positions, so only
  one chunk of float32 [N, t, V] is alive at a time (the plain path keeps a float32 copy of the
  logits *and* the exp temporary of ``logsumexp`` for the backward).
* ``hidden_token_logps(hidden, weight, bias, targets)``: the fused LM head. Only the hidden states
  of the positions that predict a response token are projected, in token chunks, so prompt and
  padding positions never reach the LM head at all. The backward either reuses the softmax kept
  from the forward (when ``[M, V]`` float32 fits ``keep_probs_bytes``; no second projection) or
  recomputes it chunk by chunk (the memory-lean path for large vocabularies on a GPU).

    log p(y_i) = z_i[y_i] - logsumexp_v z_i[v],   z_i = W h_i + b
    d log p(y_i) / d z_i = onehot(y_i) - softmax(z_i)

Liger kernels: their fused linear cross-entropy folds the gradient into the forward pass for a
scalar upstream gradient, so per-sequence DPO weights cannot flow back through a per-token
(``reduction="none"``) loss. On a GPU with ``liger_kernel`` installed, use its layer kernels
(RMSNorm, SwiGLU, RoPE) through ``TrainingArguments(use_liger_kernel=True,
liger_kernel_config={"fused_linear_cross_entropy": False, "cross_entropy": False})``; the LM head
stays this module's. ``liger_available()`` guards the import.
"""
from __future__ import annotations

import importlib.util

import torch
from torch import Tensor

CHUNK_BYTES = 64 * 2**20  # float32 logits per chunk
KEEP_PROBS_BYTES = 256 * 2**20  # keep the softmax for the backward when [M, V] float32 is this small


def liger_available() -> bool:
    """True when ``liger_kernel`` is importable and a CUDA device is present (its kernels are Triton)."""
    return torch.cuda.is_available() and importlib.util.find_spec("liger_kernel") is not None


def _rows_per_chunk(vocab: int, chunk_bytes: int) -> int:
    return max(1, chunk_bytes // (4 * vocab))


def _mm_fp32(a: Tensor, b: Tensor) -> Tensor:
    """a @ b accumulated and returned in float32 (bf16 products are not rounded chunk by chunk)."""
    if a.dtype == torch.float32:
        return a @ b
    if a.is_cuda:
        try:
            return torch.mm(a, b, out_dtype=torch.float32)
        except (TypeError, RuntimeError):
            pass
    return a.float() @ b.float()


class _ChunkedLogits(torch.autograd.Function):
    """logits [N, T, V] (any float dtype), targets [N, T'] with T' <= T -> log-probs [N, T'] float32."""

    @staticmethod
    def forward(ctx, logits: Tensor, targets: Tensor, chunk: int) -> Tensor:
        n, t_out = targets.shape
        out = torch.empty(n, t_out, dtype=torch.float32, device=logits.device)  # [N, T']
        lse = torch.empty(n, t_out, dtype=torch.float32, device=logits.device)  # [N, T']
        for s in range(0, t_out, chunk):
            e = min(s + chunk, t_out)
            z = logits[:, s:e].float()  # [N, t, V]
            lse[:, s:e] = torch.logsumexp(z, dim=-1)
            out[:, s:e] = z.gather(-1, targets[:, s:e, None]).squeeze(-1) - lse[:, s:e]
        ctx.save_for_backward(logits, targets, lse)
        ctx.chunk = chunk
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        logits, targets, lse = ctx.saved_tensors
        grad = torch.zeros_like(logits)  # [N, T, V]; positions past T' keep a zero gradient
        g = grad_out.float()  # [N, T']
        for s in range(0, targets.shape[1], ctx.chunk):
            e = min(s + ctx.chunk, targets.shape[1])
            p = torch.exp(logits[:, s:e].float() - lse[:, s:e, None])  # [N, t, V] softmax
            gz = p.mul_(-g[:, s:e, None])  # -g * p
            gz.scatter_add_(-1, targets[:, s:e, None], g[:, s:e, None])  # + g * onehot
            grad[:, s:e] = gz
        return grad, None, None


def chunked_token_logps(logits: Tensor, targets: Tensor, chunk_bytes: int = CHUNK_BYTES) -> Tensor:
    """log p(targets) [N, T'] float32 from logits [N, T, V] (T' <= T: position t scores targets[:, t])."""
    n, _, vocab = logits.shape
    chunk = max(1, _rows_per_chunk(vocab, chunk_bytes) // max(n, 1))  # positions per chunk
    return _ChunkedLogits.apply(logits, targets, chunk)


def _compute_dtype(t: Tensor) -> torch.dtype:
    """The dtype the LM head runs in: autocast's when it is on (bf16 mixed precision), else the input's."""
    dev = t.device.type
    return torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else t.dtype


class _HiddenLogps(torch.autograd.Function):
    """hidden [M, H], weight [V, H], bias [V] | None, targets [M] -> log-probs [M] float32."""

    @staticmethod
    def forward(ctx, hidden: Tensor, weight: Tensor, bias: Tensor | None, targets: Tensor, chunk: int,
                keep_probs: bool) -> Tensor:
        cdtype = _compute_dtype(hidden)
        w, b = weight.to(cdtype), None if bias is None else bias.to(cdtype)  # [V, H], [V]
        m = hidden.shape[0]
        out = torch.empty(m, dtype=torch.float32, device=hidden.device)  # [M]
        lse = torch.empty(m, dtype=torch.float32, device=hidden.device)  # [M]
        probs = []
        with torch.autocast(hidden.device.type, enabled=False):  # explicit dtypes; backward must match
            for s in range(0, m, chunk):
                z = torch.nn.functional.linear(hidden[s: s + chunk].to(cdtype), w, b).float()  # [m, V]
                lse[s: s + chunk] = torch.logsumexp(z, dim=-1)
                out[s: s + chunk] = z.gather(-1, targets[s: s + chunk, None]).squeeze(-1) - lse[s: s + chunk]
                if keep_probs:
                    probs.append(z.sub_(lse[s: s + chunk, None]).exp_())  # softmax, in the logits' storage
        ctx.save_for_backward(hidden, weight, bias, targets, lse, *probs)
        ctx.chunk, ctx.keep_probs, ctx.cdtype = chunk, keep_probs, cdtype
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        hidden, weight, bias, targets, lse, *probs = ctx.saved_tensors
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        cdtype = ctx.cdtype
        w, b = weight.to(cdtype), None if bias is None else bias.to(cdtype)
        g = grad_out.float()  # [M]
        grad_h = torch.empty_like(hidden) if need_h else None  # [M, H]
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None  # [V, H]
        grad_b = torch.zeros(weight.shape[0], dtype=torch.float32, device=weight.device) if need_b and bias is not None else None
        with torch.autocast(hidden.device.type, enabled=False):
            for i, s in enumerate(range(0, hidden.shape[0], ctx.chunk)):
                e = s + ctx.chunk
                h = hidden[s:e].to(cdtype)  # [m, H]
                if ctx.keep_probs:
                    p = probs[i]  # [m, V]
                else:
                    p = torch.nn.functional.linear(h, w, b).float().sub_(lse[s:e, None]).exp_()
                gz = p * -g[s:e, None]  # [m, V]; not in place: the saved softmax may be needed again
                gz.scatter_add_(-1, targets[s:e, None], g[s:e, None])  # g * (onehot - p)
                if grad_b is not None:
                    grad_b += gz.sum(0)
                gz = gz.to(cdtype)
                if grad_h is not None:
                    grad_h[s:e] = gz @ w  # [m, H]
                if grad_w is not None:
                    grad_w += _mm_fp32(gz.t(), h)  # [V, H]
        return (grad_h,
                grad_w.to(weight.dtype) if grad_w is not None else None,
                grad_b.to(bias.dtype) if grad_b is not None else None,
                None, None, None)


def hidden_token_logps(hidden: Tensor, weight: Tensor, bias: Tensor | None, targets: Tensor,
                       chunk_bytes: int = CHUNK_BYTES, keep_probs_bytes: int = KEEP_PROBS_BYTES) -> Tensor:
    """log p(targets) [M] float32 of the LM head ``hidden @ weight.T + bias`` (hidden [M, H], targets [M]).

    The [M, V] logits are formed ``chunk_bytes`` at a time. ``keep_probs_bytes``: keep the float32
    softmax for the backward when all of it fits (one projection fewer), else recompute it.
    """
    vocab = weight.shape[0]
    keep = hidden.shape[0] * vocab * 4 <= keep_probs_bytes
    return _HiddenLogps.apply(hidden, weight, bias, targets, _rows_per_chunk(vocab, chunk_bytes), keep)
