"""Figures of a lottery experiment ([S1] Figs 1, 3-5, 7, 8, 11, and through ``weight_plots`` 15-24), read
only from the store.

Each figure has a pure function that computes what it draws (``lottery_series``: ``levels_series``,
``curve_band``, ...), which the tests check, and a ``plot_*`` function that reads the store, draws, and
returns the PNG and PDF paths written by ``plots.save``:

    plot_levels        metrics at early stop / at fixed iterations vs Pm, log axis, 100 on the left
                       (Figs 1, 4a, 4b, 5, 7, 8, 38-41); several experiments overlay
    plot_curves        a metric vs training iteration at a few levels (Figs 3, 11)
    plot_oneshot       one-shot pruning vs Pm on a linear axis (Fig 4c)
    plot_at_init       [S4]: overlap of the tickets with SNIP masks, layer-wise pruning ratios
    plot_flips         [S4]: LTH vs LTH_flip per prune iteration
    standard_plots     the applicable set (with weight_plots' Figs 15-24), into <store>/lottery-<name>/plots/

Aggregation (mean, min and max over trials and repeats) is ``lottery_tables.aggregate``, the same code
behind ``ticketlab lottery``'s table, so a plotted point and a printed row never disagree.
"""

from __future__ import annotations

from pathlib import Path

from ticketlab import TicketlabError
from ticketlab.analysis import lottery_tables
from ticketlab.analysis.figures import errorbar_series, figure_legend, figure_title, out_stem, panel_grid, pm_axis, pm_text
from ticketlab.analysis.lottery_series import (HISTOGRAM_WEIGHT_LIMIT, LEVEL_METRICS, ONESHOT_METRICS, X_AXES, _MARKERS,
                                               _axis_label, _check_levels, _job, _levels, _need, _pm, _root,
                                               curve_band, experiment_labels, experiment_name, family_label, family_order,
                                               fixed_step_metrics, levels_series, metric_label,
                                               shifted_metrics, spread_levels)
from ticketlab.analysis.plots import plt, save
from ticketlab.analysis.weight_plots import plot_connections, plot_init_histograms, plot_movement
from ticketlab.store import layout
from ticketlab.train.metrics import read_metrics


def plot_levels(store: str | Path, experiments: list[str] | str, out=None, metrics=None, labels=None,
                families=None, x: str = "pm") -> list[Path]:
    """Figs 1, 4a/b, 5, 7, 8, 38-41: one panel per metric vs Pm (log axis, 100 on the left); one line
    per (experiment, family): the ticket solid, controls dashed; mean over trials and repeats with
    min/max error bars. ``metrics`` defaults to the early-stop iteration, test and train accuracy at
    early stop, and every ``test_accuracy_at_<step>``; ``labels`` name the experiments (default: what
    differs in their spec.json); ``families`` restricts the lines (default: all); ``x="weights"`` puts the
    number of weights remaining on the x axis instead of Pm (Figs 31, 37: networks of different sizes)."""
    experiments = [experiments] if isinstance(experiments, str) else list(experiments)
    names = [experiment_name(e) for e in experiments]
    per_exp = [lottery_tables.rows_of(store, e) for e in names]
    all_rows = [r for rows in per_exp for r in rows]
    known = [*lottery_tables.METRICS, *fixed_step_metrics(all_rows), *shifted_metrics(all_rows)]
    unknown = [m for m in metrics or [] if m not in known]
    if unknown:
        raise TicketlabError(f"no level metric {unknown[0]!r}; choose from {known}")
    metrics = list(metrics or [*LEVEL_METRICS, *fixed_step_metrics(all_rows), *shifted_metrics(all_rows)])
    if labels is None:
        labels = experiment_labels(store, names) if len(names) > 1 else [""]
    elif len(labels) != len(names):
        raise TicketlabError(f"{len(labels)} labels for {len(names)} experiments; give one label per experiment")
    if len(names) > 1 and not all(labels):  # the same spec in two stores, say
        labels = [label or name for label, name in zip(labels, names)]
    fig, axes = panel_grid(len(metrics), 2 if len(metrics) in (2, 4) else 3, 4.4, 3.4)
    entries, ticket_pms = {}, []
    order = family_order(r["family"] for r in all_rows)  # one colour per family in every panel
    for e, (rows, label) in enumerate(zip(per_exp, labels)):
        for ax, metric in zip(axes.flat, metrics):
            for fam, series in levels_series(rows, metric, x=x).items():
                if families and fam not in families:
                    continue
                color = f"C{e % 10}" if len(names) > 1 else f"C{order.index(fam) % 10}"
                style = dict(color=color, ls="-" if fam == "ticket" else "--", marker=_MARKERS.get(fam, "x"))
                text = f"{label}: {family_label(fam)}" if label else family_label(fam)
                entries[text] = errorbar_series(ax, series, text, **style)
                if fam == "ticket":
                    ticket_pms += list(series[0])
    for ax, metric in zip(axes.flat, metrics):
        pm_axis(ax, ticket_pms or [r[X_AXES[x]] for r in all_rows], weights=x == "weights")
        ax.set_ylabel(_axis_label(metric))
        ax.set_title(metric_label(metric), fontsize=10)
    figure_legend(fig, entries)
    against = "weights remaining" if x == "weights" else "Pm"
    fig.suptitle(figure_title(all_rows, f"early stop and accuracy vs {against} (mean; bars: min/max over trials)", names),
                 fontsize=11)
    default = "levels" if len(names) == 1 else "levels_" + "_".join(layout.experiment_hash(n)[:8] for n in names)
    default += "_weights" if x == "weights" else ""
    return save(fig, out_stem(out, store, names[0] if len(names) == 1 else None, default))


def plot_curves(store: str | Path, experiment: str, out=None, levels=None, metric: str = "test/accuracy",
                families=("ticket",), max_iteration: int | None = None) -> list[Path]:
    """Figs 3 and 11: ``metric`` (a metrics.jsonl name: test/accuracy, val/loss, ...) vs training
    iteration at ``levels`` (default: five spread levels) up to ``max_iteration``, mean over trials with a
    min/max band; control families (e.g. "reinit") dashed in the colour of their level. The y axis spans
    the bands after the first tenth of the iterations shown, as [S1] Figs 3 and 11 do, so that the climb
    from chance in the first few hundred iterations does not flatten the differences between levels."""
    name = experiment_name(experiment)
    rows = lottery_tables.rows_of(store, name)
    levels = _check_levels(rows, levels if levels is not None else spread_levels(_levels(rows), 5), name)
    if not any(r["kind"] == "lottery" and r["family"] in families and r["level"] in levels for r in rows):
        raise TicketlabError(f"{name} has no jobs of families {list(families)} at levels {levels}; "
                             f"it has {family_order(r['family'] for r in rows)}")
    fig, ax = plt.subplots(figsize=(7, 4.3), layout="constrained")
    bands = []
    for c, level in enumerate(levels):
        for fam in families:
            jobs = [r for r in rows if r["kind"] == "lottery" and r["family"] == fam and r["level"] == level]
            if not jobs:
                continue
            runs = []
            for r in jobs:
                series = read_metrics(_need(_job(store, name, r["trial"], level, r["branch"]) / layout.METRICS, "metrics"))
                if metric not in series:
                    raise TicketlabError(f"no metric {metric!r} in {name}'s jobs; they have {sorted(series)}")
                runs.append(series[metric])
            steps, mean, lo, hi = curve_band(runs, max_iteration)
            bands.append((steps, lo, hi))
            control = fam != "ticket"
            label = f"{pm_text(_pm(rows, level))}" + (f" {family_label(fam)}" if control else "")
            ax.plot(steps, mean, ls="--" if control else "-", color=f"C{c % 10}", lw=1.5, label=label)
            ax.fill_between(steps, lo, hi, color=f"C{c % 10}", alpha=0.12 if control else 0.2, lw=0)
    ax.set(xlabel="training iteration", ylabel=metric_label(metric))
    ax.set_ylim(*_zoom(bands))
    ax.grid(alpha=0.3)
    ax.legend(title="Pm (%)", fontsize=9)
    ax.set_title(figure_title(rows, f"{metric_label(metric)} vs iteration (mean; band: min/max over trials)"), fontsize=10)
    stem = "curves_" + metric.replace("/", "_") + ("" if tuple(families) == ("ticket",) else "_" + "_".join(families))
    return save(fig, out_stem(out, store, name, stem))


def _zoom(bands: list[tuple]) -> tuple[float, float]:
    """y limits covering every band after the first tenth of the longest one, with a 5% margin."""
    end = max(steps[-1] for steps, _, _ in bands if len(steps))
    lo = min(float(low[steps >= end / 10].min()) for steps, low, _ in bands if (steps >= end / 10).any())
    hi = max(float(high[steps >= end / 10].max()) for steps, _, high in bands if (steps >= end / 10).any())
    margin = 0.05 * (hi - lo) or 0.01 * max(abs(hi), 1e-3)
    return lo - margin, hi + margin


def plot_oneshot(store: str | Path, experiment: str, out=None, families=None) -> list[Path]:
    """Fig 4c: early-stop iteration and test accuracy at early stop of one-shot pruning vs Pm on a
    linear axis (the dense network at 100), ticket vs controls."""
    name = experiment_name(experiment)
    rows = lottery_tables.rows_of(store, name)
    if not any(r["kind"] == "oneshot" for r in rows):
        raise TicketlabError(f"{name} has no one-shot jobs; run it with `--set lottery.oneshot=0.5,0.8,...`")
    fig, axes = panel_grid(len(ONESHOT_METRICS), 2, 4.8, 3.5)
    entries, pms = {}, []
    order = family_order(r["family"] for r in rows)
    for ax, metric in zip(axes.flat, ONESHOT_METRICS):
        for fam, series in levels_series(rows, metric, kind="oneshot").items():
            if families and fam not in families:
                continue
            style = dict(color=f"C{order.index(fam) % 10}", ls="-" if fam == "ticket" else "--", marker=_MARKERS.get(fam, "x"))
            entries[family_label(fam)] = errorbar_series(ax, series, family_label(fam), **style)
            pms += list(series[0])
        ax.set_ylabel(_axis_label(metric))
        ax.set_title(metric_label(metric), fontsize=10)
    for ax in axes.flat[:len(ONESHOT_METRICS)]:
        pm_axis(ax, pms, log=False, max_ticks=10)
    figure_legend(fig, entries)
    fig.suptitle(figure_title(rows, "one-shot pruning vs Pm (mean; bars: min/max over trials)"), fontsize=11)
    return save(fig, out_stem(out, store, name, "oneshot"))


def standard_plots(store: str | Path, experiment: str, out=None, levels=None, histograms: bool | None = None) -> list[Path]:
    """The applicable figures of one experiment, into ``<store>/lottery-<name>/plots/`` (or ``out``):
    levels; test-accuracy and validation-loss curves (and the ticket vs random reinit when there is
    one); one-shot when it ran; init, connection and movement histograms when the model has at most
    ``HISTOGRAM_WEIGHT_LIMIT`` weights or ``histograms=True``. ``levels`` picks the curve and
    histogram levels; movement uses the deepest of them."""
    name = experiment_name(experiment)
    rows = lottery_tables.rows_of(store, name)
    out = Path(out) if out is not None else _root(store, name) / "plots"
    out.mkdir(parents=True, exist_ok=True)
    paths = plot_levels(store, [name], out)
    paths += plot_curves(store, name, out, levels)
    paths += plot_curves(store, name, out, levels, metric="val/loss")
    if any(r["family"] == "reinit" for r in rows):
        reinit_levels = levels or spread_levels([lv for lv in _levels(rows) if lv > 0], 2)
        paths += plot_curves(store, name, out, reinit_levels, families=("ticket", "reinit"))
    if any(r["kind"] == "oneshot" for r in rows):
        paths += plot_oneshot(store, name, out)
    if any(r["family"] in ("snip", "isnip") for r in rows):
        paths += plot_at_init(store, name, out, rows)
    if any(r["kind"] == "flip" for r in rows):
        paths += plot_flips(store, name, out)
    weights = max(r.get("weights_total") or 0 for r in rows)
    if histograms or (histograms is None and weights <= HISTOGRAM_WEIGHT_LIMIT):
        paths += plot_init_histograms(store, name, out, levels)
        if any(lv > 0 for lv in _levels(rows)):
            pruned = [lv for lv in levels if lv > 0] if levels else None
            paths += plot_connections(store, name, out, pruned or None)
            paths += plot_movement(store, name, out, max(pruned) if pruned else None)
    return paths


def plot_at_init(store: str | Path, experiment: str, out=None, rows=None) -> list[Path]:
    """[S4] figures: overlap of the LTH masks with the SNIP (and iterative SNIP) masks vs Pm, and the
    layer-wise pruning ratio of the three masks at the deepest level of trial 0."""
    from ticketlab.analysis import mask_plots, masks
    name = experiment_name(experiment)
    rows = rows if rows is not None else lottery_tables.rows_of(store, name)
    out = Path(out) if out is not None else _root(store, name) / "plots"
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for branch in ("snip", "isnip"):
        overlap = masks.overlap_by_level(store, name, "main", branch)
        if overlap:
            paths += mask_plots.plot_overlap(overlap, out / f"overlap_{branch}", "LTH", family_label(branch))
    deepest = max((r["level"] for r in rows if r["family"] in ("snip", "isnip") and r["trial"] == 0), default=None)
    if deepest is not None:
        level = layout.level_dir(layout.trial_dir(_root(store, name), 0), deepest)
        found = {family_label(fam): level / branch / layout.MASK
                 for fam, branch in (("ticket", "main"), ("snip", "snip"), ("isnip", "isnip"))}
        found = {label: masks.load_mask(path) for label, path in found.items() if path.is_file()}
        paths += mask_plots.plot_lpr(found, out / f"lpr_level{deepest}")
    return paths


def plot_flips(store: str | Path, experiment: str, out=None) -> list[Path]:
    """[S4] LTH vs LTH_flip: early-stop iteration and test accuracy at early stop per prune iteration."""
    from ticketlab.analysis.s4_tables import flip_table
    name = experiment_name(experiment)
    table = flip_table(lottery_tables.rows_of(store, name))
    out = Path(out) if out is not None else _root(store, name) / "plots"
    out.mkdir(parents=True, exist_ok=True)
    chains = sorted({k.split("_")[1] for row in table for k in row if k.startswith("flip_")}, key=int)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, metric, label in ((axes[0], "early_stop", "early-stop iteration"), (axes[1], "test_acc", "test accuracy at early stop")):
        for prefix, text in [("lth", "LTH"), *((f"flip_{k}", f"LTH_flip from level {k}") for k in chains)]:
            points = [(row["iteration"], row[f"{prefix}_{metric}"]) for row in table if row.get(f"{prefix}_{metric}") is not None]
            if points:
                ax.plot(*zip(*points), marker="o", ms=4, label=text)
        ax.set_xlabel("prune iteration")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(figure_title(lottery_tables.rows_of(store, name), "LTH vs LTH_flip"), fontsize=9)
    return save(fig, out / "flips")


KINDS = ("levels", "curves", "oneshot", "init", "connections", "movement", "all")


def plot_experiments(store: str | Path, experiments: list[str], kind: str | None = None, levels=None,
                     metric: str = "test/accuracy", families=None, out=None, labels=None,
                     until: int | None = None, x: str = "pm", level_metrics=None) -> list[Path]:
    """What ``ticketlab plot EXPERIMENT...`` draws. ``kind`` defaults to "all" for one experiment and to
    "levels" (overlaid) for several; with several experiments, the per-experiment figures go to each
    one's plots folder, or to ``out/<experiment>/`` when ``out`` is given. ``level_metrics`` picks the
    panels of the levels figure (e.g. ``["final_train_accuracy"]`` for Figs 12/13)."""
    names = [experiment_name(e) for e in experiments]
    kind = kind or ("all" if len(names) == 1 else "levels")
    if kind not in KINDS:
        raise TicketlabError(f"unknown plot kind {kind!r}; choose one of {list(KINDS)}")
    if kind == "movement" and levels is not None and len(levels) != 1:
        raise TicketlabError(f"movement is drawn for one level (the ticket's); got levels {list(levels)}")
    if kind == "levels":
        return plot_levels(store, names, out, metrics=level_metrics, labels=labels, families=families, x=x)
    if x != "pm":
        raise TicketlabError(f"--x {x} applies to --kind levels (the figures against Pm), not --kind {kind}")
    paths = []
    if kind == "all" and len(names) > 1:
        paths += plot_levels(store, names, _folder(out) if out else None, labels=labels, families=families)
    for name in names:
        where = out if len(names) == 1 or out is None else _folder(Path(out) / name)
        if kind == "all":
            paths += standard_plots(store, name, where, levels)
        elif kind == "curves":
            paths += plot_curves(store, name, where, levels, metric, tuple(families or ("ticket",)), until)
        elif kind == "oneshot":
            paths += plot_oneshot(store, name, where, families)
        elif kind == "init":
            paths += plot_init_histograms(store, name, where, levels)
        elif kind == "connections":
            paths += plot_connections(store, name, where, levels)
        elif kind == "movement":
            paths += plot_movement(store, name, where, levels[0] if levels else None)
    return paths


def _folder(path) -> Path:
    Path(path).mkdir(parents=True, exist_ok=True)
    return Path(path)
