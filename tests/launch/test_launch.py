"""One command, many ranks: the launcher's decisions and command line, W&B naming, the SLURM dry run."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from prefexp import launch, tracking
from prefexp.launch import ranks
from prefexp.config import naming


from .conftest import read_jsonl, run, train_cmd


def test_devices_resolve_on_cpu(monkeypatch):
    monkeypatch.setattr(ranks, "cuda_device_count", lambda: 0)
    assert launch.resolve_devices("auto") == 1 and launch.resolve_devices(3) == 3
    monkeypatch.setattr(ranks, "cuda_device_count", lambda: 4)
    assert launch.resolve_devices("auto") == 4
    with pytest.raises(ValueError, match="trainer.devices=8 but this node has 4"):
        launch.resolve_devices(8)


def test_who_spawns(monkeypatch):
    monkeypatch.setattr(ranks, "cuda_device_count", lambda: 0)
    for key in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    assert launch.ranks_to_spawn(1, deepspeed=False, dry_run=False) == 0  # plain run: in process
    assert launch.ranks_to_spawn(2, deepspeed=False, dry_run=False) == 2
    assert launch.ranks_to_spawn(1, deepspeed=True, dry_run=False) == 1  # DeepSpeed needs a launcher's env
    assert launch.ranks_to_spawn(2, deepspeed=True, dry_run=True) == 0  # a dry run loads no model
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert launch.ranks_to_spawn(2, deepspeed=True, dry_run=False) == 0  # already a rank: never re-launch


def test_torchrun_command_shares_one_run_dir(monkeypatch):
    cmd = launch.torchrun_command(4, ["tau=0.5", "hydra.run.dir=/elsewhere", "trainer.devices=4"], Path("/runs/x"))
    assert cmd[:5] == [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=4", "--standalone"]
    tail = cmd[cmd.index("prefexp.train") + 1:]
    assert tail == ["tau=0.5", "trainer.devices=4", "hydra.run.dir='/runs/x'", "hydra.output_subdir=null"]
    multi = launch.torchrun_command(8, [], Path("/r"), nodes=launch.Nodes(2, 1, "n1", 29400))
    assert multi[4:8] == ["--nnodes=2", "--node-rank=1", "--master-addr=n1", "--master-port=29400"]
    assert "--standalone" not in multi and "--log-dir=/r/.launch/node-1" in multi  # one log dir per node
    assert "--log-dir=/runs/x/.launch" in cmd
    assert not any(a.startswith("--log-dir") for a in launch.torchrun_command(2, [], Path("/r"), capture_logs=False))


def test_external_launch_needs_an_explicit_run_dir(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert "hydra.run.dir=" in launch.shared_run_dir_problem(["tau=0.5"])
    assert launch.shared_run_dir_problem(["tau=0.5", "hydra.run.dir=/r"]) is None
    assert "hydra.sweep.dir=" in launch.shared_run_dir_problem(["-m", "tau=0.5,1"])
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert launch.shared_run_dir_problem(["tau=0.5"]) is None


def test_local_rank_never_reaches_hydra():
    import os

    saved = os.environ.pop("LOCAL_RANK", None)  # the stripper exports it: never leak it to later tests
    try:
        assert launch.strip_launcher_args(["train", "--local_rank=1", "tau=0.5"]) == ["train", "tau=0.5"]
        assert os.environ.pop("LOCAL_RANK") == "1"
        assert launch.strip_launcher_args(["train", "--local-rank", "3", "tau=0.5"]) == ["train", "tau=0.5"]
        assert os.environ.pop("LOCAL_RANK") == "3"
    finally:
        os.environ.pop("LOCAL_RANK", None)
        if saved is not None:
            os.environ["LOCAL_RANK"] = saved


def test_wandb_naming_and_offline_fallback(monkeypatch, tmp_path, caplog):
    import hashlib

    route = {"name": "threshold", "on_selected": "route", "on_rest": "preference"}
    mixdpo = {"loss": {"_target_": "prefexp.losses.mixdpo.MixDPOLoss"}, "router": route, "tau": 0.5, "seed": 1}
    dpo = {"loss": {"_target_": "prefexp.losses.dpo.DPOLoss"}, "router": route, "tau": 0.5, "seed": 0}
    assert launch.run_name(mixdpo, {"loss": "mixdpo", "router": "threshold"}, ["tau=0.5", "seed=1"]) == "mixdpo-tau0.5-s1"
    # DPO ignores tau and a routing threshold router: neither is in its name
    assert launch.run_name(dpo, {"loss": "dpo"}, ["loss=dpo", "hydra.run.dir=/x", "dataset.path=/d/a.jsonl"]) == "dpo-s0"
    discard = {**dpo, "router": {**route, "on_selected": "discard"}, "seed": 2}
    assert launch.run_name(discard, {"loss": "dpo"}, ["loss=dpo", "router.on_selected=discard"]) == "dpo-discard-tau0.5-s2"
    assert launch.run_name({**dpo, "router": {"name": "none"}}, {"loss": "dpo", "study_arm": "dpo_shuffled", "logger": "wandb"},
                           ["+study_arm=dpo_shuffled", "logger=wandb", "seed=0"]) == "dpo_shuffled-dpo-s0"
    assert launch.run_name({**mixdpo, "tau": 0.25}, {"loss": "mixdpo", "curriculum": "none"},
                           ["curriculum=none"]) == "mixdpo-tau0.25-nocurriculum-s1"
    assert naming.safe_name("a=b,[c]*") == "a_b__c__"
    # one group per sweep, unique: two sweeps in dirs named "sweep" do not share one
    assert launch.sweep_group("/x/a/sweep") != launch.sweep_group("/x/b/sweep")
    assert launch.sweep_group("/x/tau_scan") == "tau_scan-" + hashlib.sha256(b"/x/tau_scan").hexdigest()[:6]
    assert launch.sweep_group("/o/sweeps/2026-01-02/10-11-12").startswith("2026-01-02_10-11-12-")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(tmp_path / ".netrc"))
    assert tracking.wandb_mode("online") == "offline" and "no W&B key" in caplog.text
    assert tracking.wandb_mode("offline") == "offline"
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password abc\n")
    (tmp_path / ".netrc").chmod(0o600)
    assert tracking.wandb_mode("online") == "online"
    monkeypatch.setenv("WANDB_API_KEY", "k")
    assert tracking.wandb_mode("online") == "online"


def test_failure_marker_and_objective(tmp_path):
    try:
        raise ValueError("bad\nthing")
    except ValueError as exc:
        marker = launch.write_failure(tmp_path, exc)
    text = marker.read_text()
    assert text.splitlines()[0] == "ValueError: bad thing" and "Traceback" in text
    assert launch.final_metric(tmp_path, "loss") != launch.final_metric(tmp_path, "loss")  # NaN without metrics
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 0.7}\n{"step": 2, "loss": 0.5, "x": 1}\n')
    assert launch.final_metric(tmp_path, "loss") == 0.5


def test_slurm_launcher_renders_a_submission():
    """hydra/launcher=slurm composes, and submitit renders its sbatch array script (no SLURM needed)."""
    from omegaconf import OmegaConf

    from tests.conftest import compose

    cfg = compose(["hydra/launcher=slurm", "experiment=mixdpo_llama3_8b_sft", "hydra.launcher.partition=gpu",
                   "hydra.launcher.timeout_min=600", "hydra.job.name=train"])
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert params["_target_"].endswith("SlurmLauncher")
    assert params["gpus_per_node"] == 8 == cfg.trainer.devices  # follows trainer.devices
    script = launch.render_sbatch(params, num_jobs=3)
    for line in ("#SBATCH --gpus-per-node=8", "#SBATCH --nodes=1", "#SBATCH --ntasks-per-node=1",
                 "#SBATCH --partition=gpu", "#SBATCH --time=600", "#SBATCH --array=0-2%3", "#SBATCH --job-name=train",
                 "export OMP_NUM_THREADS=8", "-m submitit.core._submit"):
        assert line in script, line


def test_sbatch_cli_counts_sweep_points():
    proc = run([sys.executable, "-m", "prefexp.launch", "sbatch", "tau=0.25,0.5,1.0", "curriculum=easy_to_hard,none",
                "trainer.devices=2", "hydra.launcher.partition=p"], timeout=120)
    assert "#SBATCH --array=0-5%6" in proc.stdout and "#SBATCH --gpus-per-node=2" in proc.stdout


@pytest.mark.slow
def test_devices_two_plain_ddp(tiny, tmp_path):
    """trainer.devices=2 without DeepSpeed: two gloo DDP ranks, one run dir, metrics logged once."""
    runs = tmp_path / "runs"
    run(train_cmd(*tiny, "trainer.devices=2", "trainer.per_device_batch_size=4", "trainer.logging_steps=1",
                  f"hydra.run.dir={runs / 'ddp'}"))
    assert [p.name for p in runs.iterdir()] == ["ddp"]
    assert [r["step"] for r in read_jsonl(runs / "ddp" / "metrics.jsonl")] == [1, 2]
    assert (runs / "ddp" / "checkpoint" / "manifest.json").exists()
    assert sorted(p.parent.name for p in (runs / "ddp" / ".launch").rglob("stderr.log")) == ["0", "1"]
