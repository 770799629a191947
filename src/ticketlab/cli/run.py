"""``ticketlab train``, ``lottery`` and ``demo``: the commands that train.

By default a command's process trains at one torch thread (``--threads``), and ``ticketlab lottery`` spreads
the trials over one worker process per core, at most one per trial (``--workers``); docs/speed.md has the
measurements behind these defaults. The first line on stderr says what was chosen."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ticketlab import api
from ticketlab.analysis import lottery_tables
from ticketlab.analysis.tables import format_summary
from ticketlab.cli.common import DATA_DIR, JSON, RUN, SET, STORE, check_workers, comma_hints, overrides, run_options
from ticketlab.options import check_device, cores


def add_parsers(sub) -> None:
    nproc = argparse.ArgumentParser(add_help=False)
    nproc.add_argument("--nproc", type=int, default=1, metavar="N",
                       help="train every job data-parallel over N processes here (torchrun + DDP; with --device cuda "
                            "one GPU each); the same command under torchrun joins several machines")
    runs = [STORE, DATA_DIR, RUN, SET, nproc]

    p = sub.add_parser("train", parents=[*runs, JSON], help="train one network (dense, or under --mask)")
    p.add_argument("--model", default="lenet")
    p.add_argument("--dataset", default=None, help="default: the model's paper dataset")
    p.add_argument("--mask", default=None, help="a mask file (.npz) to train under")
    p.set_defaults(handler=cmd_train)

    p = sub.add_parser("lottery", parents=runs, help="iterative pruning over levels and trials, with controls")
    p.add_argument("--preset", default=None, help="a preset from `ticketlab presets`")
    p.add_argument("--model", default=None, help="default: the preset's model, else lenet")
    p.add_argument("--workers", type=int, default=None,
                   help="processes to spread the trials over, one thread each (default: one per core, at most "
                        "one per trial); with --executor ray and no --ray-address, the CPUs of the Ray cluster "
                        "started here (default: all)")
    p.add_argument("--executor", default="local", choices=["local", "ray"],
                   help="local: trials over --workers processes here; ray: every trial of every experiment as a "
                        "Ray task, on the cluster at --ray-address or on one started here")
    p.add_argument("--ray-address", default=None, metavar="ADDRESS",
                   help="join a running Ray cluster (auto, HOST:PORT); default: start one here for this command")
    p.add_argument("--ray-gpus", type=float, default=None, metavar="G",
                   help="GPUs per Ray task (default: 1 with --device cuda, else 0)")
    p.add_argument("--plot", action="store_true", help="write the standard plots when done")
    p.add_argument("--dry-run", action="store_true",
                   help="train nothing: print the experiment ids and how many of their jobs are done (as `status`)")
    p.add_argument("--estimate", action="store_true",
                   help="train nothing: time the model's step and evaluation here (on --device, one thread per "
                        "worker process) and estimate the whole experiment's wall time from its planned jobs")
    p.set_defaults(handler=cmd_lottery)

    p = sub.add_parser("demo", parents=[STORE, DATA_DIR, RUN],
                       help="the main job: a short Lenet-on-MNIST lottery experiment with its plots")
    p.add_argument("--workers", type=int, default=None, help="processes for its 2 trials (default: one per core, "
                                                             "at most 2)")
    p.set_defaults(handler=cmd_demo)


def cmd_train(args) -> None:
    from ticketlab.pruning import Mask
    options = run_options(args)
    options.apply_threads()
    spec = api.make_spec(args.model, args.dataset, overrides(args))
    mask = Mask.load(args.mask) if args.mask else None
    summary = api.train(spec, args.store, mask=mask, options=options)
    print(json.dumps(summary, indent=2, sort_keys=True) if args.json else format_summary(summary))


def workers_for(trials: int, workers: int | None) -> int:
    """``--workers``, or by default one process per core, at most one per trial (a 1-trial run: one process)."""
    check_workers(workers)
    return workers if workers is not None else max(1, min(cores(), trials))


def cmd_lottery(args) -> None:
    check_workers(args.workers)
    options = run_options(args)
    settings = overrides(args, hints=False)   # the hints follow the first line
    experiments = api.make_experiments(args.model, args.preset, settings)
    workers = workers_for(max(exp.lottery.trials for exp in experiments), args.workers)
    threads = options.apply_threads()
    if args.dry_run or args.estimate:
        comma_hints(settings)
        return (_dry_run(args, experiments) if args.dry_run else _estimate(args, experiments, options, workers))
    store = args.store
    if args.executor == "ray":   # every trial of every point at once, then the same report per experiment
        comma_hints(settings)
        gpus = args.ray_gpus if args.ray_gpus is not None else float(options.device.startswith("cuda"))
        roots = api.lottery_on_ray(experiments, store, address=args.ray_address, cpus=args.workers if args.workers and args.workers > 1 else None,
                                   gpus_per_task=gpus, options=options)
    else:
        check_device(options.device)   # before the line below promises a run
        # the workers of exec/local.py and the command's own process run at --threads each
        print(f"ticketlab lottery: {_plural(workers, 'worker process', 'worker processes')} x "
              f"{_plural(threads or 1, 'thread', 'threads')} ({_plural(cores(), 'core', 'cores')}; "
              f"--workers/--threads to change)", file=sys.stderr, flush=True)
        comma_hints(settings)
        roots = []
        for exp in experiments:
            if api.experiment_folder(exp, store).exists():   # a rerun: what is done and the time left, first
                from ticketlab.lottery import status
                print("resuming " + status.format_status(api.lottery_status(exp, store)), flush=True)
            roots.append(api.lottery(exp, store, options=options, workers=workers))
    for exp, root in zip(experiments, roots):
        _report(args, exp, root)
    if len(experiments) > 1:   # a preset's sweep: one line per point, and with --plot the points overlaid
        _sweep_ending(args, [root.name for root in roots])


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _dry_run(args, experiments) -> None:
    from ticketlab.lottery import adopt, status
    from ticketlab.store import layout
    for exp in experiments:
        print(status.format_status(api.lottery_status(exp, args.store)))
        if not (api.experiment_folder(exp, args.store) / layout.SPEC).exists():
            for source, other in adopt.sources(Path(args.store), exp):
                print(f"  when it runs, reuses the finished jobs of {source.name} (same settings, "
                      f"{other.lottery.trials} trials x {other.lottery.levels} levels), if made from the same data")


def _estimate(args, experiments, options, workers: int) -> None:
    from ticketlab.lottery import estimate, status
    paces: dict = {}
    reports = [api.estimate_lottery(exp, device=options.device, workers=workers, paces=paces) for exp in experiments]
    for exp, report in zip(experiments, reports):
        print(estimate.format_estimate(report, api.experiment_folder(exp, args.store).name))
    if len(reports) > 1:
        print(f"all {len(reports)} experiments: about {status.duration(sum(r['seconds'] for r in reports))}")


def _report(args, exp, root: Path) -> None:
    """What a finished experiment prints: its levels, [S1]'s summary, and the tables of the branches it ran."""
    print(f"experiment {root.name} ({root})")
    table = api.table(root)
    print(lottery_tables.format_levels(table))
    print(lottery_tables.format_summary(lottery_tables.summary(table), rows=False))
    if exp.lottery.oneshot:
        print("one-shot " + lottery_tables.format_summary(api.table(root, "summary", oneshot=True), rows=False))
    if exp.lottery.flip_levels:
        print(lottery_tables.format_levels(api.table(root, "flip")))
    if exp.lottery.snip or exp.lottery.iterative_snip or exp.lottery.flip_levels:
        from ticketlab.analysis import s4_tables
        print(s4_tables.format_s4(api.table(root, "s4")), end="")
    if args.plot:
        for path in api.plot_lottery(root.parent, [root.name], "all"):
            print(f"plot: {path}")


def _sweep_ending(args, names: list[str]) -> None:
    """What a sweep prints at its end: [S1]'s summary of the tickets, one line per point; with ``--plot``
    the tickets of every point in one levels figure, against the number of weights remaining when the
    networks differ in size (Fig 31) and against Pm otherwise (Figs 26-30, 32-36)."""
    store = Path(args.store)
    labels = api.experiment_labels(store, names)
    summaries = api.sweep_summaries(store, names)
    print(f"sweep of {len(names)} experiments ({args.preset}):")
    print(lottery_tables.format_sweep_summary(labels, summaries))
    if args.plot:
        totals = {s["dense"]["weights_remaining"] for s in summaries if s}   # level 0 keeps every weight
        stem = store / "plots" / f"{args.preset}_levels"
        for path in api.plot_lottery(store, names, "levels", out=stem, labels=labels, families=["ticket"],
                                     x="weights" if len(totals) > 1 else "pm"):
            print(f"plot: {path}")


def cmd_demo(args) -> None:
    from ticketlab import demo
    options = run_options(args)
    options.apply_threads()
    demo.run(args.store, workers=workers_for(demo.TRIALS, args.workers), options=options)
