"""Initialization schemes (``model.init``), all drawn from one generator seeded by ``model.init_seed``.

Schemes (PROTOCOL §2 "Initialization", §6 A7):
  glorot_normal     untruncated N(0, 2/(fan_in+fan_out)): [S1]'s "Gaussian Glorot" (default)
  glorot_truncated  TF contrib ``xavier_initializer(uniform=False)`` as in [EXT-b]: N(0, σ_t²) cut at
                    ±2σ_t with σ_t = sqrt(1.3·2/(fan_in+fan_out)), whose std is ≈ the Glorot σ
  normal            N(0, init_std²) ([S1] G.5's sweep)
  kaiming_normal    N(0, 2/fan_out) (He et al., fan_out mode for ReLU)
  torch_default     PyTorch's reset_parameters: U(±1/sqrt(fan_in)) for weights *and* biases

Fans include the receptive field: a conv kernel (out, in, kh, kw) has fan_in = in·kh·kw and
fan_out = out·kh·kw (PyTorch's and TF's convention); a matrix (out, in) has fan_in = in, fan_out = out.
Biases start at zero (except torch_default), BN at gamma 1, beta 0 with fresh running statistics.
``model.zero_init_output`` then zeroes the output matrix.

Values are drawn on the CPU in float32, module by module in registration order, and copied into
the parameters, so a spec gives bit-identical weights on any device and the global RNG is untouched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ticketlab import TicketlabError
from ticketlab.models.base import Model
from ticketlab.spec import ModelSpec


@dataclass(frozen=True)
class Distribution:
    """A zero-mean distribution for one tensor."""

    family: str    # 'normal', 'truncated_normal' (cut at ±2·scale), 'uniform' (on ±scale) or 'zeros'
    scale: float

    @property
    def std(self) -> float:
        """The standard deviation of the values actually drawn (σ_l of PROTOCOL §1.14)."""
        if self.family == "normal":
            return self.scale
        if self.family == "truncated_normal":
            # variance of N(0,1) cut at ±2: 1 - 2·2·φ(2) / (2Φ(2) - 1)
            phi = math.exp(-2.0) / math.sqrt(2 * math.pi)
            mass = math.erf(2 / math.sqrt(2))
            return self.scale * math.sqrt(1 - 4 * phi / mass)
        if self.family == "uniform":
            return self.scale / math.sqrt(3)
        return 0.0

    def sample(self, shape: torch.Size, generator: torch.Generator) -> torch.Tensor:
        out = torch.zeros(shape, dtype=torch.float32)
        if self.family == "normal":
            out.normal_(0.0, self.scale, generator=generator)
        elif self.family == "truncated_normal":
            nn.init.trunc_normal_(out, 0.0, self.scale, -2 * self.scale, 2 * self.scale, generator=generator)
        elif self.family == "uniform":
            out.uniform_(-self.scale, self.scale, generator=generator)
        return out


ZEROS = Distribution("zeros", 0.0)


@dataclass(frozen=True)
class Scheme:
    weight: Callable[[int, int, ModelSpec], Distribution]   # (fan_in, fan_out, spec) -> distribution
    bias: Callable[[int], Distribution] = lambda fan_in: ZEROS


SCHEMES: dict[str, Scheme] = {
    "glorot_normal": Scheme(lambda fi, fo, s: Distribution("normal", math.sqrt(2 / (fi + fo)))),
    "glorot_truncated": Scheme(lambda fi, fo, s: Distribution("truncated_normal", math.sqrt(1.3 * 2 / (fi + fo)))),
    "normal": Scheme(lambda fi, fo, s: Distribution("normal", s.init_std)),
    "kaiming_normal": Scheme(lambda fi, fo, s: Distribution("normal", math.sqrt(2 / fo))),
    "torch_default": Scheme(lambda fi, fo, s: Distribution("uniform", 1 / math.sqrt(fi)),
                            bias=lambda fi: Distribution("uniform", 1 / math.sqrt(fi))),
}


def check_init(spec: ModelSpec) -> None:
    """Raise TicketlabError unless ``spec.init`` and ``spec.init_std`` make sense together."""
    if spec.init not in SCHEMES:
        raise TicketlabError(f"unknown model.init {spec.init!r}; choose one of: {', '.join(SCHEMES)}")
    if spec.init == "normal" and not spec.init_std > 0:
        raise TicketlabError(f"model.init=normal needs model.init_std > 0 (e.g. 0.1), got {spec.init_std}")
    if spec.init != "normal" and spec.init_std != 0.0:
        raise TicketlabError(f"model.init_std applies to model.init=normal only; "
                             f"drop it or set model.init=normal (init is {spec.init!r})")


def fans(shape: torch.Size) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of shape (out, in, *kernel), the receptive field included."""
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def initialize(model: Model, spec: ModelSpec) -> Model:
    """Overwrite every parameter and BN buffer of ``model`` from ``spec`` (in place; returns it)."""
    check_init(spec)
    scheme = SCHEMES[spec.init]
    generator = torch.Generator().manual_seed(spec.init_seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                fan_in, fan_out = fans(module.weight.shape)
                _fill(module.weight, scheme.weight(fan_in, fan_out, spec), generator)
                if module.bias is not None:
                    _fill(module.bias, scheme.bias(fan_in), generator)
            elif isinstance(module, nn.BatchNorm2d):
                module.reset_parameters()   # gamma 1, beta 0, running mean 0 / var 1, count 0
            elif any(p is not None for p in module._parameters.values()):
                # a layer type added later must get a rule here rather than keep whatever it had
                raise TypeError(f"initialize() has no rule for {type(module).__name__}")
        if spec.zero_init_output:
            params = dict(model.named_parameters())
            for name, info in model.weight_infos.items():
                if info.kind == "output":
                    params[name].zero_()
    return model


def layer_init_std(model: Model, spec: ModelSpec) -> dict[str, float]:
    """σ_l of each weight tensor's initial distribution under ``spec`` (PROTOCOL §1.14), by name.

    For glorot_truncated this is the std after truncation (≈ the Glorot σ), not σ_t; a zero-initialised
    output layer has σ_l = 0.
    """
    check_init(spec)
    scheme = SCHEMES[spec.init]
    params = dict(model.named_parameters())
    out = {}
    for name, info in model.weight_infos.items():
        if spec.zero_init_output and info.kind == "output":
            out[name] = 0.0
        else:
            out[name] = scheme.weight(*fans(params[name].shape), spec).std
    return out


def _fill(param: torch.Tensor, dist: Distribution, generator: torch.Generator) -> None:
    param.copy_(dist.sample(param.shape, generator))
