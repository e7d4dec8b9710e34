#!/usr/bin/env bash
# bench/distillation.py on one GPU machine (an H200 with 16 cores was the plan): the demo recipes' weights against the
# published ones (VAC's Dist 25; γ = δ = 1, T = 8), 40 epochs as the figures, results under $OUT.
#
#   OUT=bench/out/gpu bash bench/gpu_distillation.sh [SETTINGS] [EPOCHS]     (SETTINGS: recipe | published | both)
#
# A fresh machine: installs the project into the machine's own python3, beside its torch (as `make install` does,
# without fetching torch; the machine is thrown away afterwards). A machine that cannot fetch needs the other
# dependencies as wheels for its Python in .whl/ (carried): fairseq-fixed 0.12.3.1, hydra-core 1.3.2, omegaconf
# 2.3.0, antlr4-python3-runtime 4.9.3, bitarray, lmdb, editdistance, av, tensorboardX.
# Written back: bench.txt (what the bench prints), install.log, and the runs' logs as logs.tar.gz.
set -uo pipefail
SETTINGS=${1:-both}
EPOCHS=${2:-40}
OUT=${OUT:-bench/out/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
WORK=/tmp/distillation-bench

finish() {
    tar -czf "$OUT/logs.tar.gz" -C "$WORK" --exclude='*.pt' --exclude='data' --exclude='corpus' . 2>/dev/null
    nvidia-smi --query-gpu=name,memory.used --format=csv > "$OUT/gpu.txt" 2>&1
}
trap finish EXIT

{
    if [ -d .whl ]; then "$PY" -m pip install -q --no-index --no-deps --no-compile .whl/*.whl; fi &&
    "$PY" -m pip install -q --no-build-isolation --no-deps -e . &&
    "$PY" -c "import torch, fairseq, hydra, lmdb, editdistance, slt_plugins; print('torch', torch.__version__,
        'cuda', torch.cuda.is_available(), 'fairseq', fairseq.__version__)"
} > "$OUT/install.log" 2>&1 || { echo "install failed: $OUT/install.log"; tail -n 20 "$OUT/install.log"; exit 1; }
tail -n 1 "$OUT/install.log"

# 16 cores: the stage with most runs side by side has 4 (the students of both settings), 3 threads each
timeout 460 "$PY" bench/distillation.py --epochs "$EPOCHS" --settings "$SETTINGS" --threads 3 \
    --work "$WORK" 2>&1 | tee "$OUT/bench.txt"
