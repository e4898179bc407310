"""scripts/gpu_check.sh on a machine without CUDA: one 'skipped' line, exit 0, nothing written
(the GPU run itself is the device machine's, see docs/benchmarks.md)."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO


@pytest.mark.skipif(torch.cuda.is_available(), reason="with CUDA the script runs the real check")
def test_gpu_check_skips_cleanly_without_cuda(tmp_path):
    before = (REPO / "docs" / "benchmarks.md").read_text()
    proc = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh")], capture_output=True, text=True,
                          timeout=120, env={"PATH": "/usr/bin:/bin", "PY": sys.executable, "OUT": str(tmp_path / "out")})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines() == [
        f"gpu_check: skipped: no CUDA device visible to {sys.executable} "
        "(torch.cuda.is_available() is False or torch is missing)"]
    assert not (tmp_path / "out").exists()
    assert (REPO / "docs" / "benchmarks.md").read_text() == before
