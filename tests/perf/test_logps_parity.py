"""The fast log-prob paths compute the same numbers as the plain ones.

* chunked log-softmax over given logits == float64 ``log_softmax(...).gather`` (values and grads);
* fused LM head on selected hidden states == float64 ``log_softmax(h W^T + b)`` (both backward
  variants: softmax kept from the forward, or recomputed chunk by chunk);
* on a tiny random Llama: fused head == full logits, and the shared-prompt packed layout gives the
  same per-sequence log-probs, lengths and parameter gradients as the padded layout.
"""
from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from prefexp.engine.batching import PairCollator
from prefexp.engine.fused_logps import chunked_token_logps, hidden_token_logps
from prefexp.engine.logps import forward_logps, fused_head_supported, sequence_logps
from prefexp.engine.packing import PackedPairCollator, tree_attention_mask

EXAMPLES = [  # varied lengths: padding in every layout, a 1-token prompt, short pairs that pack together
    {"index": 0, "prompt_ids": [1, 5, 6, 7, 8], "chosen_ids": [9, 10, 11, 2], "rejected_ids": [12, 2]},
    {"index": 1, "prompt_ids": [1], "chosen_ids": [13, 2], "rejected_ids": [14, 15, 16, 17, 18, 2]},
    {"index": 2, "prompt_ids": [1, 4, 4], "chosen_ids": [2], "rejected_ids": [19, 2]},
    {"index": 3, "prompt_ids": [1, 20, 21, 22, 23, 24, 25, 26], "chosen_ids": [27, 28, 29, 30, 31, 2],
     "rejected_ids": [3, 3, 3, 2]},
    {"index": 4, "prompt_ids": [1, 6], "chosen_ids": [7, 2], "rejected_ids": [8, 2]},
]


def reference_token_logps(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(logits.double(), dim=-1).gather(-1, targets[..., None]).squeeze(-1)


@pytest.mark.parametrize("chunk_bytes", [1, 64 * 2**20])  # one position per chunk, and one chunk
def test_chunked_logsoftmax_matches_float64(chunk_bytes):
    torch.manual_seed(0)
    logits = (3 * torch.randn(3, 7, 11)).requires_grad_()
    ids = torch.randint(0, 11, (3, 7))
    response_mask = torch.zeros(3, 7, dtype=torch.bool)
    response_mask[0, 3:] = True  # no padding
    response_mask[1, 2:5] = True  # two padding positions at the end
    response_mask[2, 5:6] = True  # a single response token
    got = chunked_token_logps(logits, ids[:, 1:], chunk_bytes=chunk_bytes)  # [3, 6]
    ref_logits = logits.detach().double().requires_grad_()
    want = reference_token_logps(ref_logits[:, :-1], ids[:, 1:])
    torch.testing.assert_close(got.double(), want, rtol=1e-6, atol=1e-6)
    weights = torch.randn(3, 6).double()
    (got.double() * weights).sum().backward()
    (want * weights).sum().backward()
    torch.testing.assert_close(logits.grad.double(), ref_logits.grad, rtol=1e-5, atol=1e-6)
    assert logits.grad[:, -1].abs().sum() == 0  # the last position predicts nothing

    total, length = sequence_logps(logits.detach(), ids, response_mask)
    mask = response_mask[:, 1:].double()
    torch.testing.assert_close(total.double(), (want.detach() * mask).sum(-1), rtol=1e-6, atol=1e-6)
    assert length.tolist() == [4.0, 3.0, 1.0]


def test_chunked_logsoftmax_bf16_logits():
    torch.manual_seed(1)
    logits = (4 * torch.randn(2, 5, 13)).to(torch.bfloat16)
    ids = torch.randint(0, 13, (2, 5))
    got = chunked_token_logps(logits, ids[:, 1:], chunk_bytes=1)
    torch.testing.assert_close(got.double(), reference_token_logps(logits[:, :-1], ids[:, 1:]), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("keep_probs_bytes", [0, 2**30])  # recompute in the backward / keep the softmax
@pytest.mark.parametrize("with_bias", [False, True])
def test_fused_head_matches_float64(keep_probs_bytes, with_bias):
    torch.manual_seed(2)
    m, h, v = 9, 6, 17
    hidden = torch.randn(m, h, requires_grad=True)
    weight = torch.randn(v, h, requires_grad=True)
    bias = torch.randn(v, requires_grad=True) if with_bias else None
    targets = torch.randint(0, v, (m,))
    got = hidden_token_logps(hidden, weight, bias, targets, chunk_bytes=4 * v * 4, keep_probs_bytes=keep_probs_bytes)
    ref = [t.detach().double().requires_grad_() for t in (hidden, weight)]
    ref_bias = bias.detach().double().requires_grad_() if with_bias else None
    want = reference_token_logps(torch.nn.functional.linear(ref[0], ref[1], ref_bias), targets)
    torch.testing.assert_close(got.double(), want, rtol=1e-6, atol=1e-6)
    g = torch.randn(m).double()
    (got.double() * g).sum().backward()
    (want * g).sum().backward()
    torch.testing.assert_close(hidden.grad.double(), ref[0].grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(weight.grad.double(), ref[1].grad, rtol=1e-5, atol=1e-5)
    if with_bias:
        torch.testing.assert_close(bias.grad.double(), ref_bias.grad, rtol=1e-5, atol=1e-5)


def test_tree_mask_by_hand():
    # one row: prompt p0 p1, chosen c0, rejected r0 r1, one pad
    seg = torch.tensor([[0, 0, 0, 0, 0, -1]])
    branch = torch.tensor([[0, 0, 1, 2, 2, 3]])
    mask = tree_attention_mask(seg, branch)[0, 0].int().tolist()
    assert mask == [[1, 0, 0, 0, 0, 0],   # p0
                    [1, 1, 0, 0, 0, 0],   # p1
                    [1, 1, 1, 0, 0, 0],   # c0 sees the prompt
                    [1, 1, 0, 1, 0, 0],   # r0 sees the prompt, not c0
                    [1, 1, 0, 1, 1, 0],   # r1
                    [0, 0, 0, 0, 0, 1]]   # pad sees only itself


def test_packed_collator_plan():
    batch = PackedPairCollator(pad_token_id=0)(EXAMPLES[:2])
    # segment 0 is 11 tokens wide, segment 1 is 9: two rows of width 11
    assert batch["input_ids"].shape == (2, 11)
    assert batch["position_ids"][0].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 5, 6]
    assert batch["response_lengths"].tolist() == [4.0, 2.0, 2.0, 6.0]
    # chosen of pair 0: predicted from positions 4 (last prompt token), 5, 6, 7
    first = batch["logp_sequences"] == 0
    assert batch["logp_positions"][first].tolist() == [4, 5, 6, 7]
    rejected = batch["logp_sequences"] == 2
    assert batch["logp_positions"][rejected].tolist() == [4, 9]  # r0 from the prompt, r1 from r0


def tiny_llama(attn: str = "sdpa") -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=40, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, attn_implementation=attn)
    return LlamaForCausalLM(config).double()


def _grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _run(model, batch, head="auto"):
    model.zero_grad()
    logps, lengths = forward_logps(model, batch, head=head)
    (logps * torch.linspace(0.5, 1.5, logps.shape[0], dtype=logps.dtype)).sum().backward()
    return logps.detach(), lengths, _grads(model)


def test_fused_head_equals_full_logits_on_llama():
    model = tiny_llama()
    assert fused_head_supported(model)
    batch = PairCollator(pad_token_id=0)(EXAMPLES)
    fused, fused_len, fused_grads = _run(model, batch, head="fused")
    full, full_len, full_grads = _run(model, batch, head="logits")
    torch.testing.assert_close(fused, full, rtol=1e-6, atol=1e-5, check_dtype=False)
    assert fused_len.tolist() == full_len.tolist()
    assert fused_grads.keys() == full_grads.keys()
    for name in full_grads:
        torch.testing.assert_close(fused_grads[name], full_grads[name], rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("pack", [True, False])
@pytest.mark.parametrize("head", ["fused", "logits"])
def test_packed_equals_padded_on_llama(attn, pack, head):
    model = tiny_llama(attn)
    padded, padded_len, padded_grads = _run(model, PairCollator(pad_token_id=0)(EXAMPLES), head="logits")
    packed_batch = PackedPairCollator(pad_token_id=0, pack=pack)(EXAMPLES)
    if pack:
        assert packed_batch["input_ids"].shape[0] < len(EXAMPLES)  # short pairs share a row
    packed, packed_len, packed_grads = _run(model, packed_batch, head=head)
    torch.testing.assert_close(packed, padded, rtol=1e-6, atol=1e-5, check_dtype=False)
    assert packed_len.tolist() == padded_len.tolist()
    for name in padded_grads:
        torch.testing.assert_close(packed_grads[name], padded_grads[name], rtol=1e-5, atol=1e-6, msg=name)
