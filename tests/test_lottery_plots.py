"""The lottery figures: the numbers they draw (checked by hand against the index, masks and weights),
the files they write, and the `ticketlab plot` contract. One small experiment is shared by the module."""

import json
import shutil

import numpy as np
import pytest
import torch

from ticketlab import TicketlabError, api
from ticketlab.analysis import lottery_plots as lp
from ticketlab.analysis import lottery_series as ls
from ticketlab.analysis import weight_plots as wp
from ticketlab.analysis.figures import figure_title
from ticketlab.analysis.lottery_tables import rows_of
from ticketlab.cli import main
from ticketlab.pruning import Mask
from ticketlab.store import layout
from ticketlab.store.artifacts import load_torch
from ticketlab.train.metrics import read_metrics

SMALL = {"data.dataset": "synthetic", "data.val_size": 200, "model.hidden": "32,16", "training.steps": "40it",
         "training.eval_every": "20it", "lottery.levels": 2, "lottery.trials": 2, "lottery.reinits": 1,
         "lottery.random_controls": "global", "lottery.noise": "3", "lottery.oneshot": "0.5",
         "lottery.fixed_iterations": "20it,40it"}


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    store = tmp_path_factory.mktemp("store")
    exp = api.make_experiment("lenet", overrides=SMALL)
    # One thread: these tiny models gain nothing from two, and two threads on a shared 2-core machine
    # spin against the other process (7 s become 100 s).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        root = api.lottery(exp, store, progress=False, log=lambda *a: None)
    finally:
        torch.set_num_threads(threads)
    return store, root.name


def job(store, name, trial, level, branch="main"):
    return layout.level_dir(layout.trial_dir(store / name, trial), level) / branch


def test_levels_series_is_mean_min_max_of_the_index_rows(experiment):
    store, name = experiment
    rows = rows_of(store, name)
    series = ls.levels_series(rows, "test_accuracy_at_early_stop")
    assert list(series) == ["ticket", "reinit", "random_global", "noise_3"]  # noise_3 is not a repeat of "noise"
    for fam, (pm, mean, lo, hi) in series.items():
        levels = range(3) if fam == "ticket" else range(1, 3)
        assert len(pm) == len(levels) and np.all(np.diff(pm) < 0)  # Pm decreasing, as on the axis
        for i, level in enumerate(levels):
            values = [r["test_accuracy_at_early_stop"] for r in rows
                      if r["kind"] == "lottery" and r["family"] == fam and r["level"] == level]
            assert len(values) == 2  # one per trial
            assert (mean[i], lo[i], hi[i]) == pytest.approx((np.mean(values), min(values), max(values)))
    assert series["ticket"][0][0] == pytest.approx(100.0)
    assert ls.fixed_step_metrics(rows) == ["test_accuracy_at_20", "test_accuracy_at_40"]

    oneshot = ls.levels_series(rows, "early_stop_iteration", kind="oneshot")
    pm, mean, _, _ = oneshot["ticket"]
    assert pm[0] == pytest.approx(100.0) and len(pm) == 2  # the dense network, then p = 0.5
    dense = [r["early_stop_iteration"] for r in rows if r["kind"] == "lottery" and r["level"] == 0]
    assert mean[0] == pytest.approx(np.mean(dense))
    assert 45 < pm[1] < 55 and len(oneshot["reinit"][0]) == 1


def test_curve_band_over_trials(experiment):
    store, name = experiment
    runs = [read_metrics(job(store, name, t, 1) / layout.METRICS)["val/loss"] for t in range(2)]
    steps, mean, lo, hi = ls.curve_band(runs)
    assert list(steps) == [0, 20, 40]
    by_trial = np.array([[v for _, v in run] for run in runs])
    assert np.allclose(mean, by_trial.mean(0)) and np.allclose(lo, by_trial.min(0)) and np.allclose(hi, by_trial.max(0))
    # runs of different lengths are cut at the shortest; max_iteration cuts the axis
    assert list(ls.curve_band([[(0, 1.0), (10, 2.0)], [(0, 3.0)]])[0]) == [0]
    assert list(ls.curve_band(runs, max_iteration=20)[0]) == [0, 20]


def test_init_histogram_uses_exactly_the_surviving_weights(experiment):
    store, name = experiment
    theta0 = load_torch(job(store, name, 0, 0) / layout.INIT)
    mask = Mask.load(layout.level_dir(layout.trial_dir(store / name, 0), 2) / layout.MASK)
    kept = ls.surviving_init(theta0, mask)
    assert {k: len(v) for k, v in kept.items()} == mask.layer_counts()
    for layer, values in kept.items():
        assert np.array_equal(np.sort(values), np.sort(theta0[layer][mask[layer]].numpy()))
        edges = np.linspace(theta0[layer].min().item(), theta0[layer].max().item(), 21)
        heights = ls.density_histogram(values, edges)
        assert (heights * np.diff(edges)).sum() == pytest.approx(1.0)  # area 1
    assert ls.density_histogram(np.array([]), np.linspace(0, 1, 5)).sum() == 0


def test_connection_fractions_average_to_the_layer_density(experiment):
    store, name = experiment
    mask = Mask.load(job(store, name, 1, 2) / layout.MASK)
    fractions = ls.connection_fractions(mask)
    for layer, (incoming, outgoing) in fractions.items():
        out_units, in_units = mask[layer].shape
        assert len(incoming) == out_units and len(outgoing) == in_units
        assert incoming.mean() == pytest.approx(mask.layer_density()[layer])
        assert outgoing.mean() == pytest.approx(mask.layer_density()[layer])
    # by hand: a Linear [out=2, in=3] and a conv kernel [out=2, in=1, 1, 2]
    small = Mask.from_tensors({"fc": torch.tensor([[1, 0, 0], [1, 1, 0]]), "conv": torch.tensor([[[[1, 0]]], [[[1, 1]]]])})
    (fc_in, fc_out), (conv_in, conv_out) = ls.connection_fractions(small)["fc"], ls.connection_fractions(small)["conv"]
    assert np.allclose(fc_in, [1 / 3, 2 / 3]) and np.allclose(fc_out, [1, 0.5, 0])
    assert np.allclose(conv_in, [0.5, 1]) and np.allclose(conv_out, [0.75])


def test_movement_splits_by_the_ticket():
    init = {"w": torch.tensor([[0.5, -0.2], [0.1, 0.0]])}
    final = {"w": torch.tensor([[0.7, -0.1], [-0.4, 0.0]])}
    mask = Mask.from_tensors({"w": torch.tensor([[1, 0], [1, 0]])})
    moved = ls.movement(init, final, mask)["w"]
    assert np.allclose(moved["ticket"]["change"], [0.2, 0.5]) and np.allclose(moved["ticket"]["away"], [0.2, 0.3])
    assert np.allclose(moved["rest"]["change"], [0.1, 0.0]) and np.allclose(moved["rest"]["away"], [-0.1, 0.0])


def test_helpers():
    specs = [{"pruning": {"scope": "layer"}, "training": {"lr": 0.1}, "model": {"name": "lenet"}},
             {"pruning": {"scope": "global"}, "training": {"lr": 0.1}, "model": {"name": "lenet"}}]
    assert ls.spec_labels(specs) == ["scope=layer", "scope=global"]
    assert ls.spread_levels(list(range(21)), 5) == [0, 5, 10, 15, 20]
    assert ls.spread_levels([0, 1, 2], 5) == [0, 1, 2]
    assert ls.family_order(["noise_3", "reinit", "noise_0.5", "ticket"]) == ["ticket", "reinit", "noise_0.5", "noise_3"]
    rows = [{"model": "conv2", "data_label": "cifar10 (unofficial copy: md5 mismatch)", "experiment": "lottery-x"}]
    assert "conv2 on cifar10 (unofficial copy" in figure_title(rows, "levels")


def test_cli_plot_all_writes_every_figure(experiment, capsys):
    store, name = experiment
    assert main(["plot", name, "--store", str(store), "--kind", "all"]) == 0
    paths = capsys.readouterr().out.split()
    stems = {p.rsplit("/", 1)[-1] for p in paths}
    for stem in ("levels", "curves_test_accuracy", "curves_val_loss", "curves_test_accuracy_ticket_reinit",
                 "oneshot", "init_histograms", "connections", "movement"):
        assert {f"{stem}.png", f"{stem}.pdf"} <= stems
    for path in paths:
        assert path.startswith(str(store / name / "plots")) and open(path, "rb").read(4) in (b"\x89PNG", b"%PDF")


def test_overlay_and_single_figure_options(experiment, tmp_path):
    store, name = experiment
    paths = lp.plot_levels(store, [name, name.removeprefix("lottery-")], tmp_path / "overlay.png",
                           metrics=["test_accuracy_at_40"], labels=["a", "b"], families=["ticket"])
    assert [p.name for p in paths] == ["overlay.png", "overlay.pdf"] and all(p.stat().st_size > 0 for p in paths)
    paths = wp.plot_movement(store, name, tmp_path, level=2)
    assert paths == [tmp_path / "movement.png", tmp_path / "movement.pdf"] and all(p.stat().st_size > 0 for p in paths)


def test_errors_name_what_to_run(experiment, tmp_path, capsys):
    store, name = experiment
    assert main(["plot", "lottery-0000000000000000", "--store", str(store)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "ticketlab lottery" in err
    with pytest.raises(TicketlabError, match="ticketlab lottery"):
        lp.plot_curves(store, "0000000000000000", tmp_path)
    with pytest.raises(TicketlabError, match="levels \\[7\\]"):
        wp.plot_init_histograms(store, name, tmp_path, levels=[7])
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    (job(copy, name, 0, 0) / layout.INIT).unlink()
    with pytest.raises(TicketlabError, match="init.pt.*ticketlab lottery"):
        wp.plot_init_histograms(copy, name, tmp_path)


def test_curves_stop_at_until_and_zoom_past_the_climb_from_chance(experiment, tmp_path, monkeypatch, capsys):
    steps = np.array([0.0, 100, 200, 1000])
    climb = (steps, np.array([0.1, 0.95, 0.96, 0.97]), np.array([0.1, 0.96, 0.97, 0.98]))
    lo, hi = lp._zoom([climb])
    assert lo == pytest.approx(0.95 - 0.0015) and hi == pytest.approx(0.98 + 0.0015)  # step 0 left out
    store, name = experiment
    drawn = []
    monkeypatch.setattr(lp, "save", lambda fig, stem: drawn.append(fig) or [stem])
    assert main(["plot", name, "--store", str(store), "--kind", "curves", "--until", "20", "--out", str(tmp_path / "c")]) == 0
    ax = drawn[0].axes[0]
    assert max(max(line.get_xdata()) for line in ax.get_lines()) == 20
    assert main(["plot", name, "--store", str(store), "--kind", "curves", "--until", "0"]) == 2
    assert "--until" in capsys.readouterr().err


def test_weights_remaining_axis_for_networks_of_different_sizes(experiment, tmp_path, capsys):
    store, name = experiment
    rows = rows_of(store, name)
    by_weights = ls.levels_series(rows, "test_accuracy_at_early_stop", x="weights")
    by_pm = ls.levels_series(rows, "test_accuracy_at_early_stop")
    total = next(r["weights_total"] for r in rows)
    for fam, (weights, mean, _, _) in by_weights.items():
        pm = by_pm[fam][0]
        assert np.all(np.diff(weights) < 0) and np.array_equal(mean, by_pm[fam][1])   # same points, other x
        assert weights == pytest.approx(pm / 100 * total, rel=1e-3)                  # Pm counts every weight
    assert by_weights["ticket"][0][0] == total
    with pytest.raises(TicketlabError, match="x axis"):
        ls.levels_series(rows, "early_stop_iteration", x="flops")
    # Fig 31: a smaller Lenet overlaid, against weights remaining
    small = api.make_experiment("lenet", overrides={**SMALL, "model.hidden": "16,8", "lottery.reinits": 0,
                                                    "lottery.random_controls": "", "lottery.noise": "",
                                                    "lottery.oneshot": ""})
    other = api.lottery(small, store, progress=False, log=lambda *a: None).name
    out = tmp_path / "fig31"
    assert main(["plot", name, other, "--store", str(store), "--kind", "levels", "--x", "weights",
                 "--families", "ticket", "--out", str(out)]) == 0
    assert [line.rsplit("/", 1)[-1] for line in capsys.readouterr().out.split()] == ["fig31.png", "fig31.pdf"]
    assert main(["plot", name, "--store", str(store), "--kind", "curves", "--x", "weights"]) == 2
    assert "--kind levels" in capsys.readouterr().err


def test_a_presets_sweep_plotted_against_weights_remaining_and_tabulated(tmp_path, capsys):
    sets = []
    for setting in ("data.dataset=synthetic", "data.val_size=200", "training.steps=20it", "training.eval_every=20it",
                    "lottery.levels=1", "lottery.trials=1"):
        sets += ["--set", setting]
    plot = ["plot", "--preset", "lenet_size_sweep", "--store", str(tmp_path), "--kind", "levels", "--x", "weights",
            "--out", str(tmp_path / "fig31"), *sets]
    assert main(plot) == 2 and "ticketlab lottery --preset lenet_size_sweep" in capsys.readouterr().err
    assert main(["lottery", "--preset", "lenet_size_sweep", "--store", str(tmp_path), *sets]) == 0
    out = capsys.readouterr().out
    ending = out[out.index("sweep of 10 experiments (lenet_size_sweep):"):].splitlines()
    assert ending[2].startswith("hidden=25,8 ") and ending[11].startswith("hidden=900,300 ")
    # with --plot the sweep also ends with its overlay: sizes differ, so against weights remaining
    import argparse
    from ticketlab import cli
    names = [api.experiment_folder(e, tmp_path).name for e in api.make_experiments(
        None, "lenet_size_sweep", dict(setting.split("=", 1) for setting in sets[1::2]))]
    cli._sweep_ending(argparse.Namespace(store=str(tmp_path), preset="lenet_size_sweep", plot=True), names)
    out = capsys.readouterr().out
    overlay = tmp_path / "plots" / "lenet_size_sweep_levels.png"
    assert f"plot: {overlay}" in out and overlay.read_bytes()[:4] == b"\x89PNG"
    assert main(plot) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "fig31.png"), str(tmp_path / "fig31.pdf")]
    assert main(["plot", "--store", str(tmp_path)]) == 2 and "--preset" in capsys.readouterr().err
    assert main(["plot", "x", "--set", "lottery.levels=1", "--store", str(tmp_path)]) == 2
    # the same experiments tabulated: one summary line per sweep point, labelled by its hidden sizes
    assert main(["tables", "--preset", "lenet_size_sweep", "--store", str(tmp_path), "--kind", "summary", *sets]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 11 and lines[1].startswith("hidden=25,8 ") and lines[-1].startswith("hidden=900,300 ")
    assert main(["tables", "--preset", "lenet_size_sweep", "--store", str(tmp_path), "--kind", "summary", "--json", *sets]) == 0
    points = json.loads(capsys.readouterr().out)
    assert [p["label"] for p in points][:2] == ["hidden=25,8", "hidden=50,17"]
    assert points[0]["table"]["dense"]["early_stop_iteration"] is not None
    totals = {p["label"]: p["table"]["rows"][0]["weights_remaining"] for p in points}
    assert totals["hidden=25,8"] == 784 * 25 + 25 * 8 + 8 * 10
    assert main(["tables", "--preset", "lenet_size_sweep", "--store", str(tmp_path), *sets]) == 0
    assert capsys.readouterr().out.count("family           level") == 10
    assert main(["tables", "lottery-x", "--preset", "lenet_size_sweep", "--store", str(tmp_path)]) == 2


def test_levels_panels_picked_with_metric(experiment, tmp_path, capsys):
    store, name = experiment
    out = tmp_path / "fig12"
    assert main(["plot", name, "--store", str(store), "--kind", "levels", "--metric",
                 "final_train_accuracy,final_test_accuracy", "--out", str(out)]) == 0
    assert capsys.readouterr().out.split() == [f"{out}.png", f"{out}.pdf"]
    assert main(["plot", name, "--store", str(store), "--kind", "levels", "--metric", "val/loss"]) == 2
    err = capsys.readouterr().err
    assert "no level metric 'val/loss'" in err and "final_train_accuracy" in err
    assert main(["plot", name, "--store", str(store), "--kind", "init", "--metric", "val/loss"]) == 2
    assert "--kind curves" in capsys.readouterr().err


def test_weight_tables_by_hand(experiment, capsys):
    from ticketlab.analysis.weight_tables import weight_tables
    store, name = experiment
    tables = weight_tables(store, name, levels=[0, 2], movement_level=1)
    theta0 = {t: load_torch(job(store, name, t, 0) / layout.INIT) for t in (0, 1)}
    masks = {t: Mask.load(job(store, name, t, 2) / layout.MASK) for t in (0, 1)}
    for r in tables["init"]:
        if r["level"] == 0:
            assert r["magnitude_ratio"] == pytest.approx(1.0) and r["kept"] == 2 * theta0[0][r["layer"]].numel()
            continue
        kept = [theta0[t][r["layer"]][masks[t][r["layer"]]] for t in (0, 1)]
        assert r["kept"] == sum(k.numel() for k in kept)
        assert r["positive"] == pytest.approx(float((torch.cat(kept) > 0).float().mean()))
        shares = [float((k > 0).float().mean()) for k in kept]
        assert (r["positive_min"], r["positive_max"]) == pytest.approx((min(shares), max(shares)))
        everything = torch.cat([theta0[t][r["layer"]].flatten() for t in (0, 1)])
        assert r["magnitude_ratio"] == pytest.approx(float(torch.cat(kept).abs().mean() / everything.abs().mean()), rel=1e-5)
    assert {r["level"] for r in tables["connections"]} == {2}   # the dense level has every connection
    for r in tables["connections"]:
        # every unit of a Linear layer has the same fan-in, so the mean kept fraction is the density
        assert r["incoming_mean"] == pytest.approx(r["density"]) and r["outgoing_mean"] == pytest.approx(r["density"])
    level1 = {t: Mask.load(job(store, name, t, 1) / layout.MASK) for t in (0, 1)}
    final = {t: load_torch(job(store, name, t, 0) / layout.FINAL) for t in (0, 1)}
    for r in tables["movement"]:
        assert r["level"] == 1
        moved = torch.cat([(final[t][r["layer"]] - theta0[t][r["layer"]]).abs()[level1[t][r["layer"]]] for t in (0, 1)])
        assert r["ticket_change"] == pytest.approx(float(moved.mean()), rel=1e-5)
    assert main(["tables", name, "--store", str(store), "--kind", "weights", "--levels", "0,2"]) == 0
    out = capsys.readouterr().out
    assert "Initial values of the surviving weights" in out and "Connections kept per unit" in out and "Weight movement" in out
    assert main(["tables", name, "--store", str(store), "--kind", "weights", "--levels", "7"]) == 2
    assert "no finished IMP job" in capsys.readouterr().err
    assert main(["tables", name, "--store", str(store), "--levels", "1"]) == 2


def test_report_writes_a_results_folder_from_the_store(experiment, tmp_path, capsys):
    import csv
    from ticketlab.store import index
    store, name = experiment
    out = tmp_path / "results"
    assert main(["report", name, "--store", str(store), "--out", str(out), "--weights"]) == 0
    written = {line.rsplit("/", 1)[-1] for line in capsys.readouterr().out.split()}
    assert written == {"spec.json", "status.txt", "verify.txt", "jobs.csv", "table.txt", "summary.txt",
                       "weights.txt", "levels.png"}
    assert sorted(p.name for p in out.iterdir()) == sorted(written)       # no PDF, no temporary files
    jobs = list(csv.DictReader(open(out / "jobs.csv")))
    assert len(jobs) == len(index.query(store, {"experiment": name}))
    assert "all checks pass" in (out / "verify.txt").read_text()
    summary = (out / "summary.txt").read_text()
    assert summary.startswith("against the dense network") and "\none-shot against the dense network" in summary
    assert (out / "table.txt").read_text().count("family           level") == 2   # levels and one-shot
    assert open(out / "levels.png", "rb").read(4) == b"\x89PNG"
    # an experiment with nothing finished yet: spec, status and verify only
    fresh = api.make_experiment("lenet", overrides={**SMALL, "lottery.levels": 5})
    api.lottery(fresh, store, progress=False, log=lambda *a: None, trials=[])   # writes its spec, trains nothing
    folder = api.experiment_folder(fresh, store)
    assert main(["report", folder.name, "--store", str(store), "--out", str(tmp_path / "early")]) == 0
    assert sorted(p.name for p in (tmp_path / "early").iterdir()) == ["spec.json", "status.txt", "verify.txt"]
    assert main(["report", "lottery-0000000000000000", "--store", str(store), "--out", str(tmp_path / "x")]) == 2
    assert "ticketlab status" in capsys.readouterr().err


def test_weight_counts_read_as_round_ticks():
    from ticketlab.analysis.figures import count_text, pm_axis
    from ticketlab.analysis.plots import plt
    assert [count_text(n) for n in (266200, 9000, 978600, 2.1e7, 850, 20981)] == ["266K", "9.0K", "979K", "21M", "850", "21K"]
    fig, ax = plt.subplots()
    pm_axis(ax, [978600, 500000, 213000, 60000, 13000], weights=True)
    ticks = list(ax.get_xticks())
    assert ticks == sorted(ticks, reverse=True) and set(ticks) <= {5e5, 2e5, 1e5, 5e4, 2e4}
    assert ax.get_xlabel() == "weights remaining" and ax.get_xlim()[0] > ax.get_xlim()[1]   # decreasing to the right
    plt.close(fig)
