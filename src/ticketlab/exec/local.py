"""The local executor (the default): a lottery experiment's trials spread over worker processes on this
machine, one thread each, so that two trials on a 2-core machine do not spin against each other."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
from typing import Callable

import torch

from ticketlab import runtime


def spread_trials(run: Callable, trials: list[int], workers: int, **kwargs) -> None:
    """``run(trials=group, **kwargs)`` in ``workers`` spawned processes, the trials dealt round-robin
    (trial t to worker t mod workers); the first failure is raised here once every worker has ended."""
    groups = [trials[i::workers] for i in range(min(workers, len(trials)))]
    context = multiprocessing.get_context("spawn")
    options = kwargs.get("options")
    threads = options.threads if options is not None and options.threads else 1
    with concurrent.futures.ProcessPoolExecutor(len(groups), mp_context=context, initializer=_worker_init,
                                                initargs=(threads,)) as pool:
        futures = [pool.submit(run, trials=group, **kwargs) for group in groups]
        for future in futures:
            future.result()


def _worker_init(threads: int = 1) -> None:
    """A worker: ``threads`` threads (RunOptions.threads, default one), and it dies with its parent (Linux), so that killing ``ticketlab lottery``
    leaves no orphan holding job locks; rerunning resumes from the checkpoints."""
    torch.set_num_threads(threads)
    runtime.tune_allocator()
    runtime.die_with_parent()
