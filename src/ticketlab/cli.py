"""The ``ticketlab`` command: a thin layer that parses arguments and calls ``ticketlab.api``."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from ticketlab import TicketlabError, mask_cli, report_cli, runtime
from ticketlab.analysis.tables import format_summary, format_table
from ticketlab.exec import launched_by_torchrun

DEFAULT_STORE = "ticketlab-store"


def _add_nproc(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nproc", type=int, default=1, metavar="N",
                   help="train every job data-parallel over N processes here (torchrun + DDP; with --device cuda "
                        "one GPU each); the same command under torchrun joins several machines")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", default=DEFAULT_STORE, help=f"run store directory (default: ./{DEFAULT_STORE})")
    p.add_argument("--data-dir", default=None, help="folder holding <dataset>/ with the official files (or set TICKETLAB_DATA)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="override a hyperparameter, e.g. --set training.lr=0.001 (repeatable)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ticketlab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="list the models with their weight counts")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("schedule", help="weights remaining per pruning level, without training")
    p.add_argument("model")
    p.add_argument("--levels", type=int, default=20)
    p.add_argument("--rates", nargs="+", default=[], metavar="KIND=RATE",
                   help="per-round rates: conv=0.1 fc=0.2 output=0.1 global=0.2")
    p.add_argument("--global", dest="global_scope", action="store_true", help="one global pool instead of per-layer rates")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("train", help="train one network (dense, or under --mask)")
    p.add_argument("--model", default="lenet")
    p.add_argument("--dataset", default=None, help="default: the model's paper dataset")
    p.add_argument("--mask", default=None, help="a mask file (.npz) to train under")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--checkpoint-seconds", type=float, default=60.0,
                   help="save a resumable state at most this often (at evaluation points)")
    _add_nproc(p)
    _add_common(p)

    p = sub.add_parser("lottery", help="iterative pruning over levels and trials, with controls")
    p.add_argument("--preset", default=None, help="a preset from `ticketlab presets`")
    p.add_argument("--model", default=None, help="default: the preset's model, else lenet")
    p.add_argument("--workers", type=int, default=1, help="processes to spread the trials over (one thread each); "
                   "with --executor ray and no --ray-address, the CPUs of the Ray cluster started here (default: all)")
    p.add_argument("--executor", default="local", choices=["local", "ray"],
                   help="local: trials over --workers processes here; ray: every trial of every experiment as a "
                        "Ray task, on the cluster at --ray-address or on one started here")
    p.add_argument("--ray-address", default=None, metavar="ADDRESS",
                   help="join a running Ray cluster (auto, HOST:PORT); default: start one here for this command")
    p.add_argument("--ray-gpus", type=float, default=None, metavar="G",
                   help="GPUs per Ray task (default: 1 with --device cuda, else 0)")
    p.add_argument("--engine", default="auto", choices=["auto", "sequential"],
                   help="auto: the batched engine (Lenet stacked); sequential: every job through the single loop in turn")
    p.add_argument("--batch-models", type=int, default=0, metavar="K",
                   help="train at most K ready jobs together (default: as many as fit in a quarter of free memory)")
    p.add_argument("--sparse-below", type=float, default=None, metavar="D",
                   help="Lenet layers keeping less than this share of their weights train with sparse matmuls "
                        "(default 0.15 on the CPU in fp32; 0: always dense)")
    p.add_argument("--checkpoint-seconds", type=float, default=60.0)
    p.add_argument("--plot", action="store_true", help="write the standard plots when done")
    p.add_argument("--dry-run", action="store_true",
                   help="train nothing: print the experiment ids and how many of their jobs are done (as `status`)")
    p.add_argument("--estimate", action="store_true",
                   help="train nothing: time the model's step and evaluation here (on --device, one thread per "
                        "--workers process) and estimate the whole experiment's wall time from its planned jobs")
    _add_nproc(p)
    _add_common(p)

    p = sub.add_parser("status", help="what lottery experiments have finished and what remains, without training")
    p.add_argument("experiments", nargs="*", metavar="EXPERIMENT",
                   help="lottery-<hash>, the hash, or its folder (default: every lottery experiment in the store)")
    p.add_argument("--store", default=DEFAULT_STORE, help=f"run store directory (default: ./{DEFAULT_STORE})")
    p.add_argument("--jobs", action="store_true", help="also list every unfinished job")
    p.add_argument("--json", action="store_true", help="every planned job with its state, step and total")

    p = sub.add_parser("verify", help="check a lottery experiment's invariants on its stored masks and weights")
    p.add_argument("experiments", nargs="*", metavar="EXPERIMENT",
                   help="lottery-<hash>, the hash, or its folder (default: every lottery experiment in the store)")
    p.add_argument("--store", default=DEFAULT_STORE, help=f"run store directory (default: ./{DEFAULT_STORE})")
    p.add_argument("--json", action="store_true", help="counts per check and every failure")

    p = sub.add_parser("report", help="write an experiment's small outputs (spec, jobs, status, verify, tables, "
                                      "summary, levels figure) into one folder, e.g. docs/results/<name>/")
    p.add_argument("experiment", metavar="EXPERIMENT", help="lottery-<hash>, the hash, or its folder")
    p.add_argument("--store", default=DEFAULT_STORE, help=f"run store directory (default: ./{DEFAULT_STORE})")
    p.add_argument("--out", required=True, help="the folder to write (created if missing; its files are replaced)")
    p.add_argument("--weights", action="store_true", help="also weights.txt (Figs 15-24 in numbers; reads every mask)")

    p = sub.add_parser("presets", help="the papers' experiments, ready to run")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("results", help="query the store's index")
    p.add_argument("--store", default=DEFAULT_STORE)
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true")
    fmt.add_argument("--csv", action="store_true")
    p.add_argument("--where", nargs="+", default=[], metavar="COLUMN=VALUE", help="filter rows, e.g. kind=train")
    p.add_argument("--reindex", action="store_true", help="rebuild the index from the summaries on disk first")

    p = sub.add_parser("bench", help="training-loop speed: ticketlab vs a stock PyTorch loop")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quick", action="store_true", help="a run of under a minute")
    p.add_argument("--models", nargs="+", default=["lenet", "conv2"], metavar="MODEL",
                   help="workloads to time: lenet, conv2 (default: both)")
    p.add_argument("--data-dir", default=None, help="where mnist/ and cifar10/ are; generated stand-ins if absent")

    p = sub.add_parser("demo", help="the main job: a short Lenet-on-MNIST lottery experiment with its plots")
    p.add_argument("--store", default=DEFAULT_STORE)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--workers", type=int, default=2)

    report_cli.add_parsers(sub, DEFAULT_STORE)
    mask_cli.add_parser(sub, DEFAULT_STORE)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)
    runtime.tune_allocator()
    try:
        if getattr(args, "nproc", 1) != 1 or launched_by_torchrun():
            return _data_parallel(args, argv)
        return int(COMMANDS[args.command](args) or 0)
    except TicketlabError as exc:
        print(f"ticketlab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ticketlab: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


def _data_parallel(args, argv: list[str]) -> int:
    """``--nproc N``: relaunch this command as N processes under torchrun. Inside torchrun: rank 0 runs the
    command, the others join each training it starts (exec/ddp.py), and all leave together."""
    if getattr(args, "workers", 1) > 1 or getattr(args, "executor", "local") != "local":
        raise TicketlabError("--workers / --executor spread trials over processes and --nproc one job over "
                             "processes; use one")
    from ticketlab.exec import ddp   # imports torch: only here, not at every command's start-up
    if not launched_by_torchrun():
        return ddp.launch(argv, args.nproc)   # --nproc 0 or less: an error there
    if args.command not in ("train", "lottery"):
        raise TicketlabError(f"`ticketlab {args.command}` does not run data-parallel; only train and lottery do")

    def leader(device: str) -> int:
        args.device = device
        return int(COMMANDS[args.command](args) or 0)
    return ddp.run(leader, args.device, args.data_dir) or 0


def cmd_models(args) -> None:
    from ticketlab import models
    rows = [models.describe(name) for name in models.names()]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(format_table(rows, ["name", "weights", "prunable", "conv", "fc", "output", "biases", "bn_affine", "bn_buffers"]))


def cmd_schedule(args) -> None:
    from ticketlab import api, models, pruning
    from ticketlab.spec import parse_set
    if args.levels < 0:
        raise TicketlabError("--levels must be >= 0")
    overrides = parse_set(args.set)
    pruning_overrides = {k.removeprefix("pruning."): v for k, v in overrides.items() if k.startswith("pruning.")}
    for item in args.rates:
        kind, sep, rate = item.partition("=")
        if not sep or kind not in ("conv", "fc", "output", "global"):
            raise TicketlabError(f"--rates takes KIND=RATE with KIND in conv, fc, output, global; got {item!r}")
        pruning_overrides[f"{kind}_rate"] = rate
    if args.global_scope:
        pruning_overrides["scope"] = "global"
    spec = api.make_spec(args.model, overrides={k: v for k, v in overrides.items() if not k.startswith("pruning.")})
    pspec = api.make_pruning(args.model, pruning_overrides)
    model = models.build(spec.model)
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters() if name in model.weight_info()}
    levels = pruning.schedule(shapes, model.weight_info(), pspec, args.levels)
    if args.json:
        print(json.dumps(levels, indent=2))
    else:
        print(format_table([{**lv, "pm": "?" if lv["pm"] is None else round(lv["pm"], 2),
                             "weights_remaining": "?" if lv["weights_remaining"] is None else lv["weights_remaining"]}
                            for lv in levels], ["level", "weights_remaining", "pm"]))


def cmd_train(args) -> None:
    from ticketlab import api
    from ticketlab.pruning import Mask
    from ticketlab.spec import parse_set
    spec = api.make_spec(args.model, args.dataset, parse_set(args.set))
    mask = Mask.load(args.mask) if args.mask else None
    summary = api.train(spec, args.store, mask=mask, data_dir=args.data_dir, device=args.device,
                        checkpoint_seconds=args.checkpoint_seconds)
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True))
    else:
        print(format_summary(summary))


RESULT_COLUMNS = ["run_id", "kind", "branch", "trial", "level", "pm", "early_stop_iteration",
                  "test_accuracy_at_early_stop", "final_test_accuracy"]


def cmd_lottery(args) -> None:
    from ticketlab import api
    from ticketlab.spec import parse_set
    from ticketlab.analysis import lottery_tables
    experiments = api.make_experiments(args.model, args.preset, parse_set(args.set))
    if args.dry_run:
        from ticketlab.lottery import adopt, status
        from ticketlab.store import layout
        for exp in experiments:
            print(status.format_status(api.lottery_status(exp, args.store)))
            if not (api.experiment_folder(exp, args.store) / layout.SPEC).exists():
                for source, other in adopt.sources(Path(args.store), exp):
                    print(f"  when it runs, reuses the finished jobs of {source.name} (same settings, "
                          f"{other.lottery.trials} trials x {other.lottery.levels} levels), if made from the same data")
        return
    if args.estimate:
        from ticketlab.lottery import estimate, status
        paces: dict = {}
        reports = [api.estimate_lottery(exp, device=args.device, workers=args.workers, paces=paces) for exp in experiments]
        for exp, report in zip(experiments, reports):
            print(estimate.format_estimate(report, api.experiment_folder(exp, args.store).name))
        if len(reports) > 1:
            print(f"all {len(reports)} experiments: about {status.duration(sum(r['seconds'] for r in reports))}")
        return
    on_ray = args.executor == "ray"
    if on_ray:   # every trial of every point at once, then the same report per experiment
        gpus = args.ray_gpus if args.ray_gpus is not None else float(args.device.startswith("cuda"))
        api.lottery_on_ray(experiments, args.store, address=args.ray_address, cpus=args.workers if args.workers > 1 else None,
                           gpus_per_task=gpus, data_dir=args.data_dir, device=args.device,
                           checkpoint_seconds=args.checkpoint_seconds, batch_models=args.batch_models,
                           engine=args.engine, sparse_below=args.sparse_below)
    for exp in experiments:
        if on_ray:
            root = api.experiment_folder(exp, args.store)
        else:
            if api.experiment_folder(exp, args.store).exists():   # a rerun: what is done and the time left, first
                from ticketlab.lottery import status
                print("resuming " + status.format_status(api.lottery_status(exp, args.store)), flush=True)
            root = api.lottery(exp, args.store, data_dir=args.data_dir, device=args.device, workers=args.workers,
                               checkpoint_seconds=args.checkpoint_seconds, batch_models=args.batch_models,
                               engine=args.engine, sparse_below=args.sparse_below)
        print(f"experiment {root.name} ({root})")
        table = lottery_tables.level_table(args.store, root.name)
        print(lottery_tables.format_levels(table))
        print(lottery_tables.format_summary(lottery_tables.summary(table), rows=False))
        if exp.lottery.oneshot:
            print("one-shot " + lottery_tables.format_summary(lottery_tables.oneshot_summary(lottery_tables.rows_of(args.store, root.name)), rows=False))
        if exp.lottery.flip_levels:
            print(lottery_tables.format_levels(lottery_tables.level_table(args.store, root.name, kind="flip")))
        if exp.lottery.snip or exp.lottery.iterative_snip or exp.lottery.flip_levels:
            from ticketlab.analysis import s4_tables
            print(s4_tables.format_s4(s4_tables.s4_tables(args.store, root.name)), end="")
        if args.plot:
            from ticketlab.analysis import lottery_plots
            for path in lottery_plots.standard_plots(args.store, root.name):
                print(f"plot: {path}")
    if len(experiments) > 1:   # a preset's sweep: one line per point, and with --plot the points overlaid
        _sweep_ending(args, [api.experiment_folder(exp, args.store).name for exp in experiments])


def _sweep_ending(args, names: list[str]) -> None:
    """What a sweep prints at its end: [S1]'s summary of the tickets, one line per point; with ``--plot``
    the tickets of every point in one levels figure, against the number of weights remaining when the
    networks differ in size (Fig 31) and against Pm otherwise (Figs 26-30, 32-36)."""
    from ticketlab.analysis import lottery_tables
    from ticketlab.analysis.lottery_series import experiment_labels
    store = Path(args.store)
    labels = experiment_labels(store, names)
    summaries = lottery_tables.sweep_summaries(store, names)
    print(f"sweep of {len(names)} experiments ({args.preset}):")
    print(lottery_tables.format_sweep_summary(labels, summaries))
    if args.plot:
        from ticketlab.analysis import lottery_plots
        totals = {s["dense"]["weights_remaining"] for s in summaries if s}   # level 0 keeps every weight
        stem = store / "plots" / f"{args.preset}_levels"
        for path in lottery_plots.plot_levels(store, names, stem, labels=labels, families=["ticket"],
                                              x="weights" if len(totals) > 1 else "pm"):
            print(f"plot: {path}")


def _experiment_roots(args) -> list[Path]:
    """The folders of the experiments named on the command line, or of every lottery experiment in --store."""
    from ticketlab.lottery import status
    store = Path(args.store)
    if not store.is_dir():
        raise TicketlabError(f"store {store} does not exist; pass the --store your experiments ran with")
    return [_experiment_folder(store, target) for target in args.experiments] or status.experiments(store)


def cmd_status(args) -> None:
    from ticketlab.lottery import status
    reports = [status.experiment_status(root) for root in _experiment_roots(args)]
    if args.json:
        print(json.dumps(reports, indent=2))
        return
    if not reports:
        print(f"no lottery experiments in {args.store}")
    for report in reports:
        print(status.format_status(report))
        if args.jobs:
            for row in report["jobs"]:
                if row["state"] != "done":
                    total = f"/{row['total']:,}" if row["total"] else ""
                    print(f"    {row['path']}: {row['state']} {row['step']:,}{total}")


def cmd_verify(args) -> int:
    from ticketlab.lottery import verify
    reports = [verify.verify_experiment(root) for root in _experiment_roots(args)]
    if args.json:
        print(json.dumps([r.as_dict() for r in reports], indent=2))
    else:
        print("\n".join(verify.format_verification(r) for r in reports) or f"no lottery experiments in {args.store}")
    return 0 if all(r.ok for r in reports) else 1


def cmd_report(args) -> None:
    from ticketlab.analysis.report import write_report
    store = Path(args.store)
    if not store.is_dir():
        raise TicketlabError(f"store {store} does not exist; pass the --store your experiment ran with")
    for path in write_report(_experiment_folder(store, args.experiment), Path(args.out), weights=args.weights):
        print(path)


def _experiment_folder(store: Path, target: str) -> Path:
    """A lottery experiment's folder from its name, hash or path."""
    from ticketlab.analysis.lottery_series import experiment_name
    from ticketlab.store import layout
    folder = Path(target)
    if (folder / layout.SPEC).exists():
        return folder
    name = experiment_name(target)
    if not (store / name).is_dir():
        raise TicketlabError(f"no lottery experiment {target!r} in {store}; `ticketlab status --store {store}` lists them")
    return store / name


def cmd_presets(args) -> None:
    from ticketlab.lottery import presets
    rows = [presets.load(name) for name in presets.names()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for row in rows:
        meta = row["meta"]
        print(f"{row['name']}: {meta.get('description', '')}")
        for key in ("figures", "command", "runtime", "reference"):
            if key in meta:
                print(f"    {key}: {meta[key]}")


def cmd_results(args) -> None:
    from ticketlab import api
    from ticketlab.store import index
    if args.reindex:
        index.reindex(Path(args.store))
    where = {}
    for item in args.where:
        key, sep, value = item.partition("=")
        if not sep:
            raise TicketlabError(f"--where takes COLUMN=VALUE, got {item!r}")
        where[key] = int(value) if value.lstrip("-").isdigit() else value
    rows = api.results(args.store, where)
    if args.json:
        print(json.dumps(rows, indent=2))
    elif args.csv:
        if rows:
            fields = list(dict.fromkeys(k for row in rows for k in row))
            writer = csv.DictWriter(sys.stdout, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
    else:
        print(format_table(rows, RESULT_COLUMNS))


def cmd_bench(args) -> None:
    from ticketlab import bench
    report = bench.run(quick=args.quick, data_dir=args.data_dir, models=tuple(args.models))
    print(json.dumps(report, indent=2) if args.json else bench.format_report(report))


def cmd_demo(args) -> None:
    from ticketlab import demo
    demo.run(args.store, data_dir=args.data_dir, workers=args.workers)


COMMANDS = {"models": cmd_models, "schedule": cmd_schedule, "train": cmd_train, "lottery": cmd_lottery,
            "presets": cmd_presets, "results": cmd_results,
            "plot": report_cli.cmd_plot, "bench": cmd_bench, "demo": cmd_demo, "masks": mask_cli.cmd_masks,
            "tables": report_cli.cmd_tables, "status": cmd_status, "verify": cmd_verify, "report": cmd_report}

if __name__ == "__main__":
    sys.exit(main())
