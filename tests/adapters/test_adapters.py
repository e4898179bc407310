"""LoRA adapters on a tiny random Llama, in process (seconds): what trains, what the reference is,
what a saved adapter and a merged checkpoint hold, and the config checks.

Hand-derived sizes: hidden 16, 4 heads (= 4 KV heads), 2 layers; peft's Llama default targets
q_proj and v_proj (16 -> 16). With r = 4 each adapted projection adds A [4, 16] + B [16, 4] = 128
parameters: 2 projections x 2 layers x 128 = 512 trainable.
"""
from __future__ import annotations

import json

import pytest
import torch

from prefexp.config.schema import AdapterConfig
from prefexp.engine.adapters import attach_adapter, merge_adapter_checkpoint, parameter_counts


def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=32)
    return LlamaForCausalLM(cfg)


LORA = AdapterConfig(kind="lora", r=4, alpha=8.0, dropout=0.0)
IDS = torch.tensor([[1, 5, 9, 13, 2, 7], [3, 4, 8, 21, 30, 6]])


def test_trainable_count_and_zero_start():
    base = tiny_llama()
    total_base = sum(p.numel() for p in base.parameters())
    with torch.no_grad():
        base_logits = base(IDS).logits
    model = attach_adapter(base, LORA, gradient_checkpointing=False)
    trainable, total = parameter_counts(model)
    assert trainable == 512
    assert total == total_base + 512
    with torch.no_grad():  # B = 0 at init: the policy is the base, so the first DPO loss is ln 2
        torch.testing.assert_close(model(IDS).logits, base_logits, rtol=0, atol=0)


def test_only_adapter_weights_change_and_disabled_adapter_is_the_base():
    model = attach_adapter(tiny_llama(), LORA, gradient_checkpointing=False)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad(), model.disable_adapter():
        reference_logits = model(IDS).logits
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        loss = model(IDS, labels=IDS).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    adapter = {n for n, _ in model.named_parameters() if "lora_" in n}
    assert len(adapter) == 8  # lora_A and lora_B of 2 projections x 2 layers
    assert changed == adapter
    with torch.no_grad(), model.disable_adapter():  # the reference: same weights, adapter off
        torch.testing.assert_close(model(IDS).logits, reference_logits, rtol=0, atol=0)
    with torch.no_grad():
        assert not torch.allclose(model(IDS).logits, reference_logits)


def test_gradient_checkpointing_still_trains_the_adapter():
    model = attach_adapter(tiny_llama(), LORA, gradient_checkpointing=True)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})
    model.train()
    model(IDS, labels=IDS).loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if "lora_B" in n]  # A gets 0 while B = 0
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)


def test_adapter_folder_loads_with_from_pretrained_and_merges(tmp_path):
    """The checkpoint the run writes: from_pretrained(adapter folder) = base + adapter; merging
    writes W + (alpha / r) B A, hand-computed here from the adapter's own tensors."""
    from transformers import AutoModelForCausalLM

    base_dir, ckpt = tmp_path / "base", tmp_path / "checkpoint"
    base = tiny_llama()
    base.save_pretrained(base_dir)
    w0 = base.model.layers[0].self_attn.q_proj.weight.detach().clone()  # [16, 16]
    model = attach_adapter(AutoModelForCausalLM.from_pretrained(base_dir), LORA, gradient_checkpointing=False)
    torch.manual_seed(1)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)  # a trained adapter: B != 0
        policy_logits = model(IDS).logits
    model.save_pretrained(ckpt)
    assert json.loads((ckpt / "adapter_config.json").read_text())["base_model_name_or_path"] == str(base_dir)

    loaded = AutoModelForCausalLM.from_pretrained(ckpt)  # transformers' peft integration
    with torch.no_grad():
        torch.testing.assert_close(loaded(IDS).logits, policy_logits, rtol=1e-5, atol=1e-5)

    q = model.base_model.model.model.layers[0].self_attn.q_proj
    a, b = q.lora_A["default"].weight.detach(), q.lora_B["default"].weight.detach()  # [4, 16], [16, 4]
    expected = w0 + (8.0 / 4) * b @ a
    merge_adapter_checkpoint(ckpt, str(base_dir), torch.float32)
    assert (ckpt / "adapter" / "adapter_config.json").is_file() and not (ckpt / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(ckpt)
    assert not hasattr(merged, "peft_config") or not merged.peft_config
    # fp32 sum of one product of 4 terms: a few ulps of the largest magnitude (~2) is the bound
    torch.testing.assert_close(merged.model.layers[0].self_attn.q_proj.weight, expected, rtol=0, atol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(merged(IDS).logits, policy_logits, rtol=1e-4, atol=1e-4)


def test_unknown_target_module_is_an_input_error():
    from prefexp.errors import InputError

    with pytest.raises(InputError, match=r"adapter.target_modules=\['c_attn'\].*q_proj"):
        attach_adapter(tiny_llama(), AdapterConfig(kind="lora", target_modules=["c_attn"]), False)
