"""Which models' LM heads the fused log-prob path can apply, and how, found from the model itself.

A causal LM qualifies when

* its output embeddings (``get_output_embeddings()``) are a plain ``nn.Linear`` whose weight has
  the layer's own shape (GPT-2's tied ``lm_head`` counts; a PEFT adapter on the head, a 4-bit
  packed weight or an FSDP2 ``DTensor`` do not), possibly partitioned by ZeRO-3 (``ds_id``);
* its ``forward`` takes ``logits_to_keep`` (the model's own head then runs on one position a row);
* what it does after the head is known: ``final_logit_softcapping`` (Gemma-2/3: ``c tanh(z / c)``),
  ``logit_scale`` (Cohere: ``z * s``), ``logits_scaling`` (Granite: ``z / s``), read from the
  text config (``get_text_config()``: multimodal wrappers keep them there).

Anything else a model might do after its head (another scaling, a bias added in ``forward``, a
``hidden_states[-1]`` that is not what the head sees) is caught on first use: the fused head's
logits on the last position of each row are compared with the model's own (``logits_to_keep=1``
computes those anyway) and a model that differs falls back to full logits, with one warning.
(Example: ``Gemma3ForConditionalGeneration`` applies no soft-cap in its forward even when its text
config names one; released Gemma-3 configs have none, so it is fused.)

Under ZeRO-3 the head's weight is a shard, and every rank must gather it the same number of times
whatever its batch: with gradients the head *module* is called once on all selected rows (its
ZeRO-3 hooks gather the weight and route the weight's gradient; the float32 log-softmax still runs
in chunks), without them (reference pass, probes) ``GatheredParameters`` gathers it once and the
projection runs in chunks as unsharded.
"""
from __future__ import annotations

import inspect
import logging
import weakref
from dataclasses import dataclass

import torch
from torch import Tensor

from .fused_logps import chunked_token_logps, hidden_token_logps, post_head

log = logging.getLogger(__name__)

# base model -> whether its first-use check passed (absent: not checked yet)
CHECKED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class LinearHead:
    """An LM head ``post(W h + b)``: the Linear module and the post-head transform."""

    module: torch.nn.Linear
    scale: float = 1.0
    softcap: float | None = None

    @property
    def sharded(self) -> bool:
        return hasattr(self.module.weight, "ds_id")  # ZeRO-3 partitioned


def _post_head_transform(config) -> tuple[float, float | None]:
    """(scale, softcap) of the logits after the head, from the (text) config."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    scale = 1.0
    if getattr(text, "logit_scale", None) is not None:  # Cohere, Cohere2: logits * logit_scale
        scale *= float(text.logit_scale)
    if getattr(text, "logits_scaling", None) is not None:  # Granite family: logits / logits_scaling
        scale /= float(text.logits_scaling)
    softcap = getattr(text, "final_logit_softcapping", None)  # Gemma-2 / Gemma-3
    return scale, (float(softcap) if softcap else None)


def _plain_linear(head) -> bool:
    if not isinstance(head, torch.nn.Linear):
        return False
    w = head.weight
    shape = tuple(w.ds_shape) if hasattr(w, "ds_id") else tuple(w.shape)
    return type(w.data) is torch.Tensor and shape == (head.out_features, head.in_features)


def linear_head(base) -> LinearHead | None:
    """The fused-head description of an (unwrapped) model, or None when it needs full logits."""
    config = getattr(base, "config", None)
    get = getattr(base, "get_output_embeddings", None)
    if config is None or get is None:
        return None
    try:
        head = get()
        inner = base.get_base_model() if hasattr(base, "get_base_model") else base  # PEFT passes kwargs on
        takes_keep = "logits_to_keep" in inspect.signature(inner.forward).parameters
    except (NotImplementedError, AttributeError, TypeError, ValueError):
        return None
    if not takes_keep or not _plain_linear(head):
        return None
    scale, softcap = _post_head_transform(config)
    return LinearHead(head, scale, softcap)


def _project(spec: LinearHead, rows: Tensor) -> Tensor:
    """post(W rows + b) [K, V] float32, without gradients (the first-use check)."""
    with torch.no_grad():
        z = torch.nn.functional.linear(rows, spec.module.weight, spec.module.bias).float()
        return post_head(z, spec.scale, spec.softcap)[0]


def head_logps(spec: LinearHead, rows: Tensor, targets: Tensor,
               check_rows: Tensor | None = None) -> tuple[Tensor, Tensor | None] | Tensor:
    """log p(targets) [M] from the final hidden states ``rows`` [M, H]; with ``check_rows`` [K, H],
    also their post-processed logits [K, V] float32 (no gradient), as ``(logps, logits)``."""
    if spec.sharded and torch.is_grad_enabled():
        m = rows.shape[0]
        both = rows if check_rows is None else torch.cat([rows, check_rows])  # one call: one gather
        z = spec.module(both)  # [M + K, V]: ZeRO-3's hooks gather W here and in the backward
        per_token = chunked_token_logps(z[None, :m], targets[None], scale=spec.scale, softcap=spec.softcap)[0]
        if check_rows is None:
            return per_token
        check = z[m:].detach().to(torch.float32, copy=True)  # a copy: post_head works in place
        return per_token, post_head(check, spec.scale, spec.softcap)[0]
    if spec.sharded:
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(spec.module.parameters(recurse=False))):  # one gather
            return _unsharded(spec, rows, targets, check_rows)
    return _unsharded(spec, rows, targets, check_rows)


@torch.no_grad()
def head_mean_logits(spec: LinearHead, rows: Tensor) -> Tensor | None:
    """The vocabulary mean of the head's logits [M] float32 for hidden states ``rows`` [M, H]:
    the mean of a linear map is the map of the mean row. None for a soft-capped head (tanh is not
    linear) or a ZeRO-3 shard (not worth a gather for a logged metric)."""
    if spec.softcap is not None or spec.sharded:
        return None
    w, b = spec.module.weight, spec.module.bias
    mean = rows.detach().float() @ w.detach().float().mean(0)
    if b is not None:
        mean = mean + b.detach().float().mean()
    return spec.scale * mean


def _unsharded(spec: LinearHead, rows: Tensor, targets: Tensor, check_rows: Tensor | None):
    w, b = spec.module.weight, spec.module.bias
    per_token = hidden_token_logps(rows, w, b, targets, scale=spec.scale, softcap=spec.softcap)
    return per_token if check_rows is None else (per_token, _project(spec, check_rows))


def _tf32(t: Tensor) -> bool:
    """Whether float32 matmuls on ``t``'s device may run in TF32 (10-bit mantissa, ``trainer.tf32``)."""
    return t.is_cuda and (torch.backends.cuda.matmul.allow_tf32 or torch.get_float32_matmul_precision() != "highest")


def head_agrees(fused: Tensor, own: Tensor, name: str) -> bool:
    """Whether the fused head's logits [K, V] equal the model's own ``own`` [K, V] up to the
    rounding of the dtype the model computed them in (a mismatch of structure, a missed scale or
    the wrong hidden state, is far larger); warns once when not."""
    own32 = own.float()
    tol = 1e-4 if own.dtype == torch.float32 and not _tf32(own) else 3e-2  # relative to the row's largest logit
    bound = tol * (own32.abs().amax(-1, keepdim=True) + 1)
    worst = ((fused - own32).abs() / bound).max().item() if own.numel() else 0.0
    if worst <= 1:
        return True
    log.warning("fused LM head: %s's own logits differ from W h + b after its known post-head transform "
                "(%.3g x the tolerance); this model uses the full-logits path", name, worst)
    return False
