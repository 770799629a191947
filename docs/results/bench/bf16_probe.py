"""Batched Lenet (K=16) in fp32 vs bf16: model-steps/s by the slope between 100 and 500 iterations,
evaluating 5,000 val + 10,000 test every 100. Usage: .venv/bin/python docs/results/bench/bf16_probe.py [DATA_DIR]"""
import sys
import time, torch
from dataclasses import replace
from ticketlab import api
from ticketlab.spec import DataSpec
from ticketlab.steps import Step
from ticketlab.train.batched import train_batched
from ticketlab.train.job import build_model
from ticketlab.pruning import Mask
torch.set_num_threads(2)
splits = api.load_splits(DataSpec(dataset="mnist"), sys.argv[1] if len(sys.argv) > 1 else "../shared/datasets")
import dataclasses
splits = dataclasses.replace(splits, train_x=splits.train_x[:1200], train_y=splits.train_y[:1200])
spec = api.make_spec("lenet", overrides={"data.dataset": "mnist"})
K=16
def run(prec, steps):
    tr = replace(spec.training, steps=Step(steps), eval_every=Step(100), precision=prec)
    ms = [build_model(replace(spec, model=replace(spec.model, init_seed=i)), splits) for i in range(K)]
    g = torch.Generator().manual_seed(0)
    masks = [Mask.from_tensors({n: torch.rand(p.shape, generator=g) < 0.5 for n, p in m.prunable_weights().items()}) for m in ms]
    t = time.perf_counter()
    train_batched(ms, masks, splits, [replace(tr, data_seed=i) for i in range(K)], engine="mlp")
    return time.perf_counter() - t
for prec in ("fp32", "bf16"):
    a, b = run(prec, 100), run(prec, 500)
    print(prec, "model-steps/s", K * 400 / (b - a), flush=True)
