#!/usr/bin/env bash
# fp32 vs bf16 tickets on real MNIST: Lenet, 3 trials x 6 levels x 10K iterations, eval every 100, no reinits.
cd "$(dirname "$0")/../../.."   # the repository root
for prec in fp32 bf16; do
  OMP_NUM_THREADS=1 nice -n 5 .venv/bin/ticketlab lottery --model lenet --set data.dataset=mnist --set lottery.trials=3 \
    --set lottery.levels=6 --set lottery.reinits=0 --set training.steps=10000it --set training.precision=$prec \
    --data-dir ${DATA_DIR:-../shared/datasets} --store ${STORE:-store} > bf16_study_$prec.log 2>&1 &
done
wait
