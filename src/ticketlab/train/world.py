"""What the training loop needs of data-parallel processes: this process's rank among them, its share of a
batch or an evaluation set, sums over the ranks, the leader's decisions and objects on every rank.

A ``World`` of size 1 (the default) is a process alone; nothing here is called then. Launching processes
under torchrun and the followers' side of the protocol live in the executor layer (exec/ddp.py): the leader,
entering the loop, announces the call (``announce``); each follower receives it (``receive``), builds the
same model and enters the same loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

from ticketlab import TicketlabError


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def shard(self, n: int) -> slice:
        """This rank's contiguous part of ``n`` items (the parts differ in size by at most one)."""
        return slice(n * self.rank // self.size, n * (self.rank + 1) // self.size)

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` summed over the ranks, in place."""
        if self.size > 1:
            dist.all_reduce(tensor)
        return tensor

    def agree(self, flag: bool) -> bool:
        """The leader's decision on every rank (e.g. whether to save a resume point now)."""
        return bool(broadcast(flag if self.leader else None)) if self.size > 1 else flag

    def share(self, obj):
        """The leader's ``obj`` on every rank (tensors travel through the CPU)."""
        return broadcast(_to_cpu(obj) if self.leader else None) if self.size > 1 else obj

    def rng_states(self) -> list[torch.Tensor] | None:
        """Every rank's CPU RNG state in rank order, on every rank (every rank takes part); None alone."""
        if self.size == 1:
            return None
        states: list = [None] * self.size
        dist.all_gather_object(states, torch.get_rng_state())
        return states

    def check(self, spec, model: torch.nn.Module) -> None:
        """What data-parallel training cannot do, as errors naming the fix."""
        if spec.batch_size % self.size:
            raise TicketlabError(f"training.batch_size={spec.batch_size} does not split over {self.size} processes; "
                                 f"choose --nproc dividing it")
        if spec.compile:
            raise TicketlabError("training.compile is not supported with --nproc; drop one of them")
        if getattr(model, "spec", None) is None:
            raise TicketlabError("data-parallel training needs a model built by ticketlab.models.build")


def current() -> World:
    """This process's place in the process group (``World()``: alone)."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size())
    return World()


def follower_seed(seed: int, rank: int) -> int:
    """A follower's RNG seed at a fresh start: its own stream (dropout), fixed by the job's data seed."""
    from ticketlab.data import stable_seed
    return stable_seed("ddp-rank", seed, rank)


def has_batchnorm(model: torch.nn.Module) -> bool:
    return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())


def announce(model, mask, splits, spec, *, augment: bool, start_step: int) -> None:
    """The leader, entering the training loop: what the followers need to join it (weights come with DDP)."""
    if splits.spec is None:
        raise TicketlabError("data-parallel training needs splits loaded by ticketlab.data.load")
    broadcast({"data": splits.spec, "model": model.spec, "input_shape": model.input_shape,
               "num_classes": model.num_classes, "mask": mask, "training": spec, "augment": augment,
               "start_step": start_step})


def receive() -> dict | None:
    """A follower: the next call the leader announces, or None when the leader says it is done."""
    return broadcast(None)


def broadcast(obj):
    """Rank 0's ``obj`` on every rank."""
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj
