"""``ticketlab status``, ``verify``, ``report`` and ``results``: what a store holds, without training.
An experiment is named by its id (``lottery-<hash>``), its hash or its folder (``store/layout.resolve_experiment``)."""

from __future__ import annotations

import csv
import json
import sys

from ticketlab import TicketlabError, api
from ticketlab.analysis.tables import format_table
from ticketlab.cli.common import JSON, STORE

EXPERIMENTS_HELP = "lottery-<hash>, the hash, or its folder"


def add_parsers(sub) -> None:
    p = sub.add_parser("status", parents=[STORE, JSON],
                       help="what lottery experiments have finished and what remains, without training")
    p.add_argument("experiments", nargs="*", metavar="EXPERIMENT",
                   help=EXPERIMENTS_HELP + " (default: every lottery experiment in the store)")
    p.add_argument("--jobs", action="store_true", help="also list every unfinished job (--json: every planned job)")
    p.set_defaults(handler=cmd_status)

    p = sub.add_parser("verify", parents=[STORE, JSON],
                       help="check a lottery experiment's invariants on its stored masks and weights")
    p.add_argument("experiments", nargs="*", metavar="EXPERIMENT",
                   help=EXPERIMENTS_HELP + " (default: every lottery experiment in the store)")
    p.set_defaults(handler=cmd_verify)

    p = sub.add_parser("report", parents=[STORE], help="write an experiment's small outputs (spec, jobs, status, "
                       "verify, tables, summary, levels figure) into one folder, e.g. docs/results/<name>/")
    p.add_argument("experiment", metavar="EXPERIMENT", help=EXPERIMENTS_HELP)
    p.add_argument("--out", required=True, help="the folder to write (created if missing; its files are replaced)")
    p.add_argument("--weights", action="store_true", help="also weights.txt (Figs 15-24 in numbers; reads every mask)")
    p.set_defaults(handler=cmd_report)

    p = sub.add_parser("results", parents=[STORE, JSON], help="query the store's index")
    p.add_argument("--csv", action="store_true", help="print CSV instead of text")
    p.add_argument("--where", nargs="+", default=[], metavar="COLUMN=VALUE", help="filter rows, e.g. kind=train")
    p.add_argument("--reindex", action="store_true", help="rebuild the index from the summaries on disk first")
    p.set_defaults(handler=cmd_results)


def cmd_status(args) -> None:
    reports = api.status(args.store, args.experiments)
    if args.json:
        print(json.dumps(reports, indent=2))
        return
    if not reports:
        print(f"no lottery experiments in {args.store}")
    from ticketlab.lottery.status import format_status
    for report in reports:
        print(format_status(report))
        if args.jobs:
            for row in report["jobs"]:
                if row["state"] != "done":
                    total = f"/{row['total']:,}" if row["total"] else ""
                    print(f"    {row['path']}: {row['state']} {row['step']:,}{total}")


def cmd_verify(args) -> int:
    from ticketlab.lottery.verify import format_verification
    reports = api.verify(args.store, args.experiments)
    if args.json:
        print(json.dumps([r.as_dict() for r in reports], indent=2))
    else:
        print("\n".join(format_verification(r) for r in reports) or f"no lottery experiments in {args.store}")
    return 0 if all(r.ok for r in reports) else 1


def cmd_report(args) -> None:
    root, = api.experiments(args.store, [args.experiment])
    for path in api.lottery_report(root, args.out, weights=args.weights):
        print(path)


RESULT_COLUMNS = ["run_id", "kind", "branch", "trial", "level", "pm", "early_stop_iteration",
                  "test_accuracy_at_early_stop", "final_test_accuracy"]


def cmd_results(args) -> None:
    if args.json and args.csv:
        raise TicketlabError("--json and --csv: pick one")
    where = {}
    for item in args.where:
        key, sep, value = item.partition("=")
        if not sep:
            raise TicketlabError(f"--where takes COLUMN=VALUE, got {item!r}")
        where[key] = int(value) if value.lstrip("-").isdigit() else value
    rows = api.results(args.store, where, reindex=args.reindex)
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
