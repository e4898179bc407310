"""``python -m prefexp.train --cfg job --resolve`` prints the composed config with every
interpolation resolved (the run dir is Hydra's to pick when a job runs: null there)."""
from __future__ import annotations

import subprocess
import sys

import yaml

from tests.helpers import REPO


def test_cfg_job_resolve_prints_the_resolved_config(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "prefexp.train", "--cfg", "job", "--resolve", "tau=0.25"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(REPO), "PREFEXP_CACHE": str(tmp_path / "c"), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "${" not in proc.stdout and "Traceback" not in proc.stderr
    cfg = yaml.safe_load(proc.stdout)
    assert cfg["tau"] == 0.25 and cfg["paths"]["run_dir"] is None
    assert cfg["paths"]["cache_dir"] == str(tmp_path / "c")  # ${oc.env:PREFEXP_CACHE,...} resolved
    assert cfg["dataset"]["sandbox"]["reference"] == cfg["model"]["sandbox"]  # ${model.sandbox} resolved
