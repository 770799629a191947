"""Speed of the batched engine: model-steps per second for K masked Lenet-300-100 trained in one batch.

    from ticketlab.train.bench_batched import bench_batched
    bench_batched(16, 200)                          # stacked baddbmm engine
    bench_batched(16, 200, engine="sequential")     # the single loop, model after model (the baseline)

Setup as ``ticketlab bench``: batch 60, Adam 1.2e-3, random masks with the per-layer densities of IMP
level 3 (FC 0.8^3, output 0.9^3), on the MNIST-shaped synthetic dataset (5,000 training examples) so it
needs no files. The rate is the slope between a short and a long run, so set-up and the evaluations at
the start and the end cancel. Thread count is the caller's (one thread per process is the robust layout
on a 2-core machine). Speed is a measurement, never a test assertion.
"""

from __future__ import annotations

import time
from dataclasses import replace

import torch

from ticketlab import api
from ticketlab.pruning import Mask
from ticketlab.steps import Step
from ticketlab.train.batched import train_batched
from ticketlab.train.job import build_model


def bench_batched(k: int = 16, steps: int = 200, *, hidden: tuple[int, ...] = (300, 100), engine: str = "auto") -> float:
    """Model-steps per second training ``k`` masked Lenets with ``engine`` (see batched.py)."""
    spec = api.make_spec("lenet", overrides={"data.dataset": "synthetic", "data.val_size": 1000,
                                             "model.hidden": ",".join(map(str, hidden))})
    splits = api.load_splits(spec.data)

    def seconds(n: int) -> float:
        models = [build_model(replace(spec, model=replace(spec.model, init_seed=i)), splits) for i in range(k)]
        masks = [_level3_mask(m, seed=i) for i, m in enumerate(models)]
        training = replace(spec.training, steps=Step(n), eval_every=Step(n))
        specs = [replace(training, data_seed=i) for i in range(k)]
        start = time.perf_counter()
        train_batched(models, masks, splits, specs, engine=engine)
        return time.perf_counter() - start

    short, long = max(steps // 4, 1), steps
    return k * (long - short) / max(seconds(long) - seconds(short), 1e-9)


def _level3_mask(model, seed: int) -> Mask:
    g = torch.Generator().manual_seed(seed)
    weights = model.prunable_weights()
    last = list(weights)[-1]
    return Mask.from_tensors({n: torch.rand(p.shape, generator=g) < (0.9 ** 3 if n == last else 0.8 ** 3)
                              for n, p in weights.items()})
