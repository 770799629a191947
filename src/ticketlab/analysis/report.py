"""``ticketlab report``: an experiment's small outputs written to one folder, from the store, finished or
running: what a results folder under ``docs/results/`` keeps (the store itself stays out of the repo).

    spec.json     the experiment's hyperparameters           status.txt   what is done, the time left
    jobs.csv      the index rows of its finished jobs         verify.txt   its invariants (a failure is recorded)
    table.txt     per family and level (+ one-shot, flips)   summary.txt  [S1]'s summaries against dense
    s4.txt        [S4] Tables 2-7, when it has SNIP / flips   weights.txt  Figs 15-24 in numbers (``weights=True``)
    s0.txt        [S0]'s table, when it has shifted test sets (data.eval_sets)
    levels.png    early stop and accuracy vs Pm

Files are written whole (temporary name, then rename), so a folder never holds half a table.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ticketlab import TicketlabError
from ticketlab.analysis import lottery_tables
from ticketlab.lottery import status, verify
from ticketlab.store import index, layout
from ticketlab.store.artifacts import atomic_write_bytes, load_json, save_json


def write_report(root: Path, out: Path, weights: bool = False) -> list[Path]:
    """Write the report of the experiment in folder ``root`` (``<store>/lottery-<hash>``) into ``out``;
    returns the files written. Nothing is trained and nothing in the store changes."""
    root, out = Path(root), Path(out)
    if not (root / layout.SPEC).exists():
        raise TicketlabError(f"{root} is not a lottery experiment (no {layout.SPEC}); pass its folder or name")
    store, name = root.parent, root.name
    out.mkdir(parents=True, exist_ok=True)
    written = []

    def text(file: str, body: str) -> None:
        atomic_write_bytes(out / file, (body.rstrip("\n") + "\n").encode())
        written.append(out / file)

    save_json(out / layout.SPEC, load_json(root / layout.SPEC))
    written.append(out / layout.SPEC)
    text("status.txt", status.format_status(status.experiment_status(root)))
    text("verify.txt", verify.format_verification(verify.verify_experiment(root)))
    rows = index.query(store, {"experiment": name})
    if not rows:
        return written
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(dict.fromkeys(k for row in rows for k in row)))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(out / "jobs.csv", buffer.getvalue().encode())
    written.append(out / "jobs.csv")

    tagged = lottery_tables.rows_of(store, name)
    kinds = {r["kind"] for r in tagged}
    tables = [lottery_tables.format_levels(lottery_tables.aggregate(tagged, kind))
              for kind in ("lottery", "oneshot", "flip") if kind in kinds]
    text("table.txt", "\n\n".join(tables))
    level_table = lottery_tables.aggregate(tagged)
    try:
        summaries = [lottery_tables.format_summary(lottery_tables.summary(level_table))]
        if "oneshot" in kinds:
            summaries.append("one-shot " + lottery_tables.format_summary(lottery_tables.oneshot_summary(tagged)))
        text("summary.txt", "\n\n".join(summaries))
    except TicketlabError as e:   # the dense network has not finished: say so instead of a table
        text("summary.txt", f"no summary yet: {e}")
    spec = load_json(root / layout.SPEC)["spec"].get("lottery", {})
    if spec.get("snip") or spec.get("iterative_snip") or spec.get("flip_levels"):
        from ticketlab.analysis import s4_tables
        text("s4.txt", s4_tables.format_s4(s4_tables.s4_tables(store, name)))
    if load_json(root / layout.SPEC)["spec"].get("data", {}).get("eval_sets"):
        from ticketlab.analysis import s0_tables
        text("s0.txt", s0_tables.format_s0(s0_tables.s0_table(store, name)))
    if weights and any(r["level"] > 0 for r in tagged if r["kind"] == "lottery"):
        from ticketlab.analysis import weight_tables
        text("weights.txt", weight_tables.format_weight_tables(weight_tables.weight_tables(store, name)))
    from ticketlab.analysis import lottery_plots
    written += [p for p in lottery_plots.plot_levels(store, [name], out / "levels") if p.suffix == ".png"]
    (out / "levels.pdf").unlink(missing_ok=True)   # the PNG is what a results folder shows
    return written
