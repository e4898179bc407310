"""Chat templates for base models: ``model.chat_template=<name or .jinja file>``.

A tokenizer's own template is used unless ``model.chat_template`` names another; a tokenizer with
none gets ``plain``. Built-in names:

- ``plain``: ``"User:\\n{content}\\n\\n"`` per turn, generation prompt ``"Assistant:\\n"``. The prompt
  ends in a newline, not a space, so with byte-level BPE tokenizers (GPT-2, Llama 3, Qwen) the
  prompt's ids are a prefix of the ids of prompt + response and the response's ids are the same
  alone or after the prompt (a trailing space would merge into the response's first word: the
  mismatch TRL warns about). No end-of-turn marker: responses end with EOS.
- ``chatml``: ``<|im_start|>role\\ncontent<|im_end|>\\n`` (Qwen, many fine-tunes); end of turn ``<|im_end|>``.
- ``zephyr``: ``<|user|>\\ncontent</s>\\n``; each turn ends with the EOS token.
- ``llama3``: Llama 3's header/``<|eot_id|>`` layout; end of turn ``<|eot_id|>``.

With a base model whose vocabulary lacks a template's special markers (chatml on GPT-2), the
markers are ordinary text: they still delimit turns, only with several tokens each.
"""
from __future__ import annotations

from pathlib import Path

TEMPLATES = {
    "plain": (
        "{% for m in messages %}{{ m['role'] | capitalize }}:\n{{ m['content'] }}\n\n{% endfor %}"
        "{% if add_generation_prompt %}Assistant:\n{% endif %}"
    ),
    "chatml": (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    ),
    "zephyr": (
        "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{{ eos_token }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
    ),
    "llama3": (
        "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
        "{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
        "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
    ),
}
FALLBACK = "plain"


def chat_template_problem(value: str) -> str | None:
    """Why ``model.chat_template=value`` cannot be used (one line with the fix), or None."""
    if value in TEMPLATES:
        return None
    path = Path(value).expanduser()
    if path.is_dir():
        return f"model.chat_template={value!r} is a directory; pass a .jinja file or one of {sorted(TEMPLATES)}"
    if path.is_file():
        return None
    if value.endswith((".jinja", ".j2", ".txt")) or "/" in value:
        return f"model.chat_template={value!r} does not exist; pass a .jinja file or one of {sorted(TEMPLATES)}"
    return f"model.chat_template={value!r} is not a built-in template; options: {sorted(TEMPLATES)} or a .jinja file"


def load_chat_template(value: str) -> str:
    """The Jinja source of a built-in name or a template file."""
    if value in TEMPLATES:
        return TEMPLATES[value]
    return Path(value).expanduser().read_text(encoding="utf-8")
