"""`ticketlab status` / `lottery --dry-run`: the planned jobs equal what a run leaves behind, and the
states (done, running, stopped part-way, not started) are read correctly from the store."""

import json

import pytest

from ticketlab import TicketlabError, api
from ticketlab.cli import main
from ticketlab.lottery import status
from ticketlab.store import layout
from ticketlab.store.artifacts import load_json, locked
from ticketlab.train.loop import WALL

QUICK = {"data.dataset": "synthetic", "data.val_size": 200, "model.hidden": "32,16", "training.steps": "40it",
         "training.eval_every": "20it", "lottery.levels": 2, "lottery.trials": 2, "lottery.reinits": 1}

EVERYTHING = {**QUICK, "lottery.random_controls": "global,preserve_lpr", "lottery.dm_reinits": 1,
              "lottery.noise": "1", "lottery.prune_at_init": True, "lottery.snip": "layer",
              "lottery.iterative_snip": "layer", "lottery.iterative_snip_levels": "2", "lottery.oneshot": "0.5",
              "lottery.flip_levels": "1", "lottery.flip_rounds": 1, "eval.lr": 0.002}


def _finished(root):
    return sorted(str(p.parent.relative_to(root)) for p in root.rglob(layout.SUMMARY))


def test_the_plan_is_exactly_the_jobs_a_run_trains(tmp_path):
    exp = api.make_experiment("lenet", overrides=EVERYTHING)
    before = api.lottery_status(exp, tmp_path)
    assert before["counts"] == {"done": 0, "running": 0, "partial": 0, "pending": before["planned"]}
    root = api.lottery(exp, tmp_path, progress=False, log=lambda *a: None)
    after = api.lottery_status(root, tmp_path)
    assert sorted(j["path"] for j in after["jobs"]) == _finished(root)
    assert after["counts"]["done"] == after["planned"] == before["planned"]
    assert after["iterations_done"] == after["iterations_planned"] == 40 * after["planned"]
    # every kind of branch is in the plan, so the test covers each naming rule
    branches = {j["branch"] for j in after["jobs"]}
    assert {"main", "ticket", "reinit_0", "random_global_0", "random_preserve_lpr_0", "dm_reinit_0", "noise_1",
            "prune_at_init", "snip", "isnip"} <= branches
    assert {j["kind"] for j in after["jobs"]} == {"lottery", "flip", "oneshot"}


def test_states_of_unfinished_jobs(tmp_path):
    exp = api.make_experiment("lenet", overrides=QUICK)
    root = api.lottery(exp, tmp_path, progress=False, log=lambda *a: None)
    stopped, busy = root / "trial_0/level_2/reinit_0", root / "trial_1/level_2/main"
    for job in (stopped, busy):
        (job / layout.SUMMARY).unlink()
    lines = [json.dumps({"step": s, "name": "val/loss", "value": 1.0}) for s in (0, 20)]
    (stopped / layout.METRICS).write_text("\n".join(lines) + '\n{"step": 4')  # a torn last line
    with locked(busy / layout.LOCK):
        report = status.experiment_status(root)
        text = status.format_status(report)
    rows = {j["path"]: j for j in report["jobs"]}
    assert rows["trial_0/level_2/reinit_0"]["state"] == "partial" and rows["trial_0/level_2/reinit_0"]["step"] == 20
    assert rows["trial_1/level_2/main"]["state"] == "running" and rows["trial_1/level_2/main"]["total"] == 40
    assert report["counts"] == {"done": report["planned"] - 2, "running": 1, "partial": 1, "pending": 0}
    assert "trial 0: levels 0-1 done; in progress: level_2/reinit_0 20/40" in text
    assert "level_2/main 40/40 (running)" in text and "\n  finished" not in text
    (root / "trial_0/level_1/main" / layout.SUMMARY).unlink()
    assert "trial 0: level 0 done; in progress: level_1/main 40/40" in status.format_status(status.experiment_status(root))


def test_time_spent_and_time_left(tmp_path):
    exp = api.make_experiment("lenet", overrides=QUICK)
    root = api.lottery(exp, tmp_path, progress=False, log=lambda *a: None)
    finished = status.experiment_status(root)
    summaries = [load_json(p) for p in root.rglob(layout.SUMMARY)]
    assert all(s["wall_seconds"] > 0 for s in summaries)
    assert finished["seconds_spent"] == pytest.approx(sum(s["wall_seconds"] / s["batch_models"] for s in summaries))
    assert "time: " in status.format_status(finished) and " left " not in status.format_status(finished)

    stopped, busy = root / "trial_0/level_2/reinit_0", root / "trial_1/level_2/main"
    for job in (stopped, busy):
        (job / layout.SUMMARY).unlink()
    (stopped / layout.METRICS).write_text(_records([(0, 0.2), (20, 5.0)]))
    # 1.5 s per iteration over the whole run, 0.5 over its last evaluations (the 4 KiB the pace is read from)
    padding = "".join(json.dumps({"step": 0, "name": "val/loss", "value": 1.0}) + "\n" for _ in range(100))
    (busy / layout.METRICS).write_text(_records([(0, 0.0)]) + padding + _records([(10, 25.0), (20, 30.0)]))
    idle = status.experiment_status(root)   # nothing running: the finished jobs' pace, one job at a time
    assert idle["pace_of"] == "finished" and idle["jobs_at_once"] == 1
    assert idle["seconds_left"] == pytest.approx((20 + 20) * idle["seconds_per_iteration"])
    with locked(busy / layout.LOCK):
        report = status.experiment_status(root)
        text = status.format_status(report)
    assert report["pace_of"] == "running" and report["seconds_per_iteration"] == 0.5
    assert report["seconds_left"] == pytest.approx((20 + 20) * 0.5)   # 20 iterations left in each of the two
    assert "about 20 s left at the running jobs' pace (500 ms per iteration, one job at a time)" in text


def _records(times):
    return "".join(json.dumps({"step": step, "name": name, "value": value}) + "\n"
                   for step, seconds in times for name, value in (("val/loss", 1.0), (WALL, seconds)))


def test_cli_status_and_dry_run(tmp_path, capsys):
    args = ["--set", "data.dataset=synthetic", "--set", "data.val_size=200", "--set", "model.hidden=32,16",
            "--set", "training.steps=40it", "--set", "training.eval_every=20it", "--set", "lottery.levels=1",
            "--set", "lottery.reinits=1", "--store", str(tmp_path)]
    assert main(["lottery", *args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "jobs 0/3 done" in out and "3 not started" in out
    assert not list(tmp_path.glob("lottery-*"))  # a dry run creates nothing
    assert main(["lottery", *args]) == 0
    name = next(tmp_path.glob("lottery-*")).name
    assert "resuming" not in capsys.readouterr().out
    assert main(["lottery", *args]) == 0   # a rerun says what is done first
    assert capsys.readouterr().out.startswith(f"resuming {name}: lenet on synthetic, 1 trials x 1 levels\n  jobs 3/3 done")
    assert main(["status", "--store", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"{name}: lenet on synthetic, 1 trials x 1 levels" in out and "jobs 3/3 done" in out and "finished" in out
    assert main(["status", name.removeprefix("lottery-"), "--store", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["counts"]["done"] == 3
    assert main(["status", "nope", "--store", str(tmp_path)]) == 2
    assert "ticketlab status --store" in capsys.readouterr().err


def test_status_of_a_folder_that_is_no_experiment(tmp_path):
    with pytest.raises(TicketlabError, match="not a lottery experiment"):
        status.experiment_status(tmp_path)

