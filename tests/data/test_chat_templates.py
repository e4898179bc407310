"""Chat templates: model.chat_template, the plain fallback's token-prefix property, end of turn vs TRL."""
from __future__ import annotations

import gzip
import json
import logging

import pytest

from prefexp.data.chat_templates import TEMPLATES, chat_template_problem
from prefexp.data.records import PreferencePair
from prefexp.engine.tokenize import (ensure_chat_template, end_of_turn_ids, end_of_turn_text, prompt_ids, response_ids,
                                     tokenize_pairs)

USER = [{"role": "user", "content": "What color is the sky?"}]


@pytest.fixture
def gpt2(shared_data):
    """The shared tiny GPT-2's tokenizer: a base model's byte-level BPE without a chat template."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(shared_data / "models/tiny-gpt2")
    assert tok.chat_template is None
    return tok


def sandbox_tokenizer():
    from prefexp.sandbox.tokenizer import build_tokenizer

    return build_tokenizer(["sort: 3 1", "1 3"], model_max_length=96)


def test_plain_fallback_prompt_is_a_token_prefix_on_real_rows(gpt2, shared_data):
    """With the plain template, ids(prompt) + ids(reply) == ids(prompt + reply) on real UltraFeedback
    rows (replies not starting with whitespace, which would merge with the prompt's newline), and
    every reply ends with EOS (plain has no end-of-turn marker)."""
    ensure_chat_template(gpt2)
    assert gpt2.chat_template == TEMPLATES["plain"]
    src = shared_data / "preference/ultrafeedback/trl_ultrafeedback_binarized_train1000.jsonl.gz"
    with gzip.open(src, "rt") as f:
        rows = [json.loads(line) for _, line in zip(range(40), f)]
    checked = 0
    for row in rows:
        prompt = [{"role": "user", "content": row["prompt"]}]
        text = gpt2.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
        assert text.endswith("Assistant:\n")
        for reply in (row["chosen"], row["rejected"]):
            if reply[:1].isspace():
                continue
            joint = gpt2(text + reply, add_special_tokens=False)["input_ids"]
            assert prompt_ids(gpt2, prompt) + response_ids(gpt2, reply)[:-1] == joint
            assert response_ids(gpt2, reply)[-1] == gpt2.eos_token_id
            checked += 1
    assert checked >= 60  # most replies qualify; the assertion above ran on each


def test_old_fallback_broke_the_prefix_property(gpt2):
    """Why the template changed: a prompt ending in "Assistant: " (a space) tokenises differently
    alone than before a reply, as TRL 1.16 warns."""
    text = "User: What color is the sky?\nAssistant: "
    alone = gpt2(text, add_special_tokens=False)["input_ids"]
    joint = gpt2(text + "Blue.", add_special_tokens=False)["input_ids"]
    assert joint[: len(alone)] != alone


def trl_completion(tokenizer, prompt, reply) -> tuple[str, str]:
    """TRL 1.16's rendering of conversational preference data (trl/data_utils.py apply_chat_template):
    prompt = the template with the generation prompt; completion = rendered(prompt + reply) minus
    the common prefix with it. Written out here because importing trl costs ~10 s of CPU; the slow
    test below checks it against trl itself."""
    from itertools import takewhile

    rendered = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(prompt + [{"role": "assistant", "content": reply}], tokenize=False)
    rendered = "".join(x for x, _ in takewhile(lambda x: x[0] == x[1], zip(rendered, full)))
    return rendered, full[len(rendered):]


CASES = [("plain", None), ("chatml", "<|im_end|>"), ("zephyr", "<|endoftext|>"), ("llama3", "<|eot_id|>")]


@pytest.mark.parametrize("name,end", CASES)
def test_responses_end_with_the_templates_end_of_turn_as_trl(gpt2, name, end):
    """TRL's conversational completion ends with the template's end of turn. Ours is the same text
    without trailing whitespace; a template without a marker (plain) gets EOS, where TRL would end
    on whitespace and never teach the model to stop."""
    ensure_chat_template(gpt2, name)
    reply = "It is blue."
    prompt_text, completion = trl_completion(gpt2, USER, reply)
    ours = gpt2.decode(response_ids(gpt2, reply))
    assert ours == (completion.rstrip() if end is not None else reply + gpt2.eos_token)
    assert end_of_turn_text(gpt2) == (end or "")
    assert prompt_text == gpt2.apply_chat_template(USER, add_generation_prompt=True, tokenize=False)


@pytest.mark.slow
@pytest.mark.parametrize("name", [c[0] for c in CASES] + ["sandbox"])
def test_trl_completion_is_what_trl_renders(gpt2, name):
    from trl.data_utils import apply_chat_template

    tok = sandbox_tokenizer() if name == "sandbox" else gpt2
    ensure_chat_template(tok, None if name == "sandbox" else name)
    trl = apply_chat_template({"prompt": USER, "chosen": [{"role": "assistant", "content": "It is blue."}],
                               "rejected": [{"role": "assistant", "content": "Green."}]}, tok)
    assert (trl["prompt"], trl["chosen"]) == trl_completion(tok, USER, "It is blue.")


def test_sandbox_template_ends_with_eos_as_before():
    """The sandbox template closes assistant turns with EOS: its responses keep reply + [eos], which
    is also TRL's completion for it."""
    tok = sandbox_tokenizer()
    ensure_chat_template(tok)
    assert end_of_turn_ids(tok) == [tok.eos_token_id]
    assert response_ids(tok, "1 3") == tok("1 3", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    prompt = [{"role": "user", "content": "sort: 3 1"}]
    assert trl_completion(tok, prompt, "1 3") == ("<bos><|user|>sort: 3 1\n<|assistant|>", "1 3<eos>")


def test_chat_template_from_a_file_and_bad_values(gpt2, tmp_path):
    path = tmp_path / "mine.jinja"
    path.write_text("{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}[END]\n{% endfor %}"
                    "{% if add_generation_prompt %}[assistant] {% endif %}")
    assert chat_template_problem(str(path)) is None
    ensure_chat_template(gpt2, str(path))
    assert gpt2.apply_chat_template(USER, add_generation_prompt=True, tokenize=False) == \
        "[user] What color is the sky?[END]\n[assistant] "
    assert end_of_turn_text(gpt2) == "[END]"
    assert "is not a built-in template; options: ['chatml', 'llama3', 'plain', 'zephyr']" in chat_template_problem("qwen")
    assert "does not exist" in chat_template_problem(str(tmp_path / "missing.jinja"))
    assert "is a directory" in chat_template_problem(str(tmp_path))


def test_pairs_identical_after_truncation_are_counted_and_kept(caplog):
    tok = sandbox_tokenizer()
    ensure_chat_template(tok)
    prompt = [{"role": "user", "content": "sort: 3 1"}]
    # prompt = <bos><|user|> + 9 chars + \n + <|assistant|> = 13 tokens; max_length 16 leaves 3 per reply
    pairs = [PreferencePair(0, prompt, "1 3 5", "1 3 4"), PreferencePair(1, prompt, "13", "31")]
    assert len(prompt_ids(tok, prompt)) == 13
    with caplog.at_level(logging.WARNING, logger="prefexp.engine.tokenize"):
        examples, stats = tokenize_pairs(pairs, tok, max_length=16, max_prompt_length=14)
    assert (stats.response_truncated, stats.identical_after_truncation) == (1, 1)
    assert [e["index"] for e in examples] == [0, 1]  # kept
    assert examples[0]["chosen_ids"] == examples[0]["rejected_ids"] == tok("1 3", add_special_tokens=False)["input_ids"]
    assert "1 pair(s) have identical chosen and rejected tokens after truncation" in caplog.text
