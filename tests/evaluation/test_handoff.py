"""The training -> evaluation hand-off: run dirs quoted for Hydra and for the shell, failures marked."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from prefexp.launch.override_quoting import override, quote_override_value
from prefexp.evaluation.handoff import evaluate_after_training, evaluation_command, failure_marker, shell_command

NASTY = ["/runs/0_loss=dpo,seed=1", "/runs/my sweep/1_tau=0.5", "/runs/it's", "/runs/[a,b]", "/runs/{x: y}",
         "/runs/end\\", "/runs/q\\'x", "/runs/${oc.env:HOME}", "/runs/a\\${b}", "/runs/a\\\\${b}", "/runs/$HOME",
         '/runs/"dq"', "/runs/tab\tand ünïcode", "/runs/a'b'c\\\\'", "/runs/#hash ~tilde"]


@pytest.mark.parametrize("value", NASTY)
def test_quoted_value_parses_back_through_hydra_and_omegaconf(value):
    """What prefexp.evaluate receives: Hydra's override parser, then OmegaConf's interpolation."""
    parsed = OverridesParser.create().parse_overrides([override("checkpoint", value)])[0]
    assert parsed.key_or_group == "checkpoint"
    assert OmegaConf.create({"checkpoint": parsed.value()}).checkpoint == value


def test_unquoted_sweep_dir_is_what_hydra_rejects():
    """The bug being fixed: a sweep job dir is not a valid bare override value."""
    from hydra.errors import OverrideParseException

    with pytest.raises(OverrideParseException):
        OverridesParser.create().parse_overrides(["checkpoint=/runs/0_loss=dpo,seed=1"])
    assert quote_override_value("/a b") == "'/a b'"


def test_rerun_command_survives_the_shell(tmp_path):
    """The logged re-run line, run by bash, hands the program exactly the argv the hand-off used."""
    run_dir = tmp_path / "0_loss=dpo,seed=1 it's $HOME"
    cmd = evaluation_command(run_dir, "sandbox", ["eval.limit=2"])
    probe = [sys.executable, "-c", "import sys; print(repr(sys.argv[1:]))", *cmd[3:]]
    out = subprocess.run(["bash", "-c", shell_command(probe)], capture_output=True, text=True, check=True).stdout
    assert out.strip() == repr(cmd[3:])
    assert cmd[3] == override("checkpoint", str(run_dir))


def test_a_failed_evaluation_writes_the_marker_with_a_rerun_line(tmp_path):
    """A run dir without a checkpoint: prefexp.evaluate exits 2; the marker names code and command."""
    run_dir = tmp_path / "3_loss=dpo,seed=0"
    run_dir.mkdir()
    codes = evaluate_after_training(run_dir, ["sandbox"], ["eval.limit=2"])
    assert codes == {"sandbox": 2}
    text = failure_marker(run_dir, "sandbox").read_text()
    first = text.splitlines()[0]
    assert first.startswith("EvaluationFailed: eval=sandbox exited with code 2; re-run: cd ")
    assert "'checkpoint=" in first and "eval.limit=2" in first
    assert "error:" in text  # the evaluation's own stderr tail follows the summary
