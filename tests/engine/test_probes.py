"""Likelihood-displacement probes on the tiny GPT-2: fixed probe sets, log-probs checked against a
direct computation, one row every N steps with the learning rate of that step, and the learning
rate each route was trained at."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from prefexp.engine.probes import ProbeCallback, probe_logps, probe_sets, route_learning_rates, training_labels

TINY_GPT2 = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "models" / "tiny-gpt2"
PAD = 50256
# index -> rating margin; tau = 0.5 -> difficult {0, 1, 4, 6}, easy {2, 3, 5, 7}
MARGINS = {0: 0.0, 1: 0.25, 2: 1.0, 3: 2.0, 4: 0.1, 5: 3.0, 6: 0.4, 7: 5.0}


def examples() -> list[dict]:
    rng = random.Random(7)
    return [{"index": i, "prompt_ids": [rng.randrange(1000) for _ in range(3 + i % 2)],
             "chosen_ids": [rng.randrange(1000) for _ in range(2 + i % 3)],
             "rejected_ids": [rng.randrange(1000) for _ in range(3)]} for i in range(8)]


@pytest.fixture(scope="module")
def tiny_model():
    if not (TINY_GPT2 / "config.json").exists():
        pytest.skip("../shared/data/models/tiny-gpt2 is not beside the repo")
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(TINY_GPT2)


def test_probe_sets_are_fixed_by_margin_and_seed_not_by_order():
    sets = probe_sets(examples(), MARGINS, tau=0.5, per_set=3)
    assert set(sets) == {"difficult", "easy"}
    assert {e["index"] for e in sets["difficult"]} <= {0, 1, 4, 6} and len(sets["difficult"]) == 3
    assert {e["index"] for e in sets["easy"]} <= {2, 3, 5, 7} and len(sets["easy"]) == 3
    shuffled = examples()
    random.Random(1).shuffle(shuffled)  # another training order (curriculum) of the same pairs
    again = probe_sets(shuffled, MARGINS, tau=0.5, per_set=3)
    assert {k: [e["index"] for e in v] for k, v in again.items()} == {k: [e["index"] for e in v] for k, v in sets.items()}
    assert set(probe_sets(examples(), {}, tau=0.5)) == {"all"}  # no margins: one set of every pair
    assert training_labels([6, 7], MARGINS, 0.5) == ["difficult", "easy"]


def direct_logp(model, prompt: list[int], response: list[int]) -> float:
    """sum_t log p(response_t | prompt, response_<t), from the model's logits without the engine."""
    ids = torch.tensor([prompt + response])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0].double(), dim=-1)  # [T, V]
    return sum(float(logp[len(prompt) + t - 1, tok]) for t, tok in enumerate(response))


def test_probe_logps_match_a_direct_computation(tiny_model):
    tiny_model.eval()
    pairs = examples()[:5]
    out = probe_logps(tiny_model, pairs, PAD, batch_size=2)  # padded batches of 2, 2, 1
    chosen = [direct_logp(tiny_model, e["prompt_ids"], e["chosen_ids"]) for e in pairs]
    rejected = [direct_logp(tiny_model, e["prompt_ids"], e["rejected_ids"]) for e in pairs]
    # float32 forward vs float64 reference over ~15 tokens of |logp| ~ 7-11: 1e-4 absolute is ample
    assert out["chosen"] == pytest.approx(sum(chosen) / 5, abs=1e-4)
    assert out["rejected"] == pytest.approx(sum(rejected) / 5, abs=1e-4)
    assert out["margin"] == pytest.approx(out["chosen"] - out["rejected"], abs=1e-9)
    per_token = sum(c / len(e["chosen_ids"]) for c, e in zip(chosen, pairs)) / 5
    assert out["chosen_per_token"] == pytest.approx(per_token, abs=1e-4)


def test_callback_in_a_real_trainer_run(tiny_model, tmp_path):
    """SFT, 8 pairs, batch 2, 4 steps, lr 1e-3 linear decay without warmup: update k uses
    1e-3 * (4 - (k - 1)) / 4 = 1e-3, 7.5e-4, 5e-4, 2.5e-4. Probes every 2 steps -> rows at 0, 2, 4.
    Training order: difficult pairs first (steps 1-2), easy last (steps 3-4): difficult trained at
    mean (1e-3 + 7.5e-4) / 2 = 8.75e-4, easy at (5e-4 + 2.5e-4) / 2 = 3.75e-4."""
    import copy

    from transformers import TrainingArguments

    from prefexp.engine.batching import PairCollator
    from prefexp.engine.trainer import PreferenceTrainer
    from prefexp.losses.sft import SFTLoss

    model = copy.deepcopy(tiny_model)
    by_index = {e["index"]: e for e in examples()}
    order = [0, 1, 4, 6, 2, 3, 5, 7]
    train = [by_index[i] for i in order]
    probes = probe_sets(examples(), MARGINS, tau=0.5, per_set=2)
    before = {name: probe_logps(model.eval(), rows, PAD) for name, rows in probes.items()}
    path = tmp_path / "probes.jsonl"
    callback = ProbeCallback(model, probes, PAD, path, every_n_steps=2,
                             labels_in_order=training_labels(order, MARGINS, 0.5), pairs_per_step=2)
    args = TrainingArguments(output_dir=str(tmp_path / "out"), max_steps=4, per_device_train_batch_size=2,
                             learning_rate=1e-3, lr_scheduler_type="linear", warmup_steps=0, logging_steps=1,
                             save_strategy="no", report_to="none", use_cpu=True, disable_tqdm=True,
                             train_sampling_strategy="sequential", remove_unused_columns=False)
    trainer = PreferenceTrainer(model=model, args=args, train_dataset=train, data_collator=PairCollator(PAD),
                                preference_loss=SFTLoss(), callbacks=[callback])
    trainer.train()

    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 2, 4]
    assert rows[0]["learning_rate"] is None
    assert rows[1]["learning_rate"] == pytest.approx(7.5e-4, rel=1e-6)
    assert rows[2]["learning_rate"] == pytest.approx(2.5e-4, rel=1e-6)
    for name in ("difficult", "easy"):
        assert rows[0][f"probe/{name}/chosen"] == pytest.approx(before[name]["chosen"], abs=1e-5)
        assert rows[0][f"probe/{name}/n"] == 2
    after = {name: probe_logps(model.eval(), rows_, PAD) for name, rows_ in probes.items()}
    assert rows[2]["probe/difficult/chosen"] == pytest.approx(after["difficult"]["chosen"], abs=1e-5)
    assert rows[2]["probe/easy/chosen"] != pytest.approx(rows[0]["probe/easy/chosen"], abs=1e-7), "training moved it"

    lrs = json.loads((tmp_path / "route_learning_rates.json").read_text())
    assert lrs["difficult"]["pair_updates"] == 4 and lrs["easy"]["pair_updates"] == 4
    assert lrs["difficult"]["mean_lr"] == pytest.approx(8.75e-4, rel=1e-6)
    assert lrs["easy"]["mean_lr"] == pytest.approx(3.75e-4, rel=1e-6)
    assert lrs["easy"]["mean_lr_fraction_of_peak"] == pytest.approx(0.375, rel=1e-6)


def test_route_learning_rates_wrap_at_the_epoch():
    """3 pairs, 2 per step -> 2 steps per epoch (the second half-empty); step 3 restarts at pair 0."""
    out = route_learning_rates(["a", "b", "c"], 2, {1: 1.0, 2: 0.5, 3: 0.25}, peak=1.0)
    assert out["a"] == {"pair_updates": 2, "mean_lr": 0.625, "min_lr": 0.25, "max_lr": 1.0,
                        "mean_lr_fraction_of_peak": 0.625}
    assert out["c"]["mean_lr"] == 0.5 and out["b"]["mean_lr"] == 0.625


def test_probe_settings_reach_the_run(tmp_path):
    """Through the real entry point on the sandbox: ``trainer.probes.every_n_steps=2`` over 5 steps
    probes at steps 0, 2, 4 and the last (5), ``n_pairs=3`` pairs a set; ``enabled=false`` writes no
    probes.jsonl but still the route learning rates."""
    from tests.helpers import read_jsonl, run_train

    common = ["logger=none", "trainer.max_steps=5", "trainer.logging_steps=1"]
    run_train(tmp_path / "on", *common, "trainer.probes.every_n_steps=2", "trainer.probes.n_pairs=3",
              "trainer.probes.batch_size=2")
    rows = read_jsonl(tmp_path / "on" / "probes.jsonl")
    assert [r["step"] for r in rows] == [0, 2, 4, 5]
    sets = {k.split("/")[1] for k in rows[0] if k.startswith("probe/")}
    assert sets == {"difficult", "easy"} and all(rows[0][f"probe/{s}/n"] == 3 for s in sets)
    run_train(tmp_path / "off", *common, "trainer.probes.enabled=false")
    assert not (tmp_path / "off" / "probes.jsonl").exists()
    assert (tmp_path / "off" / "route_learning_rates.json").exists()
