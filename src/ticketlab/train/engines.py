"""Engines: the ways of computing a training step for the one loop (loop.py), behind one small interface.

    ModuleEngine    one ``nn.Module`` (K = 1): data-parallel under torchrun (DDP), fp16 loss scaling,
                    ``torch.compile``, channels_last on the CPU, image folders, BatchNorm, dropout
    StackedEngine   K models of one architecture as stacked parameters (stacked.py): StackedMLP for the
                    Lenet family (``baddbmm``; layers sparser than ``sparse_below`` as block-sparse
                    products, sparse.py) or StackedVmap (``torch.func.vmap``) for bufferless deterministic
                    models; each model with its own mask, init, data order, lr and weight decay

An engine trains K models in lockstep: ``step`` runs one training step of all of them and returns their
losses; ``evaluate`` scores all K on a split through evaluation.py; ``state``/``load`` and
``optimizer_state``/``load_optimizers`` convert to and from each model's own ``state_dict`` and optimizer
format, so the resume points, checkpoints and results are the same files whatever engine made them.
The loop owns everything else (schedule, evaluation points, early stopping, checkpoints, resume).

``choose_engine`` picks one (``engine="auto"``): the stacked MLP for Lenet, the single loop model after
model for anything else (vmap is slower than the single loop for conv nets on the CPU, and BatchNorm
buffers and dropout cannot follow the single loop under vmap); docs/speed.md has the measurements.
"""

from __future__ import annotations

import time
from dataclasses import fields

import torch
import torch.nn.functional as F

from ticketlab import TicketlabError
from ticketlab.data import BatchSampler, ImageFiles, Splits, augment_batch, train_batches
from ticketlab.models import Model
from ticketlab.models.lenet import Lenet
from ticketlab.options import ENGINES
from ticketlab.pruning import Mask
from ticketlab.spec import TrainingSpec
from ticketlab.train.evaluation import activation_elements, autocast, eval_chunk, evaluate_models
from ticketlab.train.optim import build_optimizer, decoupled_decay
from ticketlab.train.stacked import Stacked, StackedMLP, StackedOptimizer, StackedVmap, batch_losses, vmap_supported
from ticketlab.train.world import World, has_batchnorm

MAY_DIFFER = frozenset({"lr", "weight_decay", "decoupled_weight_decay", "data_seed"})


class Engine:
    """K models trained in lockstep (see the module docstring). ``k`` counts them; ``batchnorm`` says
    whether their statistics depend on the process count; ``compile_seconds`` is the first step's time
    under ``training.compile``."""

    k: int = 1
    batchnorm: bool = False
    compile_seconds: float | None = None

    def begin(self) -> None:
        """Called once the resume point (if any) is loaded, before the first step."""

    def step(self, step: int, lrs: list[float]) -> torch.Tensor:
        """One training step of every model at learning rates ``lrs``; their losses ``[K]`` (detached)."""
        raise NotImplementedError

    def evaluate(self, x, y: torch.Tensor, classes: torch.Tensor | None = None) -> list[dict[str, float]]:
        """Every model's metrics on (x, y) (``evaluation.METRICS``: mean cross-entropy, accuracy)."""
        raise NotImplementedError

    def state(self, k: int) -> dict[str, torch.Tensor]:
        """A copy of model ``k``'s ``state_dict``."""
        raise NotImplementedError

    def load(self, k: int, state: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError

    def optimizer_state(self, k: int) -> dict:
        raise NotImplementedError

    def load_optimizers(self, states: list[dict]) -> None:
        raise NotImplementedError

    def resume_fields(self, k: int) -> dict:
        """Engine-specific fields of model ``k``'s resume point."""
        return {}

    def finish(self) -> None:
        """Leave every model object at the weights last loaded (the loop loads the final ones last)."""


class _MaskedParams:
    """Pairs of (parameter, float mask) for the hot path: mask gradients before the step and re-zero
    weights after it, so momentum, Adam moments and weight decay can never revive a pruned weight."""

    def __init__(self, model: torch.nn.Module, mask: Mask | None):
        params = dict(model.named_parameters())
        names = list(mask) if mask is not None else []
        self.params = [params[n] for n in names]
        self.masks = [mask[n].to(device=params[n].device, dtype=params[n].dtype) for n in names]
        self.pruned = [~mask[n].to(device=params[n].device, dtype=torch.bool) for n in names]

    @torch.no_grad()
    def zero_weights(self) -> None:
        # masked_fill, not a multiply: a diverged run's NaN * 0 would leave NaN in pruned places
        for p, pruned in zip(self.params, self.pruned):
            p.masked_fill_(pruned, 0.0)

    @torch.no_grad()
    def zero_grads(self) -> None:
        grads = [p.grad for p in self.params if p.grad is not None]
        if grads:
            torch._foreach_mul_(grads, [m for p, m in zip(self.params, self.masks) if p.grad is not None])


def memory_format(model: torch.nn.Module, device: torch.device) -> torch.memory_format:
    """channels_last for convolutional networks on CPU (oneDNN's fast layout; docs/speed.md), the default
    layout otherwise. Values, not layouts, are saved, so the files do not depend on it."""
    has_conv = any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    return torch.channels_last if has_conv and device.type == "cpu" else torch.contiguous_format


class ModuleEngine(Engine):
    """One model as an ``nn.Module``: the single loop's step. Under torchrun every rank builds one
    (exec/ddp.py): each trains on its slice of every batch and DistributedDataParallel averages the
    gradients; evaluations are split over the ranks and summed."""

    def __init__(self, model: torch.nn.Module, mask: Mask | None, splits: Splits, spec: TrainingSpec, *,
                 augment: bool = False, world: World = World(), total: int):
        device = splits.train_x.device
        self.model, self.spec, self.world, self.device = model, spec, world, device
        self.batchnorm = has_batchnorm(model)
        model.to(memory_format=memory_format(model, device))
        self.masked = _MaskedParams(model, mask)
        self.chunk = eval_chunk(model, splits.train_x[:1])
        sampler = BatchSampler(len(splits.train_x), spec.batch_size, spec.data_seed, device=device)
        self.fetch = train_batches(splits, sampler, spec.data_seed, augment, world.shard(spec.batch_size),
                                   spec.batch_size, total)
        self.optimizer = build_optimizer(spec, model.parameters(), device)
        self.scaler = torch.amp.GradScaler(device.type) if spec.precision == "fp16" and device.type == "cuda" else None
        self.forward = model

    def begin(self) -> None:
        self.masked.zero_weights()
        self.forward = torch.compile(self.model) if self.spec.compile else self.model
        if self.world.size > 1:
            # broadcasts the leader's weights and buffers now, BN buffers before every forward pass
            self.forward = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.model.train()

    def step(self, step: int, lrs: list[float]) -> torch.Tensor:
        spec, optimizer, scaler, (lr,) = self.spec, self.optimizer, self.scaler, lrs
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = self.fetch(step)
        compiling = time.perf_counter()
        with autocast(spec.precision, self.device):
            loss = F.cross_entropy(self.forward(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        if scaler:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        self.masked.zero_grads()
        decoupled_decay(spec, self.model.parameters(), lr)
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        self.masked.zero_weights()
        if spec.compile and self.compile_seconds is None:
            self.compile_seconds = time.perf_counter() - compiling
        return loss.detach().reshape(1)

    def evaluate(self, x, y, classes=None):
        model = self.model
        was_training = model.training
        model.eval()
        try:
            return evaluate_models(lambda inputs: model(inputs).unsqueeze(0), 1, x, y, self.chunk,
                                   self.spec.precision, self.world, classes)
        finally:
            model.train(was_training)

    def state(self, k):
        return {n: v.detach().clone() for n, v in self.model.state_dict().items()}

    def load(self, k, state):
        self.model.load_state_dict(state)

    def optimizer_state(self, k):
        return self.optimizer.state_dict()

    def load_optimizers(self, states):
        self.optimizer.load_state_dict(states[0])


class StackedEngine(Engine):
    """K models as one stack (stacked.py); model k is the single loop's model k up to float rounding:
    its own init, mask, seeded data order (and augmentation), lr schedule and weight decay, one fused
    optimizer step per model slice. ``sparse``: the layers stored and multiplied sparse (StackedMLP)."""

    def __init__(self, models: list[Model], masks: list[Mask | None], splits: Splits, specs: list[TrainingSpec], *,
                 kind: str, augment: bool = False, sparse: tuple[str, ...] = ()):
        device, spec = splits.train_x.device, specs[0]
        self.models, self.specs, self.k, self.splits, self.augment = models, specs, len(models), splits, augment
        self.device, self.precision = device, spec.precision
        self.samplers = [BatchSampler(len(splits.train_x), s.batch_size, s.data_seed, device=device) for s in specs]
        self.stacked: Stacked = (StackedMLP if kind == "mlp" else StackedVmap)(models)
        stacked_masks = self.stacked.masks(masks)
        if sparse:
            self.stacked.use_sparse(stacked_masks, sparse)
        self.optimizer = StackedOptimizer(self.stacked, specs, device)
        self.chunk = max(1, eval_chunk(models[0], splits.train_x) // self.k)   # the single loop's activation memory
        self.params = list(self.stacked.params.values())
        # sparse layers hold only their kept weights: nothing to mask there
        self.weights = [self.stacked.params[n] for n in stacked_masks if n not in self.stacked.patterns]
        self.mask_list = [m for n, m in stacked_masks.items() if n not in self.stacked.patterns]
        self.pruned_list = [m == 0 for m in self.mask_list]
        self.forward = torch.compile(self.stacked.forward) if spec.compile else self.stacked.forward
        self.compile = spec.compile

    @torch.no_grad()
    def _zero_weights(self) -> None:   # masked_fill: NaN * 0 would leave a diverged model's pruned weights NaN
        for w, pruned in zip(self.weights, self.pruned_list):
            w.masked_fill_(pruned, 0.0)

    def begin(self) -> None:
        self._zero_weights()

    def step(self, step, lrs):
        splits = self.splits
        indices = torch.stack([sampler.indices(step) for sampler in self.samplers])     # [K, B]
        x, y = splits.train_x[indices], splits.train_y[indices]
        if self.augment:
            x = torch.stack([augment_batch(xk, s.data_seed, step) for xk, s in zip(x, self.specs)])
        compiling = time.perf_counter()
        with autocast(self.precision, self.device):
            losses = batch_losses(self.forward(x), y)
        for p in self.params:
            p.grad = None
        losses.sum().backward()   # models are independent: the sum's gradient for model k is its own loss's
        if self.weights:
            torch._foreach_mul_([w.grad for w in self.weights], self.mask_list)
        self.optimizer.step(lrs)
        self._zero_weights()
        if self.compile and self.compile_seconds is None:
            self.compile_seconds = time.perf_counter() - compiling
        return losses.detach()

    def evaluate(self, x, y, classes=None):
        return evaluate_models(self.stacked.forward_shared, self.k, x, y, self.chunk, self.precision, World(), classes)

    def state(self, k):
        return self.stacked.state(k)

    def load(self, k, state):
        self.stacked.load(k, state)

    def optimizer_state(self, k):
        return self.optimizer.state(k)

    def load_optimizers(self, states):
        self.optimizer.load(states)

    def resume_fields(self, k):
        return {"slot": k}

    def finish(self) -> None:
        for k, model in enumerate(self.models):
            model.load_state_dict(self.stacked.state(k))


def check_batchable(specs: list[TrainingSpec]) -> None:
    """Raise TicketlabError unless the specs differ only in the fields of ``MAY_DIFFER``."""
    reference = specs[0]
    for i, spec in enumerate(specs[1:], 1):
        others = {f.name for f in fields(spec) if f.name not in MAY_DIFFER}
        bad = sorted(n for n in others if getattr(spec, n) != getattr(reference, n))
        if bad:
            raise TicketlabError(f"runs 0 and {i} of a batch differ in {bad}; a batch may differ only in "
                                 f"{sorted(MAY_DIFFER)} (train the others in another batch)")


def choose_engine(models: list[Model], specs: list[TrainingSpec], device: torch.device, engine: str = "auto",
                  world: World = World(), files: bool = False) -> str:
    """The engine that trains ``models`` ("mlp", "vmap" or "sequential": ModuleEngine model after model),
    or an error naming the engine that cannot do what is asked. ``files``: the data are image folders."""
    if engine not in ENGINES:
        raise TicketlabError(f"unknown engine {engine!r}; choose one of {list(ENGINES)}")
    sequential = specs[0].precision == "fp16" and device.type == "cuda"   # loss scaling is per model
    if world.size > 1:   # data-parallel ranks share one model's batches, not a stack of models
        if engine not in ("auto", "sequential"):
            raise TicketlabError(f"engine {engine!r} does not run data-parallel (--nproc); use the sequential engine")
        return "sequential"
    if files:   # stacks index tensors, not files
        if engine not in ("auto", "sequential"):
            raise TicketlabError(f"engine {engine!r} needs tensor data; image folders train with engine='sequential'")
        return "sequential"
    if engine == "auto":
        return "sequential" if sequential or not isinstance(models[0], Lenet) else "mlp"
    if engine == "mlp" and not isinstance(models[0], Lenet):
        raise TicketlabError(f"engine 'mlp' trains Lenet only, not {type(models[0]).__name__}")
    why = vmap_supported(models[0]) if engine == "vmap" else None
    if why or (sequential and engine != "sequential"):
        raise TicketlabError(f"engine {engine!r} cannot reproduce the single loop here: "
                             f"{why or 'fp16 loss scaling on CUDA is per model'}; use engine='sequential'")
    return engine


def sparse_threshold(engine: str, below: float) -> float:
    """Sparse layers are part of ``engine="auto"`` only; every named engine keeps its layers dense."""
    return below if engine == "auto" else 0.0


def sparse_layers(mask: Mask | None, below: float) -> tuple[str, ...]:
    """The layers of ``mask`` that keep less than ``below`` of their weights: the stacked Lenet engine
    trains them with sparse matmuls. A model's path depends on its own mask only, and models on different
    paths never share a batch, so a model's bits still do not depend on its batch mates."""
    if mask is None or below <= 0:
        return ()
    return tuple(name for name in mask if mask[name].float().mean().item() < below)


def use_sparse(kind: str, spec: TrainingSpec, device: torch.device, masks: list[Mask | None], below: float) -> tuple:
    """The layers a stacked engine of ``kind`` keeps sparse: the CPU, fp32, no compile, and sparse in every mask."""
    if kind != "mlp" or device.type != "cpu" or spec.precision != "fp32" or spec.compile:
        return ()
    return tuple(set.intersection(*(set(sparse_layers(m, below)) for m in masks)))


# ---------------------------------------------------------------------------------------------------
# Memory: how many models a stacked engine may hold at once.

_MEMORY_SHARE = 0.25   # of the memory available when a batch starts
_COPIES = 10           # fp32 copies per parameter: weights, grad, 2 Adam moments, mask, best, final, resume, slack


def model_bytes(model: torch.nn.Module, example: torch.Tensor) -> int:
    """Memory one model of a batch needs: ``_COPIES`` fp32 copies of its parameters plus one training
    batch's activations (measured on ``example``, run on the CPU). Evaluation memory does not grow with
    K (the engine divides its evaluation chunk by K)."""
    params = sum(p.numel() for p in model.parameters())
    return 4 * (_COPIES * params + 3 * 60 * activation_elements(model.cpu(), example.cpu()))


def batch_capacity(per_model: int, device: torch.device) -> int:
    """Models of ``per_model`` bytes that fit a quarter of the memory available when called (free GPU
    memory on CUDA, MemAvailable on Linux); at least 1, a large cap when memory is unknown."""
    return max(1, int(_MEMORY_SHARE * _available_bytes(device)) // per_model)


def _available_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 40
