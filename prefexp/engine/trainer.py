"""The preference trainer: transformers.Trainer with a loss object instead of a loss name.

Everything else (optimizer, schedule, gradient accumulation, bf16, DeepSpeed, checkpoint/resume,
W&B reporting) stays the Trainer's. ``compute_loss`` runs one concatenated forward, builds only
the inputs the loss declares through its capability flags, and stores TRL-named diagnostics
that ``log`` averages over the logging window.
"""
from __future__ import annotations

from collections import defaultdict

import torch
from transformers import Trainer

from .logps import forward_logps


class PreferenceTrainer(Trainer):
    def __init__(self, *args, preference_loss, **kwargs):
        super().__init__(*args, **kwargs)
        self.preference_loss = preference_loss
        # The loss is already a batch mean; the Trainer must still divide by accumulation steps.
        self.model_accepts_loss_kwargs = False
        self._stored: dict[str, list[float]] = defaultdict(list)

    def loss_inputs(self, batch: dict, logps: torch.Tensor, lengths: torch.Tensor) -> dict:
        n = logps.shape[0] // 2  # packed batches have fewer rows than 2B
        loss = self.preference_loss
        inputs = {"policy_chosen_logps": logps[:n], "policy_rejected_logps": logps[n:],
                  "chosen_lengths": lengths[:n], "rejected_lengths": lengths[n:]}
        if loss.needs_reference:
            inputs["reference_chosen_logps"] = batch["reference_chosen_logps"].to(logps.dtype)
            inputs["reference_rejected_logps"] = batch["reference_rejected_logps"].to(logps.dtype)
        if loss.needs_margins or loss.routes_pairs:
            if "margins" in batch:
                inputs["margins"] = batch["margins"].to(logps.dtype)
        if loss.routes_pairs and "difficult" in batch:
            inputs["difficult"] = batch["difficult"]
        return inputs

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        logps, lengths = forward_logps(model, inputs)  # [2B], [2B]
        loss_inputs = self.loss_inputs(inputs, logps, lengths)
        out = self.preference_loss(**loss_inputs)
        losses = out.losses
        if "pair_weights" in inputs:  # the router's weight action; 1.0 everywhere otherwise
            losses = losses * inputs["pair_weights"].to(losses.dtype)
        loss = losses.mean()
        self._store(out, loss_inputs)
        return (loss, out) if return_outputs else loss

    @torch.no_grad()
    def _store(self, out, inputs: dict) -> None:
        s = self._stored
        s["rewards/chosen"].append(out.chosen_rewards.mean().item())
        s["rewards/rejected"].append(out.rejected_rewards.mean().item())
        margins = out.chosen_rewards - out.rejected_rewards
        s["rewards/margins"].append(margins.mean().item())
        s["rewards/accuracies"].append((margins > 0).float().mean().item())
        s["logps/chosen"].append(inputs["policy_chosen_logps"].mean().item())
        s["logps/rejected"].append(inputs["policy_rejected_logps"].mean().item())
        if "difficult" in inputs:
            difficult = inputs["difficult"]
            s["route/sft_fraction"].append(difficult.float().mean().item())
            # split by route, so likelihood displacement on difficult pairs is visible
            for name, mask in (("difficult", difficult), ("easy", ~difficult)):
                if mask.any():
                    s[f"logps/chosen/{name}"].append(inputs["policy_chosen_logps"][mask].mean().item())
                    s[f"logps/rejected/{name}"].append(inputs["policy_rejected_logps"][mask].mean().item())
        for key, value in out.metrics.items():
            if key == "route/sft_fraction" and "difficult" in inputs:
                continue  # already recorded from the router's mask
            s[key].append(float(value))

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._stored:  # training logs only, not the final summary
            for key, values in self._stored.items():
                logs[key] = sum(values) / len(values)
            self._stored.clear()
        super().log(logs, start_time)
