"""Data-parallel training of one job over several processes: torchrun + DistributedDataParallel.

``ticketlab train|lottery ... --nproc N`` relaunches the same command under torchrun
(``python -m torch.distributed.run --standalone --nproc-per-node N -m ticketlab ...``); launching it
with torchrun yourself works too, and is how several machines join (torchrun's ``--nnodes`` and
``--rdzv-endpoint``). Rank 0, the leader, runs the command as it would alone: the runner, pruning, every
file of the store. Each time it enters the training loop it first announces the call (data spec, model
spec, mask, training spec); the other ranks, the followers, wait for announcements, build the same model
and join that call. Every rank takes its contiguous slice of each global batch (augmented as the whole
batch would be), DistributedDataParallel averages the gradients, and every rank applies the same masked
optimizer step, so the replicas stay equal. Evaluations are split across the ranks and summed. Only the
leader writes files; a resume point holds every rank's RNG state.

The gradient of B examples on N ranks is the single process's gradient of the same B examples (up to
float summation order), so a job keeps its name, a single-process job can resume under DDP and back,
and results match a single process to float rounding. Not for BatchNorm: as in the usual DDP recipes
each rank normalises over its own B/N examples (rank 0's running statistics are broadcast before every
forward pass), which is a different computation, so a BN model's resume point refuses a different
number of ranks. The world size goes into the job's summary.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable

import torch
import torch.distributed as dist

from ticketlab import TicketlabError, runtime

# followers wait between two trainings while the leader prunes, saves and plans the next job
WAIT = timedelta(hours=4)


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


def world() -> World:
    """This process's place in the process group (``World()``: alone)."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size())
    return World()


def launch(argv: list[str], nproc: int) -> int:
    """Run ``ticketlab argv`` as ``nproc`` processes on this machine under torchrun; its exit code.
    Each process gets an equal share of the cores unless OMP_NUM_THREADS says otherwise."""
    if nproc < 2:
        raise TicketlabError(f"--nproc takes the number of processes (>= 1), got {nproc}")
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    # inside torchrun the processes know they are several; torchrun's own parser would take --nproc
    # for an abbreviation of its --nproc-per-node
    kept = [a for i, a in enumerate(argv) if not (a.startswith("--nproc") or (i and argv[i - 1] == "--nproc"))]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "ticketlab", *kept]
    # torchrun puts the ranks in sessions of their own: each rank dies with torchrun (start), torchrun
    # with this process, so killing the command stops them all; rerunning it resumes
    return subprocess.call(command, env=env, preexec_fn=runtime.die_with_parent)


def start(device: str) -> torch.device:
    """Join the process group torchrun set up (gloo on the CPU, NCCL on CUDA); this rank's device:
    ``cuda`` becomes ``cuda:LOCAL_RANK``."""
    runtime.die_with_parent()
    local = int(os.environ["LOCAL_RANK"])
    chosen = torch.device(device)
    if chosen.type == "cuda":
        chosen = torch.device("cuda", local)
        torch.cuda.set_device(chosen)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    dist.init_process_group("nccl" if chosen.type == "cuda" else "gloo", timeout=WAIT)
    return chosen


def run(leader: Callable[[str], Any], device: str = "cpu", data_dir: str | None = None) -> Any:
    """Inside torchrun: join the group, then rank 0 runs ``leader(its device)`` and returns its result while
    the other ranks join every training it starts (``follow``, their data from ``data_dir``) and return
    None; everyone leaves the group together. A rank that fails raises without a last collective (the
    others may be inside one): its exit makes torchrun stop the rest instead of leaving them waiting."""
    device = str(start(device))
    if not world().leader:
        follow(data_dir, device)
        finish()
        return None
    result = leader(device)
    finish()
    return result


def finish() -> None:
    """The leader: tell the followers there is nothing more to train; everyone leaves the group."""
    if world().leader:
        _broadcast(None)
    # DDP wrappers sit in reference cycles; one freed after the group is gone aborts the process
    gc.collect()
    dist.barrier()   # nobody tears the group down while another rank still uses it
    dist.destroy_process_group()


def check(spec, model: torch.nn.Module) -> None:
    """What data-parallel training cannot do, as errors naming the fix."""
    size = world().size
    if spec.batch_size % size:
        raise TicketlabError(f"training.batch_size={spec.batch_size} does not split over {size} processes; "
                             f"choose --nproc dividing it")
    if spec.compile:
        raise TicketlabError("training.compile is not supported with --nproc; drop one of them")
    if getattr(model, "spec", None) is None:
        raise TicketlabError("data-parallel training needs a model built by ticketlab.models.build")


def has_batchnorm(model: torch.nn.Module) -> bool:
    return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())


def announce(model, mask, splits, spec, *, augment: bool, start_step: int) -> None:
    """The leader, entering the training loop: what the followers need to join it (weights come with DDP)."""
    if splits.spec is None:
        raise TicketlabError("data-parallel training needs splits loaded by ticketlab.data.load")
    _broadcast({"data": splits.spec, "model": model.spec, "input_shape": model.input_shape,
                "num_classes": model.num_classes, "mask": mask, "training": spec, "augment": augment,
                "start_step": start_step})


def follow(data_dir: str | None, device: str) -> int:
    """A follower: join every training the leader announces, until it says it is done; the number joined."""
    from ticketlab import data, models
    from ticketlab.train.loop import train
    joined = 0
    while (call := _broadcast(None)) is not None:
        splits = data.load_cached(call["data"], data_dir, device)
        model = models.build(call["model"], call["input_shape"], call["num_classes"]).to(splits.train_x.device)
        train(model, call["mask"], splits, call["training"], augment=call["augment"], start_step=call["start_step"])
        joined += 1
    return joined


def share(obj):
    """The leader's ``obj`` on every rank (tensors travel through the CPU)."""
    return _broadcast(_to_cpu(obj) if world().leader else None)


def agree(flag: bool) -> bool:
    """The leader's decision on every rank (e.g. whether to save a resume point now)."""
    return bool(_broadcast(flag if world().leader else None))


def rng_states() -> list[torch.Tensor]:
    """Every rank's CPU RNG state, in rank order (on every rank)."""
    states: list = [None] * world().size
    dist.all_gather_object(states, torch.get_rng_state())
    return states


def follower_seed(seed: int, rank: int) -> int:
    """A follower's RNG seed at a fresh start: its own stream (dropout), fixed by the job's data seed."""
    from ticketlab.data import stable_seed
    return stable_seed("ddp-rank", seed, rank)


def sum_(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` summed over the ranks, in place."""
    dist.all_reduce(tensor)
    return tensor


def _broadcast(obj):
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
