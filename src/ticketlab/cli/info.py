"""``ticketlab models``, ``schedule``, ``presets``, ``settings`` and ``bench``: what can be run, without a store."""

from __future__ import annotations

import json

from ticketlab import TicketlabError, api
from ticketlab.analysis.tables import format_table
from ticketlab.cli.common import DATA_DIR, JSON, SET, Items, overrides
from ticketlab.spec import SECTIONS

MODEL_COLUMNS = ["name", "weights", "prunable", "conv", "fc", "output", "biases", "bn_affine", "bn_buffers"]


def add_parsers(sub) -> None:
    p = sub.add_parser("models", parents=[JSON], help="list the models with their weight counts")
    p.set_defaults(handler=cmd_models)

    p = sub.add_parser("schedule", parents=[SET, JSON], help="weights remaining per pruning level, without training")
    p.add_argument("model")
    p.add_argument("--levels", type=int, default=20)
    p.add_argument("--rates", nargs="+", default=[], metavar="KIND=RATE",
                   help="per-round rates: conv=0.1 fc=0.2 output=0.1 global=0.2")
    p.add_argument("--global", dest="global_scope", action="store_true", help="one global pool instead of per-layer rates")
    p.set_defaults(handler=cmd_schedule)

    p = sub.add_parser("presets", parents=[JSON], help="the papers' experiments, ready to run")
    p.set_defaults(handler=cmd_presets)

    p = sub.add_parser("settings", parents=[JSON], help="every --set field with its type, default and help")
    p.add_argument("section", nargs="?", choices=[*SECTIONS, "eval"], help="only this section's fields")
    p.set_defaults(handler=cmd_settings)

    p = sub.add_parser("bench", parents=[DATA_DIR, JSON], help="training-loop speed: ticketlab vs a stock PyTorch loop "
                                                                "(--data-dir: generated stand-ins where a dataset is absent)")
    p.add_argument("--quick", action="store_true", help="a run of under a minute")
    p.add_argument("--models", action=Items, default=["lenet", "conv2"], metavar="MODEL",
                   help="workloads to time: lenet, conv2 (default: both)")
    p.set_defaults(handler=cmd_bench)


def cmd_models(args) -> None:
    rows = api.describe_models()
    print(json.dumps(rows, indent=2) if args.json else format_table(rows, MODEL_COLUMNS))


def cmd_schedule(args) -> None:
    settings = overrides(args)
    for item in args.rates:
        kind, sep, rate = item.partition("=")
        if not sep or kind not in ("conv", "fc", "output", "global"):
            raise TicketlabError(f"--rates takes KIND=RATE with KIND in conv, fc, output, global; got {item!r}")
        settings[f"pruning.{kind}_rate"] = rate
    if args.global_scope:
        settings["pruning.scope"] = "global"
    levels = api.schedule(args.model, args.levels, settings)
    if args.json:
        print(json.dumps(levels, indent=2))
    else:
        print(format_table([{**lv, "pm": "?" if lv["pm"] is None else round(lv["pm"], 2),
                             "weights_remaining": "?" if lv["weights_remaining"] is None else lv["weights_remaining"]}
                            for lv in levels], ["level", "weights_remaining", "pm"]))


def cmd_presets(args) -> None:
    rows = api.presets()
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for row in rows:
        meta = row["meta"]
        print(f"{row['name']}: {meta.get('description', '')}")
        for key in ("figures", "command", "runtime", "reference"):
            if key in meta:
                print(f"    {key}: {meta[key]}")


def cmd_settings(args) -> None:
    from ticketlab.spec import settings
    rows = settings(args.section)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    if args.section is None:
        print("eval.*: any training.* field, for the tickets' evaluations and the controls only ([S3] H_eval); "
              "setting one starts eval from a copy of training")
    print(format_table([{**r, "default": _as_set(r["default"])} for r in rows], ["key", "type", "default", "help"]))


def _as_set(value) -> str:
    """A default as one would write it after ``--set section.field=``."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(_as_set(v) for v in value) + "]"
    if value == "":
        return '""'
    return "none" if value is None else str(value)


def cmd_bench(args) -> None:
    from ticketlab import bench
    report = bench.run(quick=args.quick, data_dir=args.data_dir, models=tuple(args.models))
    print(json.dumps(report, indent=2) if args.json else bench.format_report(report))
