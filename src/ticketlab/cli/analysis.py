"""``ticketlab tables``, ``plot`` and ``masks``: tables and figures of what the store holds (PROTOCOL §4).

    ticketlab tables EXPERIMENT | --preset P [--set ...]  [--kind levels|summary|weights|oneshot|flip|s4|s0] [--json]
    ticketlab plot TARGET ... | --preset P [--set ...]  [--kind ...] [--x pm|weights] [--metric ...]
    ticketlab masks compare A B | show A  [--json] [--plot OUT]

They read only the store. ``--preset`` stands for every experiment the preset runs (each point of its
sweep, with the same ``--set`` as the lottery command). A mask is a ``.npz`` file, a job directory
holding ``mask.npz``, or a run id of the store."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ticketlab import TicketlabError, api
from ticketlab.cli.common import JSON, SET, STORE, Items, overrides
from ticketlab.store import layout


def add_parsers(sub) -> None:
    p = sub.add_parser("tables", parents=[STORE, SET, JSON],
                       help="tables of a lottery experiment: per level, [S1]'s summary, weights in numbers, "
                            "[S4]'s Tables 2-7, or [S0]'s five-test-set table")
    p.add_argument("experiment", nargs="?", help="lottery-<hash>, the hash, or its folder in the store")
    p.add_argument("--preset", default=None, help="instead: every experiment this preset runs (with the same --set); "
                                                  "--kind summary then prints one line per point of its sweep")
    p.add_argument("--kind", default="levels", choices=api.TABLE_KINDS,
                   help="levels (ticket and controls per level), summary (speed-ups, gains and winning tickets "
                        "against the dense network, [S1]'s way), weights (Figs 15-24 in numbers: surviving initial "
                        "values, connections per unit, weight movement), oneshot, flip (LTH_flip chains), s4 ([S4] "
                        "Tables 2-7), s0 ([S0]'s table: conv weights left and accuracy on ImageNet and its shifted "
                        "test sets)")
    p.add_argument("--levels", action=Items, item=int, what="levels", default=None, metavar="LEVEL",
                   help="weights: the levels (default: four spread out)")
    p.add_argument("--oneshot", action="store_true",
                   help="with --kind summary: the one-shot runs (levels = pruned fractions) against the dense network")
    p.set_defaults(handler=cmd_tables)

    p = sub.add_parser("plot", parents=[STORE, SET],
                       help="plot a finished training run, or the figures of lottery experiments")
    p.add_argument("targets", nargs="*", metavar="TARGET",
                   help="a run_id or job directory (its curves), or a lottery experiment (lottery-<hash>, the hash "
                        "or its folder); several experiments overlay in --kind levels")
    p.add_argument("--preset", default=None,
                   help="also the experiments this preset runs (every point of its sweep; with the same --set as the "
                        "lottery command), e.g. --preset lenet_size_sweep --x weights for Fig 31")
    p.add_argument("--kind", default=None, choices=["levels", "curves", "oneshot", "init", "connections", "movement", "all"],
                   help="experiments: which figure (default: all for one experiment, levels for several)")
    p.add_argument("--levels", action=Items, item=int, what="levels", default=None, metavar="LEVEL",
                   help="levels of curves and histograms (movement: one level)")
    p.add_argument("--metric", action=Items, default=None,
                   help="curves: a metrics.jsonl name (default test/accuracy; val/loss, ...); levels: the panels, "
                        "index columns (e.g. final_train_accuracy for Figs 12/13, final_test_accuracy for Fig 14)")
    p.add_argument("--until", type=int, default=None, metavar="ITERATION", help="curves: last iteration drawn (Fig 3: 15000)")
    p.add_argument("--x", default="pm", choices=["pm", "weights"],
                   help="levels: the x axis, Pm or the number of weights remaining (Figs 31, 37: networks of different sizes)")
    p.add_argument("--families", action=Items, default=None, metavar="FAMILY",
                   help="branch families drawn (levels, curves, oneshot), e.g. ticket reinit")
    p.add_argument("--labels", action=Items, default=None, metavar="LABEL", help="levels: one legend label per experiment")
    p.add_argument("--out", default=None,
                   help="output folder or file stem (default: <job>/curves, <store>/lottery-<name>/plots/)")
    p.set_defaults(handler=cmd_plot)

    add_masks_parser(sub)


def _preset_experiments(args) -> list[str]:
    """The experiment ids of ``--preset`` (every sweep point, with ``--set``), each present in the store."""
    if args.set and not args.preset:
        raise TicketlabError("--set picks experiments together with --preset; name experiments directly otherwise")
    if not args.preset:
        return []
    names = []
    for exp in api.make_experiments(None, args.preset, overrides(args)):
        folder = api.experiment_folder(exp, args.store)
        if not folder.exists():
            raise TicketlabError(f"experiment {folder.name} of preset {args.preset} is not in store {args.store}; "
                                 f"run `ticketlab lottery --preset {args.preset}` (with the same --set) first")
        names.append(folder.name)
    return names


def _format(kind: str, oneshot: bool):
    from ticketlab.analysis import lottery_tables
    if kind == "s4":
        from ticketlab.analysis.s4_tables import format_s4
        return format_s4
    if kind == "s0":
        from ticketlab.analysis.s0_tables import format_s0
        return format_s0
    if kind == "weights":
        from ticketlab.analysis.weight_tables import format_weight_tables
        return format_weight_tables
    return lottery_tables.format_summary if kind == "summary" else lottery_tables.format_levels


def cmd_tables(args) -> None:
    from ticketlab.analysis import lottery_tables
    if args.experiment and args.preset:
        raise TicketlabError("give an experiment or --preset, not both")
    if not args.experiment and not args.preset:
        raise TicketlabError("name an experiment (lottery-<hash>) or pass --preset P")
    if args.levels and args.kind != "weights":
        raise TicketlabError("--levels picks the levels of --kind weights")
    if args.oneshot and args.kind != "summary":
        raise TicketlabError("--oneshot goes with --kind summary; the one-shot table itself is --kind oneshot")
    if args.experiment:
        roots = api.experiments(args.store, [args.experiment])
        store, names = roots[0].parent, [roots[0].name]
    else:
        store, names = Path(args.store), _preset_experiments(args)
    fmt = _format(args.kind, args.oneshot)

    def table_of(name):
        return api.table(store / name, args.kind, levels=args.levels, oneshot=args.oneshot)

    if len(names) == 1:
        table = table_of(names[0])
        print(json.dumps(table, indent=2) if args.json else fmt(table).rstrip("\n"))
        return
    labels = api.experiment_labels(store, names)
    if args.kind == "summary" and not args.oneshot:   # a sweep point whose dense network has not finished: None
        tables = api.sweep_summaries(store, names)
    else:
        tables = [table_of(name) for name in names]
    if args.json:
        print(json.dumps([{"experiment": n, "label": l, "table": t} for n, l, t in zip(names, labels, tables)], indent=2))
    elif args.kind == "summary":   # a sweep: one line per point, as [S1]'s appendix states them
        print(lottery_tables.format_sweep_summary(labels, tables))
    else:
        print("\n\n".join(f"{n} ({l}):\n" + fmt(t).rstrip("\n") for n, l, t in zip(names, labels, tables)))


def _experiment_in(store: str, target: str) -> str | None:
    """The id of the lottery experiment ``target`` names in ``store`` (id, hash or folder), or None."""
    try:
        root, = api.experiments(store, [target])
    except TicketlabError:
        return None
    if not root.name.startswith(layout.LOTTERY + "-"):   # a job directory has a spec.json too
        return None
    if root.parent.resolve() != Path(store).resolve():
        raise TicketlabError(f"experiment folder {root} is not in --store {store}; pass --store {root.parent}")
    return root.name


def cmd_plot(args) -> None:
    experiments, runs = _preset_experiments(args), []
    if not experiments and not args.targets:
        raise TicketlabError("name what to plot: a run id, a lottery experiment, or --preset P")
    for target in args.targets:
        name = _experiment_in(args.store, target)
        if name:
            experiments.append(name)
        else:
            runs.append(target)
    if args.until is not None and args.until <= 0:
        raise TicketlabError(f"--until is the last training iteration drawn, a positive number; got {args.until}")
    level_kind = args.kind == "levels" or (args.kind is None and len(experiments) > 1)
    if args.metric and experiments and not level_kind and args.kind != "curves":
        raise TicketlabError(f"--metric picks the curves' metric (--kind curves) or the levels' panels (--kind levels), "
                             f"not the figures of --kind {args.kind or 'all'}")
    if args.metric and args.kind == "curves" and len(args.metric) != 1:
        raise TicketlabError(f"--kind curves draws one --metric; got {len(args.metric)}: {' '.join(args.metric)}")
    paths = []
    for run in runs:
        try:
            paths += api.plot_run(args.store, run, args.out)
        except TicketlabError:
            raise TicketlabError(f"no lottery experiment or finished run {run!r} in store {args.store}; run "
                                 f"`ticketlab lottery` first, or list them with `ticketlab results --store {args.store}`") from None
    if experiments:
        paths += api.plot_lottery(args.store, experiments, args.kind, levels=args.levels,
                                  metric=args.metric[0] if args.kind == "curves" and args.metric else "test/accuracy",
                                  families=args.families, out=args.out, labels=args.labels, until=args.until,
                                  x=args.x, level_metrics=args.metric if level_kind else None)
    for path in paths:
        print(path)


def add_masks_parser(sub):
    """Register ``masks`` with its subcommands ``compare`` and ``show`` on ``sub`` (from ``add_subparsers``)."""
    p = sub.add_parser("masks", help="compare two masks (overlap, Jaccard, chance) or show one (LPR)")
    masks = p.add_subparsers(dest="masks_command", required=True)
    mask_help = "a mask .npz, a job directory, or a run id of --store"
    c = masks.add_parser("compare", parents=[STORE, JSON],
                         help="overlap of masks A and B per layer and in total ([S4] Tables 6-7)")
    c.add_argument("a", metavar="A", help=mask_help)
    c.add_argument("b", metavar="B", help=mask_help)
    c.set_defaults(handler=cmd_compare)
    s = masks.add_parser("show", parents=[STORE, JSON], help="kept weights, density and layer-wise pruning ratio of one mask")
    s.add_argument("a", metavar="A", help=mask_help)
    s.set_defaults(handler=cmd_show)
    for q in (c, s):
        q.add_argument("--plot", default=None, metavar="OUT", help="also write the LPR plot to OUT.png and OUT.pdf")
    return p


def cmd_masks(args) -> None:
    """The ``masks`` command: its subcommand's handler."""
    args.handler(args)


def cmd_compare(args) -> None:
    from ticketlab.analysis.masks import format_compare
    a, b = api.load_mask(args.a, args.store), api.load_mask(args.b, args.store)
    result = api.compare_masks(a, b)
    print(json.dumps(result, indent=2) if args.json else f"A = {args.a}\nB = {args.b}\n{format_compare(result)}")
    if args.plot:
        _plot({args.a: a, args.b: b} if args.a != args.b else {args.a: a}, args)


def cmd_show(args) -> None:
    from ticketlab.analysis.masks import format_describe
    mask = api.load_mask(args.a, args.store)
    result = api.describe_mask(mask)
    print(json.dumps(result, indent=2) if args.json else f"{args.a}\n{format_describe(result)}")
    if args.plot:
        _plot({args.a: mask}, args)


def _plot(named_masks: dict, args) -> None:
    for path in api.plot_masks(named_masks, args.plot):
        print(path, file=sys.stderr if args.json else sys.stdout)  # keep --json output parseable
