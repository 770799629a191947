"""``ticketlab bench``: training-loop speed of ticketlab next to a stock PyTorch loop, in one process.

All engines train Lenet-300-100 (batch 60, Adam 1.2e-3) under random masks with the per-layer
densities of IMP level 3 (Pm 51%): the stock loop, ticketlab's single-model loop, and the batched
engine with K models at once (each its own init, mask and data order). Each rate is the slope between a short and a long run,
(n_long - n_short) / (t_long - t_short), so fixed costs (set-up, the final evaluations) cancel; the
median over repeats is reported. Speed is a measurement, never a test assertion.
"""

from __future__ import annotations

import platform
import statistics
import time
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ticketlab import TicketlabError, api
from ticketlab.pruning import Mask
from ticketlab.spec import DataSpec, apply_overrides
from ticketlab.steps import Step
from ticketlab.train.batched import train_batched
from ticketlab.train.job import build_model
from ticketlab.train.loop import train


class _StockLenet(nn.Module):
    """The textbook way: nn.Linear layers with the mask multiplied into the weight in forward."""

    def __init__(self, sizes: list[int], masks: list[torch.Tensor]):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        for i, m in enumerate(masks):
            self.register_buffer(f"mask{i}", m.float())

    def forward(self, x):
        x = x.flatten(1)
        for i, layer in enumerate(self.layers):
            x = F.linear(x, layer.weight * getattr(self, f"mask{i}"), layer.bias)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


def _stock_seconds(splits, masks, steps: int) -> float:
    torch.manual_seed(0)
    model = _StockLenet([784, 300, 100, 10], masks)
    optimizer = torch.optim.Adam(model.parameters(), lr=1.2e-3)
    loader = DataLoader(TensorDataset(splits.train_x, splits.train_y), batch_size=60, shuffle=True, drop_last=True)
    start = time.perf_counter()
    done = 0
    while done < steps:
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            done += 1
            if done == steps:
                break
    return time.perf_counter() - start


def _ticketlab_seconds(spec, splits, mask, steps: int) -> float:
    spec = apply_overrides(spec, {"training.steps": f"{steps}it", "training.eval_every": f"{steps}it"})
    model = build_model(spec, splits)
    start = time.perf_counter()
    train(model, mask, splits, spec.training, progress=None)
    return time.perf_counter() - start


def _batched_seconds(spec, splits, masks: list[Mask], steps: int) -> float:
    training = replace(spec.training, steps=Step(steps), eval_every=Step(steps))
    models_ = [build_model(replace(spec, model=replace(spec.model, init_seed=i)), splits) for i in range(len(masks))]
    start = time.perf_counter()
    train_batched(models_, masks, splits, [replace(training, data_seed=i) for i in range(len(masks))], engine="mlp")
    return time.perf_counter() - start


def _level3_mask(model, generator: torch.Generator) -> Mask:
    """A random mask at IMP level 3's per-layer densities: 0.8^3 hidden, 0.9^3 output."""
    infos = model.weight_info()
    return Mask.from_tensors({name: torch.rand(p.shape, generator=generator) < (0.9 ** 3 if infos[name].kind == "output" else 0.8 ** 3)
                              for name, p in model.prunable_weights().items()})


def _rate(seconds_of, short: int, long: int, repeats: int) -> float:
    rates = []
    for _ in range(repeats):
        t_short, t_long = seconds_of(short), seconds_of(long)
        rates.append((long - short) / max(t_long - t_short, 1e-9))
    return statistics.median(rates)


def run(quick: bool = False, data_dir: str | None = None, sizes: tuple[int, int, int] | None = None,
        ks: tuple[int, ...] | None = None) -> dict:
    """Measure every engine; ``sizes`` = (short, long, repeats) overrides the run lengths, ``ks`` the
    batch sizes of the batched engine."""
    try:
        splits = api.load_splits(DataSpec(dataset="mnist"), data_dir)
        dataset = splits.info.label
    except TicketlabError:
        splits = api.load_splits(DataSpec(dataset="synthetic", val_size=200), None)
        dataset = "synthetic (MNIST not found)"
    spec = api.make_spec("lenet", overrides={"data.dataset": splits.info.name})
    model = build_model(spec, splits)
    generator = torch.Generator().manual_seed(0)
    ks = ks or ((1, 4, 16) if quick else (1, 4, 16, 64))
    masks = [_level3_mask(model, generator) for _ in range(max(ks))]
    mask = masks[0]
    # long enough that the fixed costs (evaluations of the full training split, ~1 s) do not swamp the slope
    short, long, repeats = sizes or ((300, 1800, 3) if quick else (500, 4000, 5))
    stock = _rate(lambda n: _stock_seconds(splits, list(mask.values()), n), short, long, repeats)
    ours = _rate(lambda n: _ticketlab_seconds(spec, splits, mask, n), short, long, repeats)
    # K models per step: shorter runs keep each measurement near the single loop's model-step count
    batched = {k: k * _rate(lambda n: _batched_seconds(spec, splits, masks[:k], n), max(short // max(k // 4, 1), 5),
                            max(long // max(k // 4, 1), 25), repeats) for k in ks}
    return {
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "torch": torch.__version__, "threads": torch.get_num_threads()},
        "dataset": dataset,
        "protocol": f"Lenet-300-100, batch 60, Adam 1.2e-3, mask at Pm 51%; slope between {short} and {long} "
                    f"iterations, median of {repeats}",
        "results": [
            {"model": "lenet", "engine": "stock", "K": 1, "model_steps_per_s": stock, "ratio_to_stock": 1.0},
            {"model": "lenet", "engine": "single", "K": 1, "model_steps_per_s": ours, "ratio_to_stock": ours / stock},
            *({"model": "lenet", "engine": "batched", "K": k, "model_steps_per_s": rate, "ratio_to_stock": rate / stock}
              for k, rate in batched.items()),
        ],
    }


def format_report(report: dict) -> str:
    lines = [f"{report['protocol']} on {report['dataset']}; torch {report['machine']['torch']}, "
             f"{report['machine']['threads']} threads"]
    for r in report["results"]:
        lines.append(f"  {r['model']:6s} {r['engine']:8s} K={r['K']:<3d} {r['model_steps_per_s']:8.1f} model-steps/s"
                     f"  x{r['ratio_to_stock']:.2f} vs stock")
    return "\n".join(lines)
