"""`ticketlab verify`: real runs pass every check; each kind of damage is caught and named, nothing rewritten."""

import json

import pytest

from ticketlab import api, cli
from ticketlab.lottery.verify import verify_experiment
from ticketlab.pruning import Mask
from ticketlab.store import layout
from ticketlab.store.artifacts import load_torch, save_torch

QUICK = {"data.dataset": "synthetic", "data.val_size": 200, "model.hidden": "32,16", "training.steps": "60it",
         "training.eval_every": "20it", "lottery.levels": 2, "lottery.trials": 1, "lottery.reinits": 1}


def run(store, **overrides):
    exp = api.make_experiment("lenet", overrides={**QUICK, **overrides})
    return api.lottery(exp, store, progress=False, log=lambda *a: None)


def job(root, level, branch="main"):
    return layout.level_dir(layout.trial_dir(root, 0), level) / branch


@pytest.fixture(scope="module")
def reset_run(tmp_path_factory):
    return run(tmp_path_factory.mktemp("store"), **{"lottery.random_controls": "global,preserve_lpr",
                                                      "lottery.dm_reinits": 1, "eval.lr": "0.002"})


def test_a_real_run_passes_every_check(reset_run):
    report = verify_experiment(reset_run)
    assert report.ok, report.failures
    assert report.jobs == 2 + 2 * 6  # level 0: main and the eval-trained ticket; per level: ticket, reinit, 2 random masks, dm_reinit, main
    for check in ("nested", "schedule", "pruned_from", "start", "random_counts"):
        assert report.checked[check] >= 2, check
    assert report.checked["job_mask"] == 2 * 3           # main, ticket, reinit_0 at levels 1-2
    assert report.checked["seeded_init"] == 1 + 2       # level 0 and the reinits
    assert report.checked["summary"] == report.jobs


@pytest.mark.parametrize("mode", ["rewind", "continue"])
def test_other_modes_pass(tmp_path, mode):
    rewind = {"lottery.rewind": "20it"} if mode == "rewind" else {}
    overrides = {**QUICK, "lottery.mode": mode, "lottery.reinits": 0, **rewind}
    run(tmp_path, **overrides)
    report = api.verify_lottery(api.make_experiment("lenet", overrides=overrides), tmp_path)
    assert report.ok, report.failures
    assert report.checked["start"] == (2 if mode == "rewind" else 4)  # continue: main and ticket


def test_ties_keep_passes_and_a_mask_below_the_round_count_fails(tmp_path):
    """pruning.ties=keep (A17) may keep more than the count: verify accepts that, recomputes the mask
    with the tie rule, and still catches a level that kept fewer than the round's count."""
    overrides = {**QUICK, "lottery.reinits": 0, "pruning.ties": "keep"}
    root = run(tmp_path, **overrides)
    report = verify_experiment(root)
    assert report.ok, report.failures
    assert report.checked["schedule"] == 2 and report.checked["pruned_from"] == 2
    mask = Mask.load(job(root, 2) / layout.MASK)
    name = next(iter(mask))
    flat = mask[name].reshape(-1).clone()
    flat[flat.nonzero()[:50]] = False   # 50 fewer survivors than the round allows
    damaged = Mask({**{n: mask[n] for n in mask}, name: flat.view(mask[name].shape)})
    damaged.save(layout.level_dir(layout.trial_dir(root, 0), 2) / layout.MASK)
    failed = {f["check"] for f in verify_experiment(root).failures}
    assert "schedule" in failed and "pruned_from" in failed


def _damaged(reset_run, tmp_path):
    import shutil
    root = tmp_path / reset_run.name
    shutil.copytree(reset_run, root)
    return root


def test_a_pruned_weight_that_moved_is_named(reset_run, tmp_path):
    root = _damaged(reset_run, tmp_path)
    path = job(root, 2) / layout.FINAL
    state, mask = load_torch(path), Mask.load(job(root, 2) / layout.MASK)
    state["hidden.0.weight"][~mask["hidden.0.weight"]] = 1e-3
    save_torch(path, state)
    report = verify_experiment(root)
    assert [(f["check"], f["path"]) for f in report.failures] == [("zeros", str(path))]
    assert "hidden.0.weight" in report.failures[0]["why"]


def test_a_mask_that_is_not_the_prune_of_its_parent_fails_nesting_counts_and_recomputation(reset_run, tmp_path):
    root = _damaged(reset_run, tmp_path)
    level1 = Mask.load(job(root, 1) / layout.MASK)
    swapped = Mask.from_tensors({n: m.flip(0) for n, m in level1.items()})  # same counts, other positions
    swapped.save(layout.level_dir(layout.trial_dir(root, 0), 2) / layout.MASK)
    failed = {f["check"] for f in verify_experiment(root).failures}
    assert {"nested", "schedule", "pruned_from", "job_mask"} <= failed


def test_a_wrong_start_and_a_wrong_seed_are_caught(reset_run, tmp_path):
    root = _damaged(reset_run, tmp_path)
    for branch in ("main", "reinit_0"):
        path = job(root, 1, branch) / layout.INIT
        state = load_torch(path)
        state["hidden.1.weight"] *= 1.5
        save_torch(path, state)
    failed = {(f["check"], f["path"]) for f in verify_experiment(root).failures}
    assert failed == {("start", str(job(root, 1) / layout.INIT)),
                      ("seeded_init", str(job(root, 1, "reinit_0") / layout.INIT))}


def test_a_corrupt_file_is_reported_and_left_alone(reset_run, tmp_path, capsys):
    root = _damaged(reset_run, tmp_path)
    path, summary = job(root, 1, "reinit_0") / layout.BEST, job(root, 2) / layout.SUMMARY
    path.write_bytes(b"not a checkpoint")
    summary.write_text('{"torn": ')
    assert cli.main(["verify", root.name, "--store", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"FAILED readable: {path}" in out and "corrupt" in out
    assert f"FAILED readable: {summary}" in out and "2 FAILED" in out
    assert path.read_bytes() == b"not a checkpoint" and summary.read_text() == '{"torn": '
    cli.main(["verify", "--store", str(reset_run.parent), "--json"])
    report, = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["failed"] == {} and report["checked"]["zeros"] > 0


def test_verify_names_the_fix_for_a_wrong_store_or_experiment(tmp_path, capsys):
    assert cli.main(["verify", "--store", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["verify", "lottery-0123", "--store", str(tmp_path)]) == 2
    assert "ticketlab status --store" in capsys.readouterr().err


def test_lth_flip_chains_are_checked_from_the_complement_on(tmp_path):
    root = run(tmp_path, **{"lottery.flip_levels": "2", "lottery.flip_rounds": 1, "lottery.reinits": 0})
    report = verify_experiment(root)
    assert report.ok, report.failures
    assert report.checked["flip_complement"] == 1 and report.checked["start"] == 2 + 2  # IMP levels 1-2, flip 0-1
    first = layout.trial_dir(root, 0) / "flip_2" / "level_0" / layout.MASK
    Mask.load(job(root, 2) / layout.MASK).save(first)  # the ticket itself instead of its complement
    failed = {f["check"] for f in verify_experiment(root).failures}
    assert {"flip_complement", "job_mask", "nested"} <= failed
