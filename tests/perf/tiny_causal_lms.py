"""Tiny random causal LMs of each head family, built from a config (no download): vocabulary 1000,
2 layers, width 32, weights ~N(0, 0.2) so that log-probs depend on them, no dropout (two forwards
of one model give the same numbers)."""
from __future__ import annotations

import torch

VOCAB = 1000
# GPT-2: tied Linear head with a bias-free weight; Llama / Qwen2: untied; Gemma-2/3: soft-capped;
# Cohere: logits * logit_scale; Granite: logits / logits_scaling.
ARCHS = ("gpt2", "llama", "qwen2", "gemma2", "gemma3", "cohere", "granite")
COMMON = {"vocab_size": VOCAB, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
          "num_attention_heads": 4, "num_key_value_heads": 2, "initializer_range": 0.2, "pad_token_id": 0,
          "bos_token_id": 1, "eos_token_id": 2}
SOFTCAP = 3.0  # small enough to bend these logits


def build(arch: str, seed: int = 0, **overrides):
    """A float32 model of ``arch`` in eval mode."""
    import transformers as tf

    if arch == "gpt2":
        config = tf.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64, resid_pdrop=0.0,
                               embd_pdrop=0.0, attn_pdrop=0.0, initializer_range=0.2, bos_token_id=1,
                               eos_token_id=2, **overrides)
        cls = tf.GPT2LMHeadModel
    else:
        extra = {"gemma2": {"head_dim": 8, "final_logit_softcapping": SOFTCAP},
                 "gemma3": {"head_dim": 8, "final_logit_softcapping": SOFTCAP},
                 "cohere": {"logit_scale": 0.5}, "granite": {"logits_scaling": 4.0}}.get(arch, {})
        config_cls, cls = {"llama": (tf.LlamaConfig, tf.LlamaForCausalLM), "qwen2": (tf.Qwen2Config, tf.Qwen2ForCausalLM),
                           "gemma2": (tf.Gemma2Config, tf.Gemma2ForCausalLM),
                           "gemma3": (tf.Gemma3TextConfig, tf.Gemma3ForCausalLM),
                           "cohere": (tf.CohereConfig, tf.CohereForCausalLM),
                           "granite": (tf.GraniteConfig, tf.GraniteForCausalLM)}[arch]
        config = config_cls(**{**COMMON, **extra, **overrides})
    torch.manual_seed(seed)
    return cls(config).float().eval()


def build_gemma3_multimodal(softcap: float | None, seed: int = 0):
    """Gemma3ForConditionalGeneration (text + a 1-layer SigLIP tower), ``softcap`` in its text config.
    Its forward applies no soft-cap whatever the text config says (transformers 5.x)."""
    import transformers as tf

    text = tf.Gemma3TextConfig(**{**COMMON, "head_dim": 8, "final_logit_softcapping": softcap})
    vision = tf.SiglipVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                                   image_size=28, patch_size=14)
    config = tf.Gemma3Config(text_config=text.to_dict(), vision_config=vision.to_dict(), mm_tokens_per_image=4,
                             image_token_index=999, boi_token_index=997, eoi_token_index=998)
    torch.manual_seed(seed)
    return tf.Gemma3ForConditionalGeneration(config).float().eval()
