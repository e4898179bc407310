"""Every loss yaml in conf/loss, instantiated the way the entry point does (Hydra), checked for
the contract: shapes [B], finite values and gradients (also at extreme inputs: log-probs of
-1e4, all-equal inputs, zero-variance batches, log-probs of 0), detached rewards, the objective
``losses.mean()``, extra inputs ignored, and the capability flags. Also: the same stem in three
places (module <-> yaml <-> test file) and every module imports.
"""
from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from prefexp.losses.base import LossOutput, PreferenceLoss

REPO = Path(__file__).resolve().parents[2]
YAMLS = sorted((REPO / "conf" / "loss").glob("*.yaml"))
NAMES = [p.stem for p in YAMLS]
B, K = 6, 4

REFERENCE_FREE = {"sft", "simpo", "cpo", "orpo", "amapo", "maxneg_minpos", "smooth_maxneg_minpos"}
NEEDS_MARGINS = {"mixdpo", "madpo"}
NEEDS_GROUPS = {"maxneg_minpos", "smooth_maxneg_minpos"}
STATEFUL = {"beta_dpo", "alpha_dpo"}


def build(name: str) -> PreferenceLoss:
    cfg = OmegaConf.load(REPO / "conf" / "loss" / f"{name}.yaml")
    root = OmegaConf.merge({"tau": 0.5}, {"loss": cfg})  # mixdpo's tau: ${tau} needs the root
    return instantiate(root.loss)


def make_inputs(kind: str, dtype=torch.float64, seed: int = 0) -> tuple[dict, list[torch.Tensor]]:
    """All inputs any loss may read; returns them and the leaves that carry gradient."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 30, (B,), generator=g), torch.randint(1, 30, (B,), generator=g)
    group_lengths = torch.randint(1, 30, (B, K), generator=g)
    if kind == "random":
        base = [-torch.rand(B, generator=g, dtype=dtype) * 40 for _ in range(4)]
        group = -torch.rand(B, K, generator=g, dtype=dtype) * 40
    elif kind == "extreme":  # -1e4 against moderate values, both ways
        base = [torch.full((B,), -1e4, dtype=dtype), -torch.rand(B, generator=g, dtype=dtype),
                -torch.rand(B, generator=g, dtype=dtype), torch.full((B,), -1e4, dtype=dtype)]
        group = torch.where(torch.rand(B, K, generator=g) < 0.5, -1e4, -1.0).to(dtype)
    elif kind == "equal":  # policy == reference, chosen == rejected, every pair the same
        base = [torch.full((B,), -10.0, dtype=dtype) for _ in range(4)]
        lengths = torch.full((B,), 10), torch.full((B,), 10)
        group, group_lengths = torch.full((B, K), -10.0, dtype=dtype), torch.full((B, K), 10)
    elif kind == "zero":  # probability-1 sequences: u = 0 (ORPO's log-odds pole)
        base = [torch.zeros(B, dtype=dtype) for _ in range(4)]
        group = torch.zeros(B, K, dtype=dtype)
    else:
        raise ValueError(kind)
    logp_c, logp_r = base[0].clone().requires_grad_(True), base[1].clone().requires_grad_(True)
    group = group.clone().requires_grad_(True)
    positive = torch.zeros(B, K, dtype=torch.bool)
    positive[:, :2] = True
    inputs = {
        "policy_chosen_logps": logp_c, "policy_rejected_logps": logp_r,
        "reference_chosen_logps": base[2], "reference_rejected_logps": base[3],
        "chosen_lengths": lengths[0], "rejected_lengths": lengths[1],
        "margins": torch.linspace(-2, 2, B, dtype=dtype), "kl_baseline": torch.tensor(0.3, dtype=dtype),
        "group_logps": group, "group_lengths": group_lengths, "group_positive": positive,
        "group_mask": torch.ones(B, K, dtype=torch.bool), "group_reference_logps": group.detach() - 1.0,
        "an_input_no_loss_knows": torch.zeros(B),
    }
    return inputs, [logp_c, logp_r, group]


def test_every_yaml_found():
    assert len(YAMLS) == 23, NAMES


@pytest.mark.parametrize("name", NAMES)
def test_same_stem_in_three_places(name):
    assert (REPO / "prefexp" / "losses" / f"{name}.py").is_file()
    assert (REPO / "tests" / "losses" / f"test_{name}.py").is_file()
    text = (REPO / "conf" / "loss" / f"{name}.yaml").read_text()
    assert text.startswith("#"), "first line: a comment naming the paper"
    target = OmegaConf.load(REPO / "conf" / "loss" / f"{name}.yaml")["_target_"]
    assert target.startswith(f"prefexp.losses.{name}.")


@pytest.mark.parametrize("name", NAMES)
def test_yaml_lists_every_hyperparameter_with_its_default(name):
    import inspect

    loss = build(name)
    cfg = OmegaConf.load(REPO / "conf" / "loss" / f"{name}.yaml")
    params = {k: p.default for k, p in inspect.signature(type(loss).__init__).parameters.items() if k != "self"}
    assert set(params) == set(cfg) - {"_target_"}
    for key, default in params.items():
        if key != "tau":  # mixdpo's tau is the top-level interpolation
            assert cfg[key] == pytest.approx(default) if isinstance(default, float) else cfg[key] == default, key


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("kind", ["random", "extreme", "equal", "zero"])
@pytest.mark.parametrize("name", NAMES)
def test_contract(name, kind, dtype):
    loss = build(name)
    assert isinstance(loss, PreferenceLoss)
    inputs, leaves = make_inputs(kind, dtype)
    out = loss(**inputs)
    assert isinstance(out, LossOutput)
    for tensor in (out.losses, out.chosen_rewards, out.rejected_rewards):
        assert tensor.shape == (B,)
    assert torch.isfinite(out.losses).all(), out.losses
    assert not out.chosen_rewards.requires_grad and not out.rejected_rewards.requires_grad
    assert out.loss is not None and torch.equal(out.loss, out.losses.mean())
    for key, value in out.metrics.items():
        assert value.dim() == 0 and not value.requires_grad and torch.isfinite(value), key
    grads = torch.autograd.grad(out.losses.mean(), leaves, allow_unused=True)
    assert any(g is not None for g in grads)
    for grad in grads:
        assert grad is None or torch.isfinite(grad).all()


@pytest.mark.parametrize("name", NAMES)
def test_flags(name):
    loss = build(name)
    assert loss.needs_reference == (name not in REFERENCE_FREE)
    assert loss.needs_margins == (name in NEEDS_MARGINS)
    assert loss.needs_groups == (name in NEEDS_GROUPS)
    assert loss.is_stateful == (name in STATEFUL)
    assert loss.uses_tau == loss.routes_pairs == (name == "mixdpo")


@pytest.mark.parametrize("name", NAMES)
def test_runs_on_what_the_engine_passes(name):
    """The engine sends pairs + lengths, and only what the flags ask for."""
    loss = build(name)
    inputs, _ = make_inputs("random")
    keep = ["policy_chosen_logps", "policy_rejected_logps", "chosen_lengths", "rejected_lengths"]
    if loss.needs_reference:
        keep += ["reference_chosen_logps", "reference_rejected_logps"]
    if loss.needs_margins:
        keep.append("margins")
    out = loss(**{k: inputs[k] for k in keep})
    assert out.losses.shape == (B,) and torch.isfinite(out.losses).all()


def test_every_module_imports():
    for path in sorted((REPO / "prefexp" / "losses").glob("*.py")):
        importlib.import_module(f"prefexp.losses.{path.stem}")
