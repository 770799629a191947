"""The numbers behind [S1] Appendix F's weight figures (Figs 15-24), per layer, so their claims can be
checked without reading histograms (PROTOCOL §4.9-4.11):

    init          which initial values survive: the share of positive θ0 among the survivors (per trial,
                  as §4.9 asks: "check per trial that the asymmetry persists"), and the mean |θ0| of the
                  survivors over the layer's (> 1: small initial values were pruned, the bimodal shape)
    connections   connections kept per unit: incoming and outgoing fractions (mean and spread over units,
                  the units left with none), against the layer's density (§4.10)
    movement      the dense run's weights in vs out of the ticket: mean |θT−θ0| and the share that moved
                  away from 0 (§4.11)

All read only the store, through the same helpers as ``weight_plots``; levels default to theirs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ticketlab import TicketlabError
from ticketlab.analysis import lottery_tables
from ticketlab.analysis.lottery_series import (_check_levels, _job, _levels, _mask, _pm, _ticket_rows, _weights,
                                               connection_fractions, experiment_name, movement, spread_levels,
                                               surviving_init)
from ticketlab.store import layout


def weight_tables(store: str | Path, experiment: str, levels: list[int] | None = None,
                  movement_level: int | None = None) -> dict[str, list[dict]]:
    """``{"init": [...], "connections": [...], "movement": [...]}``, one row per (level, layer)."""
    name = experiment_name(experiment)
    rows = lottery_tables.rows_of(store, name)
    all_levels = _levels(rows)
    pruned = [lv for lv in all_levels if lv > 0]
    if not pruned:
        raise TicketlabError(f"{name} has no pruned level yet; run it with `--set lottery.levels=N` (N >= 1)")
    levels = _check_levels(rows, levels if levels is not None else spread_levels(all_levels, 4), name)
    trials = sorted({r["trial"] for r in _ticket_rows(rows, 0)})
    theta0 = {t: _weights(_job(store, name, t, 0), layout.INIT, "theta_0 of the trial") for t in trials}
    masks = {level: {r["trial"]: _mask(_job(store, name, r["trial"], level)) for r in _ticket_rows(rows, level)}
             for level in levels}
    moved_level = _check_levels(rows, [movement_level if movement_level is not None
                                       else pruned[max(0, round(0.4 * len(pruned)) - 1)]], name)[0]
    moved_masks = masks.get(moved_level) or {r["trial"]: _mask(_job(store, name, r["trial"], moved_level))
                                             for r in _ticket_rows(rows, moved_level)}
    moved = [movement(theta0[t], _weights(_job(store, name, t, 0), layout.FINAL, "final weights of the dense run"), m)
             for t, m in moved_masks.items() if t in theta0]
    return {"init": init_rows(theta0, masks, rows), "connections": connection_rows(masks, rows),
            "movement": movement_rows(moved, moved_level, _pm(rows, moved_level))}


def init_rows(theta0: dict[int, dict], masks: dict[int, dict], rows: list[dict]) -> list[dict]:
    """Per (level, layer): survivors kept (pooled over trials), their share of positive θ0 pooled and
    per trial (min, max), and mean |θ0| of survivors / mean |θ0| of the whole layer."""
    out = []
    for level, by_trial in masks.items():
        per_trial = {t: surviving_init(theta0[t], m) for t, m in by_trial.items() if t in theta0}
        for layer in next(iter(per_trial.values())):
            kept = [v[layer] for v in per_trial.values()]
            pooled = np.concatenate(kept)
            everything = np.concatenate([theta0[t][layer].numpy().ravel() for t in per_trial])
            positive = [float((k > 0).mean()) for k in kept if k.size]
            out.append({"level": level, "pm": _pm(rows, level), "layer": layer, "kept": int(pooled.size),
                        "positive": float((pooled > 0).mean()) if pooled.size else None,
                        "positive_min": min(positive, default=None), "positive_max": max(positive, default=None),
                        "magnitude_ratio": float(np.abs(pooled).mean() / np.abs(everything).mean()) if pooled.size else None})
    return out


def connection_rows(masks: dict[int, dict], rows: list[dict]) -> list[dict]:
    """Per (pruned level, layer): density, and per unit the fraction of incoming / outgoing connections
    kept (mean and standard deviation over the units of all trials), and the share of units left with no
    outgoing connection (inputs the ticket no longer reads)."""
    out = []
    for level, by_trial in masks.items():
        if level == 0:
            continue
        fractions = [connection_fractions(m) for m in by_trial.values()]
        for layer in fractions[0]:
            incoming = np.concatenate([f[layer][0] for f in fractions])
            outgoing = np.concatenate([f[layer][1] for f in fractions])
            out.append({"level": level, "pm": _pm(rows, level), "layer": layer,
                        "density": float(np.mean([m.layer_density()[layer] for m in by_trial.values()])),
                        "incoming_mean": float(incoming.mean()), "incoming_std": float(incoming.std()),
                        "outgoing_mean": float(outgoing.mean()), "outgoing_std": float(outgoing.std()),
                        "outgoing_none": float((outgoing == 0).mean())})
    return out


def movement_rows(moved: list[dict], level: int, pm: float) -> list[dict]:
    """Per layer: mean |θT−θ0| and the share with |θT| > |θ0| for the ticket's weights and the rest."""
    out = []
    for layer in moved[0] if moved else []:
        row = {"level": level, "pm": pm, "layer": layer}
        for part in ("ticket", "rest"):
            change = np.concatenate([m[layer][part]["change"] for m in moved])
            away = np.concatenate([m[layer][part]["away"] for m in moved])
            row[f"{part}_change"] = float(change.mean()) if change.size else None
            row[f"{part}_away"] = float((away > 0).mean()) if away.size else None
        out.append(row)
    return out


def format_weight_tables(tables: dict[str, list[dict]]) -> str:
    def pct(v):
        return "-" if v is None else f"{100 * v:.1f}%"

    lines = ["Initial values of the surviving weights (Figs 15/16): share positive, pooled (min-max over trials); "
             "mean |theta_0| of survivors / of the layer",
             f"{'level':>5s} {'Pm %':>7s} {'layer':24s} {'kept':>10s} {'positive':>9s} {'trials':>13s} {'|theta_0| ratio':>15s}"]
    for r in tables["init"]:
        spread = f"{pct(r['positive_min'])}-{pct(r['positive_max'])}"
        ratio = "-" if r["magnitude_ratio"] is None else f"{r['magnitude_ratio']:.2f}"
        lines.append(f"{r['level']:5d} {r['pm']:7.2f} {r['layer']:24s} {r['kept']:10,d} {pct(r['positive']):>9s} "
                     f"{spread:>13s} {ratio:>15s}")
    lines += ["", "Connections kept per unit (Figs 21-24): mean ± std over units; outgoing none = units no longer read",
              f"{'level':>5s} {'Pm %':>7s} {'layer':24s} {'density':>8s} {'incoming':>15s} {'outgoing':>15s} {'outgoing none':>13s}"]
    for r in tables["connections"]:
        lines.append(f"{r['level']:5d} {r['pm']:7.2f} {r['layer']:24s} {pct(r['density']):>8s} "
                     f"{pct(r['incoming_mean']) + ' ± ' + pct(r['incoming_std']):>15s} "
                     f"{pct(r['outgoing_mean']) + ' ± ' + pct(r['outgoing_std']):>15s} {pct(r['outgoing_none']):>13s}")
    if tables["movement"]:
        m0 = tables["movement"][0]
        lines += ["", f"Weight movement of the dense run, ticket of level {m0['level']} (Pm {m0['pm']:.2f}%) vs the rest "
                      "(Figs 19/20): mean |theta_T - theta_0|; share moving away from 0",
                  f"{'layer':24s} {'ticket moved':>12s} {'rest moved':>11s} {'ticket away':>11s} {'rest away':>10s}"]
        for r in tables["movement"]:
            fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
            lines.append(f"{r['layer']:24s} {fmt(r['ticket_change']):>12s} {fmt(r['rest_change']):>11s} "
                         f"{pct(r['ticket_away']):>11s} {pct(r['rest_away']):>10s}")
    return "\n".join(lines)
