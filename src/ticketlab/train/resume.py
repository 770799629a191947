"""The resume point of a job (``resume.pt``), written and read here only, whatever engine trained it.

Version 1 holds: ``version``, ``step`` (the evaluation point it was saved at), ``model`` (the model's own
``state_dict``), ``optimizer`` (the format of ``build_optimizer(spec, model.parameters())``), ``tracker``
(``EarlyStop.state()``), ``best_state``, ``rng`` (the CPU RNG), ``wall_seconds`` (training time so far,
summed over processes), ``world_size``; with data-parallel ranks ``rng_ranks`` (each rank's RNG); for image
folders ``files`` (a fingerprint of the file list); from the stacked engines ``slot`` (the job's place in
its stack). Files without ``version`` (written before it was recorded) have the same keys, some missing:
they are read as version 0. Since every engine reads and writes this one format, a job stopped in one
engine resumes in another.
"""

from __future__ import annotations

from pathlib import Path

from ticketlab import TicketlabError
from ticketlab.store import layout
from ticketlab.store.artifacts import load_torch, save_torch

VERSION = 1


def path_of(job: Path | None) -> Path | None:
    return Path(job) / layout.RESUME if job is not None else None


def read(job: Path | None) -> dict | None:
    """The resume point of ``job``, or None when it has none."""
    path = path_of(job)
    if path is None or not path.exists():
        return None
    state = load_torch(path)
    version = state.get("version", 0)
    if version > VERSION:
        raise TicketlabError(f"{path} was written by a newer ticketlab (resume format {version}, this one reads "
                             f"up to {VERSION}): upgrade ticketlab, or delete the file to restart the job")
    return state


def step_of(job: Path | None) -> int | None:
    """The step ``job`` resumes from, or None when it starts afresh."""
    state = read(job)
    return None if state is None else state["step"]


def write(job: Path | None, *, step: int, model: dict, optimizer: dict, tracker: dict, best_state: dict | None,
          rng, wall_seconds: float, world_size: int = 1, rng_ranks: list | None = None, files=None,
          slot: int | None = None) -> None:
    path = path_of(job)
    if path is None:
        return
    save_torch(path, {"version": VERSION, "step": step, "model": model, "optimizer": optimizer, "tracker": tracker,
                      "best_state": best_state, "rng": rng, "wall_seconds": wall_seconds, "world_size": world_size,
                      **({"rng_ranks": rng_ranks} if rng_ranks else {}), **({"files": files} if files else {}),
                      **({"slot": slot} if slot is not None else {})})


def check(state: dict, job: Path | None, files, source: str, world_size: int, batchnorm: bool) -> None:
    """Refuse a resume point that the data or the process count have moved away from."""
    where = path_of(job) or "the resume point"
    if state.get("files", files) != files:   # image folders: the list of files
        raise TicketlabError(f"{where} was saved when {source} listed other files (files {state['files']}, now "
                             f"{files}): restore the folder as it was, or delete the file to restart the job")
    if batchnorm and state.get("world_size", 1) != world_size:
        raise TicketlabError(f"{where} was saved by {state.get('world_size', 1)} process(es) and BatchNorm "
                             f"statistics depend on it: rerun with that --nproc, or delete the file to restart the job")
