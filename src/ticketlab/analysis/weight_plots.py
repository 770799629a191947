"""Figures of the tickets' weights ([S1] Figs 15-24), read only from the store:

    plot_init_histograms   theta_0 of the surviving weights, per layer and level (Figs 15, 16)
    plot_connections       incoming / outgoing connections kept per unit (Figs 21-24)
    plot_movement          |theta_T - theta_0| and |theta_T| - |theta_0| of the dense run, ticket vs not (Figs 19, 20)

What they draw is computed by ``lottery_series`` (``surviving_init``, ``connection_fractions``,
``movement``), which the tests check.
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
from ticketlab.analysis.figures import bin_count, figure_legend, figure_title, out_stem, panel_grid, pm_text
from ticketlab.analysis.lottery_series import (_check_levels, _job, _levels, _mask, _pm, _ticket_rows, _weights,
                                               connection_fractions, density_histogram, experiment_name, movement,
                                               spread_levels, surviving_init)
from ticketlab.analysis.plots import save
from ticketlab.store import layout


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
    fig, axes = panel_grid(len(levels) * len(layers), len(layers), 3.3, 2.1, sharex="col")
    for j, layer in enumerate(layers):
        everything = np.concatenate([theta0[t][layer].numpy().ravel() for t in trials])
        # One set of bins for all levels of a layer, sized between its largest and smallest count.
        counts = [sum(len(s[layer]) for s in survivors[level]) for level in levels]
        edges = np.linspace(everything.min(), everything.max(), bin_count(math.sqrt(max(counts) * min(counts))) + 1)
        reference = density_histogram(everything, edges)
        for i, level in enumerate(levels):
            ax = axes[i, j]
            kept = np.concatenate([s[layer] for s in survivors[level]])
            ax.stairs(reference, edges, fill=True, color="0.85", label="all weights at init")
            ax.stairs(density_histogram(kept, edges), edges, color=f"C{j}", lw=1.4, label="surviving weights")
            ax.xaxis.set_major_locator(ticker.MaxNLocator(5))
            ax.text(0.02, 0.95, f"Pm {pm_text(_pm(rows, level))}%\n{len(kept):,} weights", transform=ax.transAxes,
                    va="top", fontsize=8)
            if i == 0:
                ax.set_title(f"{layer} {list(theta0[trials[0]][layer].shape)}", fontsize=9)
            if j == 0:
                ax.set_ylabel("density")
            if i == len(levels) - 1:
                ax.set_xlabel(r"initial value $\theta_0$")
    figure_legend(fig, {"all weights of the layer at init": Rectangle((0, 0), 1, 1, color="0.85"),
                  "weights surviving at the level (colour: layer)": Line2D([], [], color="0.2")})
    fig.suptitle(figure_title(rows, f"initial values of surviving weights, pooled over {len(trials)} trials, area 1"), fontsize=11)
    return save(fig, out_stem(out, store, name, "init_histograms"))


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
    fig, axes = panel_grid(2 * len(layers), len(layers), 3.4, 2.6)
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
                entries[f"Pm {pm_text(_pm(rows, level))}%"] = line
    for j, layer in enumerate(layers):
        shape = list(masks[levels[0]][0][layer].shape)
        axes[0, j].set_title(f"{layer} {shape}", fontsize=9)
        for i, direction in enumerate(("incoming", "outgoing")):
            axes[i, j].set_xlabel(f"fraction of {direction} connections kept")
            axes[i, j].set_xlim(0, 1)
            axes[i, j].grid(alpha=0.3)
        axes[0, j].set_ylabel("fraction of the layer's\noutput units" if j == 0 else "")
        axes[1, j].set_ylabel("fraction of the layer's\ninput units" if j == 0 else "")
    figure_legend(fig, {**entries, "layer density (dotted)": Line2D([], [], color="0.3", ls=":")})
    fig.suptitle(figure_title(rows, "connections kept per unit (top: incoming, bottom: outgoing), pooled over trials"), fontsize=11)
    return save(fig, out_stem(out, store, name, "connections"))


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
    fig, axes = panel_grid(2 * len(layers), len(layers), 3.4, 2.6)
    for j, layer in enumerate(layers):
        for i, quantity in enumerate(("change", "away")):
            parts = {part: np.concatenate([m[layer][part][quantity] for m in moved]) for part in ("rest", "ticket")}
            both = np.concatenate(list(parts.values()))
            bins = bin_count(min(len(v) for v in parts.values()))
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
    figure_legend(fig, {"not in the winning ticket": Line2D([], [], color="C0"),
                  "in the winning ticket": Line2D([], [], color="C1"),
                  "means (dotted)": Line2D([], [], color="0.3", ls=":")})
    fig.suptitle(figure_title(rows, f"weight movement of the dense run, split by the ticket at Pm "
                              f"{pm_text(_pm(rows, level))}% (level {level})"), fontsize=11)
    return save(fig, out_stem(out, store, name, "movement"))
