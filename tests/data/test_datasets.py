"""Real preference datasets from ../shared/data through the config, with no conversion by hand."""
from __future__ import annotations

import gzip
import json

import pytest
from omegaconf import OmegaConf

from prefexp.data.hh_rlhf import ASSISTANT, hh_rlhf_to_pair, split_turns
from prefexp.data.records import InvalidRowError, to_pairs
from prefexp.data.sources import load_rows
from tests.conftest import compose

HH = "preference/hh_rlhf/helpful-base_test.jsonl.gz"
ARGILLA = "preference/ultrafeedback/argilla_ultrafeedback_binarized_preferences_1k.jsonl.gz"


def trl_extract_prompt():
    """TRL's own ``extract_prompt``, compiled from the installed trl/data_utils.py without importing
    the trl package (its import costs ~10 s of CPU: transformers, accelerate, datasets)."""
    import ast
    import importlib.util
    from collections.abc import Sequence
    from pathlib import Path

    spec = importlib.util.find_spec("trl")
    source = (Path(spec.submodule_search_locations[0]) / "data_utils.py").read_text()
    (node,) = [n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == "extract_prompt"]
    namespace = {"Sequence": Sequence}
    exec(compile(ast.Module([node], type_ignores=[]), "trl/data_utils.py", "exec"), namespace)
    return namespace["extract_prompt"]


def dataset(*overrides):
    return OmegaConf.to_object(compose(list(overrides)).dataset)


def test_hh_rlhf_prompt_is_trls_common_prefix_cut_at_the_last_assistant_turn(shared_data):
    """On every row of helpful-base test: where TRL's extract_prompt ends at "\\n\\nAssistant:" (1917 of
    2354 rows) our prompt is the same text; elsewhere TRL's prompt runs into the reply (both replies
    start alike) and ours is TRL's cut back to the last Assistant marker."""
    extract_prompt = trl_extract_prompt()
    with gzip.open(shared_data / HH, "rt") as f:
        rows = [json.loads(line) for line in f]
    assert len(rows) == 2354
    same = 0
    for row in rows:
        trl = extract_prompt(row)
        ours = hh_rlhf_to_pair(row)
        cut = trl["prompt"].rfind(ASSISTANT)
        assert ours["prompt"] == split_turns(trl["prompt"][:cut])
        if trl["prompt"].endswith(ASSISTANT):
            same += 1
            assert (ours["chosen"], ours["rejected"]) == (trl["chosen"].strip(), trl["rejected"].strip())
        else:
            assert (trl["prompt"] + trl["chosen"]).endswith(ours["chosen"])
    assert same == 1917


def test_hh_rlhf_split_turns_hand_example():
    text = "\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: Sky colour?\n\nAssistant: Blue."
    row = {"chosen": text, "rejected": text.replace("Blue.", "Green.")}
    assert hh_rlhf_to_pair(row) == {"prompt": [{"role": "user", "content": "Hi there"},
                                               {"role": "assistant", "content": "Hello!"},
                                               {"role": "user", "content": "Sky colour?"}],
                                    "chosen": "Blue.", "rejected": "Green."}


def test_dataset_hh_rlhf_loads_the_shared_file(shared_data):
    rows = load_rows(dataset("dataset=hh_rlhf", f"dataset.path={shared_data / HH}"))
    pairs = to_pairs(rows, "hh", "skip", require_scores=False)
    assert len(pairs) == 2354 - 6  # 4 empty rejected replies, 2 identical pairs (hh_rlhf.yaml skips them)
    assert pairs[0].prompt == [{"role": "user", "content": "Do you know why turkeys became the official food of "
                                                          "thanksgiving?"}]
    assert pairs[0].score_chosen is None
    with pytest.raises(InvalidRowError, match=r"line 1: missing field 'score_chosen': .*curriculum=none router=none"):
        to_pairs(rows, "hh", "error", require_scores=True)  # unscored data under the default curriculum


def test_argilla_ultrafeedback_through_a_column_mapping(shared_data):
    """argilla's layout: rating_chosen / rating_rejected (1-5 means of four aspect ratings)."""
    ds = dataset("dataset=jsonl", f"dataset.path={shared_data / ARGILLA}", "dataset.columns.score_chosen=rating_chosen",
                 "dataset.columns.score_rejected=rating_rejected", "dataset.on_invalid=skip")
    rows = load_rows(ds)
    pairs = to_pairs(rows, "argilla", ds.on_invalid, require_scores=True)
    assert len(pairs) == 999  # one row has identical replies
    with gzip.open(shared_data / ARGILLA, "rt") as f:
        first = json.loads(f.readline())
    assert (pairs[0].score_chosen, pairs[0].score_rejected) == (first["rating_chosen"], first["rating_rejected"])
    assert all(1 <= p.score_rejected < p.score_chosen <= 5 for p in pairs)  # README: no ties
    assert rows[0]["score_chosen"] == rows[0]["rating_chosen"] and rows[0]["chosen_model"] == first["chosen_model"]


def test_column_mapping_keys_are_checked_by_the_schema():
    with pytest.raises(Exception, match="score_chosn"):
        compose(["dataset=jsonl", "dataset.path=x", "dataset.columns.score_chosn=rating"])
