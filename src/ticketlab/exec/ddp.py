"""Data-parallel training of one job over several processes: torchrun + DistributedDataParallel.

``ticketlab train|lottery ... --nproc N`` relaunches the same command under torchrun
(``python -m torch.distributed.run --standalone --nproc-per-node N -m ticketlab ...``); launching it
with torchrun yourself works too, and is how several machines join (torchrun's ``--nnodes`` and
``--rdzv-endpoint``). Rank 0, the leader, runs the command as it would alone: the runner, pruning, every
file of the store. Each time it enters the training loop it first announces the call (data spec, model
spec, mask, training spec: train/world.py); the other ranks, the followers, wait for announcements, build
the same model and join that call. Every rank takes its contiguous slice of each global batch (augmented as the whole
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
from datetime import timedelta
from typing import Any, Callable

import torch
import torch.distributed as dist

from ticketlab import TicketlabError, runtime
from ticketlab.train import world

# followers wait between two trainings while the leader prunes, saves and plans the next job
WAIT = timedelta(hours=4)


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
    if not world.current().leader:
        follow(data_dir, device)
        finish()
        return None
    result = leader(device)
    finish()
    return result


def finish() -> None:
    """The leader: tell the followers there is nothing more to train; everyone leaves the group."""
    if world.current().leader:
        world.broadcast(None)
    # DDP wrappers sit in reference cycles; one freed after the group is gone aborts the process
    gc.collect()
    dist.barrier()   # nobody tears the group down while another rank still uses it
    dist.destroy_process_group()


def follow(data_dir: str | None, device: str) -> int:
    """A follower: join every training the leader announces, until it says it is done; the number joined."""
    from ticketlab import data, models
    from ticketlab.train.loop import train
    joined = 0
    while (call := world.receive()) is not None:
        splits = data.load_cached(call["data"], data_dir, device)
        model = models.build(call["model"], call["input_shape"], call["num_classes"]).to(splits.train_x.device)
        train(model, call["mask"], splits, call["training"], augment=call["augment"], start_step=call["start_step"])
        joined += 1
    return joined
