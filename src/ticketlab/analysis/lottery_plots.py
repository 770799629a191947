"""Figures of a lottery experiment ([S1] Figs 1, 3-5, 7, 8, 11, 15-24), read only from the store.

Each figure has a pure function that computes what it draws (``levels_series``, ``curve_band``,
``surviving_init``, ``connection_fractions``, ``movement``), which the tests check, and a ``plot_*``
function that reads the store, draws, and returns the PNG and PDF paths written by ``plots.save``:

    plot_levels        metrics at early stop / at fixed iterations vs Pm, log axis, 100 on the left
                       (Figs 1, 4a, 4b, 5, 7, 8, 38-41); several experiments overlay
    plot_curves        a metric vs training iteration at a few levels (Figs 3, 11)
    plot_oneshot       one-shot pruning vs Pm on a linear axis (Fig 4c)
    plot_init_histograms   theta_0 of the surviving weights, per layer and level (Figs 15, 16)
    plot_connections   incoming / outgoing connections kept per unit (Figs 21-24)
    plot_movement      |theta_T - theta_0| and |theta_T| - |theta_0| of the dense run, ticket vs not (Figs 19, 20)
    standard_plots     the applicable set, into <store>/lottery-<name>/plots/

Aggregation (mean, min and max over trials and repeats) is ``lottery_tables.aggregate``, the same code
behind ``ticketlab lottery``'s table, so a plotted point and a printed row never disagree.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib import ticker
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from ticketlab import TicketlabError
from ticketlab.analysis import lottery_tables
from ticketlab.analysis.plots import plt, save
from ticketlab.store import layout
from ticketlab.store.artifacts import load_json
from ticketlab.train.metrics import read_metrics
from ticketlab.analysis.lottery_series import (  # noqa: F401  (re-exported for callers and tests)
    HISTOGRAM_WEIGHT_LIMIT,
    LEVEL_METRICS,
    ONESHOT_METRICS,
    Series,
    _MARKERS,
    _axis_label,
    _check_levels,
    _job,
    _levels,
    _mask,
    _need,
    _pm,
    _root,
    _ticket_rows,
    _weights,
    connection_fractions,
    curve_band,
    density_histogram,
    experiment_name,
    family_label,
    family_order,
    find_experiment,
    fixed_step_metrics,
    levels_series,
    metric_label,
    movement,
    spec_labels,
    spread_levels,
    surviving_init,
)


def _title(rows: list[dict], what: str, experiments: list[str] | None = None) -> str:
    """Model and dataset label (an unofficial copy says so in its label), what is shown, which experiments."""
    models = list(dict.fromkeys(str(r.get("model")) for r in rows))
    data = list(dict.fromkeys(str(r.get("data_label") or r.get("dataset")) for r in rows))
    names = experiments or list(dict.fromkeys(r["experiment"] for r in rows))
    return f"{'/'.join(models)} on {'/'.join(data)}: {what}\n{', '.join(names)}"


def _stem(out, store, experiment: str | None, default: str) -> Path:
    """``out`` as a file stem: a directory gets ``default`` inside it; no ``out`` means the plots folder."""
    if out is None:
        return (_root(store, experiment) if experiment else Path(store)) / "plots" / default
    out = Path(out)
    if out.is_dir() or str(out).endswith(("/", "\\")):
        return out / default
    return out.with_suffix("") if out.suffix in (".png", ".pdf") else out


# ---------------------------------------------------------------------------------------------------
# Axes.

def _pm_text(pm: float) -> str:
    return "100" if pm >= 99.95 else f"{pm:.1f}" if pm >= 0.95 else f"{pm:.2g}"


def _pm_axis(ax, pms, log: bool = True, max_ticks: int = 8) -> None:
    """x = Pm decreasing to the right (100 on the left), ticks at the Pm values of the levels."""
    distinct = []
    for p in sorted(pms, reverse=True):  # overlaid experiments: 80.06 and 80.00 are one tick
        if not distinct or p < distinct[-1] * 0.985:
            distinct.append(p)
    pms = distinct
    step = max(1, math.ceil(len(pms) / max_ticks))
    ticks = pms[::step]
    if log:
        ax.set_xscale("log")
        ax.set_xlim(pms[0] * 1.12, pms[-1] / 1.12)
    else:
        pad = 0.04 * (pms[0] - pms[-1] or 1)
        ax.set_xlim(pms[0] + pad, pms[-1] - pad)
    ax.xaxis.set_major_locator(ticker.FixedLocator(ticks))
    ax.xaxis.set_major_formatter(ticker.FixedFormatter([_pm_text(t) for t in ticks]))
    ax.xaxis.set_minor_locator(ticker.NullLocator())
    ax.set_xlabel("percent of weights remaining (Pm)")
    ax.grid(alpha=0.3)


def _grid(n: int, ncols: int, width: float, height: float, **kw):
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False,
                             layout="constrained", **kw)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes


def _legend(fig, handles_labels: dict) -> None:
    """One legend for the whole figure, below the panels, so no panel's lines are hidden."""
    if handles_labels:
        fig.legend(list(handles_labels.values()), list(handles_labels), loc="outside lower center",
                   ncols=min(4, len(handles_labels)), frameon=False)


def _bins(n: float) -> int:
    """About sqrt(n) bins, 10 to 50: enough shape for a large layer, not noise for a small one."""
    return int(np.clip(round(math.sqrt(max(n, 1))), 10, 50))


def _errorbar_series(ax, series: Series, label: str, **style):
    pm, mean, lo, hi = series
    return ax.errorbar(pm, mean, yerr=[mean - lo, hi - mean], capsize=2.5, lw=1.4, ms=4, elinewidth=0.8,
                       label=label, **style)


# ---------------------------------------------------------------------------------------------------
# Figures.

def plot_levels(store: str | Path, experiments: list[str] | str, out=None, metrics=None, labels=None,
                families=None) -> list[Path]:
    """Figs 1, 4a/b, 5, 7, 8, 38-41: one panel per metric vs Pm (log axis, 100 on the left); one line
    per (experiment, family): the ticket solid, controls dashed; mean over trials and repeats with
    min/max error bars. ``metrics`` defaults to the early-stop iteration, test and train accuracy at
    early stop, and every ``test_accuracy_at_<step>``; ``labels`` name the experiments (default: what
    differs in their spec.json); ``families`` restricts the lines (default: all)."""
    experiments = [experiments] if isinstance(experiments, str) else list(experiments)
    names = [experiment_name(e) for e in experiments]
    per_exp = [lottery_tables.rows_of(store, e) for e in names]
    all_rows = [r for rows in per_exp for r in rows]
    metrics = list(metrics or [*LEVEL_METRICS, *fixed_step_metrics(all_rows)])
    if labels is None:
        labels = spec_labels([load_json(_need(_root(store, n) / layout.SPEC, "the experiment's spec"))["spec"]
                              for n in names]) if len(names) > 1 else [""]
    elif len(labels) != len(names):
        raise TicketlabError(f"{len(labels)} labels for {len(names)} experiments; give one label per experiment")
    if len(names) > 1 and not all(labels):  # the same spec in two stores, say
        labels = [label or name for label, name in zip(labels, names)]
    fig, axes = _grid(len(metrics), 2 if len(metrics) in (2, 4) else 3, 4.4, 3.4)
    entries, ticket_pms = {}, []
    order = family_order(r["family"] for r in all_rows)  # one colour per family in every panel
    for e, (rows, label) in enumerate(zip(per_exp, labels)):
        for ax, metric in zip(axes.flat, metrics):
            for fam, series in levels_series(rows, metric).items():
                if families and fam not in families:
                    continue
                color = f"C{e % 10}" if len(names) > 1 else f"C{order.index(fam) % 10}"
                style = dict(color=color, ls="-" if fam == "ticket" else "--", marker=_MARKERS.get(fam, "x"))
                text = f"{label}: {family_label(fam)}" if label else family_label(fam)
                entries[text] = _errorbar_series(ax, series, text, **style)
                if fam == "ticket":
                    ticket_pms += list(series[0])
    for ax, metric in zip(axes.flat, metrics):
        _pm_axis(ax, ticket_pms or [r["pm"] for r in all_rows])
        ax.set_ylabel(_axis_label(metric))
        ax.set_title(metric_label(metric), fontsize=10)
    _legend(fig, entries)
    fig.suptitle(_title(all_rows, "early stop and accuracy vs Pm (mean; bars: min/max over trials)", names), fontsize=11)
    default = "levels" if len(names) == 1 else "levels_" + "_".join(n.removeprefix("lottery-")[:8] for n in names)
    return save(fig, _stem(out, store, names[0] if len(names) == 1 else None, default))


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
            label = f"{_pm_text(_pm(rows, level))}" + (f" {family_label(fam)}" if control else "")
            ax.plot(steps, mean, ls="--" if control else "-", color=f"C{c % 10}", lw=1.5, label=label)
            ax.fill_between(steps, lo, hi, color=f"C{c % 10}", alpha=0.12 if control else 0.2, lw=0)
    ax.set(xlabel="training iteration", ylabel=metric_label(metric))
    ax.set_ylim(*_zoom(bands))
    ax.grid(alpha=0.3)
    ax.legend(title="Pm (%)", fontsize=9)
    ax.set_title(_title(rows, f"{metric_label(metric)} vs iteration (mean; band: min/max over trials)"), fontsize=10)
    stem = "curves_" + metric.replace("/", "_") + ("" if tuple(families) == ("ticket",) else "_" + "_".join(families))
    return save(fig, _stem(out, store, name, stem))


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
    fig, axes = _grid(len(ONESHOT_METRICS), 2, 4.8, 3.5)
    entries, pms = {}, []
    order = family_order(r["family"] for r in rows)
    for ax, metric in zip(axes.flat, ONESHOT_METRICS):
        for fam, series in levels_series(rows, metric, kind="oneshot").items():
            if families and fam not in families:
                continue
            style = dict(color=f"C{order.index(fam) % 10}", ls="-" if fam == "ticket" else "--", marker=_MARKERS.get(fam, "x"))
            entries[family_label(fam)] = _errorbar_series(ax, series, family_label(fam), **style)
            pms += list(series[0])
        ax.set_ylabel(_axis_label(metric))
        ax.set_title(metric_label(metric), fontsize=10)
    for ax in axes.flat[:len(ONESHOT_METRICS)]:
        _pm_axis(ax, pms, log=False, max_ticks=10)
    _legend(fig, entries)
    fig.suptitle(_title(rows, "one-shot pruning vs Pm (mean; bars: min/max over trials)"), fontsize=11)
    return save(fig, _stem(out, store, name, "oneshot"))


def plot_init_histograms(store: str | Path, experiment: str, out=None, levels=None) -> list[Path]:
    """Figs 15/16: per layer (columns) and level (rows), the histogram of theta_0 of the surviving
    weights, pooled over trials, area 1; grey: all weights of the layer at init, for reference."""
    name = experiment_name(experiment)
    rows = lottery_tables.rows_of(store, name)
    levels = _check_levels(rows, levels if levels is not None else spread_levels(_levels(rows), 4), name)
    trials = sorted({r["trial"] for r in _ticket_rows(rows, 0)})
    theta0 = {t: _weights(_job(store, name, t, 0), layout.INIT, "theta_0 of the trial") for t in trials}
    survivors = {level: [surviving_init(theta0[r["trial"]], _mask(_job(store, name, r["trial"], level)))
                         for r in _ticket_rows(rows, level) if r["trial"] in theta0] for level in levels}
    layers = list(survivors[levels[0]][0])
    fig, axes = _grid(len(levels) * len(layers), len(layers), 3.3, 2.1, sharex="col")
    for j, layer in enumerate(layers):
        everything = np.concatenate([theta0[t][layer].numpy().ravel() for t in trials])
        # One set of bins for all levels of a layer, sized between its largest and smallest count.
        counts = [sum(len(s[layer]) for s in survivors[level]) for level in levels]
        edges = np.linspace(everything.min(), everything.max(), _bins(math.sqrt(max(counts) * min(counts))) + 1)
        reference = density_histogram(everything, edges)
        for i, level in enumerate(levels):
            ax = axes[i, j]
            kept = np.concatenate([s[layer] for s in survivors[level]])
            ax.stairs(reference, edges, fill=True, color="0.85", label="all weights at init")
            ax.stairs(density_histogram(kept, edges), edges, color=f"C{j}", lw=1.4, label="surviving weights")
            ax.xaxis.set_major_locator(ticker.MaxNLocator(5))
            ax.text(0.02, 0.95, f"Pm {_pm_text(_pm(rows, level))}%\n{len(kept):,} weights", transform=ax.transAxes,
                    va="top", fontsize=8)
            if i == 0:
                ax.set_title(f"{layer} {list(theta0[trials[0]][layer].shape)}", fontsize=9)
            if j == 0:
                ax.set_ylabel("density")
            if i == len(levels) - 1:
                ax.set_xlabel(r"initial value $\theta_0$")
    _legend(fig, {"all weights of the layer at init": Rectangle((0, 0), 1, 1, color="0.85"),
                  "weights surviving at the level (colour: layer)": Line2D([], [], color="0.2")})
    fig.suptitle(_title(rows, f"initial values of surviving weights, pooled over {len(trials)} trials, area 1"), fontsize=11)
    return save(fig, _stem(out, store, name, "init_histograms"))


def plot_connections(store: str | Path, experiment: str, out=None, levels=None) -> list[Path]:
    """Figs 21-24: per layer, histograms of the fraction of incoming (top row) and outgoing (bottom row)
    connections kept per unit at each level, pooled over trials; dotted lines mark each layer's density."""
    name = experiment_name(experiment)
    rows = lottery_tables.rows_of(store, name)
    pruned = [lv for lv in _levels(rows) if lv > 0]
    if not pruned:
        raise TicketlabError(f"{name} has no pruned level yet; run it with `--set lottery.levels=N` (N >= 1)")
    levels = _check_levels(rows, levels if levels is not None else spread_levels(pruned, 3), name)
    masks = {level: [_mask(_job(store, name, r["trial"], level)) for r in _ticket_rows(rows, level)] for level in levels}
    layers = list(connection_fractions(masks[levels[0]][0]))
    fig, axes = _grid(2 * len(layers), len(layers), 3.4, 2.6)
    edges = np.linspace(0, 1, 21)
    entries = {}
    for c, level in enumerate(levels):
        fractions = [connection_fractions(m) for m in masks[level]]
        for j, layer in enumerate(layers):
            density = np.mean([m.layer_density()[layer] for m in masks[level]])
            for i, direction in enumerate(("incoming", "outgoing")):
                values = np.concatenate([f[layer][i] for f in fractions])
                ax = axes[i, j]
                line = ax.stairs(np.histogram(values, edges)[0] / len(values), edges, color=f"C{c % 10}", lw=1.4)
                ax.axvline(density, color=f"C{c % 10}", ls=":", lw=1)
                entries[f"Pm {_pm_text(_pm(rows, level))}%"] = line
    for j, layer in enumerate(layers):
        shape = list(masks[levels[0]][0][layer].shape)
        axes[0, j].set_title(f"{layer} {shape}", fontsize=9)
        for i, direction in enumerate(("incoming", "outgoing")):
            axes[i, j].set_xlabel(f"fraction of {direction} connections kept")
            axes[i, j].set_xlim(0, 1)
            axes[i, j].grid(alpha=0.3)
        axes[0, j].set_ylabel("fraction of the layer's\noutput units" if j == 0 else "")
        axes[1, j].set_ylabel("fraction of the layer's\ninput units" if j == 0 else "")
    _legend(fig, {**entries, "layer density (dotted)": Line2D([], [], color="0.3", ls=":")})
    fig.suptitle(_title(rows, "connections kept per unit (top: incoming, bottom: outgoing), pooled over trials"), fontsize=11)
    return save(fig, _stem(out, store, name, "connections"))


def plot_movement(store: str | Path, experiment: str, out=None, level: int | None = None) -> list[Path]:
    """Figs 19/20: per layer, how far each weight of the dense run (level 0) moved in training,
    |θT−θ0| (top) and |θT|−|θ0| (bottom, > 0: away from zero), for weights in the winning ticket of
    ``level`` (default: 40% of the way down, Lenet's 16.9% of 20 levels as in the paper) vs the rest."""
    name = experiment_name(experiment)
    rows = lottery_tables.rows_of(store, name)
    pruned = [lv for lv in _levels(rows) if lv > 0]
    if not pruned:
        raise TicketlabError(f"{name} has no pruned level yet; run it with `--set lottery.levels=N` (N >= 1)")
    level = _check_levels(rows, [level if level is not None else pruned[max(0, round(0.4 * len(pruned)) - 1)]], name)[0]
    moved = []
    for r in _ticket_rows(rows, level):
        dense = _job(store, name, r["trial"], 0)
        moved.append(movement(_weights(dense, layout.INIT, "theta_0 of the dense run"),
                              _weights(dense, layout.FINAL, "final weights of the dense run"),
                              _mask(_job(store, name, r["trial"], level))))
    layers = list(moved[0])
    fig, axes = _grid(2 * len(layers), len(layers), 3.4, 2.6)
    for j, layer in enumerate(layers):
        for i, quantity in enumerate(("change", "away")):
            parts = {part: np.concatenate([m[layer][part][quantity] for m in moved]) for part in ("rest", "ticket")}
            both = np.concatenate(list(parts.values()))
            bins = _bins(min(len(v) for v in parts.values()))
            edges = np.linspace(both.min(), both.max(), bins + 1) if both.size and both.min() < both.max() else np.linspace(-1, 1, bins + 1)
            ax = axes[i, j]
            for c, (part, values) in enumerate(parts.items()):
                ax.stairs(density_histogram(values, edges), edges, color=f"C{c}", lw=1.4)
                ax.axvline(values.mean() if values.size else np.nan, color=f"C{c}", ls=":", lw=1)
            if quantity == "away":
                ax.axvline(0, color="0.5", lw=0.6)
            ax.set_xlabel(r"$|\theta_T - \theta_0|$" if quantity == "change" else r"$|\theta_T| - |\theta_0|$  (> 0: away from 0)")
            ax.xaxis.set_major_locator(ticker.MaxNLocator(5))
            ax.grid(alpha=0.3)
        axes[0, j].set_title(layer, fontsize=9)
    axes[0, 0].set_ylabel("density")
    axes[1, 0].set_ylabel("density")
    _legend(fig, {"not in the winning ticket": Line2D([], [], color="C0"),
                  "in the winning ticket": Line2D([], [], color="C1"),
                  "means (dotted)": Line2D([], [], color="0.3", ls=":")})
    fig.suptitle(_title(rows, f"weight movement of the dense run, split by the ticket at Pm "
                              f"{_pm_text(_pm(rows, level))}% (level {level})"), fontsize=11)
    return save(fig, _stem(out, store, name, "movement"))


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
    fig.suptitle(_title(lottery_tables.rows_of(store, name), "LTH vs LTH_flip"), fontsize=9)
    return save(fig, out / "flips")


KINDS = ("levels", "curves", "oneshot", "init", "connections", "movement", "all")


def plot_experiments(store: str | Path, experiments: list[str], kind: str | None = None, levels=None,
                     metric: str = "test/accuracy", families=None, out=None, labels=None,
                     until: int | None = None) -> list[Path]:
    """What ``ticketlab plot EXPERIMENT...`` draws. ``kind`` defaults to "all" for one experiment and to
    "levels" (overlaid) for several; with several experiments, the per-experiment figures go to each
    one's plots folder, or to ``out/<experiment>/`` when ``out`` is given."""
    names = [experiment_name(e) for e in experiments]
    kind = kind or ("all" if len(names) == 1 else "levels")
    if kind not in KINDS:
        raise TicketlabError(f"unknown plot kind {kind!r}; choose one of {list(KINDS)}")
    if kind == "movement" and levels is not None and len(levels) != 1:
        raise TicketlabError(f"movement is drawn for one level (the ticket's); got levels {list(levels)}")
    if kind == "levels":
        return plot_levels(store, names, out, labels=labels, families=families)
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
