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
