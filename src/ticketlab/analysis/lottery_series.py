"""The data behind the lottery figures: pure functions from index rows, masks and weights to the series
a figure draws (tested against hand computations), and the store access the figures share."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from ticketlab import TicketlabError
from ticketlab.analysis import lottery_tables
from ticketlab.pruning import Mask
from ticketlab.store import index, layout
from ticketlab.store.artifacts import load_json, load_torch

LEVEL_METRICS = ("early_stop_iteration", "test_accuracy_at_early_stop", "train_accuracy_at_early_stop")
ONESHOT_METRICS = ("early_stop_iteration", "test_accuracy_at_early_stop")
# Above this many weights the per-weight histograms (init, connections, movement) cost minutes and
# gigabytes; standard_plots skips them unless asked.
HISTOGRAM_WEIGHT_LIMIT = 5_000_000

_FAMILY_ORDER = ("ticket", "find", "reinit", "random_global", "random_preserve_lpr", "dm_reinit", "prune_at_init",
                 "snip", "isnip")
_FAMILY_LABELS = {"ticket": "winning ticket", "find": "IMP find run", "reinit": "random reinit",
                  "random_global": "random mask (global)", "random_preserve_lpr": "random mask (per layer)",
                  "dm_reinit": "reinit from D_m", "prune_at_init": "pruned at init", "snip": "SNIP",
                  "isnip": "iterative SNIP"}
_MARKERS = {"ticket": "o", "find": "P", "reinit": "s", "random_global": "^", "random_preserve_lpr": "v",
            "dm_reinit": "D", "prune_at_init": "X", "snip": "<", "isnip": ">"}

Series = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # Pm (decreasing), mean, min, max


# ---------------------------------------------------------------------------------------------------
# The numbers: pure functions of index rows, masks and weights.

def family_order(families) -> list[str]:
    """Ticket first, then the controls in a fixed order, noise last by its multiple."""
    def key(fam):
        if fam in _FAMILY_ORDER:
            return (_FAMILY_ORDER.index(fam), 0.0, fam)
        noise = re.fullmatch(r"noise_([0-9.eE+-]+)", fam)
        return (len(_FAMILY_ORDER) + (0 if noise else 1), float(noise.group(1)) if noise else 0.0, fam)
    return sorted(set(families), key=key)


def family_label(fam: str) -> str:
    if fam.startswith("noise_"):
        return f"noise {fam.removeprefix('noise_')}σ"
    return _FAMILY_LABELS.get(fam, fam)


def metric_label(metric: str) -> str:
    fixed = re.fullmatch(r"(test|train|val)_accuracy_at_(\d+)", metric)
    shifted = re.fullmatch(r"(final_)?imagenet_(v2|r|a|sketch)_accuracy(_at_early_stop)?", metric)
    if shifted:
        name = "ImageNet-" + {"v2": "V2", "r": "R", "a": "A", "sketch": "Sketch"}[shifted.group(2)]
        return f"{name} accuracy " + ("at the end" if shifted.group(1) else "at early stop")
    if fixed:
        return f"{fixed.group(1)} accuracy at iteration {int(fixed.group(2)):,}"
    return {"early_stop_iteration": "early-stop iteration", "val/loss": "validation loss",
            "test/accuracy": "test accuracy", "val/accuracy": "validation accuracy",
            "test/loss": "test loss"}.get(metric, metric.replace("_", " "))


def _axis_label(metric: str) -> str:
    return "iteration" if metric.endswith("iteration") else "accuracy" if "accuracy" in metric else metric_label(metric)


def fixed_step_metrics(rows: list[dict]) -> list[str]:
    """The ``test_accuracy_at_<step>`` columns present (lottery.fixed_iterations), by step."""
    steps = {int(m.group(1)) for r in rows for k in r if (m := re.fullmatch(r"test_accuracy_at_(\d+)", k))}
    return [f"test_accuracy_at_{s}" for s in sorted(steps)]


def shifted_metrics(rows: list[dict]) -> list[str]:
    """The shifted test sets' ``<set>_accuracy_at_early_stop`` columns present (data.eval_sets, [S0])."""
    from ticketlab.data.imagefolder import EVAL_SETS
    return [f"{n}_accuracy_at_early_stop" for n in EVAL_SETS if any(f"{n}_accuracy_at_early_stop" in r for r in rows)]


X_AXES = {"pm": "pm", "weights": "weights_remaining"}   # --x of the level figures -> the table column


def levels_series(rows: list[dict], metric: str, kind: str = "lottery", x: str = "pm") -> dict[str, Series]:
    """``{family: (x, mean, min, max)}`` of ``metric`` over trials and repeats, x decreasing: Pm, or with
    ``x="weights"`` the number of weights remaining ([S1] Figs 31 and 37, whose networks differ in size).

    ``rows`` come from ``lottery_tables.rows_of``. For ``kind="oneshot"`` the dense network (level 0)
    is the ticket's point at Pm = 100, as in Fig 4c."""
    if x not in X_AXES:
        raise TicketlabError(f"unknown x axis {x!r}; choose one of {list(X_AXES)}")
    column = X_AXES[x]
    table = lottery_tables.aggregate(rows, kind)
    if kind == "oneshot":
        table += [r for r in lottery_tables.aggregate(rows, "lottery") if r["family"] == "ticket" and r["level"] == 0]
    series = {}
    for fam in family_order(r["family"] for r in table):
        points = sorted(((r[column], r[metric], r[f"{metric}_min"], r[f"{metric}_max"])
                         for r in table if r["family"] == fam and metric in r and column in r), reverse=True)
        if points:
            series[fam] = tuple(np.array(column, dtype=float) for column in zip(*points))
    return series


def curve_band(runs: list[list[tuple[int, float]]], max_iteration: int | None = None) -> Series:
    """(steps, mean, min, max) over runs at the steps every run evaluated (up to ``max_iteration``).
    Runs that stopped early ([S4] patience) therefore cut the band at the shortest one."""
    common = set.intersection(*({s for s, _ in run} for run in runs))
    steps = sorted(s for s in common if max_iteration is None or s <= max_iteration)
    values = np.array([[dict(run)[s] for s in steps] for run in runs], dtype=float).reshape(len(runs), len(steps))
    return np.array(steps, dtype=float), values.mean(0), values.min(0), values.max(0)


def surviving_init(theta0: dict, mask: Mask) -> dict[str, np.ndarray]:
    """Per weight tensor of the mask, the theta_0 values of the weights that survive in it."""
    return {name: theta0[name][m].numpy() for name, m in mask.items()}


def density_histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bar heights normalised to area 1 (all zeros when there is nothing to count)."""
    counts, _ = np.histogram(values, edges)
    area = counts.sum() * np.diff(edges)
    return np.divide(counts, area, out=np.zeros(len(counts)), where=area > 0)


def connection_fractions(mask: Mask) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per 2-D or 4-D weight: (incoming, outgoing) fraction of connections kept per unit.

    A Linear weight is [out, in]: unit j of the layer keeps mask[j].sum() / in of its inputs, and input
    unit i keeps mask[:, i].sum() / out of its outputs. A conv kernel [out_c, in_c, kh, kw] counts per
    output channel and per input channel over the kernel positions."""
    fractions = {}
    for name, m in mask.items():
        m = m.float()
        if m.dim() == 2:
            fractions[name] = (m.mean(1).numpy(), m.mean(0).numpy())
        elif m.dim() == 4:
            fractions[name] = (m.mean((1, 2, 3)).numpy(), m.mean((0, 2, 3)).numpy())
    return fractions


def movement(init: dict, final: dict, mask: Mask) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """Per weight tensor of the mask: ``{"ticket" | "rest": {"change": |θT−θ0|, "away": |θT|−|θ0|}}``,
    split by whether the weight is in ``mask`` (the eventual winning ticket)."""
    moved = {}
    for name, m in mask.items():
        before, after = init[name].float(), final[name].float()
        change, away = (after - before).abs(), after.abs() - before.abs()
        moved[name] = {part: {"change": change[keep].numpy(), "away": away[keep].numpy()}
                       for part, keep in (("ticket", m), ("rest", ~m))}
    return moved


def spec_labels(specs: list[dict]) -> list[str]:
    """Labels of experiments from the hyperparameters that differ between their spec.json files,
    e.g. ``["scope=layer", "scope=global"]``; a field name is qualified only when it is ambiguous."""
    flats = [_flatten(s) for s in specs]
    differing = sorted(k for k in set().union(*flats)
                       if len({json.dumps(f.get(k), sort_keys=True) for f in flats}) > 1)
    leaves = [k.rsplit(".", 1)[-1] for k in differing]
    labels = []
    for flat in flats:
        parts = []
        for key, leaf in zip(differing, leaves):
            value = flat.get(key)
            value = ",".join(map(str, value)) if isinstance(value, list) else value
            parts.append(str(value) if key in ("model.name", "data.dataset")
                         else f"{leaf if leaves.count(leaf) == 1 else key}={value}")
        labels.append(", ".join(parts))
    return labels


def experiment_labels(store, names: list[str]) -> list[str]:
    """``spec_labels`` of experiments in the store, read from their spec.json files."""
    return spec_labels([load_json(_need(_root(store, n) / layout.SPEC, "the experiment's spec"))["spec"] for n in names])


def _flatten(d: dict, prefix: str = "") -> dict:
    flat = {}
    for k, v in d.items():
        if isinstance(v, dict):
            flat.update(_flatten(v, f"{prefix}{k}."))
        else:
            flat[f"{prefix}{k}"] = v
    return flat


def spread_levels(levels: list[int], count: int) -> list[int]:
    """About ``count`` levels spread evenly from the first to the last (e.g. 0, 5, 10, 15, 20)."""
    levels = sorted(set(levels))
    if len(levels) <= count:
        return levels
    picks = np.round(np.linspace(0, len(levels) - 1, count)).astype(int)
    return [levels[i] for i in sorted(set(picks))]


# ---------------------------------------------------------------------------------------------------
# Reading the store.

def experiment_name(experiment: str) -> str:
    """``lottery-<hash>`` from the id or the bare hash."""
    return layout.experiment_id(layout.LOTTERY, layout.experiment_hash(experiment))


def find_experiment(store: str | Path, target: str) -> str | None:
    """``lottery-<hash>`` if ``target`` (the name, the hash, or the experiment's folder in the store)
    has finished jobs in the store."""
    folder = Path(target)
    name = experiment_name(folder.name if folder.is_dir() and folder.parent.resolve() == Path(store).resolve() else target)
    return name if index.query(Path(store), {"experiment": name}) else None


def _root(store, experiment: str) -> Path:
    return Path(store) / experiment_name(experiment)


def _job(store, experiment: str, trial: int, level: int, branch: str = "main") -> Path:
    return layout.level_dir(layout.trial_dir(_root(store, experiment), trial), level) / branch


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise TicketlabError(f"{path} ({what}) is missing; rerun the experiment's `ticketlab lottery` command "
                             "(same --set options) to recreate it")
    return path


def _mask(job: Path) -> Mask:
    return Mask.load(_need(job / layout.MASK, "the job's mask"))


def _weights(job: Path, file: str, what: str) -> dict:
    return load_torch(_need(job / file, what))


def _ticket_rows(rows: list[dict], level: int | None = None) -> list[dict]:
    return [r for r in rows if r["kind"] == "lottery" and r["family"] == "ticket" and (level is None or r["level"] == level)]


def _levels(rows: list[dict]) -> list[int]:
    return sorted({r["level"] for r in _ticket_rows(rows)})


def _pm(rows: list[dict], level: int) -> float:
    return float(np.mean([r["pm"] for r in _ticket_rows(rows, level)]))


def _check_levels(rows: list[dict], levels, experiment: str) -> list[int]:
    missing = sorted(set(levels) - set(_levels(rows)))
    if missing:
        raise TicketlabError(f"levels {missing} of {experiment} have no finished IMP job (it has {_levels(rows)}); "
                             "run more levels with `ticketlab lottery --set lottery.levels=N` or choose others")
    return list(levels)
