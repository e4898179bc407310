#!/usr/bin/env bash
# The GPU check (issue 20, item 7): run it whenever a CUDA machine is lent, then commit the block
# it appends to docs/benchmarks.md. Without CUDA it prints one "skipped" line and exits 0 (CI and
# every CPU machine). It needs no network: it uses the Python it is given (PY, default python)
# and, if the tree carries one, a wheelhouse/ of the pure-Python packages that Python lacks.
#
#   bash scripts/gpu_check.sh            # ~8 min budget on one GPU
#   PY=.venv/bin/python bash scripts/gpu_check.sh
#
# Steps, each under its own time limit so one hang cannot eat the lease:
#   1. the benchmark's GPU preset (0.5B Qwen2-shaped model from a config) vs TRL when installed:
#      tokens/s, peak memory, MFU
#   2. the tests marked gpu (fused head on CUDA, bf16 / tf32 keys, QLoRA)
#   3. one training step per loss on the sandbox model on the GPU
#   4. ZeRO-3 on one GPU (DeepSpeed, 2 steps)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}
OUT=${OUT:-outputs/gpu_check}

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    echo "gpu_check: skipped: no CUDA device visible to $PY (torch.cuda.is_available() is False or torch is missing)"
    exit 0
fi
if [ -d wheelhouse ]; then  # offline install of what the bare machine lacks
    "$PY" -m pip install -q --no-index --find-links wheelhouse -e . || echo "gpu_check: wheelhouse install failed; going on"
fi
mkdir -p "$OUT"
export PREFEXP_CACHE="$OUT/cache" WANDB_MODE=disabled
status=0
step() {  # step NAME SECONDS CMD... : run with a limit, log to $OUT/NAME.log, record the exit code
    local name=$1 limit=$2; shift 2
    echo "gpu_check: $name ..."
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    echo "$name rc=$rc" >> "$OUT/steps.txt"
    [ $rc -eq 0 ] || { status=1; tail -20 "$OUT/$name.log"; }
}
: > "$OUT/steps.txt"
runs=prefexp,prefexp_padded,prefexp_before
"$PY" -c 'import trl' 2>/dev/null && runs=$runs,trl_precompute
step bench 240 "$PY" scripts/bench_train.py --preset gpu --runs "$runs" --out "$OUT/bench_gpu.json"
step gpu_tests 120 "$PY" -m pytest -q -p no:cacheprovider -m gpu tests
losses=$(ls conf/loss | sed 's/\.yaml$//')
step losses 150 bash -c "for l in $(echo $losses); do \"$PY\" -m prefexp.train loss=\$l logger=none \
    trainer.max_steps=1 hydra.run.dir=$OUT/loss_\$l > $OUT/loss_\$l.log 2>&1 && echo \"\$l ok\" || { echo \"\$l FAILED\"; exit 1; }; done"
step zero3 90 "$PY" -m prefexp.train deepspeed=zero3 logger=none trainer.max_steps=2 trainer.precision=bf16 \
    hydra.run.dir="$OUT/zero3"

{
    echo
    echo "## GPU check, $(date -u +%Y-%m-%d) ($("$PY" -c 'import torch; print(torch.cuda.get_device_name(0))'))"
    echo
    echo '`bash scripts/gpu_check.sh`; exit codes per step:'
    echo
    sed 's/^/    /' "$OUT/steps.txt"
    echo
    echo "Benchmark (GPU preset):"
    echo
    grep -A30 '^run ' "$OUT/bench.log" | sed 's/^/    /'
} >> docs/benchmarks.md
echo "gpu_check: figures appended to docs/benchmarks.md (logs in $OUT); status $status"
exit $status
