"""``ticketlab bench``: training speed of ticketlab next to a stock PyTorch loop, in one process.

Two workloads, both batch 60 with Adam under random masks at IMP level 3's per-layer densities:

    lenet   Lenet-300-100 on MNIST (Adam 1.2e-3), evaluating 5,000 val + 10,000 test examples every
            100 iterations: the stock loop, ticketlab's single loop, the batched engine at K = 1, 4, 16, 64;
            and the batched engine at K = 16 under IMP level 15's densities (hidden layers 3.5%), with
            every layer dense (``mlp``) and with the sparse layers it picks there (``mlp+sparse``)
    conv2   Conv-2 on CIFAR-10 (Adam 2e-4), no periodic evaluation: the stock loop, the single loop in
            fp32 and bf16, the batched engine at K = 1, 4, 8, which for Conv-2 is the single loop run model
            after model (batched.py says why); its records say so (``batched_engine: sequential``)

The stock loop is the textbook one: a DataLoader over a TensorDataset, an nn.Module that multiplies each
mask into its weight in forward (F.linear / F.conv2d), the default torch.optim.Adam (not fused),
contiguous NCHW, and evaluation through a DataLoader of 1,000 under no_grad in eval mode.

Each rate is the slope between a short and a long run, (n_long - n_short) / (t_long - t_short), so fixed
costs (set-up, the first evaluation, ticketlab's end-of-run evaluations) cancel; long - short is a whole
number of evaluation periods, so the slope carries its share of the periodic evaluations. The median over
repeats is reported. Fixed costs still take wall time, so the runs train on a slice of the training split
(speed does not depend on which pixels): the end-of-run evaluations of the whole training split would
otherwise take minutes at K = 64.

FLOPs are counted, not measured: 2 x multiply-accumulates of every Conv2d and Linear layer, dense (every
engine multiplies the masked weights like the others), a training step = 3 forward passes, plus for Lenet
its evaluations amortised per step. They are compared with the fp32 (bf16) peak of torch.mm on
2048 x 2048 matrices measured in the same process with the same threads.

Speed is a measurement, never a test assertion. The bench's own runtime and memory, and its results on
the 2-core VM, are in docs/speed.md.
"""

from __future__ import annotations

import platform
import resource
import statistics
import sys
import time
from dataclasses import dataclass, replace
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ticketlab import TicketlabError, api, data
from ticketlab.data import Splits
from ticketlab.pruning import Mask
from ticketlab.spec import DataSpec, PruningSpec, apply_overrides
from ticketlab.steps import Step
from ticketlab.train.batched import train_batched
from ticketlab.train.job import build_model
from ticketlab.train.loop import probe_forward, train

BATCH = 60


class _StockNet(nn.Module):
    """The textbook way to train under a mask: it is a buffer, multiplied into the weight in forward."""

    def __init__(self, layers: list[nn.Module], masks: list[torch.Tensor]):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        for i, m in enumerate(masks):
            self.register_buffer(f"mask{i}", m.float())

    def weight(self, i: int) -> torch.Tensor:
        return self.layers[i].weight * getattr(self, f"mask{i}")


class _StockLenet(_StockNet):
    def __init__(self, masks):
        super().__init__([nn.Linear(784, 300), nn.Linear(300, 100), nn.Linear(100, 10)], masks)

    def forward(self, x):
        fc1, fc2, fc3 = self.layers
        x = F.relu(F.linear(x.flatten(1), self.weight(0), fc1.bias))
        x = F.relu(F.linear(x, self.weight(1), fc2.bias))
        return F.linear(x, self.weight(2), fc3.bias)


class _StockConv2(_StockNet):
    def __init__(self, masks):
        super().__init__([nn.Conv2d(3, 64, 3, padding=1), nn.Conv2d(64, 64, 3, padding=1),
                          nn.Linear(64 * 16 * 16, 256), nn.Linear(256, 256), nn.Linear(256, 10)], masks)

    def forward(self, x):
        conv1, conv2, fc1, fc2, fc3 = self.layers
        x = F.relu(F.conv2d(x, self.weight(0), conv1.bias, padding=1))
        x = F.relu(F.conv2d(x, self.weight(1), conv2.bias, padding=1))
        x = F.max_pool2d(x, 2).flatten(1)
        x = F.relu(F.linear(x, self.weight(2), fc1.bias))
        x = F.relu(F.linear(x, self.weight(3), fc2.bias))
        return F.linear(x, self.weight(4), fc3.bias)


@dataclass(frozen=True)
class Workload:
    model: str
    dataset: str                    # read from the data dir or the cache, never downloaded
    stand_in: str                   # the generated dataset used when ``dataset`` is not found
    stock: Callable[[list[torch.Tensor]], nn.Module]
    batched_engine: str             # train_batched's engine: 'mlp' stacks the K models, 'sequential' does not
    eval_every: int | None          # iterations between evaluations of val + test; None: at start and end only
    train_examples: int             # the slice of the training split the runs draw batches from
    held_out: int | None            # val and test examples each (None: the whole splits)
    precisions: tuple[str, ...]     # of the single loop
    quick: tuple[tuple[int, int, int], tuple[int, ...]]   # ((short, long, repeats), batched Ks)
    full: tuple[tuple[int, int, int], tuple[int, ...]]
    sparse_level: int | None = None  # also time the batched engine at this IMP level, dense vs sparse layers


WORKLOADS = {
    "lenet": Workload("lenet", "mnist", "synthetic", _StockLenet, "mlp", eval_every=100, train_examples=1200,
                      held_out=None, precisions=("fp32",), quick=((100, 500, 1), (1, 4, 16)),
                      full=((100, 900, 3), (1, 4, 16, 64)), sparse_level=15),
    # a Conv-2 step is slow on a CPU (docs/speed.md): few steps, and few examples for the evaluations the single
    # loop runs at the start (val, test) and the end (val, test, twice the training slice) of every run
    "conv2": Workload("conv2", "cifar10", "synthetic_rgb", _StockConv2, "sequential", eval_every=None,
                      train_examples=60, held_out=20, precisions=("fp32", "bf16"), quick=((3, 9, 1), (1, 4)),
                      full=((6, 24, 3), (1, 4, 8))),
}


def _load(w: Workload, data_dir: str | None, synthetic: bool) -> tuple[Splits, str]:
    """The workload's dataset cut to its slices, and a label saying which dataset it is."""
    splits, label = None, w.stand_in
    if not synthetic:
        try:
            splits = data.load(DataSpec(dataset=w.dataset, allow_unofficial=True), data_dir, offline=True)
            label = splits.info.label
        except TicketlabError:
            label = f"{w.stand_in} ({w.dataset} not found)"
    if splits is None:
        splits = data.load(DataSpec(dataset=w.stand_in), None)
    n, h = w.train_examples, w.held_out
    return replace(splits, train_x=splits.train_x[:n], train_y=splits.train_y[:n], val_x=splits.val_x[:h],
                   val_y=splits.val_y[:h], test_x=splits.test_x[:h], test_y=splits.test_y[:h],
                   train_index=None, val_index=None), label


@torch.no_grad()
def _stock_evaluate(model: nn.Module, loaders: list[DataLoader]) -> None:
    model.eval()
    for loader in loaders:
        loss, correct = 0.0, 0
        for x, y in loader:
            logits = model(x)
            loss += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
    model.train()


def _stock_seconds(w: Workload, splits: Splits, mask: Mask, lr: float, steps: int) -> float:
    torch.manual_seed(0)
    model = w.stock(list(mask.values()))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loader = DataLoader(TensorDataset(splits.train_x, splits.train_y), batch_size=BATCH, shuffle=True, drop_last=True)
    held_out = [DataLoader(TensorDataset(x, y), batch_size=1000)
                for x, y in ((splits.val_x, splits.val_y), (splits.test_x, splits.test_y))]
    start = time.perf_counter()
    done = 0
    while done < steps:
        for x, y in loader:
            if w.eval_every and done % w.eval_every == 0:
                _stock_evaluate(model, held_out)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            done += 1
            if done == steps:
                break
    if w.eval_every:  # and at the end, as the single loop does
        _stock_evaluate(model, held_out)
    return time.perf_counter() - start


def _single_seconds(spec, splits: Splits, mask: Mask, steps: int, eval_every: int | None) -> float:
    spec = apply_overrides(spec, {"training.steps": f"{steps}it", "training.eval_every": f"{eval_every or steps}it"})
    model = build_model(spec, splits)
    start = time.perf_counter()
    train(model, mask, splits, spec.training, progress=None)
    return time.perf_counter() - start


def _batched_seconds(spec, splits: Splits, masks: list[Mask], steps: int, eval_every: int | None, engine: str) -> float:
    training = replace(spec.training, steps=Step(steps), eval_every=Step(eval_every or steps))
    models_ = [build_model(replace(spec, model=replace(spec.model, init_seed=i)), splits) for i in range(len(masks))]
    start = time.perf_counter()
    train_batched(models_, masks, splits, [replace(training, data_seed=i) for i in range(len(masks))], engine=engine)
    return time.perf_counter() - start


def _level_mask(model, pruning: PruningSpec, generator: torch.Generator, level: int = 3) -> Mask:
    """A random mask at an IMP level's per-layer densities, (1 - rate)^level for each layer's kind."""
    infos = model.weight_info()
    return Mask.from_tensors({name: torch.rand(p.shape, generator=generator) < (1 - pruning.rate_for(infos[name].kind)) ** level
                              for name, p in model.prunable_weights().items()})


def _rate(seconds_of: Callable[[int], float], short: int, long: int, repeats: int) -> float:
    """Steps per second: the median over repeats of the slope between a short and a long run. When the long
    run was not slower (timing noise swamped the difference, e.g. on a loaded machine), the repeat is measured
    again with twice the difference (still whole evaluation periods), up to ``_RETRIES`` times; a repeat that
    never separates counts as none, and if none does the rate is NaN."""
    rates = []
    for _ in range(repeats):
        extra = long - short
        for _ in range(_RETRIES + 1):
            t_short, t_long = seconds_of(short), seconds_of(short + extra)
            if t_long > t_short:
                rates.append(extra / (t_long - t_short))
                break
            extra *= 2
    return statistics.median(rates) if rates else float("nan")


_RETRIES = 3


def _batched_lengths(w: Workload, short: int, long: int, repeats: int, k: int) -> tuple[int, int, int]:
    """(short, long, repeats) for K models at once. A stacked step costs about K/4 single steps (Lenet), so
    the runs shrink by K/4, keeping long - short a whole number of evaluation periods; sequential runs
    shrink by only K/2, as each of the K models adds its fixed costs' noise; beyond K = 16 one repeat
    (an evaluation of 64 Lenets takes seconds)."""
    div = max(k // (2 if w.batched_engine == "sequential" else 4), 1)
    span, period = long - short, w.eval_every
    span = max(period, span // div // period * period) if period and span >= period else max(1, span // div)
    short = max(1, short // div)
    return short, short + span, max(1, repeats * 16 // max(k, 16))


@torch.no_grad()
def forward_flops(model: nn.Module, example: torch.Tensor) -> int:
    """2 x multiply-accumulates of every Conv2d and Linear layer in one eval-mode forward pass of ``example``
    (dense: masked weights are multiplied like the others). Biases, activations and pooling are not counted."""
    counts = []

    def count(m, out):
        per_output = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1] if isinstance(m, nn.Conv2d) else m.in_features
        counts.append(2 * out.numel() * per_output)
    probe_forward(model, example, [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))], count)
    return sum(counts)


def peak_matmul_gflops(dtype: torch.dtype = torch.float32, n: int = 2048, repeats: int = 7) -> float:
    """GFLOP/s of torch.mm on n x n matrices with the current threads: the best of ``repeats`` after a
    warm-up (a peak is what the machine can do; noise only slows it down)."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.mm(a, b)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        seconds.append(time.perf_counter() - start)
    return 2 * n ** 3 / min(seconds) / 1e9


def _max_rss_mib() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss   # KiB on Linux, bytes on macOS
    return rss / 2 ** 20 if sys.platform == "darwin" else rss / 2 ** 10


def _bench(w: Workload, splits: Splits, lengths: tuple[int, int, int], ks: tuple[int, ...]) -> tuple[list[dict], dict]:
    """The records of every engine on one workload, and the workload's set-up for the report."""
    spec = api.make_spec(w.model, overrides={"data.dataset": splits.info.name})
    model = build_model(spec, splits)
    generator = torch.Generator().manual_seed(0)
    masks = [_level_mask(model, api.make_pruning(w.model), generator) for _ in range(max(ks, default=1))]
    forward = forward_flops(model, splits.train_x[:1])
    eval_examples = len(splits.val_x) + len(splits.test_x)
    flops = 3 * BATCH * forward + (eval_examples * forward // w.eval_every if w.eval_every else 0)
    short, long, repeats = lengths
    records: list[dict] = []

    def record(engine: str, k: int, rate: float, precision: str = "fp32", **extra) -> None:
        gflops = rate * flops / 1e9
        records.append({"model": w.model, "engine": engine, "K": k, "precision": precision, "model_steps_per_s": rate,
                        "ratio_to_stock": rate / stock, "flops_per_step": flops, "gflops": gflops,
                        "max_rss_mib": _max_rss_mib(), "imp_level": 3, **extra})

    stock = _rate(lambda n: _stock_seconds(w, splits, masks[0], spec.training.lr, n), short, long, repeats)
    record("stock", 1, stock)
    for precision in w.precisions:
        single = apply_overrides(spec, {"training.precision": precision})
        record("single", 1, _rate(lambda n: _single_seconds(single, splits, masks[0], n, w.eval_every), short, long, repeats),
               precision)
    runs = {}
    for k in sorted(ks):    # largest K last: max_rss_mib is the process's maximum so far
        k_short, k_long, k_repeats = runs[k] = _batched_lengths(w, short, long, repeats, k)
        rate = k * _rate(lambda n: _batched_seconds(spec, splits, masks[:k], n, w.eval_every, w.batched_engine),
                         k_short, k_long, k_repeats)
        record("batched", k, rate, batched_engine=w.batched_engine)
    if w.sparse_level is not None and ks:
        # the same engine at a late IMP level, with every layer dense and with the sparse layers engine="auto"
        # picks (batched.SPARSE_BELOW); FLOPs stay the dense count, so the sparse row's GFLOP/s and % of
        # peak are dense-equivalent
        k = min(max(ks), 16)
        sparse_masks = [_level_mask(model, api.make_pruning(w.model), generator, w.sparse_level) for _ in range(k)]
        k_short, k_long, k_repeats = _batched_lengths(w, short, long, repeats, k)
        for name, engine in (("mlp", "mlp"), ("mlp+sparse", "auto")):
            rate = k * _rate(lambda n: _batched_seconds(spec, splits, sparse_masks, n, w.eval_every, engine),
                             k_short, k_long, k_repeats)
            record("batched", k, rate, batched_engine=name, imp_level=w.sparse_level)
    evaluation = (f"evaluating {len(splits.val_x):,} val + {len(splits.test_x):,} test examples every "
                  f"{w.eval_every} iterations" if w.eval_every else
                  f"no periodic evaluation (the single loop evaluates {len(splits.val_x)} val + {len(splits.test_x)} "
                  f"test examples at the start and the end of each run, a fixed cost)")
    batched = {"mlp": "K models stacked (a batch of one trains a discarded twin too)",
               "sequential": "the single loop, model after model"}[w.batched_engine]
    late = f" (and level {w.sparse_level}, dense vs sparse layers)" if w.sparse_level is not None else ""
    protocol = (f"{w.model}, batch {BATCH}, {spec.training.optimizer} {spec.training.lr:g}, level-3 random mask{late}, "
                f"{evaluation}; batches from the first {len(splits.train_x):,} training examples; slope between "
                f"{short} and {long} iterations, median of {repeats}; batched = {batched}, lengths " +
                ", ".join(f"K={k} {s}/{lo} x{r}" for k, (s, lo, r) in runs.items()))
    setup = {"forward_flops_per_example": forward, "train_examples": len(splits.train_x),
             "eval_examples": eval_examples if w.eval_every else 0, "eval_every": w.eval_every,
             "lengths": {"short": short, "long": long, "repeats": repeats},
             "batched_lengths": {str(k): dict(zip(("short", "long", "repeats"), v)) for k, v in runs.items()},
             "protocol": protocol}
    return records, setup


def run(quick: bool = False, data_dir: str | None = None, sizes: dict[str, tuple[int, int, int]] | None = None,
        ks: dict[str, tuple[int, ...]] | None = None, models: tuple[str, ...] = ("lenet", "conv2"),
        synthetic: bool = False) -> dict:
    """Measure every engine on each workload of ``models`` (run in WORKLOADS' order).

    ``sizes[model]`` = (short, long, repeats) overrides the run lengths, ``ks[model]`` the batched engine's
    Ks; ``synthetic`` uses the generated stand-in datasets (tests)."""
    unknown = [m for m in models if m not in WORKLOADS]
    if unknown or not models:
        raise TicketlabError(f"unknown bench models {unknown}; choose from {list(WORKLOADS)}")
    sizes, ks = dict(sizes or {}), dict(ks or {})
    # the peak is measured before and after the workloads and the better kept: on a shared VM one
    # reading can land in a slow spell (two readings minutes apart: docs/speed.md)
    before = {p: peak_matmul_gflops(dtype) for p, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
    report = {
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "torch": torch.__version__, "threads": torch.get_num_threads()},
        "protocol": "model-steps/s = K x steps/s; each rate the slope between a short and a long run (fixed costs "
                    "cancel), median over repeats; flops_per_step counts dense Conv2d/Linear FLOPs of a training "
                    "step (3 forward passes) plus amortised evaluations; fraction_of_peak against torch.mm's "
                    "peak in the record's precision (the better of readings before and after); max_rss_mib is "
                    "the process's maximum RSS so far (monotone; the largest K of each model runs last)",
        "datasets": {},
        "setup": {},
        "results": [],
    }
    for name in (m for m in WORKLOADS if m in models):
        w = WORKLOADS[name]
        splits, label = _load(w, data_dir, synthetic)
        records, setup = _bench(w, splits, sizes.get(name, (w.quick if quick else w.full)[0]),
                                ks.get(name, (w.quick if quick else w.full)[1]))
        report["datasets"][name] = label
        report["setup"][name] = setup
        report["results"] += records
    after = {p: peak_matmul_gflops(dtype) for p, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
    peaks = {p: max(before[p], after[p]) for p in before}
    threads = report["machine"]["threads"]
    report["machine"].update({"peak_matmul_gflops": peaks["fp32"], "peak_matmul_gflops_per_core": peaks["fp32"] / threads,
                              "peak_matmul_gflops_bf16": peaks["bf16"],
                              "peak_matmul_readings": {"before": before, "after": after}})
    for r in report["results"]:
        r["fraction_of_peak"] = r["gflops"] / peaks[r["precision"]]
    return report


def format_report(report: dict) -> str:
    m = report["machine"]
    lines = [f"torch {m['torch']}, {m['threads']} threads; peak torch.mm {m['peak_matmul_gflops']:.0f} GFLOP/s fp32 "
             f"({m['peak_matmul_gflops_per_core']:.0f} per core), {m['peak_matmul_gflops_bf16']:.0f} bf16"]
    for name, setup in report["setup"].items():
        lines.append(f"{name} on {report['datasets'][name]}: {setup['protocol']}")
    lines.append(f"  {'model':6s} {'engine':20s} {'prec':4s} {'lvl':>3s} {'K':>3s} {'steps/s':>8s} {'x stock':>7s} "
                 f"{'GFLOP/s':>7s} {'%peak':>6s} {'RSS MiB':>7s}")
    for r in report["results"]:
        engine = f"batched ({r['batched_engine']})" if r["engine"] == "batched" else r["engine"]
        lines.append(f"  {r['model']:6s} {engine:20s} {r['precision']:4s} {r.get('imp_level', 3):3d} {r['K']:3d} "
                     f"{r['model_steps_per_s']:8.1f} "
                     f"{r['ratio_to_stock']:7.2f} {r['gflops']:7.1f} {100 * r['fraction_of_peak']:5.1f}% "
                     f"{r['max_rss_mib']:7.0f}")
    return "\n".join(lines)
