"""``ticketlab masks``: compare two masks or show one (PROTOCOL §4 items 7-8).

    ticketlab masks compare A B [--store S] [--json] [--plot OUT]   overlap table of masks A and B
    ticketlab masks show A [--store S] [--json] [--plot OUT]        kept, density and LPR per layer

A mask is a ``.npz`` file, a job directory holding ``mask.npz``, or a run id of the store. ``--plot``
writes OUT.png and OUT.pdf of the layer-wise pruning ratio. Wiring into ``cli.py``:
``mask_cli.add_parser(sub, DEFAULT_STORE)`` and ``COMMANDS["masks"] = mask_cli.cmd_masks``.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_parser(subparsers, default_store: str = "ticketlab-store") -> argparse.ArgumentParser:
    """Register ``masks`` with its subcommands on ``subparsers`` (from ``add_subparsers``)."""
    p = subparsers.add_parser("masks", help="compare two masks (overlap, Jaccard, chance) or show one (LPR)")
    sub = p.add_subparsers(dest="masks_command", required=True)
    mask_help = "a mask .npz, a job directory, or a run id of --store"

    c = sub.add_parser("compare", help="overlap of masks A and B per layer and in total ([S4] Tables 6-7)")
    c.add_argument("a", metavar="A", help=mask_help)
    c.add_argument("b", metavar="B", help=mask_help)
    c.set_defaults(masks_handler=cmd_compare)

    s = sub.add_parser("show", help="kept weights, density and layer-wise pruning ratio of one mask")
    s.add_argument("a", metavar="A", help=mask_help)
    s.set_defaults(masks_handler=cmd_show)

    for q in (c, s):
        q.add_argument("--store", default=default_store, help=f"run store for run ids (default: ./{default_store})")
        q.add_argument("--json", action="store_true", help="print the numbers as JSON")
        q.add_argument("--plot", default=None, metavar="OUT", help="also write the LPR plot to OUT.png and OUT.pdf")
    return p


def cmd_masks(args) -> None:
    """The ``masks`` command: dispatch to its subcommand."""
    args.masks_handler(args)


def cmd_compare(args) -> None:
    from ticketlab.analysis import masks
    a, b = masks.load_mask(args.a, args.store), masks.load_mask(args.b, args.store)
    result = masks.compare(a, b)
    print(json.dumps(result, indent=2) if args.json else f"A = {args.a}\nB = {args.b}\n{masks.format_compare(result)}")
    if args.plot:
        _plot({args.a: a, args.b: b} if args.a != args.b else {args.a: a}, args)


def cmd_show(args) -> None:
    from ticketlab.analysis import masks
    mask = masks.load_mask(args.a, args.store)
    result = masks.describe(mask)
    print(json.dumps(result, indent=2) if args.json else f"{args.a}\n{masks.format_describe(result)}")
    if args.plot:
        _plot({args.a: mask}, args)


def _plot(named_masks: dict, args) -> None:
    from ticketlab.analysis.mask_plots import plot_lpr
    for path in plot_lpr(named_masks, args.plot):
        print(path, file=sys.stderr if args.json else sys.stdout)  # keep --json output parseable
