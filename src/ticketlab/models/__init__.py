"""Models: a registry of the papers' networks, each tagging its weight tensors for pruning.

``build(spec)`` gives an initialised model; ``describe(name)`` its parameter counts;
``paper_defaults(name)`` the settings that follow the paper; ``layer_init_std`` the per-layer σ of
the initial distribution.
"""

from ticketlab.models.base import KINDS, Model, WeightInfo
from ticketlab.models.init import SCHEMES, initialize, layer_init_std
from ticketlab.models.registry import build, describe, names, paper_defaults

__all__ = ["KINDS", "Model", "WeightInfo", "SCHEMES", "initialize", "layer_init_std",
           "build", "describe", "names", "paper_defaults"]
