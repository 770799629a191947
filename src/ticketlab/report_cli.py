"""``ticketlab tables`` and ``ticketlab plot``: what the store holds, as tables and figures (PROTOCOL §4).

    ticketlab tables EXPERIMENT | --preset P [--set ...]  [--kind levels|summary|weights|oneshot|flip|s4|s0] [--json]
    ticketlab plot TARGET ... | --preset P [--set ...]  [--kind ...] [--x pm|weights] [--metric ...]

Both read only the store. ``--preset`` stands for every experiment the preset runs (each point of its
sweep, with the same ``--set`` as the lottery command). Wiring into ``cli.py``: ``add_parsers(sub,
DEFAULT_STORE)``, and ``cmd_tables`` / ``cmd_plot`` in its command table.
"""

from __future__ import annotations

import json

from ticketlab import TicketlabError


def add_parsers(subparsers, default_store: str = "ticketlab-store") -> None:
    """Register ``tables`` and ``plot`` on ``subparsers`` (from ``add_subparsers``)."""
    p = subparsers.add_parser("tables", help="tables of a lottery experiment: per level, [S1]'s summary, weights in "
                                              "numbers, [S4]'s Tables 2-7, or [S0]'s five-test-set table")
    p.add_argument("experiment", nargs="?", help="lottery-<hash>, the hash, or its folder in the store")
    p.add_argument("--preset", default=None, help="instead: every experiment this preset runs (with the same --set); "
                                                  "--kind summary then prints one line per point of its sweep")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="with --preset: the overrides the experiments ran with")
    p.add_argument("--store", default=default_store)
    p.add_argument("--kind", default="levels", choices=["levels", "summary", "weights", "oneshot", "flip", "s4", "s0"],
                   help="levels (ticket and controls per level), summary (speed-ups, gains and winning tickets "
                        "against the dense network, [S1]'s way), weights (Figs 15-24 in numbers: surviving initial "
                        "values, connections per unit, weight movement), oneshot, flip (LTH_flip chains), s4 ([S4] Tables 2-7), "
                        "s0 ([S0]'s table: conv weights left and accuracy on ImageNet and its shifted test sets)")
    p.add_argument("--levels", default=None, metavar="0,4,8", help="weights: the levels (default: four spread out)")
    p.add_argument("--oneshot", action="store_true",
                   help="with --kind summary: the one-shot runs (levels = pruned fractions) against the dense network")
    p.add_argument("--json", action="store_true")

    p = subparsers.add_parser("plot", help="plot a finished training run, or the figures of lottery experiments")
    p.add_argument("targets", nargs="*", metavar="TARGET",
                   help="a run_id or job directory (its curves), or a lottery experiment (lottery-<hash> or the hash); "
                        "several experiments overlay in --kind levels")
    p.add_argument("--preset", default=None,
                   help="also the experiments this preset runs (every point of its sweep; with the same --set as the "
                        "lottery command), e.g. --preset lenet_size_sweep --x weights for Fig 31")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="with --preset: the overrides the experiments ran with")
    p.add_argument("--store", default=default_store)
    p.add_argument("--kind", default=None, choices=["levels", "curves", "oneshot", "init", "connections", "movement", "all"],
                   help="experiments: which figure (default: all for one experiment, levels for several)")
    p.add_argument("--levels", default=None, metavar="0,3,7", help="levels of curves and histograms (movement: one level)")
    p.add_argument("--metric", default=None,
                   help="curves: a metrics.jsonl name (default test/accuracy; val/loss, ...); levels: the panels, "
                        "comma-separated index columns (e.g. final_train_accuracy for Figs 12/13, final_test_accuracy for Fig 14)")
    p.add_argument("--until", type=int, default=None, metavar="ITERATION", help="curves: last iteration drawn (Fig 3: 15000)")
    p.add_argument("--x", default="pm", choices=["pm", "weights"],
                   help="levels: the x axis, Pm or the number of weights remaining (Figs 31, 37: networks of different sizes)")
    p.add_argument("--families", default=None, metavar="ticket,reinit", help="branch families drawn (levels, curves, oneshot)")
    p.add_argument("--labels", default=None, metavar="A,B", help="levels: one legend label per experiment")
    p.add_argument("--out", default=None,
                   help="output folder or file stem (default: <job>/curves, <store>/lottery-<name>/plots/)")


def _preset_experiments(args) -> list[str]:
    """The experiment names of ``--preset`` (every sweep point, with ``--set``), each present in the store."""
    if args.set and not args.preset:
        raise TicketlabError("--set picks experiments together with --preset; name experiments directly otherwise")
    if not args.preset:
        return []
    from ticketlab import api
    from ticketlab.spec import parse_set
    names = []
    for exp in api.make_experiments(None, args.preset, parse_set(args.set)):
        folder = api.experiment_folder(exp, args.store)
        if not folder.exists():
            raise TicketlabError(f"experiment {folder.name} of preset {args.preset} is not in store {args.store}; "
                                 f"run `ticketlab lottery --preset {args.preset}` (with the same --set) first")
        names.append(folder.name)
    return names


def cmd_tables(args) -> None:
    from ticketlab.analysis import lottery_tables, s4_tables
    if args.experiment and args.preset:
        raise TicketlabError("give an experiment or --preset, not both")
    names = [args.experiment] if args.experiment else _preset_experiments(args)
    if not names:
        raise TicketlabError("name an experiment (lottery-<hash>) or pass --preset P")
    if args.levels and args.kind != "weights":
        raise TicketlabError("--levels picks the levels of --kind weights")
    if args.oneshot and args.kind != "summary":
        raise TicketlabError("--oneshot goes with --kind summary; the one-shot table itself is --kind oneshot")
    levels = _int_list(args.levels, "--levels") if args.levels else None

    def table_of(name):
        if args.kind == "s4":
            return s4_tables.s4_tables(args.store, name), s4_tables.format_s4
        if args.kind == "s0":
            from ticketlab.analysis import s0_tables
            return s0_tables.s0_table(args.store, name), s0_tables.format_s0
        if args.kind == "weights":
            from ticketlab.analysis import weight_tables
            return weight_tables.weight_tables(args.store, name, levels), weight_tables.format_weight_tables
        if args.kind == "summary" and args.oneshot:
            return lottery_tables.oneshot_summary(lottery_tables.rows_of(args.store, name)), lottery_tables.format_summary
        if args.kind == "summary":
            return lottery_tables.summary(lottery_tables.level_table(args.store, name)), lottery_tables.format_summary
        kind = "lottery" if args.kind == "levels" else args.kind
        return lottery_tables.level_table(args.store, name, kind=kind), lottery_tables.format_levels

    if len(names) == 1:
        table, fmt = table_of(names[0])
        print(json.dumps(table, indent=2) if args.json else fmt(table).rstrip("\n"))
        return
    from ticketlab.analysis.lottery_series import experiment_labels
    labels = experiment_labels(args.store, names)
    if args.kind == "summary" and not args.oneshot:   # a sweep point whose dense network has not finished: None
        tables = [(s, lottery_tables.format_summary) for s in lottery_tables.sweep_summaries(args.store, names)]
    else:
        tables = [table_of(name) for name in names]
    if args.json:
        print(json.dumps([{"experiment": n, "label": l, "table": t} for n, l, (t, _) in zip(names, labels, tables)], indent=2))
    elif args.kind == "summary":   # a sweep: one line per point, as [S1]'s appendix states them
        print(lottery_tables.format_sweep_summary(labels, [t for t, _ in tables]))
    else:
        print("\n\n".join(f"{n} ({l}):\n" + fmt(t).rstrip("\n") for n, l, (t, fmt) in zip(names, labels, tables)))


def cmd_plot(args) -> None:
    from ticketlab.analysis import lottery_plots, plots
    from ticketlab.analysis.lottery_series import find_experiment
    experiments, runs = _preset_experiments(args), []
    if not experiments and not args.targets:
        raise TicketlabError("name what to plot: a run id, a lottery experiment, or --preset P")
    for target in args.targets:
        name = find_experiment(args.store, target)
        if name:
            experiments.append(name)
            continue
        try:
            runs.append(plots.resolve_job(args.store, target))
        except TicketlabError:
            raise TicketlabError(f"no lottery experiment or finished run {target!r} in store {args.store}; run "
                                 f"`ticketlab lottery` first, or list them with `ticketlab results --store {args.store}`") from None
    if args.until is not None and args.until <= 0:
        raise TicketlabError(f"--until is the last training iteration drawn, a positive number; got {args.until}")
    levels = _int_list(args.levels, "--levels") if args.levels else None

    def split(text):
        return [v.strip() for v in text.split(",") if v.strip()] if text else None

    paths = [path for job in runs for path in plots.plot_run(args.store, str(job), args.out)]
    if experiments:
        level_kind = args.kind == "levels" or (args.kind is None and len(experiments) > 1)
        if args.metric and not level_kind and args.kind != "curves":
            raise TicketlabError(f"--metric picks the curves' metric (--kind curves) or the levels' panels (--kind levels), "
                                 f"not the figures of --kind {args.kind or 'all'}")
        paths += lottery_plots.plot_experiments(args.store, experiments, args.kind, levels,
                                                args.metric if args.kind == "curves" and args.metric else "test/accuracy",
                                                split(args.families), args.out, split(args.labels), args.until,
                                                x=args.x, level_metrics=split(args.metric) if level_kind else None)
    for path in paths:
        print(path)


def _int_list(text: str, flag: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise TicketlabError(f"{flag} takes comma-separated integers like 0,3,7; got {text!r}") from None
