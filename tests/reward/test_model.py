"""The Bradley-Terry loss by hand, the pooling rule, and an untrained model that does not separate."""
from __future__ import annotations

import math

import torch

from prefexp.engine.batching import PairCollator
from prefexp.engine.tokenize import tokenize_pairs
from prefexp.reward.model import (bradley_terry_loss, load_base_as_reward_model, mean_bt_loss, pair_rewards,
                                  pairwise_accuracy, score_pairs)
from tests.reward.conftest import fast_hparams, synthetic_pairs


def test_bradley_terry_loss_by_hand():
    """-log sigma(d): d = 0 -> ln 2 = 0.693147; d = 1 -> sp(-1) = 0.313262; d = -1 -> sp(1) = 1.313262.
    d(loss)/d(r_c) at d = 0 is -sigma(0)/B = -0.25 for B = 2; r_r gets +0.25."""
    r_c = torch.tensor([0.0, 1.0], requires_grad=True)
    r_r = torch.tensor([0.0, 0.0], requires_grad=True)
    loss = bradley_terry_loss(r_c, r_r)
    torch.testing.assert_close(loss, torch.tensor((math.log(2) + 0.313262) / 2), atol=1e-6, rtol=0)
    loss.backward()
    torch.testing.assert_close(r_c.grad[0], torch.tensor(-0.25))
    torch.testing.assert_close(r_r.grad[0], torch.tensor(0.25))
    torch.testing.assert_close(bradley_terry_loss(torch.tensor([-1.0]), torch.tensor([0.0])),
                               torch.tensor(1.313262), atol=1e-6, rtol=0)
    # shift invariance: only r_c - r_r matters
    torch.testing.assert_close(bradley_terry_loss(torch.tensor([5.0]), torch.tensor([4.0])), torch.tensor(0.313262),
                               atol=1e-6, rtol=0)


def test_reward_is_head_at_last_non_pad_token_and_padding_free(tiny_gpt2, tokenizer):
    """pad == eos for GPT-2: the reward is the head at the last *response* token (the appended EOS
    counts as padding), and a right-padded batch gives each row's unpadded reward."""
    model = load_base_as_reward_model(tiny_gpt2, tokenizer.pad_token_id, fast_hparams()).eval()
    pairs = synthetic_pairs(2)
    pairs[1].chosen = pairs[1].chosen + " and much longer than the rest, really"
    examples, _ = tokenize_pairs(pairs, tokenizer, 512, 256)
    batch = PairCollator(tokenizer.pad_token_id)(examples)
    with torch.no_grad():
        r_c, r_r = pair_rewards(model, batch)
        for i, e in enumerate(examples):
            ids = torch.tensor([e["prompt_ids"] + e["chosen_ids"]])
            hidden = model(input_ids=ids, output_hidden_states=True).hidden_states[-1]  # [1, T, 2] after ln_f
            last = ids.shape[1] - 2  # the token before the appended EOS
            expected = model.score(hidden[0, last]).squeeze()
            torch.testing.assert_close(r_c[i], expected, rtol=1e-5, atol=1e-6)
    assert r_r.shape == (2,)


def test_untrained_model_does_not_separate(tiny_gpt2, tokenizer):
    """Fresh head (seed 0): every margin is about -0.038, so accuracy 0 and BT loss 0.712 >= ln 2.
    What test_stage.py measures after training is therefore learned, not given by the init."""
    model = load_base_as_reward_model(tiny_gpt2, tokenizer.pad_token_id, fast_hparams())
    examples, _ = tokenize_pairs(synthetic_pairs(64), tokenizer, 512, 256)
    scores = score_pairs(model, examples, tokenizer.pad_token_id, batch_size=16)
    assert sorted(scores) == list(range(64))
    assert pairwise_accuracy(scores) < 0.5
    assert mean_bt_loss(scores) > math.log(2) - 0.005
