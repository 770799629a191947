"""K networks of one architecture as stacked parameters ``[K, ...]``, for the stacked engine (engines.py).

Two forward implementations share one parameter store:

    StackedMLP      the Lenet family: weights stored ``[K, in, out]`` and one ``torch.baddbmm`` per layer
                    (faster than ``[K, out, in]`` with a transposed operand; docs/speed.md)
    StackedVmap     any model without buffers or randomness: ``torch.func.vmap`` of
                    ``functional_call`` over the stack. Correct, but on the CPU slower for Conv-2 than
                    training the models one after another (vmap turns the convolutions into grouped
                    ones; docs/speed.md), so the engine uses it only when asked (``engine="vmap"``).

Masks and optimizer state live in the same stacked layout; ``state(k)``/``load(k, ...)`` convert to and
from model ``k``'s own ``state_dict``, so every file the engine writes loads into the single model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from ticketlab import TicketlabError
from ticketlab.models import Model
from ticketlab.pruning import Mask
from ticketlab.spec import TrainingSpec
from ticketlab.train.optim import build_optimizer, decoupled_decay
from ticketlab.train.sparse import BlockSparseMatmul, Pattern


class Stacked:
    """Parameters of K models as leaves ``params[name]`` of shape ``[K, *stack_shape]``, except the
    layers in ``patterns`` (StackedMLP.use_sparse): those hold only their kept weights, model after model,
    as one vector (``Pattern`` maps it to and from the stacked layout)."""

    def __init__(self, models: list[Model]):
        self.template, self.k = models[0], len(models)
        self.names = [name for name, _ in self.template.named_parameters()]
        states = [m.state_dict() for m in models]
        self.params = {n: torch.stack([self.to_stack(n, s[n].detach()) for s in states]).requires_grad_()
                       for n in self.names}
        self.patterns: dict[str, Pattern] = {}

    def part(self, name: str, t: torch.Tensor, k: int) -> torch.Tensor:
        """Model ``k``'s part of ``t`` (a parameter, its gradient or an optimizer state shaped like it)."""
        if name in self.patterns:
            a, b = self.patterns[name].offsets[k], self.patterns[name].offsets[k + 1]
            return t[a:b]
        return t[k:k + 1]

    def to_model(self, name: str, k: int, part: torch.Tensor) -> torch.Tensor:
        """A ``part(name, ., k)`` in model ``k``'s own layout (kept weights scattered into zeros)."""
        if name in self.patterns:
            pattern = self.patterns[name]
            dense = part.new_zeros(pattern.stack_shape[1:]).view(-1)
            dense.index_copy_(0, pattern.local[pattern.offsets[k]:pattern.offsets[k + 1]], part)
            part = dense.view(pattern.stack_shape[1:])
        else:
            part = part[0]
        return self.from_stack(name, part).clone(memory_format=torch.contiguous_format)

    def from_model(self, name: str, k: int, t: torch.Tensor) -> torch.Tensor:
        """The inverse of ``to_model``: model ``k``'s tensor as its ``part``."""
        t = self.to_stack(name, t)
        if name in self.patterns:
            pattern = self.patterns[name]
            return t.reshape(-1)[pattern.local[pattern.offsets[k]:pattern.offsets[k + 1]]]
        return t.unsqueeze(0)

    # per-model layout <-> stacked layout (identity here; StackedMLP transposes its weights)
    def to_stack(self, name: str, t: torch.Tensor) -> torch.Tensor:
        return t

    def from_stack(self, name: str, t: torch.Tensor) -> torch.Tensor:
        return t

    def state(self, k: int) -> dict[str, torch.Tensor]:
        """Model ``k``'s ``state_dict`` (fresh contiguous copies, with the model's own names and shapes)."""
        return {n: self.to_model(n, k, self.part(n, p.detach(), k)) for n, p in self.params.items()}

    @torch.no_grad()
    def load(self, k: int, state: dict[str, torch.Tensor]) -> None:
        for n, p in self.params.items():
            self.part(n, p, k).copy_(self.from_model(n, k, state[n].to(p.device, p.dtype)))

    def masks(self, masks: list[Mask | None]) -> dict[str, torch.Tensor]:
        """Float masks stacked like the parameters; a model without a mask (None) keeps everything."""
        names = next((list(m) for m in masks if m is not None), [])
        if any(m is not None and set(m) != set(names) for m in masks):
            raise TicketlabError("the masks of a batch must cover the same tensors (they come from one architecture)")
        out = {}
        for n in names:
            p = self.params[n]
            out[n] = torch.stack([self.to_stack(n, m[n].to(p.device, p.dtype)) if m is not None
                                  else torch.ones(p.shape[1:], dtype=p.dtype, device=p.device) for m in masks])
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[K, B, classes]`` of model k on its own inputs ``x[k]`` (``x``: ``[K, B, ...]``)."""
        raise NotImplementedError

    def forward_shared(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[K, N, classes]`` of every model on the same inputs ``x`` (``[N, ...]``)."""
        raise NotImplementedError


class StackedMLP(Stacked):
    """Lenet: ``hidden.{i}`` and ``output`` linear layers with ReLU, on flattened inputs.

    ``use_sparse(masks, names)`` switches layers to sparse storage and arithmetic (the engine picks those
    whose masks keep less than ``sparse_below`` in every model, ``engines.sparse_layers``): the parameter
    becomes the vector of kept weights (so the optimizer steps only those), the matmuls are
    ``BlockSparseMatmul``. States and optimizer states still come out in each model's own dense layout,
    with zeros where pruned."""

    def __init__(self, models: list[Model]):
        super().__init__(models)
        self.layers = [(f"{name}.weight", f"{name}.bias") for name, m in self.template.named_modules()
                       if isinstance(m, nn.Linear)]

    def use_sparse(self, masks: dict[str, torch.Tensor], names) -> None:
        """Sparse storage and arithmetic for the layers ``names``, under their stacked ``masks``; call
        before building the optimizer."""
        for name in names:
            pattern = Pattern(masks[name])
            values = self.params[name].detach().reshape(-1).index_select(0, pattern.flat)
            self.params[name] = values.clone().requires_grad_()
            self.patterns[name] = pattern

    def to_stack(self, name: str, t: torch.Tensor) -> torch.Tensor:
        return t.t() if name.endswith(".weight") else t.unsqueeze(0)   # bias [1, out] broadcasts over B

    def from_stack(self, name: str, t: torch.Tensor) -> torch.Tensor:
        return t.t() if name.endswith(".weight") else t.squeeze(0)

    def _layers(self, h: torch.Tensor) -> torch.Tensor:
        last = len(self.layers) - 1
        for i, (w, b) in enumerate(self.layers):
            if w in self.patterns:
                h = BlockSparseMatmul.apply(h, self.params[w], self.patterns[w]) + self.params[b]
            else:
                h = torch.baddbmm(self.params[b], h, self.params[w])
            if i < last:
                h = torch.relu(h)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._layers(x.flatten(2))

    def forward_shared(self, x: torch.Tensor) -> torch.Tensor:
        return self._layers(x.flatten(1).expand(self.k, -1, -1))


class StackedVmap(Stacked):
    """Any bufferless, deterministic model: vmap of the model's own forward over the stacked parameters."""

    def __init__(self, models: list[Model]):
        super().__init__(models)
        call = lambda p, x: functional_call(self.template, p, (x,))  # noqa: E731
        self._own, self._shared = vmap(call), vmap(call, in_dims=(0, None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._own(self.params, x)

    def forward_shared(self, x: torch.Tensor) -> torch.Tensor:
        return self._shared(self.params, x)


def vmap_supported(model: Model) -> str | None:
    """Why ``model`` cannot be trained by ``StackedVmap`` with the single loop's results, or None."""
    if any(True for _ in model.buffers()):
        return "it has buffers (BatchNorm running statistics)"
    if any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in model.modules()):
        return "it uses dropout (drawn from the global RNG in a different order than the single loop)"
    return None


def batch_losses(logits: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Per-model cross-entropy ``[K]`` of logits ``[K, B, C]`` against labels ``[K, B]`` (or ``[B]``, shared)."""
    k, b = logits.shape[:2]
    y = y.expand(k, b)
    losses = F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="none").view(k, b)
    return losses.mean(1) if reduction == "mean" else losses.sum(1)


class StackedOptimizer:
    """One torch optimizer over a stack, stepping each model with its own lr and weight decay.

    Each model is one param group whose params are views ``[k:k+1]`` of the stacked tensors, built by
    ``build_optimizer`` from its spec. The step is therefore the single loop's own fused kernel (same bias
    corrections, same coupled/decoupled decay, and none of the default CPU Adam's slow sqrt of the exact
    zeros that pruned weights leave in the second moment). Models are never merged into one group even
    when their hyperparameters agree: the kernel's vector chunking would then depend on the batch mates,
    and with it the last bits of every update."""

    def __init__(self, stacked: Stacked, specs: list[TrainingSpec], device: torch.device):
        self.stacked, self.specs = stacked, specs
        self.ranges: list[tuple[int, int]] = [(k, k + 1) for k in range(len(specs))]
        self.views = [[stacked.part(n, p.detach(), a) for n, p in stacked.params.items()] for a, _ in self.ranges]
        parts = [build_optimizer(specs[a], views, device) for (a, _), views in zip(self.ranges, self.views)]
        self.optimizer = parts[0]
        for part in parts[1:]:
            self.optimizer.add_param_group(part.param_groups[0])

    @torch.no_grad()
    def step(self, lrs: list[float]) -> None:
        """One step with ``lrs[g]`` for group g; the stacked gradients must be set and masked."""
        grads = [(n, p.grad) for n, p in self.stacked.params.items()]
        for (a, b), views, group, lr in zip(self.ranges, self.views, self.optimizer.param_groups, lrs):
            group["lr"] = lr
            for view, (name, grad) in zip(views, grads):
                view.grad = self.stacked.part(name, grad, a)
            decoupled_decay(self.specs[a], views, lr)
        self.optimizer.step()

    def state(self, k: int) -> dict:
        """Model ``k``'s optimizer state in the format of ``build_optimizer(spec, model.parameters())``."""
        g = next(i for i, (a, b) in enumerate(self.ranges) if a <= k < b)
        state = {}
        for i, (name, view) in enumerate(zip(self.stacked.names, self.views[g])):
            if view in self.optimizer.state:
                state[i] = {key: self.stacked.to_model(name, k, v) if torch.is_tensor(v) and v.dim() > 0 else _copy(v)
                            for key, v in self.optimizer.state[view].items()}
        group = {key: v for key, v in self.optimizer.param_groups[g].items() if key != "params"}
        return {"state": state, "param_groups": [{**group, "params": list(range(len(self.stacked.names)))}]}

    def load(self, states: list[dict]) -> None:
        """Restore from one ``state(k)`` per model (as written into each job's resume.pt)."""
        for (a, b), views in zip(self.ranges, self.views):
            for i, (name, view) in enumerate(zip(self.stacked.names, views)):
                per_model = [states[k]["state"].get(i) for k in range(a, b)]
                if per_model[0] is None:
                    continue
                self.optimizer.state[view] = {
                    key: (self.stacked.from_model(name, a, v).to(view.device)
                          .clone(memory_format=torch.contiguous_format)  # fused kernels expect dense strides
                          if torch.is_tensor(v) and v.dim() > 0 else _copy(v, view.device))
                    for key, v in per_model[0].items()}


def _copy(v, device=None):
    return v.detach().clone().to(device or v.device) if torch.is_tensor(v) else v
