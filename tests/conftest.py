import os
from pathlib import Path

import pytest

# CI clones the repo with shared/ beside it; tests that need real data skip without it.
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SHARED_DATA = SHARED / "datasets"

os.environ.setdefault("TICKETLAB_OFFLINE", "1")  # never reach for the network from the tests


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip("../shared/datasets is not beside the repo")
    return SHARED_DATA

# One intra-op thread: tiny test models gain nothing from two, and two threads slow down by an order
# of magnitude when another process holds a core (a background experiment, a parallel CI job).
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture
def crash_at(monkeypatch):
    """``with crash_at(step):`` makes every BatchSampler raise when asked for ``step`` (a simulated
    crash mid-training); the real sampler is back after the block."""
    from contextlib import contextmanager

    from ticketlab.data import loader

    @contextmanager
    def crashing(step: int):
        real = loader.BatchSampler.indices

        def indices(self, at):
            if at == step:
                raise RuntimeError("simulated crash")
            return real(self, at)
        monkeypatch.setattr(loader.BatchSampler, "indices", indices)
        try:
            yield
        finally:
            monkeypatch.setattr(loader.BatchSampler, "indices", real)
    return crashing
