"""Masks and pruning strategies.

``mask.py`` (the Mask value, masked training helpers), ``schedule.py`` (the count rule and the
predicted Pm table), one file per strategy (``magnitude.py``, ``random.py``) and ``registry.py``
(names -> strategies, and ``prune``).
"""

from ticketlab.pruning.mask import Mask, apply_mask, mask_gradients
from ticketlab.pruning.random import random_like
from ticketlab.pruning.registry import STRATEGIES, prune
from ticketlab.pruning.schedule import removal_count, schedule

__all__ = ["Mask", "STRATEGIES", "apply_mask", "mask_gradients", "prune", "random_like",
           "removal_count", "schedule"]
