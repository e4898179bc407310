"""Character-level tokenizer and chat template of the sandbox model.

One token per character (a ``tokenizers`` WordLevel model over single characters, trained on the
generated corpus plus all printable ASCII so any generation decodes), and six special tokens.
A chat turn renders as

    <bos><|user|>sort: 3 1\\n<|assistant|>1 3<eos>

so that ``template(user) + response + eos == template(user, assistant)``: the engine's way of
tokenising a pair (prompt via the template, response ids + eos) matches what the model saw in SFT.
"""
from __future__ import annotations

import string
from typing import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
USER, ASSISTANT = "<|user|>", "<|assistant|>"
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS, USER, ASSISTANT)

# Only user and assistant turns exist in the sandbox; anything else is a caller bug, said loudly.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}<|user|>{{ message['content'] }}\n"
    "{% elif message['role'] == 'assistant' %}<|assistant|>{{ message['content'] }}{{ eos_token }}"
    "{% else %}{{ raise_exception('the sandbox chat template knows only user and assistant roles, got '"
    " ~ message['role']) }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def build_tokenizer(corpus: Iterable[str], model_max_length: int) -> PreTrainedTokenizerFast:
    """Train a character-level tokenizer on ``corpus`` and wrap it for transformers.

    The vocabulary is the special tokens, every printable ASCII character and every other
    character seen in ``corpus``; ids are deterministic (the trainer orders by frequency, ties
    by character). The result has pad/bos/eos/unk set and :data:`CHAT_TEMPLATE`.
    """
    tok = Tokenizer(models.WordLevel(unk_token=UNK))
    # Every character is its own "word"; Fuse joins them back without inserted spaces.
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    trainer = trainers.WordLevelTrainer(special_tokens=list(SPECIAL_TOKENS), min_frequency=1, show_progress=False)
    tok.train_from_iterator([string.printable, *corpus], trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD,
                                   unk_token=UNK, extra_special_tokens=[USER, ASSISTANT],
                                   model_max_length=model_max_length)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def render_prompt(tokenizer: PreTrainedTokenizerFast, prompt: str) -> str:
    """The chat-formatted text of a one-turn user prompt, ending with the assistant marker."""
    return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                         tokenize=False)
