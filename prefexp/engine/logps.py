"""Per-sequence log-probabilities of the response tokens."""
from __future__ import annotations

import torch
from torch import Tensor


def token_logps(logits: Tensor, input_ids: Tensor) -> Tensor:
    """Log-prob of each next token [N, T-1] from logits [N, T, V].

    Uses ``gather - logsumexp`` instead of a full log_softmax so the [N, T, V] log-prob tensor is
    never materialised next to the logits.
    """
    logits = logits[:, :-1, :].float()  # [N, T-1, V]; position t predicts token t+1
    targets = input_ids[:, 1:].unsqueeze(-1)  # [N, T-1, 1]
    return logits.gather(-1, targets).squeeze(-1) - torch.logsumexp(logits, dim=-1)  # [N, T-1]


def sequence_logps(logits: Tensor, input_ids: Tensor, response_mask: Tensor) -> tuple[Tensor, Tensor]:
    """(summed response log-probs [N], response lengths [N]); prompt and padding masked out."""
    mask = response_mask[:, 1:].to(logits.dtype if logits.is_floating_point() else torch.float32)  # [N, T-1]
    per_token = token_logps(logits, input_ids)  # [N, T-1]
    return (per_token * mask).sum(-1), mask.sum(-1)


def forward_logps(model, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """One forward over the concatenated batch; returns ([2B] summed logps, [2B] lengths)."""
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False)
    return sequence_logps(out.logits, batch["input_ids"], batch["response_mask"])
