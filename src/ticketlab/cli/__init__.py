"""The ``ticketlab`` command: a thin layer that parses arguments and calls ``ticketlab.api``.

Every command is registered by its module (run: train, lottery, demo; store: status, verify, report,
results; analysis: tables, plot, masks; info: models, schedule, presets, settings, bench) with
``set_defaults(handler=...)``; the shared flags come from the parent parsers of ``cli/common.py``."""

from __future__ import annotations

import argparse
import sys

from ticketlab import TicketlabError, runtime
from ticketlab.cli import analysis, info, run, store
from ticketlab.cli.common import DEFAULT_STORE  # noqa: F401  (the store a command uses without --store)
from ticketlab.cli.run import _sweep_ending  # noqa: F401  (tests/test_lottery_plots.py calls it as cli._sweep_ending)
from ticketlab.exec import launched_by_torchrun


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="ticketlab", description=__doc__.split("\n")[0])
    sub = top.add_subparsers(dest="command", required=True)
    for module in (info, run, store, analysis):
        module.add_parsers(sub)
    return top


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parser().parse_args(argv)   # list flags may raise (a bad item): one line, as below
        runtime.tune_allocator()
        if getattr(args, "nproc", 1) != 1 or launched_by_torchrun():
            return _data_parallel(args, argv)
        return int(args.handler(args) or 0)
    except TicketlabError as exc:
        print(f"ticketlab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ticketlab: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


def _data_parallel(args, argv: list[str]) -> int:
    """``--nproc N``: relaunch this command as N processes under torchrun. Inside torchrun: rank 0 runs the
    command, the others join each training it starts (exec/ddp.py), and all leave together."""
    if getattr(args, "workers", None) not in (None, 1) or getattr(args, "executor", "local") != "local":
        raise TicketlabError("--workers / --executor spread trials over processes and --nproc one job over "
                             "processes; use one")
    from ticketlab.exec import ddp   # imports torch: only here, not at every command's start-up
    if not launched_by_torchrun():
        return ddp.launch(argv, args.nproc)   # --nproc 0 or less: an error there
    if args.command not in ("train", "lottery"):
        raise TicketlabError(f"`ticketlab {args.command}` does not run data-parallel; only train and lottery do")
    args.workers = 1

    def leader(device: str) -> int:
        args.device = device
        return int(args.handler(args) or 0)
    return ddp.run(leader, args.device or "cpu", args.data_dir) or 0
