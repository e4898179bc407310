"""Greedy generation on sandbox prompts and its mean gold score (the sandbox's quality number)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence, Union

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from .task import gold_score
from .tokenizer import render_prompt


@torch.no_grad()
def generate_responses(model: PreTrainedModel, tokenizer, prompts: Sequence[str], max_new_tokens: int = 64,
                       batch_size: int = 64) -> list[str]:
    """Greedy answers of ``model`` to one-turn ``prompts``, via the tokenizer's chat template.

    Batches are left-padded (the generated tokens then start at the same column for every row);
    special tokens are dropped and whitespace stripped from the decoded text, as the evaluation
    stage's HF backend does.
    """
    was_training = model.training
    model.eval()
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    device = next(model.parameters()).device
    out: list[str] = []
    try:
        for start in range(0, len(prompts), batch_size):
            texts = [render_prompt(tokenizer, p) for p in prompts[start:start + batch_size]]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
            new = gen[:, enc["input_ids"].shape[1]:]  # [B, <= max_new_tokens]
            out.extend(t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True))
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return out


def mean_gold_score(model_path: Union[str, Path, PreTrainedModel], prompts: Sequence[str], max_new_tokens: int = 64,
                    batch_size: int = 64, tokenizer=None) -> float:
    """Mean ``gold_score`` (1..10) of greedy answers to ``prompts``.

    ``model_path`` is a saved model directory (its tokenizer is loaded from there too) or an
    already loaded model, in which case ``tokenizer`` is required.
    """
    if not prompts:
        raise ValueError("mean_gold_score needs at least one prompt")
    if isinstance(model_path, (str, Path)):
        tokenizer = tokenizer or AutoTokenizer.from_pretrained(model_path)
        model = AutoModelForCausalLM.from_pretrained(model_path)
    elif tokenizer is None:
        raise ValueError("mean_gold_score: pass the tokenizer along with a loaded model")
    else:
        model = model_path
    answers = generate_responses(model, tokenizer, prompts, max_new_tokens, batch_size)
    return sum(gold_score(p, a) for p, a in zip(prompts, answers)) / len(prompts)
