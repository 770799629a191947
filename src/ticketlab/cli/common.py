"""What the commands share: the parent parsers (``--store``, ``--data-dir``, ``--json``, ``--set`` and the run
options, each defined once), the ``RunOptions`` of a command, and list flags.

A list flag takes space-separated values (``--levels 0 4 8``); the comma-joined spelling of earlier versions
(``--levels 0,4,8``) still reads the same, with a one-line hint on stderr."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

from ticketlab import TicketlabError
from ticketlab.options import ENGINES, SPARSE_BELOW, RunOptions, resolve

DEFAULT_STORE = "ticketlab-store"


def _parent() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(add_help=False)


STORE = _parent()
STORE.add_argument("--store", default=DEFAULT_STORE, help=f"run store directory (default: ./{DEFAULT_STORE})")

DATA_DIR = _parent()
DATA_DIR.add_argument("--data-dir", default=None,
                      help="folder holding <dataset>/ with the official files (default: $TICKETLAB_DATA, the cache)")

JSON = _parent()
JSON.add_argument("--json", action="store_true", help="print JSON instead of text")

SET = _parent()
SET.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                 help="override a setting, e.g. --set training.lr=0.001 or --set lottery.oneshot=[0.1,0.2] "
                      "(TOML values; repeatable; `ticketlab settings` lists them)")

RUN = _parent()   # how a run executes: one RunOptions per command (run_options); None = RunOptions' default
RUN.add_argument("--device", default=None, help="cpu (default), cuda, cuda:1, ...")
RUN.add_argument("--checkpoint-seconds", type=float, default=None, metavar="S",
                 help="save a resumable state at most this often, at evaluation points (default: 60)")
RUN.add_argument("--engine", default=None, choices=ENGINES,
                 help="how ready jobs train: auto (default: the batched engine where it applies), mlp or vmap "
                      "(that batched engine), sequential (every job through the single loop in turn)")
RUN.add_argument("--batch-models", type=int, default=None, metavar="K",
                 help="train at most K ready jobs together (default 0: as many as fit in a quarter of free memory)")
RUN.add_argument("--sparse-below", type=float, default=None, metavar="D",
                 help=f"Lenet layers keeping less than this share of their weights train with sparse matmuls "
                      f"(default {SPARSE_BELOW} on the CPU in fp32; 0: always dense)")
RUN.add_argument("--threads", type=int, default=None, metavar="N",
                 help="torch threads per process (default 1: fast when processes share the cores; 0: torch's default)")


def run_options(args: argparse.Namespace) -> RunOptions:
    """The one ``RunOptions`` of a command, from the ``RUN`` and ``DATA_DIR`` flags (validated there)."""
    return resolve(None, device=args.device, data_dir=getattr(args, "data_dir", None),
                   checkpoint_seconds=args.checkpoint_seconds, engine=args.engine, batch_models=args.batch_models,
                   sparse_below=args.sparse_below, threads=args.threads)


def overrides(args: argparse.Namespace, hints: bool = True) -> dict[str, str]:
    """The ``--set`` overrides of a command; ``hints``: say where a list is written in the old comma form
    (else the command calls ``comma_hints`` itself, after its first line)."""
    from ticketlab.spec import parse_set
    values = parse_set(args.set)
    if hints:
        comma_hints(values)
    return values


def comma_hints(values: dict[str, str]) -> None:
    from ticketlab.spec import comma_lists
    for key in comma_lists(values):
        hint(f"--set {key}={values[key]} reads as the list [{values[key]}]; write it so (a TOML list)")


def hint(text: str) -> None:
    print(f"ticketlab: hint: {text}", file=sys.stderr)


class Items(argparse.Action):
    """A list flag (``nargs="+"``) whose items ``item`` converts; a comma-joined value, the spelling of earlier
    versions, is split (with a one-line hint)."""

    def __init__(self, *args, item: Callable[[str], Any] = str, what: str = "values", **kwargs):
        self.item, self.what = item, what
        super().__init__(*args, nargs="+", **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        parts = [p.strip() for value in values for p in value.split(",") if p.strip()]
        if any("," in value for value in values):
            hint(f"{option_string} takes space-separated values: {option_string} {' '.join(parts)}")
        try:
            setattr(namespace, self.dest, [self.item(p) for p in parts])
        except ValueError:
            raise TicketlabError(f"{option_string} takes {self.what}, e.g. {option_string} 0 3 7; "
                                 f"got {' '.join(values)!r}") from None


def check_workers(workers: int | None) -> None:
    if workers is not None and workers < 1:
        raise TicketlabError(f"--workers must be >= 1 (default: one per core, at most one per trial), got {workers}")
