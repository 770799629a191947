"""The lottery runner on the synthetic set: every mode and control, nesting, exact resets, kill-and-resume."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from ticketlab import api, models
from ticketlab.pruning import Mask, prune, schedule
from ticketlab.store import layout
from ticketlab.store.artifacts import load_json, load_torch

QUICK = {"data.dataset": "synthetic", "data.val_size": 200, "model.hidden": "32,16", "training.steps": "60it",
         "training.eval_every": "20it", "lottery.levels": 3, "lottery.trials": 1, "lottery.reinits": 0}


def run(tmp_path, **overrides):
    exp = api.make_experiment("lenet", overrides={**QUICK, **overrides})
    root = api.lottery(exp, tmp_path, progress=False, log=lambda *a: None)
    return exp, root


def job(root, level, branch="main", trial=0):
    return layout.level_dir(layout.trial_dir(root, trial), level) / branch


def state(path):
    return load_torch(path)


def masks_of(root, levels, trial=0):
    return [Mask.load(job(root, k, trial=trial) / layout.MASK) for k in range(levels + 1)]


def test_reset_levels_are_nested_follow_the_schedule_and_restore_theta0(tmp_path):
    exp, root = run(tmp_path)
    masks = masks_of(root, 3)
    for a, b in zip(masks, masks[1:]):
        assert b.is_subset_of(a) and b.count() < a.count()
    model = models.build(exp.model, (1, 28, 28), 10)
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters() if n in model.weight_info()}
    expected = [lv["weights_remaining"] for lv in schedule(shapes, model.weight_info(), exp.pruning, 3)]
    rows = api.results(tmp_path, {"branch": "main"})
    assert [r["weights_remaining"] for r in rows] == expected
    theta0 = state(job(root, 0) / layout.INIT)
    for k in range(1, 4):
        init, final = state(job(root, k) / layout.INIT), state(job(root, k) / layout.FINAL)
        for name, m in masks[k].items():
            assert torch.equal(init[name], theta0[name] * m)        # reset: survivors exactly theta_0
            assert torch.all(final[name][~m] == 0) and torch.all(init[name][~m] == 0)
        # the mask of level k is the magnitude pruning of level k-1's final weights
        previous = state(job(root, k - 1) / layout.FINAL)
        assert prune(exp.pruning, {n: previous[n] for n in masks[k - 1]}, masks[k - 1], model.weight_info()).equals(masks[k])


def test_rewind_restores_the_checkpoint_and_trains_the_remaining_steps(tmp_path):
    exp, root = run(tmp_path, **{"lottery.mode": "rewind", "lottery.rewind": "20it", "lottery.levels": 2})
    rewind_point = state(job(root, 0) / layout.step_checkpoint(20))
    for k in (1, 2):
        mask = Mask.load(job(root, k) / layout.MASK)
        init = state(job(root, k) / layout.INIT)
        assert all(torch.equal(init[n], rewind_point[n] * mask[n]) for n in mask)
        steps = [json.loads(l)["step"] for l in (job(root, k) / layout.METRICS).read_text().splitlines()]
        assert min(steps) == 20 and max(steps) == 60


@pytest.mark.parametrize("mode", ["lr-rewind", "continue"])
def test_modes_that_keep_training(tmp_path, mode):
    exp, root = run(tmp_path, **{"lottery.mode": mode, "lottery.levels": 2})
    theta0 = state(job(root, 0) / layout.INIT)
    for k in (1, 2):
        mask = Mask.load(job(root, k) / layout.MASK)
        init, previous = state(job(root, k) / layout.INIT), state(job(root, k - 1) / layout.FINAL)
        assert all(torch.equal(init[n], previous[n] * mask[n]) for n in mask)
        if mode == "continue":  # App. B strategy 2: the reported network is the mask reset to theta_0
            ticket = state(job(root, k, "ticket") / layout.INIT)
            assert all(torch.equal(ticket[n], theta0[n] * mask[n]) for n in mask)
        else:
            assert not job(root, k, "ticket").exists()


def test_controls(tmp_path):
    exp, root = run(tmp_path, **{"lottery.levels": 2, "lottery.reinits": 2, "lottery.random_controls": "global,preserve_lpr",
                                 "lottery.dm_reinits": 1, "lottery.noise": "0.5,3", "lottery.prune_at_init": "true",
                                 "lottery.control_levels": "2"})
    theta0 = state(job(root, 0) / layout.INIT)
    mask = Mask.load(job(root, 2) / layout.MASK)
    assert not job(root, 1, "reinit_0").exists()  # control_levels restricts the controls to level 2
    inits = [state(job(root, 2, f"reinit_{i}") / layout.INIT) for i in range(2)]
    for init in inits:
        assert Mask.load(job(root, 2, "reinit_0") / layout.MASK).equals(mask)
        assert not torch.equal(init["hidden.0.weight"], theta0["hidden.0.weight"] * mask["hidden.0.weight"])
    assert not torch.equal(inits[0]["hidden.0.weight"], inits[1]["hidden.0.weight"])
    per_layer = Mask.load(job(root, 2, "random_preserve_lpr_0") / layout.MASK)
    assert per_layer.layer_counts() == mask.layer_counts() and not per_layer.equals(mask)
    glob = Mask.load(job(root, 2, "random_global_0") / layout.MASK)
    assert glob.count() == mask.count() and glob.layer_counts() != mask.layer_counts()
    dm = state(job(root, 2, "dm_reinit_0") / layout.INIT)
    for name, m in mask.items():  # a permutation of the layer's surviving theta_0 values
        assert torch.equal(dm[name][m].sort().values, theta0[name][m].sort().values)
        assert not torch.equal(dm[name][m], theta0[name][m])
    sigma = models.layer_init_std(models.build(exp.model, (1, 28, 28), 10), exp.model)
    for c in (0.5, 3):
        noisy = state(job(root, 2, f"noise_{c:g}") / layout.INIT)
        diff = (noisy["hidden.0.weight"] - theta0["hidden.0.weight"])[mask["hidden.0.weight"]]
        assert diff.std().item() == pytest.approx(c * sigma["hidden.0.weight"], rel=0.1)
    at_init = Mask.load(job(root, 2, "prune_at_init") / layout.MASK)
    model = models.build(exp.model, (1, 28, 28), 10)
    expected = Mask.ones({n: m.shape for n, m in mask.items()})
    for _ in range(2):
        expected = prune(exp.pruning, {n: theta0[n] for n in expected}, expected, model.weight_info())
    assert at_init.equals(expected)
    families = {r["branch"] for r in api.results(tmp_path, {"level": 2})}
    assert families == {"main", "reinit_0", "reinit_1", "random_global_0", "random_preserve_lpr_0", "dm_reinit_0",
                        "noise_0.5", "noise_3", "prune_at_init"}


def test_eval_hyperparameters_train_tickets_and_controls(tmp_path):
    exp, root = run(tmp_path, **{"lottery.levels": 1, "lottery.reinits": 1, "eval.lr": "0.003"})
    assert exp.eval.lr == 0.003 and exp.training.lr == 0.0012
    for branch in ("ticket", "reinit_0"):
        assert load_json(job(root, 1, branch) / layout.SPEC)["spec"]["training"]["lr"] == 0.003
    assert load_json(job(root, 1) / layout.SPEC)["spec"]["training"]["lr"] == 0.0012
    # level 0 too: the dense network trained with H_eval from theta_0 is [S3]'s 0%-pruned point and the
    # summary's "dense"; the level-0 IMP run (H_find) is the 'find' family
    assert load_json(job(root, 0, "ticket") / layout.SPEC)["spec"]["training"]["lr"] == 0.003
    assert all(torch.equal(a, b) for a, b in zip(state(job(root, 0, "ticket") / layout.INIT).values(),
                                                 state(job(root, 0) / layout.INIT).values()))
    from ticketlab.analysis import lottery_tables
    summary = lottery_tables.summary(lottery_tables.level_table(tmp_path, root.name))
    [dense] = api.results(tmp_path, {"level": 0, "branch": "ticket"})
    assert summary["dense"]["test_accuracy_at_early_stop"] == dense["test_accuracy_at_early_stop"]
    assert {(r["family"], r["level"]) for r in summary["rows"]} >= {("find", 0), ("find", 1), ("ticket", 0), ("ticket", 1)}
    assert "level-0 `ticket` job" in lottery_tables.format_summary(summary)
    assert api.lottery_status(exp, tmp_path)["counts"]["done"] == 5   # main, ticket x 2 levels + a reinit


def test_oneshot(tmp_path):
    exp, root = run(tmp_path, **{"lottery.levels": 0, "lottery.oneshot": "0.5", "lottery.reinits": 1})
    rows = api.results(tmp_path, {"kind": "oneshot"})
    assert {r["branch"] for r in rows} == {"main", "reinit_0"}
    mask = Mask.load(layout.trial_dir(root, 0) / "oneshot_0.5" / layout.MASK)
    density = mask.layer_density()
    assert density["hidden.0.weight"] == pytest.approx(0.5, abs=1e-3) and density["output.weight"] == pytest.approx(0.75, abs=1e-2)


def test_trials_differ_and_a_second_run_trains_nothing(tmp_path):
    exp, root = run(tmp_path, **{"lottery.trials": 2, "lottery.levels": 1})
    a, b = state(job(root, 0, trial=0) / layout.INIT), state(job(root, 0, trial=1) / layout.INIT)
    assert not torch.equal(a["hidden.0.weight"], b["hidden.0.weight"])
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    logged = []
    api.lottery(exp, tmp_path, progress=False, log=logged.append)
    assert logged == [] and {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == stamps


COMMAND = ["lottery", "--set", "data.dataset=synthetic", "--set", "data.val_size=200", "--set", "model.hidden=32,16",
           "--set", "training.steps=400it", "--set", "training.eval_every=20it", "--set", "lottery.levels=2",
           "--set", "lottery.reinits=1", "--checkpoint-seconds", "0"]


def _ticketlab(store, wait=True):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "ticketlab.cli", *COMMAND, "--store", str(store)]
    if wait:
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _finals(store):
    out = {}
    for path in sorted(store.rglob(layout.FINAL)):
        out[str(path.relative_to(store))] = load_torch(path)
    return out


def test_sigkill_and_resume_equals_an_uninterrupted_run(tmp_path):
    reference = _ticketlab(tmp_path / "ref")
    assert reference.returncode == 0, reference.stderr
    store = tmp_path / "killed"
    proc = _ticketlab(store, wait=False)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # kill mid-job: some job finished and another one has a resume point
        if len(list(store.rglob(layout.SUMMARY))) >= 2 and list(store.rglob(layout.RESUME)):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list(store.rglob(layout.RESUME)), "the kill came too late to test resuming"
    resumed = _ticketlab(store)
    assert resumed.returncode == 0, resumed.stderr
    ref, got = _finals(tmp_path / "ref"), _finals(store)
    assert ref.keys() == got.keys() and len(ref) == 5  # 3 IMP levels + a reinit at levels 1 and 2
    for key in ref:
        assert all(torch.equal(ref[key][k], got[key][k]) for k in ref[key]), key
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("path", "wall_seconds")} for r in rows]
    assert strip(api.results(store)) == strip(api.results(tmp_path / "ref"))
    again = _ticketlab(store)
    assert "[lottery" not in again.stdout  # nothing left to train


def test_killing_the_parent_kills_its_workers(tmp_path):
    argv = [sys.executable, "-m", "ticketlab.cli", *COMMAND, "--set", "lottery.trials=2", "--workers", "2",
            "--store", str(tmp_path)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(tmp_path.rglob(layout.METRICS))) < 2:
        time.sleep(0.05)
    children = [pid for pid in subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
                if "spawn_main" in open(f"/proc/{pid}/cmdline").read()]  # the pool workers
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(1.0)
    alive = [pid for pid in children if os.path.exists(f"/proc/{pid}") and "zombie" not in
             open(f"/proc/{pid}/status").read().lower()]
    assert children and not alive


def test_a_job_finished_but_not_indexed_is_indexed_on_rerun(tmp_path):
    # A kill between summary.json and the index row must not lose the row.
    exp, root = run(tmp_path, **{"lottery.levels": 1, "lottery.reinits": 1})
    rows = api.results(tmp_path)
    (tmp_path / layout.INDEX).unlink()
    api.lottery(exp, tmp_path, progress=False, log=lambda *a: None)
    assert api.results(tmp_path) == rows


def test_snip_branches_match_the_ticket_counts_from_theta0(tmp_path):
    exp, root = run(tmp_path, **{"lottery.snip": "layer", "lottery.iterative_snip": "total",
                                 "lottery.iterative_snip_levels": "2,3"})
    theta0 = state(job(root, 0) / layout.INIT)
    for k in (1, 2, 3):
        ticket = Mask.load(job(root, k) / layout.MASK)
        snip_mask = Mask.load(job(root, k, "snip") / layout.MASK)
        assert snip_mask.layer_counts() == ticket.layer_counts()           # matched per layer
        assert not snip_mask.equals(ticket)
        init = state(job(root, k, "snip") / layout.INIT)
        assert all(torch.equal(init[n], theta0[n] * snip_mask[n]) for n in snip_mask)   # the ticket's theta_0
    assert not job(root, 1, "isnip").exists()                              # only the levels asked for
    for k in (2, 3):
        isnip = Mask.load(job(root, k, "isnip") / layout.MASK)
        assert isnip.count() == Mask.load(job(root, k) / layout.MASK).count()   # matched in total
    # SNIP masks of one trial share a mini-batch and theta_0, so per-layer matching nests them
    snips = [Mask.load(job(root, k, "snip") / layout.MASK) for k in (1, 2, 3)]
    assert snips[2].is_subset_of(snips[1]) and snips[1].is_subset_of(snips[0])
    rows = api.results(tmp_path, {"branch": "isnip"})
    assert sorted(r["level"] for r in rows) == [2, 3]


def test_lth_flip_trains_imp_on_the_complement_from_theta0(tmp_path):
    exp, root = run(tmp_path, **{"lottery.flip_levels": "2", "lottery.flip_rounds": 2})
    ticket = Mask.load(job(root, 2) / layout.MASK)
    flip = layout.trial_dir(root, 0) / "flip_2"
    masks = [Mask.load(layout.level_dir(flip, j) / "main" / layout.MASK) for j in range(3)]
    assert masks[0].equals(~ticket)
    assert all((m & ticket).count() == 0 for m in masks)                  # disjoint from the ticket
    assert masks[2].is_subset_of(masks[1]) and masks[1].is_subset_of(masks[0])
    theta0 = state(job(root, 0) / layout.INIT)
    init = state(layout.level_dir(flip, 1) / "main" / layout.INIT)
    assert all(torch.equal(init[n], theta0[n] * masks[1][n]) for n in masks[1])
    from ticketlab.analysis.lottery_tables import level_table
    table = level_table(tmp_path, root.name, kind="flip")
    assert [(r["family"], r["level"]) for r in table] == [("flip_2", 0), ("flip_2", 1), ("flip_2", 2)]
    assert table[0]["pm"] > table[1]["pm"] > table[2]["pm"]


def test_snip_and_flip_levels_are_checked(tmp_path):
    from ticketlab import TicketlabError
    with pytest.raises(TicketlabError, match="flip_levels"):
        api.make_experiment("lenet", overrides={**QUICK, "lottery.flip_levels": "7"})
    with pytest.raises(TicketlabError, match="lottery.snip"):
        api.make_experiment("lenet", overrides={**QUICK, "lottery.snip": "global"})


def test_s4_tables_and_plots_from_the_store(tmp_path, capsys):
    from ticketlab import cli
    from ticketlab.analysis import lottery_plots, s4_tables
    exp, root = run(tmp_path, **{"lottery.trials": 2, "lottery.snip": "layer", "lottery.iterative_snip": "layer",
                                 "lottery.iterative_snip_levels": "3", "lottery.flip_levels": "2",
                                 "lottery.flip_rounds": 1})
    tables = s4_tables.s4_tables(tmp_path, root.name)
    assert [r["level"] for r in tables["snip"]] == [1, 2, 3]
    assert tables["snip"][1]["isnip_early_stop"] is None and tables["snip"][2]["isnip_early_stop"] is not None
    for row in tables["overlap"]:
        assert row["trials"] == 2 and row["kept_a"] == row["kept_b"]
        assert row["difference"] == row["kept_a"] - row["overlap"]             # [S4]'s "difference"
    # flip level j is prune iteration j + 1
    flips = {r["iteration"]: r for r in tables["flips"]}
    assert flips[1]["flip_2_pm"] > flips[2]["flip_2_pm"] and flips[3]["flip_2_pm"] is None and 3 not in [
        r["iteration"] for r in tables["flips"] if r["lth_pm"] is None]
    assert cli.main(["tables", root.name, "--store", str(tmp_path), "--kind", "s4"]) == 0
    out = capsys.readouterr().out
    assert "LTH_flip" in out and "SNIP" in out and "difference" in out
    names = {p.name for p in lottery_plots.standard_plots(tmp_path, root.name, tmp_path / "plots")}
    assert {"overlap_snip.png", "overlap_isnip.png", "lpr_level3.png", "flips.png"} <= names


def test_sequential_engine_gives_the_batched_engines_masks(tmp_path):
    """--engine sequential (the single loop, job by job) and the batched engine find the same tickets here."""
    a = api.lottery(api.make_experiment("lenet", overrides={**QUICK, "lottery.levels": 2}), tmp_path / "a",
                    progress=False, log=lambda *x: None)
    b = api.lottery(api.make_experiment("lenet", overrides={**QUICK, "lottery.levels": 2}), tmp_path / "b",
                    progress=False, log=lambda *x: None, engine="sequential")
    for k in (1, 2):
        assert Mask.load(job(a, k) / layout.MASK).equals(Mask.load(job(b, k) / layout.MASK))


def test_trials_of_one_process_share_batches(tmp_path, monkeypatch):
    from ticketlab.lottery import runner
    calls = []
    real = runner.run_jobs_batched

    def spy(entries, *args, **kwargs):
        calls.append(sorted({e.context["trial"] for e in entries}))
        return real(entries, *args, **kwargs)

    monkeypatch.setattr(runner, "run_jobs_batched", spy)
    run(tmp_path, **{"lottery.trials": 2, "lottery.levels": 2, "lottery.reinits": 1})
    assert calls and all(trials == [0, 1] for trials in calls)   # every batch holds both trials' jobs
    assert len(calls) == 2 + 2                                  # levels 0..2, then the last reinits


def test_batch_capacity_scales_with_the_model(monkeypatch):
    from ticketlab.spec import DataSpec, ModelSpec
    from ticketlab.train import engines as batched
    splits = api.load_splits(DataSpec(dataset="synthetic", val_size=200))

    def fit(spec):
        model = models.build(spec, splits.info.input_shape, splits.info.num_classes)
        return batched.batch_capacity(batched.model_bytes(model, splits.train_x[:1]), splits.train_x.device)

    monkeypatch.setattr(batched, "_available_bytes", lambda device: 4 * 2 ** 30)
    small, large = (fit(ModelSpec(hidden=h)) for h in ((32, 16), (300, 100)))
    assert small > large >= 1
    monkeypatch.setattr(batched, "_available_bytes", lambda device: 0)
    assert fit(ModelSpec()) == 1


def test_test_eval_reported_needs_fixed_iterations_at_the_end():
    from ticketlab import TicketlabError
    with pytest.raises(TicketlabError, match="test_eval"):
        api.make_experiment("lenet", overrides={**QUICK, "training.test_eval": "reported",
                                                "lottery.fixed_iterations": "20it"})
    exp = api.make_experiment("lenet", overrides={**QUICK, "training.test_eval": "reported",
                                                  "lottery.fixed_iterations": "60it"})
    assert exp.training.test_eval == "reported"


def test_a_deeper_or_wider_experiment_reuses_the_finished_jobs_of_a_smaller_one(tmp_path):
    shallow, shallow_root = run(tmp_path / "store", **{"lottery.levels": 1, "lottery.reinits": 1})
    logged = []
    deep = api.make_experiment("lenet", overrides={**QUICK, "lottery.levels": 2, "lottery.trials": 2, "lottery.reinits": 1})
    from ticketlab.lottery import adopt
    assert [root for root, _ in adopt.sources(tmp_path / "store", deep)] == [shallow_root]   # what --dry-run names
    assert adopt.sources(tmp_path / "store", deep, "another dataset") == []
    root = api.lottery(deep, tmp_path / "store", progress=False, log=logged.append)
    assert root != shallow_root
    shared = sorted(p.parent.relative_to(shallow_root) for p in shallow_root.rglob(layout.SUMMARY))
    assert len(shared) == 3   # trial 0: level 0, level 1 and its reinit
    assert [line for line in logged if "reused" in line] == [
        f"[lottery {root.name.removeprefix('lottery-')}] reused 3 finished jobs of {shallow_root.name} "
        f"(same settings, 1 trials x 1 levels)"]
    trained = [line for line in logged if "Pm" in line]
    assert len(trained) == len(list(root.rglob(layout.SUMMARY))) - 3   # only the new jobs trained
    for relative in shared:
        summary = load_json(root / relative / layout.SUMMARY)
        assert summary["experiment"] == root.name and summary["run_id"].startswith(root.name.removeprefix("lottery-") + "-t0-")
        assert summary["path"] == str((root / relative).resolve())
        assert load_json(root / relative / layout.SPEC)["context"]["experiment"] == root.name
    assert {r["experiment"] for r in api.results(tmp_path / "store")} == {shallow_root.name, root.name}
    assert sum(r["experiment"] == root.name for r in api.results(tmp_path / "store")) == len(list(root.rglob(layout.SUMMARY)))
    # the same bits as the deep experiment trained from nothing in a store of its own
    alone = api.lottery(deep, tmp_path / "alone", progress=False, log=lambda *a: None)
    finals = sorted(p.relative_to(root) for p in root.rglob(layout.FINAL))
    assert finals == sorted(p.relative_to(alone) for p in alone.rglob(layout.FINAL)) and len(finals) == 10   # per trial: 3 levels, 2 reinits
    for relative in finals:
        a, b = load_torch(root / relative), load_torch(alone / relative)
        assert all(torch.equal(a[k], b[k]) for k in a), relative
    # other settings reuse nothing
    logged.clear()
    api.lottery(api.make_experiment("lenet", overrides={**QUICK, "lottery.levels": 2, "pruning.fc_rate": 0.5}),
                tmp_path / "store", progress=False, log=logged.append)
    assert not [line for line in logged if "reused" in line]
