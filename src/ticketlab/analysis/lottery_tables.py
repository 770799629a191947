"""Tables of a lottery experiment, read from the store's index: one row per (branch family, level),
aggregated over trials (mean, min, max), the way the paper's plots aggregate them."""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from pathlib import Path

from ticketlab import TicketlabError
from ticketlab.store import index, layout

METRICS = ("early_stop_iteration", "test_accuracy_at_early_stop", "val_accuracy_at_early_stop",
           "train_accuracy_at_early_stop", "final_test_accuracy", "final_train_accuracy")


def family(branch: str) -> str:
    """'reinit_2' -> 'reinit', 'random_global_0' -> 'random_global'; the IMP job and 'ticket' -> 'ticket'.

    Noise branches keep their multiple ('noise_0.5', 'noise_3'): each c is its own control, and the
    suffix of 'noise_3' is the multiple, not a repeat index."""
    if branch == "main":
        return "ticket"
    if branch.startswith("noise_"):
        return branch
    return re.sub(r"_\d+$", "", branch)


def rows_of(store: str | Path, experiment: str) -> list[dict]:
    name = layout.experiment_id(layout.LOTTERY, layout.experiment_hash(experiment))
    rows = index.query(Path(store), {"experiment": name})
    if not rows:
        raise TicketlabError(f"no finished jobs of experiment {experiment!r} in {store}; "
                             "run `ticketlab lottery` first or check the name with `ticketlab results`")
    # When a level has a separate 'ticket' job (mode=continue, or eval hyperparameters), the IMP job
    # 'main' is the find run and 'ticket' the reported network.
    has_ticket = {(r["kind"], r["trial"], r["level"]) for r in rows if r["branch"] == "ticket"}
    for r in rows:
        r["family"] = "find" if r["branch"] == "main" and (r["kind"], r["trial"], r["level"]) in has_ticket else family(r["branch"])
        if r["kind"] == "flip":  # [S4] LTH_flip chains, one family per flipped level
            r["family"] = f"flip_{r['flip_from']}"
    return rows


def level_table(store: str | Path, experiment: str, kind: str = "lottery") -> list[dict]:
    """Per (family, level): n, Pm, and mean/min/max of every metric over trials and repeats.
    For ``kind="oneshot"`` the key is the pruned fraction, stored under "level"."""
    return aggregate(rows_of(store, experiment), kind)


def aggregate(rows: list[dict], kind: str = "lottery") -> list[dict]:
    """``level_table`` of rows already read (``rows_of``): the pure part, shared with the plots."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        if r["kind"] == kind:
            key = (r["family"], r.get("oneshot_fraction") if kind == "oneshot" else r["level"])
            groups[key].append(r)
    table = []
    for (fam, level), rs in sorted(groups.items(), key=lambda kv: (kv[0][0] != "ticket", kv[0][0], kv[0][1])):
        row = {"family": fam, "level": level, "n": len(rs), "pm": statistics.mean(r["pm"] for r in rs)}
        if all(r.get("weights_remaining") is not None for r in rs):
            row["weights_remaining"] = statistics.mean(r["weights_remaining"] for r in rs)
        metrics = list(METRICS) + sorted({k for r in rs for k in r if k.startswith("test_accuracy_at_")
                                          or re.fullmatch(r"(final_)?imagenet_\w+_accuracy(_at_early_stop)?", k)})
        for m in metrics:
            values = [r[m] for r in rs if r.get(m) is not None]
            if values:
                row[m] = statistics.mean(values)
                row[f"{m}_min"], row[f"{m}_max"] = min(values), max(values)
        table.append(row)
    return table


def format_levels(table: list[dict]) -> str:
    lines = [f"{'family':16s} {'level':>5s} {'Pm %':>7s} {'n':>3s} {'early stop':>10s} {'test@es':>8s} {'train@es':>8s} {'final test':>10s}"]
    for r in table:
        lines.append(f"{r['family']:16s} {r['level']!s:>5s} {r['pm']:7.2f} {r['n']:3d} {r.get('early_stop_iteration', float('nan')):10.0f} "
                     f"{r.get('test_accuracy_at_early_stop', float('nan')):8.4f} {r.get('train_accuracy_at_early_stop', float('nan')):8.4f} "
                     f"{r.get('final_test_accuracy', float('nan')):10.4f}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------
# The paper's summaries (PROTOCOL §4.6, §4.14): each family against the dense network and the ticket.

def summary(table: list[dict], dense: dict | None = None) -> dict:
    """How [S1] reports a level table: every (family, level) against the dense network (the ticket family
    at level 0), and each control against the ticket of its level.

    Per row: ``speedup`` = dense early-stop iteration / the row's (None when the row stops at 0), ``gain``
    and ``final_gain`` = test accuracy at early stop / at the end minus the dense network's, in points,
    ``winning`` = early stop no later and test accuracy at early stop no lower than dense ([S1] §1's
    winning-ticket test, on means over trials); for controls also ``ticket_speedup`` (control's early stop
    / the ticket's: "the ticket learns 2.5x faster") and ``ticket_advantage`` (ticket − control, points).
    Per family: the best speed-up and the best gains with their level and Pm, the levels that pass the
    winning-ticket test and the smallest of them.

    ``dense`` is the reference row when ``table`` holds none: a one-shot table (levels = pruned fractions,
    Fig 4c) is summarised against the lottery table's level 0 (``oneshot_summary``). A summary of a table
    whose dense network has not finished raises ``TicketlabError``."""
    dense = dense or next((r for r in table if r["family"] == "ticket" and r["level"] == 0), None)
    if dense is None or dense.get("early_stop_iteration") is None:
        raise TicketlabError("the summary compares with the dense network (level 0), which has not finished yet; "
                             "see `ticketlab status`")
    tickets = {r["level"]: r for r in table if r["family"] == "ticket"}
    rows = []
    for r in table:
        es, test, final = r.get("early_stop_iteration"), r.get("test_accuracy_at_early_stop"), r.get("final_test_accuracy")
        row = {"family": r["family"], "level": r["level"], "pm": r["pm"], "weights_remaining": r.get("weights_remaining"),
               "n": r["n"],
               "early_stop_iteration": es, "test_accuracy_at_early_stop": test, "final_test_accuracy": final,
               "speedup": _ratio(dense["early_stop_iteration"], es),
               "gain": _points(test, dense.get("test_accuracy_at_early_stop")),
               "final_gain": _points(final, dense.get("final_test_accuracy")),
               "winning": None if es is None or test is None else
                          bool(es <= dense["early_stop_iteration"] and test >= dense["test_accuracy_at_early_stop"])}
        ticket = tickets.get(r["level"])
        if r["family"] != "ticket" and ticket is not None:
            row["ticket_speedup"] = _ratio(es, ticket.get("early_stop_iteration"))
            row["ticket_advantage"] = _points(ticket.get("test_accuracy_at_early_stop"), test)
        rows.append(row)
    families = {}
    for fam in dict.fromkeys(r["family"] for r in rows):
        pruned = [r for r in rows if r["family"] == fam and r["level"] != 0]
        winning = [r["level"] for r in pruned if r["winning"]]
        smallest = min((r for r in pruned if r["winning"]), key=lambda r: r["pm"], default=None)
        families[fam] = {"best_speedup": _best(pruned, "speedup"), "best_gain": _best(pruned, "gain"),
                         "best_final_gain": _best(pruned, "final_gain"), "winning_levels": winning,
                         "smallest_winning": None if smallest is None else _where(smallest)}
    return {"dense": {k: dense.get(k) for k in ("level", "pm", "weights_remaining", "n", "early_stop_iteration",
                                                "test_accuracy_at_early_stop", "final_test_accuracy")},
            "rows": rows, "families": families}


def oneshot_summary(rows: list[dict]) -> dict:
    """The summary of an experiment's one-shot runs (``lottery.oneshot``) against its dense network, from
    its ``rows_of``; their "level" is the pruned fraction."""
    oneshot = aggregate(rows, "oneshot")
    if not oneshot:
        name = rows[0]["experiment"] if rows else "the experiment"
        raise TicketlabError(f"{name} has no one-shot runs (lottery.oneshot); ask for the levels' summary instead")
    dense = next((r for r in aggregate(rows) if r["family"] == "ticket" and r["level"] == 0), None)
    return {**summary(oneshot, dense), "axis": "fraction"}


def sweep_summaries(store: str | Path, names: list[str]) -> list[dict | None]:
    """``summary`` of each experiment of a sweep; None for a point whose dense network has not finished."""
    summaries = []
    for name in names:
        try:
            summaries.append(summary(level_table(store, name)))
        except TicketlabError:
            summaries.append(None)
    return summaries


def _ratio(a, b):
    return None if a is None or not b else a / b


def _points(a, b):
    return None if a is None or b is None else 100 * (a - b)


def _best(rows: list[dict], key: str) -> dict | None:
    """The row with the largest ``key``: its value, level and Pm (ties: the first, i.e. the densest)."""
    rows = [r for r in rows if r.get(key) is not None]
    if not rows:
        return None
    best = max(rows, key=lambda r: r[key])
    return {"value": best[key], **_where(best)}


def _where(row: dict) -> dict:
    where = {"level": row["level"], "pm": row["pm"]}
    if row.get("weights_remaining") is not None:
        where["weights_remaining"] = row["weights_remaining"]
    return where


def _ranges(levels: list[int]) -> str:
    """[1, 2, 3, 5, 7, 8] -> '1-3, 5, 7-8'."""
    if not all(isinstance(level, int) for level in levels):   # one-shot fractions
        return ", ".join(map(str, levels))
    runs: list[list[int]] = []
    for level in levels:
        if runs and level == runs[-1][-1] + 1:
            runs[-1].append(level)
        else:
            runs.append([level])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def format_summary(s: dict, rows: bool = True) -> str:
    """The summary as text: the header and per-level rows (unless ``rows=False``), then one line per family."""
    def num(v, fmt, missing="-"):
        return missing if v is None else format(v, fmt)

    d, axis = s["dense"], s.get("axis", "level")   # one-shot summaries list pruned fractions
    lines = [f"against the dense network (level 0, n={d['n']}): early stop {num(d['early_stop_iteration'], ',.0f')}, "
             f"test acc. at early stop {num(d['test_accuracy_at_early_stop'] and 100 * d['test_accuracy_at_early_stop'], '.2f')}%, "
             f"final test {num(d['final_test_accuracy'] and 100 * d['final_test_accuracy'], '.2f')}%"]
    if any(r["family"] == "find" and r["level"] == 0 for r in s["rows"]):   # [S3]'s H_find / H_eval
        lines.append("dense = the level-0 `ticket` job, trained with the `eval` hyperparameters like every ticket; "
                     "`find` is the IMP run (trained with `training`) whose weights give the masks")
    elif any(r["family"] == "find" for r in s["rows"]):   # say which network is "dense"
        lines.append("dense = the level-0 IMP run (trained with `training`); at pruned levels the ticket is the separate "
                     "`ticket` job (the `eval` hyperparameters, or mode=continue's reset) and `find` the IMP run")
    if rows:
        lines += ["speed-up: dense early stop / early stop; gain: test accuracy minus dense, in points; winning: early stop "
                  "no later and test acc. no lower than dense ([S1] §1); vs ticket: control's early stop / ticket's, "
                  "ticket minus control",
                  f"{'family':16s} {axis:>8s} {'Pm %':>7s} {'n':>3s} {'early stop':>10s} {'speed-up':>8s} {'test@es':>8s} "
                  f"{'gain':>6s} {'final':>7s} {'gain':>6s} {'winning':>7s} {'vs ticket':>9s} {'ahead':>6s}"]
    for r in s["rows"] if rows else []:
        test, final = r["test_accuracy_at_early_stop"], r["final_test_accuracy"]
        lines.append(f"{r['family']:16s} {r['level']!s:>8s} {r['pm']:7.2f} {r['n']:3d} {num(r['early_stop_iteration'], ',.0f'):>10s} "
                     f"{num(r['speedup'], '.2f') + 'x':>8s} {num(test and 100 * test, '.2f'):>7s}% {num(r['gain'], '+.2f'):>6s} "
                     f"{num(final and 100 * final, '.2f'):>6s}% {num(r['final_gain'], '+.2f'):>6s} "
                     f"{'' if r['level'] == 0 and r['family'] == 'ticket' else ('yes' if r['winning'] else 'no'):>7s} "
                     f"{num(r.get('ticket_speedup'), '.2f', '') + ('x' if r.get('ticket_speedup') else ''):>9s} "
                     f"{num(r.get('ticket_advantage'), '+.2f', ''):>6s}".rstrip())
    for fam, f in s["families"].items():
        parts = []
        for key, what, fmt in (("best_speedup", "best speed-up", "{:.2f}x"), ("best_gain", "best gain at early stop", "{:+.2f}"),
                               ("best_final_gain", "best final gain", "{:+.2f}")):
            if f[key]:
                parts.append(f"{what} {fmt.format(f[key]['value'])} at {axis} {f[key]['level']} (Pm {f[key]['pm']:.2f}%)")
        if f["winning_levels"]:
            w = f["smallest_winning"]
            plural = "s" if len(f["winning_levels"]) > 1 else ""
            parts.append(f"winning at {axis}{plural} {_ranges(f['winning_levels'])}, smallest Pm {w['pm']:.2f}% ({axis} {w['level']})")
        elif parts:
            parts.append("no level passes the winning-ticket test")
        if parts:
            lines.append(f"{fam}: " + "; ".join(parts))
    return "\n".join(lines)


def format_sweep_summary(labels: list[str], summaries: list[dict], family: str = "ticket") -> str:
    """One line per experiment of a sweep (a preset's points): its dense network and ``family``'s best
    speed-up, best gain and smallest winning ticket, as [S1]'s appendix states each sweep point. A
    ``None`` summary is a point whose dense network has not finished."""
    width = max([len("experiment")] + [len(label) for label in labels])
    lines = [f"{'experiment':{width}s} {'dense es':>8s} {'test@es':>8s}  {'best speed-up':>22s}  {'best gain':>20s}  "
             f"{'smallest winning':>28s}"]
    for label, s in zip(labels, summaries):
        if s is None:
            lines.append(f"{label:{width}s} (the dense network has not finished yet)")
            continue
        d, f = s["dense"], s["families"].get(family)
        if f is None:
            lines.append(f"{label:{width}s} (no {family} beyond level 0 yet)")
            continue
        speed = f"{f['best_speedup']['value']:.2f}x at Pm {f['best_speedup']['pm']:.1f}%" if f["best_speedup"] else "-"
        gain = f"{f['best_gain']['value']:+.2f} at Pm {f['best_gain']['pm']:.1f}%" if f["best_gain"] else "-"
        w = f["smallest_winning"]
        small = "none" if not w else f"Pm {w['pm']:.2f}%" + (f" ({w['weights_remaining']:,.0f} weights)"
                                                              if w.get("weights_remaining") else "")
        lines.append(f"{label:{width}s} {d['early_stop_iteration']:8,.0f} {100 * d['test_accuracy_at_early_stop']:7.2f}%  "
                     f"{speed:>22s}  {gain:>20s}  {small:>28s}")
    return "\n".join(lines)
