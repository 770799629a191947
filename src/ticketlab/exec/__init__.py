"""Executors: where the jobs of an experiment run. ``local`` (the default) spreads trials over processes here,
``ray`` over a Ray cluster; ``ddp`` spreads one job over processes (torchrun).

This package's own module stays free of torch, so the CLI can ask ``launched_by_torchrun`` at start-up
without importing it."""

import os


def launched_by_torchrun() -> bool:
    """Whether torchrun started this process as one of several."""
    return "LOCAL_RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1
