"""Lenet-300-100 on MNIST in the stacked engine, dense vs sparse layers, at the densities of IMP levels.

K models (own masks at the level's per-layer densities: fc 0.8^level, output 0.9^level; own inits and
data orders), Adam, batch 60, validation every 100 iterations (test_eval=reported, as the Fig-4
projection), one thread. The rate is the difference between runs of 200 and 600 iterations, so the
fixed cost of a job (final evaluations on the training split) cancels. Run from the repository root:

    .venv/bin/python docs/results/bench/sparse/sparse_levels.py --data-dir ../shared/datasets --k 8 \
        --levels 11 13 15 17 20 > docs/results/bench/sparse/levels.csv
    .venv/bin/python docs/results/bench/sparse/sparse_levels.py --data-dir ../shared/datasets --k 8 \
        --levels 7 8 9 10 --sparse-below 1 > docs/results/bench/sparse/crossover.csv
"""

import argparse
import time
from dataclasses import replace

import torch

from ticketlab import api
from ticketlab.pruning import Mask
from ticketlab.steps import Step
from ticketlab.train.batched import SPARSE_BELOW, train_batched
from ticketlab.train.job import build_model


def masks_at(model, level: int, seed: int) -> Mask:
    g = torch.Generator().manual_seed(seed)
    info = model.weight_info()
    return Mask.from_tensors({n: torch.rand(p.shape, generator=g) < (0.9 if info[n].kind == "output" else 0.8) ** level
                              for n, p in model.prunable_weights().items()})


def seconds(spec, splits, k: int, level: int, steps: int, sparse_below: float) -> float:
    spec = replace(spec, training=replace(spec.training, steps=Step(steps)))
    models = [build_model(replace(spec, model=replace(spec.model, init_seed=i)), splits) for i in range(k)]
    masks = [masks_at(m, level, seed=i) for i, m in enumerate(models)]
    start = time.perf_counter()
    train_batched(models, masks, splits, [replace(spec.training, data_seed=i) for i in range(k)],
                  sparse_below=sparse_below)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--levels", type=int, nargs="+", default=[7, 10, 12, 14, 17, 20])
    parser.add_argument("--sparse-below", type=float, default=SPARSE_BELOW,
                        help="the engine's threshold (1.0: every layer sparse, to find the crossover)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    spec = api.make_spec("lenet", "mnist", {"training.test_eval": "reported", "training.eval_every": "100it"})
    splits = api.load_splits(spec.data, args.data_dir)
    print("level,fc_density,k,sparse_below,dense_model_steps_per_s,sparse_model_steps_per_s,speedup", flush=True)
    for level in args.levels:
        rates = []
        for sparse_below in (0.0, args.sparse_below):
            short, long = (seconds(spec, splits, args.k, level, n, sparse_below) for n in (200, 600))
            rates.append(args.k * 400 / (long - short))
        print(f"{level},{0.8 ** level:.4f},{args.k},{args.sparse_below:g},{rates[0]:.0f},{rates[1]:.0f},{rates[1] / rates[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
