#!/usr/bin/env bash
# Create .venv at the repo root and install prefexp with every extra, pinned by
# requirements/constraints.txt. torch is installed first and pinned, so that no dependency
# pulls a CUDA build on a CPU machine. Idempotent: a second call only checks the install.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
stamp=.venv/.prefexp-installed
want="$(cat pyproject.toml requirements/constraints.txt | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade "pip>=24"
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -c requirements/constraints.txt -e ".[dev]"
# DeepSpeed on CPU JIT-compiles its shared-memory collectives (deepspeed_shm_comm, ~40 s) the
# first time a multi-rank run starts; build it now, as DeepSpeed's DS_BUILD_OPS would at install.
# Best effort: without a C++ compiler the first DeepSpeed run tries again and says why.
.venv/bin/python -c "from deepspeed.ops.op_builder.cpu import ShareMemCommBuilder as B; B().load(verbose=False)" \
  >/dev/null 2>&1 || echo "note: DeepSpeed's CPU shm op was not pre-built (it is built on first use)"
echo "$want" > "$stamp"
echo "prefexp installed in .venv"
