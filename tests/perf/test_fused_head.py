"""The fused LM head for every causal LM with a Linear output layer, found from the model itself.

* On each head family the tests can build from a config (GPT-2's tied head, Llama, Qwen2,
  Gemma-2/3 with ``final_logit_softcapping``, Cohere's ``logit_scale``, Granite's
  ``logits_scaling``): the fused path's log-probs and parameter gradients equal the full-logits
  path's within 1e-5 (float32), padded and packed layouts.
* The soft-cap and scale kernels equal float64 ``log_softmax(post(h W^T + b))``, values and grads.
* The head projects exactly the response-predicting positions (rows counted by hand), in the
  reference pass too; the model's own head runs on one position a sequence.
* A model that does something unknown after its head fails the first-use check and falls back to
  full logits (``auto``) or is refused (``fused``).
"""
from __future__ import annotations

import logging

import pytest
import torch

from prefexp.engine import fused_head
from prefexp.engine.batching import PairCollator
from prefexp.engine.fused_head import CHECKED, linear_head
from prefexp.engine.fused_logps import chunked_token_logps, hidden_token_logps
from prefexp.engine.logps import forward_logps, fused_head_supported
from prefexp.engine.packing import PackedPairCollator
from prefexp.engine.reference import compute_reference_logps

from .test_logps_parity import EXAMPLES
from .tiny_causal_lms import ARCHS, SOFTCAP, build, build_gemma3_multimodal

# response tokens of EXAMPLES: chosen 4+2+1+6+2, rejected 2+6+2+4+2
RESPONSE_TOKENS = 31


def _run(model, batch, head):
    model.zero_grad()
    logps, lengths = forward_logps(model, batch, head=head)
    (logps * torch.linspace(0.5, 1.5, logps.shape[0])).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return logps.detach(), lengths, grads


@pytest.mark.parametrize("layout", ["padded", "packed"])
@pytest.mark.parametrize("arch", ARCHS)
def test_fused_head_equals_full_logits(arch, layout):
    model = build(arch)
    assert fused_head_supported(model), arch
    collate = PairCollator(pad_token_id=0) if layout == "padded" else PackedPairCollator(pad_token_id=0)
    batch = collate(EXAMPLES)
    fused, fused_len, fused_grads = _run(model, batch, "fused")
    full, full_len, full_grads = _run(model, batch, "logits")
    assert CHECKED[model], "the first-use check passed"
    torch.testing.assert_close(fused, full, rtol=1e-5, atol=1e-5)
    assert fused_len.tolist() == full_len.tolist()
    assert fused_grads.keys() == full_grads.keys()
    for name in full_grads:
        torch.testing.assert_close(fused_grads[name], full_grads[name], rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.parametrize("arch", ["gemma3", "cohere", "granite"])
def test_the_post_head_transform_matters(arch):
    """Without its soft-cap / scale each model scores differently, by far more than the tolerance
    above: the parity test would catch a fused head that ignored it."""
    model = build(arch)
    batch = PairCollator(pad_token_id=0)(EXAMPLES)
    with torch.no_grad():
        want, _ = forward_logps(model, batch, head="logits")
        spec = linear_head(model)
        assert (spec.scale, spec.softcap) == {"gemma3": (1.0, SOFTCAP), "cohere": (0.5, None),
                                              "granite": (0.25, None)}[arch]
        plain = build(arch, **{"gemma3": {"final_logit_softcapping": None}, "cohere": {"logit_scale": 1.0},
                               "granite": {"logits_scaling": 1.0}}[arch])
        other, _ = forward_logps(plain, batch, head="logits")
    assert (want - other).abs().max() > 0.05


def reference_logps(h, w, b, targets, scale, softcap):
    z = scale * torch.nn.functional.linear(h, w, b)
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    return torch.log_softmax(z, dim=-1).gather(-1, targets[:, None]).squeeze(-1)


@pytest.mark.parametrize("keep_probs_bytes", [0, 2**30])
@pytest.mark.parametrize("scale,softcap", [(1.0, 1.5), (0.3, None), (2.0, 4.0)])
def test_post_head_kernels_match_float64(scale, softcap, keep_probs_bytes):
    torch.manual_seed(3)
    m, h, v = 9, 6, 17
    hidden, weight = torch.randn(m, h, requires_grad=True), torch.randn(v, h, requires_grad=True)
    bias = torch.randn(v, requires_grad=True)
    targets = torch.randint(0, v, (m,))
    got = hidden_token_logps(hidden, weight, bias, targets, chunk_bytes=4 * v * 4,
                             keep_probs_bytes=keep_probs_bytes, scale=scale, softcap=softcap)
    ref = [t.detach().double().requires_grad_() for t in (hidden, weight, bias)]
    want = reference_logps(*ref, targets, scale, softcap)
    torch.testing.assert_close(got.double(), want, rtol=1e-6, atol=1e-6)
    g = torch.randn(m).double()
    (got.double() * g).sum().backward()
    (want * g).sum().backward()
    for mine, theirs in zip((hidden, weight, bias), ref):
        torch.testing.assert_close(mine.grad.double(), theirs.grad, rtol=1e-5, atol=1e-5)

    # the same transform on given raw logits (the ZeRO-3 training path), one position per chunk
    raw = torch.nn.functional.linear(hidden, weight, bias).detach().requires_grad_()
    got = chunked_token_logps(raw[None], targets[None], chunk_bytes=1, scale=scale, softcap=softcap)[0]
    raw64 = raw.detach().double().requires_grad_()
    z = scale * raw64
    z = z if softcap is None else softcap * torch.tanh(z / softcap)
    want = torch.log_softmax(z, -1).gather(-1, targets[:, None]).squeeze(-1)
    torch.testing.assert_close(got.double(), want, rtol=1e-6, atol=1e-6)
    (got.double() * g).sum().backward()
    (want * g).sum().backward()
    torch.testing.assert_close(raw.grad.double(), raw64.grad, rtol=1e-5, atol=1e-5)


class _Counter:
    """Rows given to the fused head's projection and to the model's own head module."""

    def __init__(self, model, monkeypatch):
        self.fused, self.own = 0, 0
        real = fused_head.hidden_token_logps

        def counting(hidden, *args, **kwargs):
            self.fused += hidden.shape[0]
            return real(hidden, *args, **kwargs)

        monkeypatch.setattr(fused_head, "hidden_token_logps", counting)
        model.get_output_embeddings().register_forward_hook(self._own)

    def _own(self, module, args, output):
        self.own += args[0].reshape(-1, args[0].shape[-1]).shape[0]


@pytest.mark.parametrize("layout", ["padded", "packed"])
def test_the_head_projects_only_response_positions(monkeypatch, layout):
    model = build("gpt2")
    counter = _Counter(model, monkeypatch)
    collate = PairCollator(pad_token_id=0) if layout == "padded" else PackedPairCollator(pad_token_id=0)
    batch = collate(EXAMPLES)
    with torch.no_grad():
        forward_logps(model, batch)
    assert counter.fused == RESPONSE_TOKENS
    assert counter.own == batch["input_ids"].shape[0], "logits_to_keep=1: one position a row"
    counter.fused = counter.own = 0
    with torch.no_grad():
        forward_logps(model, batch, head="logits")
    assert counter.fused == 0 and counter.own == batch["input_ids"].numel(), "full logits: every position"


def test_the_reference_pass_projects_only_response_positions(monkeypatch):
    """The reference pass over the 5 pairs in batches of 2: 31 response rows, 10 sequences."""
    model = build("gpt2")
    counter = _Counter(model, monkeypatch)
    values = compute_reference_logps(model, EXAMPLES, pad_token_id=0, batch_size=2)
    assert len(values) == len(EXAMPLES)
    assert counter.fused == RESPONSE_TOKENS and counter.own == 2 * len(EXAMPLES)


def _rescaled_llama():
    """A Llama that scales its logits in ``forward`` with no config field saying so."""
    from transformers import LlamaForCausalLM

    class RescaledLlama(LlamaForCausalLM):
        def forward(self, *args, logits_to_keep=0, **kwargs):
            out = super().forward(*args, logits_to_keep=logits_to_keep, **kwargs)
            out.logits = out.logits * 3.0
            return out

    base = build("llama")
    model = RescaledLlama(base.config).eval()
    model.load_state_dict(base.state_dict())
    return model


def test_an_unknown_post_head_transform_falls_back_to_full_logits(caplog):
    model = _rescaled_llama()
    batch = PairCollator(pad_token_id=0)(EXAMPLES)
    assert fused_head_supported(model), "statically it looks like a plain Linear head"
    with torch.no_grad(), caplog.at_level(logging.WARNING, logger="prefexp.engine.fused_head"):
        auto, _ = forward_logps(model, batch)
        full, _ = forward_logps(model, batch, head="logits")
    torch.testing.assert_close(auto, full, rtol=1e-5, atol=1e-5)
    assert not fused_head_supported(model)
    assert sum("full-logits path" in r.message for r in caplog.records) == 1
    with pytest.raises(ValueError, match="not supported"):
        forward_logps(model, batch, head="fused")


def test_fused_head_refused_on_a_fresh_mismatching_model():
    with pytest.raises(ValueError, match="does not reproduce"):
        with torch.no_grad():
            forward_logps(_rescaled_llama(), PairCollator(pad_token_id=0)(EXAMPLES), head="fused")


@pytest.mark.parametrize("softcap", [None, SOFTCAP])
def test_gemma3_multimodal_follows_what_its_forward_does(softcap):
    """Gemma3ForConditionalGeneration reads no soft-cap in its forward: without one in its text
    config it is fused; with one, the first-use check sees the fused head's soft-capped logits
    differ from the model's and it falls back. Either way the log-probs are the model's own."""
    model = build_gemma3_multimodal(softcap)
    batch = PairCollator(pad_token_id=0)(EXAMPLES)
    with torch.no_grad():
        auto, _ = forward_logps(model, batch)
        full, _ = forward_logps(model, batch, head="logits")
    assert CHECKED[model] is (softcap is None)
    torch.testing.assert_close(auto, full, rtol=1e-5, atol=1e-5)


def test_the_check_passes_under_bf16_autocast():
    """bf16 mixed precision: the model's own bf16 logits and the fused head's agree within the
    check's tolerance, so the fused path stays on (and is close to the float32 numbers)."""
    model = build("gemma3")
    batch = PairCollator(pad_token_id=0)(EXAMPLES)
    with torch.no_grad():
        want, _ = forward_logps(build("gemma3"), batch, head="logits")
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got, _ = forward_logps(model, batch)
    assert CHECKED[model]
    torch.testing.assert_close(got, want, rtol=2e-2, atol=0.1)


def test_a_peft_adapter_on_the_head_is_not_fused():
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(build("llama"), LoraConfig(r=2, target_modules=["lm_head", "q_proj"]))
    assert not fused_head_supported(model)
    plain = get_peft_model(build("llama"), LoraConfig(r=2, target_modules=["q_proj"]))
    assert fused_head_supported(plain)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("arch", ARCHS)
def test_fused_head_on_cuda_under_bf16_and_tf32(arch, monkeypatch):
    """On a GPU with TF32 and bf16 autocast (the recipes' settings) the first-use check passes and
    the fused log-probs stay within bf16 rounding of the float32 full-logits ones."""
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", True)
    batch = {k: v.cuda() for k, v in PairCollator(pad_token_id=0)(EXAMPLES).items()}
    model = build(arch).cuda()
    with torch.no_grad():
        want, _ = forward_logps(build(arch).cuda(), batch, head="logits")
        with torch.autocast("cuda", dtype=torch.bfloat16):
            got, _ = forward_logps(model, batch)
    assert CHECKED[model], arch
    torch.testing.assert_close(got, want, rtol=2e-2, atol=0.1)
