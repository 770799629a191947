#!/usr/bin/env bash
# A real Lenet lottery chain down to level 20 (Pm 1.2%), dense layers vs sparse layers below 15%:
# 1 trial, 3 reinits per level, 2,000 iterations per run (shortened: speed depends on density, not on
# length), validation every 100 (test only where reported), one worker. Wall time of each command, and
# the per-level table of each experiment next to the other. Run from the repository root:
#   DATA_DIR=../shared/datasets docs/results/bench/sparse/e2e_levels.sh > docs/results/bench/sparse/e2e_levels.txt
set -euo pipefail
data="${DATA_DIR:-../shared/datasets}"
store=$(mktemp -d)
for below in 0 0.15; do
  start=$(date +%s.%N)
  .venv/bin/ticketlab lottery --model lenet --set data.dataset=mnist --set lottery.trials=1 --set lottery.levels=20 \
    --set lottery.reinits=3 --set training.steps=2000it --set training.test_eval=reported \
    --set lottery.fixed_iterations=2000it --sparse-below $below \
    --data-dir "$data" --store "$store/below_$below" > "$store/below_$below.log" 2>&1
  end=$(date +%s.%N)
  echo "sparse_below=$below wall_s=$(echo "$end - $start" | bc)"
  grep -A60 "^experiment" "$store/below_$below.log"
done
rm -rf "$store"
