"""Token Cleaning (methods.md 3.2): scores, selection, the masked NLL, and the cached pipeline.

Hand-derived values (the spec's sanity checks):
* scores [3, -1, 2, 0.5, 0], k = 0.6: floor(5 * 0.6) = 3 tokens kept, {3, 2, 0.5} -> mask [1, 0, 1, 1, 0].
* k = 1.0 keeps every token, so the cleaned loss equals standard (per-sequence mean) SFT.
* identical models: every score 0; tie-break = earlier position, then lower sample index.
* sign: log p_ref > log p_base -> positive score.
* token NLLs 1.0 and 3.0 with only the first kept -> loss 1.0 (3.0 -> no; mean of both would be 2.0).
"""
from __future__ import annotations

import math

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from prefexp.difficulty.token_cleaning import masked_token_nll, select_tokens, token_scores
from prefexp.engine.batching import PairCollator, scatter_token_mask
from prefexp.engine.token_masks import (
    cached_clean_token_masks,
    chosen_token_logps,
    clean_token_masks,
    response_token_scores,
)
from prefexp.engine.logps import token_logps
from prefexp.losses.base import sequence_mean_nll
from prefexp.losses.mixdpo import MixDPOLoss

EXAMPLES = [  # tokenize_pairs layout; index is the original row (not the list position)
    {"index": 7, "prompt_ids": [1, 5, 6], "chosen_ids": [7, 8, 2], "rejected_ids": [9, 2]},
    {"index": 3, "prompt_ids": [1, 4], "chosen_ids": [10, 11, 12, 2], "rejected_ids": [13, 2]},
    {"index": 5, "prompt_ids": [], "chosen_ids": [9, 3, 2], "rejected_ids": [4, 2]},  # no prompt: 1st token unscored
]


def tiny_llama(seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=16, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2)
    return LlamaForCausalLM(config).eval()


def test_spec_example_keeps_top_three():
    scores = torch.tensor([3.0, -1.0, 2.0, 0.5, 0.0])
    for level in ("global", "sample"):
        (keep,) = select_tokens([scores], keep_fraction=0.6, level=level)
        assert keep.tolist() == [True, False, True, True, False]
        assert set(scores[keep].tolist()) == {3.0, 2.0, 0.5}


def test_keep_all_equals_standard_sft():
    scores = [torch.tensor([0.3, -2.0, 1.0]), torch.tensor([5.0, 5.0])]
    for level in ("global", "sample"):
        assert all(k.all() for k in select_tokens(scores, keep_fraction=1.0, level=level))
    token_lp = torch.tensor([[-1.0, -2.0, -0.5], [-3.0, -1.0, 0.0]])  # [B, T]; row 2 has 2 tokens
    response = torch.tensor([[1, 1, 1], [1, 1, 0]])
    keep = torch.tensor([[1, 1, 1], [1, 1, 0]])  # k = 1.0 keeps every response token
    seq_logps, lengths = (token_lp * response).sum(-1), response.sum(-1)
    torch.testing.assert_close(masked_token_nll(token_lp, keep), sequence_mean_nll(seq_logps, lengths))  # [3.5/3, 2]
    torch.testing.assert_close(masked_token_nll(token_lp, keep, reduction="token"), torch.tensor(7.5 / 5))
    # MixDPO's SFT branch gives the same value with and without the full mask
    inputs = dict(policy_chosen_logps=seq_logps, policy_rejected_logps=seq_logps - 1, chosen_lengths=lengths,
                  rejected_lengths=lengths, reference_chosen_logps=seq_logps, reference_rejected_logps=seq_logps,
                  difficult=torch.tensor([True, True]))
    plain = MixDPOLoss()(**inputs).losses
    cleaned = MixDPOLoss()(**inputs, chosen_token_logps=token_lp, chosen_token_mask=keep.float()).losses
    torch.testing.assert_close(plain, cleaned)


def test_only_kept_token_counts():
    token_lp = torch.tensor([[-1.0, -3.0]])  # NLLs 1.0 and 3.0
    keep = torch.tensor([[1.0, 0.0]])
    torch.testing.assert_close(masked_token_nll(token_lp, keep), torch.tensor([1.0]))
    torch.testing.assert_close(masked_token_nll(token_lp, torch.ones(1, 2)), torch.tensor([2.0]))
    loss = MixDPOLoss()(policy_chosen_logps=torch.tensor([-4.0]), policy_rejected_logps=torch.tensor([-5.0]),
                        chosen_lengths=torch.tensor([2]), rejected_lengths=torch.tensor([2]),
                        reference_chosen_logps=torch.tensor([-4.0]), reference_rejected_logps=torch.tensor([-5.0]),
                        difficult=torch.tensor([True]), chosen_token_logps=token_lp, chosen_token_mask=keep)
    torch.testing.assert_close(loss.losses, torch.tensor([1.0]))


def test_sign_and_mask():
    """ref log-prob -0.5 vs base -2.0 -> +1.5; the reverse -> -1.5; prompt/padding -> 0."""
    base = torch.tensor([[-9.0, -2.0, -0.5, -1.0]])
    ref = torch.tensor([[-1.0, -0.5, -2.0, -1.0]])
    mask = torch.tensor([[False, True, True, False]])
    torch.testing.assert_close(token_scores(base, ref, mask), torch.tensor([[0.0, 1.5, -1.5, 0.0]]))


def test_identical_models_score_zero_and_tie_break():
    model = tiny_llama(0)
    scores = response_token_scores(model, model, EXAMPLES, pad_token_id=0, batch_size=2)
    assert all(torch.equal(s, torch.zeros(len(s))) for s in scores.values())
    masks = clean_token_masks(model, model, EXAMPLES, pad_token_id=0, batch_size=2, keep_fraction=0.6)
    # samples by index: 3 (4 tokens), 5 (3), 7 (3) -> 10 tokens, budget floor(6.0) = 6.
    # all scores 0 -> position-major: t=0 of samples 3,5,7; t=1 of 3,5,7 -> the first two tokens of each
    assert masks == {3: [1, 1, 0, 0], 5: [1, 1, 0], 7: [1, 1, 0]}
    sample = clean_token_masks(model, model, EXAMPLES, pad_token_id=0, batch_size=2, keep_fraction=0.6,
                               level="sample")
    assert sample == {3: [1, 1, 0, 0], 5: [1, 0, 0], 7: [1, 0, 0]}  # floor(2.4) = 2, floor(1.8) = 1


def test_global_and_sample_levels_differ():
    scores = [torch.tensor([5.0, 4.0, 3.0]), torch.tensor([0.0, 0.0, 1.0])]
    assert [k.int().tolist() for k in select_tokens(scores, 0.5, "global")] == [[1, 1, 1], [0, 0, 0]]
    assert [k.int().tolist() for k in select_tokens(scores, 0.5, "sample")] == [[1, 0, 0], [0, 0, 1]]
    # ties across samples at the same position: lower sample index first
    ties = [torch.tensor([1.0, 1.0]), torch.tensor([1.0, 1.0])]
    assert [k.int().tolist() for k in select_tokens(ties, 0.75)] == [[1, 1], [1, 0]]


def test_floor_is_robust_to_float_products():
    assert 0.57 * 100 < 57  # 56.99999999999999
    (keep,) = select_tokens([torch.arange(100.0)], keep_fraction=0.57)
    assert int(keep.sum()) == 57 and keep[43:].all()
    assert int(select_tokens([torch.ones(7)], keep_fraction=0.0)[0].sum()) == 0
    with pytest.raises(ValueError, match="keep_fraction"):
        select_tokens([torch.ones(3)], keep_fraction=1.5)
    with pytest.raises(ValueError, match="level"):
        select_tokens([torch.ones(3)], level="batch")


def test_token_logps_align_with_sequence_logps():
    """Per-token chosen log-probs sum to the engine's summed response log-prob; an empty prompt's
    first token gets 0 (no context to predict it)."""
    from prefexp.engine.logps import forward_logps

    model = tiny_llama(1)
    per_token = chosen_token_logps(model, EXAMPLES, pad_token_id=0, batch_size=8)
    batch = PairCollator(pad_token_id=0)(EXAMPLES)
    with torch.no_grad():
        summed, _ = forward_logps(model, batch)
    for row, e in enumerate(EXAMPLES):
        assert len(per_token[e["index"]]) == len(e["chosen_ids"])
        torch.testing.assert_close(per_token[e["index"]].sum(), summed[row], rtol=1e-5, atol=1e-5)
    assert per_token[5][0].item() == 0.0


def test_positive_scores_where_reference_learned():
    """Base uniform over 16 tokens; reference = base + 3.0 on token 11's logit. Token 11 (sample 3,
    position 1) scores 3 - log(15 + e^3) + log 16 = 1.16 > 0, every other token loses mass (< 0), and
    with a budget of one token it is the one kept."""
    base = tiny_llama(2)
    with torch.no_grad():
        base.lm_head.weight.zero_()  # uniform next-token distribution everywhere
    ref = base
    logits_bias = torch.zeros(16)
    logits_bias[11] = 3.0

    class Biased(torch.nn.Module):  # ... except the reference prefers token 11
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, **kw):
            out = self.inner(**kw)
            out.logits = out.logits + logits_bias
            return out

    masks = clean_token_masks(base, Biased(ref), EXAMPLES, pad_token_id=0, batch_size=4, keep_fraction=0.1)
    assert masks[3] == [0, 1, 0, 0] and sum(map(sum, masks.values())) == 1  # floor(10 * 0.1) = 1
    expected = 3.0 - math.log(15 + math.exp(3.0)) + math.log(16)  # log p_ref(11) - log(1/16)
    scores = response_token_scores(base, Biased(ref), EXAMPLES, 0, 4)
    torch.testing.assert_close(scores[3][1], torch.tensor(expected), rtol=1e-5, atol=1e-5)
    assert (scores[3][[0, 2, 3]] < 0).all()  # every other token lost probability mass


def test_scatter_mask_matches_per_token_selection():
    """scatter_token_mask puts each example's flags under its response tokens in token_logps layout,
    so masked_token_nll on the batch equals the per-example kept-token mean."""
    model = tiny_llama(3)
    keep = {7: [1, 0, 1], 3: [0, 1, 1, 0], 5: [1, 1, 0]}
    batch = PairCollator(pad_token_id=0)(EXAMPLES)
    n = len(EXAMPLES)
    mask = scatter_token_mask([keep[e["index"]] for e in EXAMPLES], batch["response_mask"][:n])  # [B, T-1]
    with torch.no_grad():
        lp = token_logps(model(input_ids=batch["input_ids"][:n]).logits, batch["input_ids"][:n])  # [B, T-1]
    per_token = chosen_token_logps(model, EXAMPLES, 0, 8)
    got = masked_token_nll(lp, mask)
    for row, e in enumerate(EXAMPLES):
        flags = torch.tensor(keep[e["index"]], dtype=torch.float32)
        if not e["prompt_ids"]:
            flags[0] = 0.0  # the unpredictable first token has no column in token_logps
        want = -(per_token[e["index"]] * flags).sum() / flags.sum()
        torch.testing.assert_close(got[row], want, rtol=1e-5, atol=1e-5)


def test_cached_masks_reuse_scores(tmp_path):
    base, ref = tiny_llama(4), tiny_llama(5)
    base_dir, ref_dir = tmp_path / "base", tmp_path / "ref"
    base.save_pretrained(base_dir)
    ref.save_pretrained(ref_dir)
    calls = []

    def loader(model):
        def load():
            calls.append(model)
            return model
        return load

    first = cached_clean_token_masks(loader(base), str(base_dir), loader(ref), str(ref_dir), EXAMPLES, 0, 2,
                                     0.6, "global", tmp_path / "cache")
    assert len(calls) == 2 and first == clean_token_masks(base, ref, EXAMPLES, 0, 2, 0.6, "global")
    (cached,) = (tmp_path / "cache" / "token_scores").glob("*.pt")
    mtime = cached.stat().st_mtime_ns
    # another keep fraction and level: same scores file, no model loaded
    second = cached_clean_token_masks(loader(base), str(base_dir), loader(ref), str(ref_dir), EXAMPLES, 0, 2,
                                      1.0, "sample", tmp_path / "cache")
    assert len(calls) == 2 and cached.stat().st_mtime_ns == mtime
    assert second == {e["index"]: [1] * len(e["chosen_ids"]) for e in EXAMPLES}
    assert sum(map(sum, first.values())) == 6
