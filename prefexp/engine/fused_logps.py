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

    log p(y_i) = z_i[y_i] - logsumexp_v z_i[v],   z_i = post(W h_i + b)
    d log p(y_i) / d z_i = onehot(y_i) - softmax(z_i)

``post`` is what the model does after its head, in float32 (identity for most models):
``u -> scale * u`` (Cohere's ``logit_scale``, Granite's ``1 / logits_scaling``), then, with a
soft-cap ``c`` (Gemma-2/3's ``final_logit_softcapping``), ``u -> c * tanh(u / c)``; its derivative
``scale * (1 - tanh^2)`` multiplies the gradient before it flows back through the projection.

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


def post_head(z: Tensor, scale: float = 1.0, softcap: float | None = None) -> tuple[Tensor, Tensor | None]:
    """(post(z), d post / d z or None when it is the constant ``scale``) for float32 logits ``z``;
    ``z`` is overwritten."""
    if scale != 1.0:
        z.mul_(scale)
    if softcap is None:
        return z, None
    t = z.div_(softcap).tanh_()  # in place: z is a temporary
    deriv = (1 - t * t).mul_(scale)
    return t.mul_(softcap), deriv


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
    def forward(ctx, logits: Tensor, targets: Tensor, chunk: int, scale: float, softcap: float | None) -> Tensor:
        n, t_out = targets.shape
        out = torch.empty(n, t_out, dtype=torch.float32, device=logits.device)  # [N, T']
        lse = torch.empty(n, t_out, dtype=torch.float32, device=logits.device)  # [N, T']
        for s in range(0, t_out, chunk):
            e = min(s + chunk, t_out)
            z = logits[:, s:e].to(torch.float32, copy=scale != 1.0 or softcap is not None)  # [N, t, V]
            z, _ = post_head(z, scale, softcap)  # in place: copied above unless it is the identity
            lse[:, s:e] = torch.logsumexp(z, dim=-1)
            out[:, s:e] = z.gather(-1, targets[:, s:e, None]).squeeze(-1) - lse[:, s:e]
        ctx.save_for_backward(logits, targets, lse)
        ctx.chunk, ctx.scale, ctx.softcap = chunk, scale, softcap
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        logits, targets, lse = ctx.saved_tensors
        grad = torch.zeros_like(logits)  # [N, T, V]; positions past T' keep a zero gradient
        g = grad_out.float()  # [N, T']
        for s in range(0, targets.shape[1], ctx.chunk):
            e = min(s + ctx.chunk, targets.shape[1])
            z, deriv = post_head(logits[:, s:e].to(torch.float32, copy=True), ctx.scale, ctx.softcap)
            p = z.sub_(lse[:, s:e, None]).exp_()  # [N, t, V] softmax
            gz = p.mul_(-g[:, s:e, None])  # -g * p
            gz.scatter_add_(-1, targets[:, s:e, None], g[:, s:e, None])  # + g * onehot
            grad[:, s:e] = _through_post(gz, deriv, ctx.scale)
        return grad, None, None, None, None


def _through_post(gz: Tensor, deriv: Tensor | None, scale: float) -> Tensor:
    """The gradient w.r.t. the head's raw output from the one w.r.t. the post-processed logits."""
    if deriv is not None:
        return gz.mul_(deriv)
    return gz.mul_(scale) if scale != 1.0 else gz


def chunked_token_logps(logits: Tensor, targets: Tensor, chunk_bytes: int = CHUNK_BYTES, scale: float = 1.0,
                        softcap: float | None = None) -> Tensor:
    """log p(targets) [N, T'] float32 from logits [N, T, V] (T' <= T: position t scores targets[:, t]);
    ``scale`` / ``softcap``: the model's post-head transform, when ``logits`` are the raw head output."""
    n, _, vocab = logits.shape
    chunk = max(1, _rows_per_chunk(vocab, chunk_bytes) // max(n, 1))  # positions per chunk
    return _ChunkedLogits.apply(logits, targets, chunk, scale, softcap)


def _compute_dtype(t: Tensor) -> torch.dtype:
    """The dtype the LM head runs in: autocast's when it is on (bf16 mixed precision), else the input's."""
    dev = t.device.type
    return torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else t.dtype


class _HiddenLogps(torch.autograd.Function):
    """hidden [M, H], weight [V, H], bias [V] | None, targets [M] -> log-probs [M] float32."""

    @staticmethod
    def forward(ctx, hidden: Tensor, weight: Tensor, bias: Tensor | None, targets: Tensor, chunk: int,
                keep_probs: bool, scale: float, softcap: float | None) -> Tensor:
        cdtype = _compute_dtype(hidden)
        w, b = weight.to(cdtype), None if bias is None else bias.to(cdtype)  # [V, H], [V]
        m = hidden.shape[0]
        out = torch.empty(m, dtype=torch.float32, device=hidden.device)  # [M]
        lse = torch.empty(m, dtype=torch.float32, device=hidden.device)  # [M]
        probs = []
        with torch.autocast(hidden.device.type, enabled=False):  # explicit dtypes; backward must match
            for s in range(0, m, chunk):
                raw = torch.nn.functional.linear(hidden[s: s + chunk].to(cdtype), w, b).float()  # [m, V]
                z, deriv = post_head(raw, scale, softcap)
                lse[s: s + chunk] = torch.logsumexp(z, dim=-1)
                out[s: s + chunk] = z.gather(-1, targets[s: s + chunk, None]).squeeze(-1) - lse[s: s + chunk]
                if keep_probs:
                    probs.append(z.sub_(lse[s: s + chunk, None]).exp_())  # softmax, in the logits' storage
                    if deriv is not None:
                        probs.append(deriv)
        ctx.save_for_backward(hidden, weight, bias, targets, lse, *probs)
        ctx.chunk, ctx.keep_probs, ctx.cdtype, ctx.scale, ctx.softcap = chunk, keep_probs, cdtype, scale, softcap
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
                    per = 1 if ctx.softcap is None else 2  # (softmax, post-head derivative) per chunk
                    p, deriv = probs[per * i], (probs[per * i + 1] if per == 2 else None)  # [m, V]
                else:
                    z, deriv = post_head(torch.nn.functional.linear(h, w, b).float(), ctx.scale, ctx.softcap)
                    p = z.sub_(lse[s:e, None]).exp_()
                gz = p * -g[s:e, None]  # [m, V]; not in place: the saved softmax may be needed again
                gz.scatter_add_(-1, targets[s:e, None], g[s:e, None])  # g * (onehot - p)
                gz = _through_post(gz, deriv, ctx.scale)  # gz is a fresh tensor: in place is safe
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
                None, None, None, None, None)


def hidden_token_logps(hidden: Tensor, weight: Tensor, bias: Tensor | None, targets: Tensor,
                       chunk_bytes: int = CHUNK_BYTES, keep_probs_bytes: int = KEEP_PROBS_BYTES,
                       scale: float = 1.0, softcap: float | None = None) -> Tensor:
    """log p(targets) [M] float32 of the LM head ``post(hidden @ weight.T + bias)`` (hidden [M, H],
    targets [M]; ``post``: ``scale``, then ``softcap``, see the module docstring).

    The [M, V] logits are formed ``chunk_bytes`` at a time. ``keep_probs_bytes``: keep the float32
    softmax (and the soft-cap's derivative) for the backward when all of it fits (one projection
    fewer), else recompute it.
    """
    vocab = weight.shape[0]
    kept = 1 if softcap is None else 2
    wants_grad = torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad)
    keep = wants_grad and hidden.shape[0] * vocab * 4 * kept <= keep_probs_bytes  # no backward: keep nothing
    return _HiddenLogps.apply(hidden, weight, bias, targets, _rows_per_chunk(vocab, chunk_bytes), keep,
                              float(scale), softcap)
