#!/usr/bin/env bash
# Record a fixed set of runs (one thread per process) into $1/store; the fingerprint goes to $1/fingerprint.json.
# Usage: runs.sh OUTDIR  (run from the repo root, venv active)
set -euo pipefail
OUT=$(realpath -m "$1"); mkdir -p "$OUT"; S="$OUT/store"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 CI=1 TICKETLAB_OFFLINE=1
D=/work/shared/datasets
T=ticketlab
L="training.steps=300it training.eval_every=100it data.dataset=mnist"
log() { echo "== $*" >&2; }
sets() { for a in "$@"; do printf -- "--set %s " "$a"; done; }
log batched-sparse; $T lottery --model lenet --store $S --data-dir $D --workers 1 $(sets $L pruning.fc_rate=0.6 lottery.levels=3 lottery.trials=2 lottery.reinits=1) > $OUT/batched.txt
log sequential; $T lottery --model lenet --store $S --data-dir $D --workers 1 --engine sequential $(sets $L pruning.fc_rate=0.6 lottery.levels=3 lottery.trials=1 lottery.reinits=1 training.data_seed=5) > $OUT/sequential.txt
log rewind-decoupled; $T lottery --model lenet --store $S --data-dir $D --workers 1 $(sets $L lottery.mode=rewind lottery.rewind=100it lottery.levels=2 lottery.trials=2 lottery.reinits=1 eval.lr=0.002) > $OUT/rewind.txt
log lr-rewind-patience; $T lottery --model lenet --store $S --data-dir $D --workers 1 $(sets $L lottery.mode=lr-rewind lottery.levels=2 lottery.trials=1 lottery.reinits=0 training.patience=2 training.test_eval=reported training.optimizer=sgd training.lr=0.05 training.momentum=0.9 training.weight_decay=1e-4 training.decoupled_weight_decay=true) > $OUT/lrrewind.txt
log conv2-dropout; $T lottery --model conv2 --store $S --workers 1 $(sets data.dataset=synthetic_rgb training.steps=40it training.eval_every=20it model.dropout=0.5 lottery.levels=1 lottery.trials=1 lottery.reinits=1 data.augment=true) > $OUT/conv2.txt
log conv2-vmap; python - "$S" <<'PY' > $OUT/vmap.txt
import sys
from ticketlab import api
exp = api.make_experiment("conv2", overrides={"data.dataset": "synthetic_rgb", "training.steps": "40it", "training.eval_every": "20it", "lottery.levels": 1, "lottery.trials": 2, "lottery.reinits": 0, "model.init_seed": 3})
print(api.lottery(exp, sys.argv[1], engine="vmap", progress=False))
PY
log train-single; $T train --model lenet --store $S --data-dir $D $(sets $L training.precision=bf16) --json > $OUT/train.json
log ddp; $T train --model lenet --store $S --data-dir $D --nproc 2 $(sets $L training.data_seed=7) --json > $OUT/ddp.json
log ddp-conv; $T train --model conv2 --store $S --nproc 2 $(sets data.dataset=synthetic_rgb training.steps=30it training.eval_every=10it model.dropout=0.3) --json > $OUT/ddpconv.json
log fingerprint; python /work/bitcheck/fingerprint.py $S > $OUT/fingerprint.json
