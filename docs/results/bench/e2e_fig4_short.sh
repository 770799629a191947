#!/usr/bin/env bash
# End-to-end timing of a shortened Lenet Fig-4 protocol (5 trials x 3 levels, 3 reinits per trial and
# level, evaluation every 100 on 5,000 val + 10,000 test), the single loop job by job (--engine
# sequential) vs the batched engine (--engine auto), --workers 2, at 1,000 and 3,000 iterations per run so
# that the cost per model-step and the fixed cost per job separate. Run from the repository root:
#   DATA_DIR=../shared/datasets docs/results/bench/e2e_fig4_short.sh > e2e.csv
# ENGINES="auto" EXTRA="--set training.test_eval=reported" times the batched engine with the test set
# evaluated only where it is reported. LEVELS=20 runs every level of the protocol (0-20, 405 runs), where
# the batched engine switches layers that keep < 15% of their weights to sparse products (level 9 on);
# STEPS="500 1500" sets the two lengths.
set -euo pipefail
data="${DATA_DIR:-../shared/datasets}"
echo "engine,steps,runs,wall_s"
for engine in ${ENGINES:-sequential auto}; do
  for steps in ${STEPS:-1000 3000}; do
    store=$(mktemp -d)
    start=$(date +%s.%N)
    .venv/bin/ticketlab lottery --model lenet --set data.dataset=mnist --set lottery.trials=5 --set lottery.levels=${LEVELS:-3} \
      --set lottery.reinits=3 --set training.steps=${steps}it --workers 2 --engine $engine ${EXTRA:-} \
      --data-dir "$data" --store "$store" > "$store.log" 2>&1
    end=$(date +%s.%N)
    runs=$(ls -d "$store"/lottery-*/trial_*/level_*/*/ | wc -l)
    echo "$engine${EXTRA:+ $EXTRA},$steps,$runs,$(echo "$end - $start" | bc)"   # the engine column names the extra options
    rm -rf "$store" "$store.log"
  done
done
