"""Concatenated batches: response-only masks, and log-probs equal to per-sequence forwards."""
from __future__ import annotations

import math

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from prefexp.engine.batching import PairCollator
from prefexp.engine.logps import forward_logps, sequence_logps

EXAMPLES = [
    {"index": 7, "prompt_ids": [1, 5, 6], "chosen_ids": [7, 8, 2], "rejected_ids": [9, 2], "margins": 1.5, "difficult": False},
    {"index": 3, "prompt_ids": [1, 4], "chosen_ids": [10, 11, 12, 2], "rejected_ids": [13, 2], "margins": 0.0, "difficult": True},
]


def test_collator_layout_and_masks():
    batch = PairCollator(pad_token_id=0)(EXAMPLES)
    assert batch["input_ids"].shape == (4, 6)  # [2B, T]: chosen rows then rejected rows
    assert batch["input_ids"][0].tolist() == [1, 5, 6, 7, 8, 2]
    assert batch["input_ids"][3].tolist() == [1, 4, 13, 2, 0, 0]
    assert batch["response_mask"][0].tolist() == [False, False, False, True, True, True]
    assert batch["response_mask"][3].tolist() == [False, False, True, True, False, False]
    assert batch["attention_mask"][3].tolist() == [1, 1, 1, 1, 0, 0]
    assert batch["index"].tolist() == [7, 3] and batch["difficult"].tolist() == [False, True]
    assert batch["margins"].tolist() == [1.5, 0.0]


def test_sequence_logps_by_hand():
    # vocabulary of 2, uniform logits except one position: every token log-prob is log(1/2)
    logits = torch.zeros(1, 4, 2)
    logits[0, 2] = torch.tensor([0.0, math.log(3.0)])  # predicts token 3 with p(1) = 3/4
    input_ids = torch.tensor([[0, 1, 0, 1]])
    response_mask = torch.tensor([[False, False, True, True]])
    total, length = sequence_logps(logits, input_ids, response_mask)
    torch.testing.assert_close(total, torch.tensor([math.log(0.5) + math.log(0.75)]))
    assert length.tolist() == [2.0]


def test_padded_batch_equals_unpadded_single_forwards():
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=16, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=4)).eval()
    batch = PairCollator(pad_token_id=0)(EXAMPLES)
    with torch.no_grad():
        logps, lengths = forward_logps(model, batch)
        for row, start in [(EXAMPLES[0]["prompt_ids"] + EXAMPLES[0]["chosen_ids"], 3),
                           (EXAMPLES[1]["prompt_ids"] + EXAMPLES[1]["rejected_ids"], 2)]:
            ids = torch.tensor([row])
            mask = torch.zeros_like(ids, dtype=torch.bool)
            mask[0, start:] = True
            single, _ = sequence_logps(model(input_ids=ids).logits, ids, mask)
            expected_row = 0 if start == 3 else 3
            torch.testing.assert_close(logps[expected_row], single[0], rtol=1e-5, atol=1e-5)
    assert lengths.tolist() == [3.0, 4.0, 2.0, 2.0]


def test_mean_logits_of_every_head_path_equal_the_full_logits_mean():
    """TRL's logits/chosen input: per sequence, the sum over response positions of the logits'
    vocabulary mean. Hand reference from the full [N, T, V] logits (position t predicts t+1);
    the fused head (h . mean(W), no logits), the logits path and the packed layout must agree."""
    from prefexp.engine.packing import PackedPairCollator

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=16, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=4,
                                         attn_implementation="sdpa")).eval()
    batch = PairCollator(pad_token_id=0)(EXAMPLES)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        want = (logits[:, :-1].mean(-1) * batch["response_mask"][:, 1:]).sum(-1)  # [2B]
        for head in ("fused", "logits"):
            got: dict = {}
            forward_logps(model, batch, head=head, mean_logits=got)
            torch.testing.assert_close(got["sums"], want, rtol=1e-5, atol=1e-5)
        packed: dict = {}
        forward_logps(model, PackedPairCollator(pad_token_id=0)(EXAMPLES), head="fused", mean_logits=packed)
        torch.testing.assert_close(packed["sums"], want, rtol=1e-5, atol=1e-5)
    assert want.abs().min() > 1e-3  # not a vacuous zero
