"""The preference trainer: transformers.Trainer with a loss object instead of a loss name.

Everything else (optimizer, schedule, gradient accumulation, bf16, DeepSpeed, checkpoint/resume,
W&B reporting) stays the Trainer's. ``compute_loss`` runs one concatenated forward, builds only
the inputs the loss declares through its capability flags, and stores TRL-named diagnostics
that ``log`` averages over the logging window.

Two reliability hooks: checkpoints are saved beside and renamed into place (``_save_checkpoint``,
engine/checkpoints.py), and a NaN / inf loss or gradient norm stops the run or skips the batch
(``compute_loss`` and ``_get_grad_norm``, engine/nonfinite.py).
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from transformers import Trainer
from transformers.trainer_utils import rotate_checkpoints

from .artifacts import LOSS_STATE
from .checkpoints import newest_complete_checkpoint, pause_for_tests, publish, staging_dir, writing_checkpoint
from .groups import dense_groups
from .logps import forward_logps, forward_token_logps
from .metric_window import MetricWindow
from .nonfinite import NonFiniteGuard, NonFiniteStop, is_finite
from .stages import staged_scheduler

log = logging.getLogger(__name__)


class PreferenceTrainer(Trainer):
    def __init__(self, *args, preference_loss, on_nonfinite: str = "stop", lr_stages=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.preference_loss = preference_loss
        self.lr_stages = lr_stages  # curriculum.stages: per-stage schedules (engine/stages.py), or None
        # The loss is already a batch mean; the Trainer must still divide by accumulation steps.
        self.model_accepts_loss_kwargs = False
        self._stored = MetricWindow()
        self.nonfinite = NonFiniteGuard(on_nonfinite)
        self._saving = False  # inside _save_checkpoint: the Trainer writes into the staging dir
        self._stored_eval = MetricWindow()  # held-out batches (model.eval())

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if self.lr_stages is None or self.lr_scheduler is not None:
            return super().create_scheduler(num_training_steps, optimizer)
        self.lr_scheduler = staged_scheduler(optimizer if optimizer is not None else self.optimizer, self.lr_stages)
        self._created_lr_scheduler = True
        return self.lr_scheduler

    def loss_inputs(self, batch: dict, logps: torch.Tensor, lengths: torch.Tensor) -> dict:
        if "group_mask" in batch:
            return self.group_inputs(batch, logps, lengths)
        n = logps.shape[0] // 2  # packed batches have fewer rows than 2B
        inputs = {"policy_chosen_logps": logps[:n], "policy_rejected_logps": logps[n:],
                  "chosen_lengths": lengths[:n], "rejected_lengths": lengths[n:]}
        self._add_pair_extras(batch, inputs, logps.dtype)
        return inputs

    def group_inputs(self, batch: dict, logps: torch.Tensor, lengths: torch.Tensor) -> dict:
        """K responses per prompt: group_* [B, K] plus the pair's own chosen / rejected slots."""
        group_logps, group_lengths = dense_groups(logps, batch), dense_groups(lengths, batch)  # [B, K]
        rows = torch.arange(group_logps.shape[0], device=logps.device)
        chosen, rejected = batch["chosen_slot"].to(logps.device), batch["rejected_slot"].to(logps.device)
        inputs = {"group_logps": group_logps, "group_lengths": group_lengths,
                  "group_positive": batch["group_positive"], "group_mask": batch["group_mask"],
                  "policy_chosen_logps": group_logps[rows, chosen], "policy_rejected_logps": group_logps[rows, rejected],
                  "chosen_lengths": group_lengths[rows, chosen], "rejected_lengths": group_lengths[rows, rejected]}
        if "group_reference_logps" in batch:
            inputs["group_reference_logps"] = batch["group_reference_logps"].to(logps.dtype)
        self._add_pair_extras(batch, inputs, logps.dtype)
        return inputs

    def _add_pair_extras(self, batch: dict, inputs: dict, dtype: torch.dtype) -> None:
        loss = self.preference_loss
        if loss.needs_reference and "reference_chosen_logps" in batch:
            inputs["reference_chosen_logps"] = batch["reference_chosen_logps"].to(dtype)
            inputs["reference_rejected_logps"] = batch["reference_rejected_logps"].to(dtype)
        if loss.needs_margins or loss.routes_pairs:
            if "margins" in batch:
                inputs["margins"] = batch["margins"].to(dtype)
        if loss.routes_pairs and "difficult" in batch:
            inputs["difficult"] = batch["difficult"]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        means = None if "group_mask" in inputs else {}  # TRL's logits/* are defined on pairs
        if "chosen_token_mask" in inputs:  # token cleaning: the SFT terms need per-token log-probs
            logps, lengths, per_token = forward_token_logps(model, inputs, mean_logits=means)  # [2B], [2B], [2B, T-1]
        else:
            logps, lengths = forward_logps(model, inputs, mean_logits=means)  # [2B] (or [N] rows of groups), [2B]
        loss_inputs = self.loss_inputs(inputs, logps, lengths)
        if means and "sums" in means:
            self._store_mean_logits(means["sums"], lengths, self._stored if model.training else self._stored_eval)
        if "chosen_token_mask" in inputs:
            n = inputs["chosen_token_mask"].shape[0]
            loss_inputs["chosen_token_logps"] = per_token[:n]
            loss_inputs["chosen_token_mask"] = inputs["chosen_token_mask"]
        if not model.training and self.preference_loss.is_stateful:
            # held-out batches must not move running statistics or sampling state (beta-DPO, AlphaDPO)
            state = self.preference_loss.state_dict()
            out = self.preference_loss(**loss_inputs)
            self.preference_loss.load_state_dict(state)
        else:
            out = self.preference_loss(**loss_inputs)
        losses = out.losses
        if "pair_weights" in inputs:  # the router's weight action; 1.0 everywhere otherwise
            losses = losses * inputs["pair_weights"].to(losses.dtype)
        loss = losses.mean()
        if model.training:
            self._check_loss(inputs, loss)
        self._store(out, loss_inputs, self._stored if model.training else self._stored_eval)
        return (loss, out) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """Held-out batches: the training objective, no logits (its metrics are stored as in training)."""
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    @staticmethod
    @torch.no_grad()
    def _store_mean_logits(sums: torch.Tensor, lengths: torch.Tensor, s: MetricWindow) -> None:
        """TRL's ``logits/chosen`` / ``logits/rejected``: the vocabulary-mean logit averaged over
        the response tokens of the micro-batch's chosen (rejected) sequences."""
        n = sums.shape[0] // 2
        for name, part in (("chosen", slice(0, n)), ("rejected", slice(n, None))):
            s.add(f"logits/{name}", sums[part].sum() / lengths[part].sum().clamp(min=1))

    @torch.no_grad()
    def _store(self, out, inputs: dict, s: MetricWindow) -> None:
        """This micro-batch's scalars, kept on the device until the logging step (metric_window.py)."""
        s.add("rewards/chosen", out.chosen_rewards.mean())
        s.add("rewards/rejected", out.rejected_rewards.mean())
        margins = out.chosen_rewards - out.rejected_rewards
        s.add("rewards/margins", margins.mean())
        s.add("rewards/accuracies", (margins > 0).float().mean())
        s.add("logps/chosen", inputs["policy_chosen_logps"].mean())
        s.add("logps/rejected", inputs["policy_rejected_logps"].mean())
        if "difficult" in inputs:
            difficult = inputs["difficult"]
            s.add("route/sft_fraction", difficult.float().mean())
            # split by route, so likelihood displacement on difficult pairs is visible
            for name, mask in (("difficult", difficult), ("easy", ~difficult)):
                s.add_masked_mean(f"logps/chosen/{name}", inputs["policy_chosen_logps"], mask)
                s.add_masked_mean(f"logps/rejected/{name}", inputs["policy_rejected_logps"], mask)
                s.add_masked_mean(f"rewards/accuracies/{name}", (margins > 0).float(), mask)
                s.add_masked_mean(f"rewards/margins/{name}", margins, mask)
                s.add_masked_mean(f"loss/{name}", out.losses, mask)
        for key, value in out.metrics.items():
            if key == "route/sft_fraction" and "difficult" in inputs:
                continue  # already recorded from the router's mask
            s.add(key, value)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._stored:  # training logs only, not the final summary
            logs.update(self._stored.means())
        if "loss" in logs and self.nonfinite.mode == "skip":
            logs["nonfinite/skipped"] = len(self.nonfinite.skipped)  # cumulative: optimizer steps skipped so far
        if "eval_loss" in logs and self._stored_eval:  # one evaluation: TRL's eval_* names
            logs.update({f"eval_{key}": value for key, value in self._stored_eval.means().items()})
        super().log(logs, start_time)

    # --- non-finite guard -------------------------------------------------------------------------
    def _check_loss(self, inputs: dict, loss: torch.Tensor) -> None:
        """Per micro-batch: remember its rows and whether its loss is finite (stop mode: checked
        before the optimizer applies the step)."""
        self.nonfinite.see_micro_batch(inputs["index"] if "index" in inputs else [], loss)
        # Under DeepSpeed the backward applies the step: check here (a host sync per micro-batch).
        # Otherwise ``_get_grad_norm`` stops on the step's loss flag, still before optimizer.step().
        if self.nonfinite.mode == "stop" and self.is_deepspeed_enabled and not is_finite(loss):
            self._stop_nonfinite("loss")

    def _get_grad_norm(self, model, grad_norm=None):
        """Called once per optimizer step, after the backward(s), before ``optimizer.step()``."""
        grad_norm = super()._get_grad_norm(model, grad_norm=grad_norm)
        what = self.nonfinite.problem(grad_norm)
        if what and self.nonfinite.mode == "stop":
            self._stop_nonfinite(what)
        if what:  # skip: without gradients the optimizer leaves weights and moments as they are
            step = self.state.global_step + 1
            self.nonfinite.record_skip(step, what)
            model.zero_grad(set_to_none=True)
            log.warning("non-finite %s at step %d (dataset rows index=%s): batch skipped, no optimizer update "
                        "(%d skipped so far)", what, step, self.nonfinite.step_rows, len(self.nonfinite.skipped))
        self.nonfinite.next_step()
        return grad_norm

    def _stop_nonfinite(self, what: str):
        raise NonFiniteStop(self.state.global_step + 1, what, list(self.nonfinite.step_rows),
                            str(newest_complete_checkpoint(self.args.output_dir) or "") or None)

    # --- atomic checkpoints -----------------------------------------------------------------------
    def _get_output_dir(self, trial) -> str:
        output_dir = super()._get_output_dir(trial)
        return str(staging_dir(output_dir)) if self._saving else output_dir

    def _save_checkpoint(self, model, trial) -> None:
        """The Trainer's save, written into ``<output>/.saving/checkpoint-N`` by every rank, then
        renamed to ``<output>/checkpoint-N`` by rank 0 once all ranks are done (then rotation)."""
        output_dir = Path(super()._get_output_dir(trial))
        name = f"checkpoint-{self.state.global_step}"
        # A finite gradient times a huge learning rate can still overflow a weight to inf; such a
        # checkpoint would poison every resume. (ZeRO-3 placeholders are empty: checked as finite.)
        if not all(torch.isfinite(p).all() for p in model.parameters()):
            raise NonFiniteStop(self.state.global_step, "weights after the update", list(self.nonfinite.previous_rows),
                                str(newest_complete_checkpoint(output_dir) or "") or None)
        staged = staging_dir(output_dir) / name
        self._saving = True
        with writing_checkpoint(staged, self.state.global_step, output_dir):  # a full disk: one error line
            try:
                super()._save_checkpoint(model, trial)  # its own rotation runs inside .saving: a no-op
            finally:
                self._saving = False
            if self.args.should_save and self.preference_loss.is_stateful:  # running statistics travel along
                torch.save(self.preference_loss.state_dict(), staged / LOSS_STATE)
        pause_for_tests(self.state.global_step)
        self.accelerator.wait_for_everyone()  # every rank's shards are written
        if self.args.should_save:
            publish(staged, output_dir / name)
            rotate_checkpoints(output_dir=str(output_dir), save_total_limit=self.args.save_total_limit,
                               best_model_checkpoint=self.state.best_model_checkpoint, use_mtime=False)
        self.accelerator.wait_for_everyone()  # nobody reads checkpoint-N before it exists
