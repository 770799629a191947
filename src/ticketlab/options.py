"""How a run executes, as one frozen object: built once by the CLI or the API and passed down through the
executors, the runner, the job runner and the engines. None of it enters a run's name: the same
hyperparameters give the same run (and the same bits for a fixed thread count) whatever the options."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Literal, get_args

from ticketlab import TicketlabError

Engine = Literal["auto", "mlp", "vmap", "sequential"]
ENGINES: tuple[str, ...] = get_args(Engine)
SPARSE_BELOW = 0.15   # Lenet layers keeping less than this share of weights train with sparse matmuls (CPU, fp32)


@dataclass(frozen=True)
class RunOptions:
    """``device``: cpu, cuda, cuda:N. ``data_dir``: where datasets are (None: $TICKETLAB_DATA, the cache).
    ``progress``: True/"bar", "lines", False, None (bar on a terminal, lines otherwise, silent in CI).
    ``checkpoint_seconds``: a resume point at most this often (at evaluation points). ``engine``: how K
    models train (train/engines.py: auto, mlp, vmap, sequential). ``batch_models``: at most this many ready
    jobs in one batch (0: as many as fit in memory). ``sparse_below``: Lenet layers keeping less than this
    share of their weights train with sparse matmuls under ``engine="auto"`` (0: never). ``threads``: torch
    intra-op threads per process (0: torch's default, one per core)."""

    device: str = "cpu"
    data_dir: str | None = None
    progress: bool | str | None = None
    checkpoint_seconds: float = 60.0
    engine: Engine = "auto"
    batch_models: int = 0
    sparse_below: float = SPARSE_BELOW
    threads: int = 1

    def __post_init__(self):
        if self.engine not in ENGINES:
            raise TicketlabError(f"unknown engine {self.engine!r}; choose one of {list(ENGINES)}")
        if not (isinstance(self.batch_models, int) and self.batch_models >= 0):
            raise TicketlabError(f"batch_models (--batch-models) must be >= 0 (0: as many as fit), got {self.batch_models}")
        if not 0.0 <= self.sparse_below <= 1.0:
            raise TicketlabError(f"sparse_below must be a share of weights in [0, 1] (0: always dense), got {self.sparse_below}")
        if not self.checkpoint_seconds >= 0:
            raise TicketlabError(f"checkpoint_seconds (--checkpoint-seconds) must be >= 0, got {self.checkpoint_seconds}")
        if not (isinstance(self.threads, int) and self.threads >= 0):
            raise TicketlabError(f"threads (--threads) must be >= 0 (0: torch's default), got {self.threads}")
        if self.data_dir is not None:
            object.__setattr__(self, "data_dir", str(self.data_dir))

    def apply_threads(self) -> int:
        """Set this process's torch intra-op threads (``threads``; 0 leaves torch's default); the count in use."""
        import torch
        if self.threads:
            torch.set_num_threads(self.threads)
        return torch.get_num_threads()


def resolve(options: "RunOptions | None" = None, **settings) -> RunOptions:
    """``options`` (default ``RunOptions()``) with the keyword ``settings`` that are not None replacing its
    fields: the API's shorthand (``api.lottery(exp, store, progress=False)``)."""
    unknown = sorted(set(settings) - set(RunOptions.__dataclass_fields__))
    if unknown:
        raise TicketlabError(f"unknown run option(s) {unknown}; RunOptions has {sorted(RunOptions.__dataclass_fields__)}")
    return replace(options or RunOptions(), **{k: v for k, v in settings.items() if v is not None})


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def check_device(name):
    """``name`` as a torch device this process can use (cpu, cuda, cuda:N), or an error saying what to do."""
    import torch
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise TicketlabError(f"unknown device {name!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise TicketlabError(f"device {name!r}: no GPU is usable here (torch {torch.__version__} is {build}); "
                                 "install a CUDA build of torch on a machine with an NVIDIA GPU, or use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise TicketlabError(f"device {name!r}: only {torch.cuda.device_count()} GPU(s) visible (cuda:0 ...)")
    elif device.type != "cpu":
        raise TicketlabError(f"device {name!r} is not supported; use cpu, cuda or cuda:N")
    return device
