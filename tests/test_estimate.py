"""`ticketlab lottery --estimate`: what an experiment plans is counted exactly, and the wall time is that
count at the measured pace (the arithmetic is checked with a given pace; speed itself is never asserted)."""

import math

import pytest
import torch

from ticketlab import api
from ticketlab.cli import main
from ticketlab.lottery import estimate
from ticketlab.lottery.status import duration as status_duration, planned_jobs

QUICK = {"data.dataset": "synthetic", "data.val_size": 200, "model.hidden": "32,16", "training.steps": "40it",
         "training.eval_every": "20it", "lottery.levels": 2, "lottery.trials": 2, "lottery.reinits": 1}


def test_counts_follow_the_plan():
    exp = api.make_experiment("lenet", overrides=QUICK)
    (count,) = estimate.job_counts(exp)
    assert count.jobs == len(planned_jobs(exp)) == 2 * (3 + 2)   # per trial: 3 IMP levels, a reinit at 1 and 2
    assert (count.iterations, count.evaluations) == (40, 3)     # evaluations at 0, 20 and 40
    assert count.examples_per_evaluation == 200 + 1000           # validation + the synthetic test set
    reported = estimate.job_counts(api.make_experiment("lenet", overrides={**QUICK, "training.test_eval": "reported"}))
    assert reported[0].examples_per_evaluation == 200
    epochs = estimate.job_counts(api.make_experiment("lenet", overrides={**QUICK, "training.steps": "2ep"}))
    assert epochs[0].iterations == 2 * ((6000 - 200) // 60)


def test_find_and_eval_hyperparameters_are_counted_apart():
    exp = api.make_experiment("lenet", overrides={**QUICK, "eval.steps": "60it", "eval.eval_every": "20it"})
    find, evaluation = estimate.job_counts(exp)
    assert find.jobs == 2 * 3 and evaluation.jobs == 2 * (3 + 2)   # IMP chain; tickets at levels 0-2, reinits at 1-2
    assert (find.iterations, evaluation.iterations) == (40, 60)


def test_wall_time_is_the_count_at_the_pace():
    exp = api.make_experiment("lenet", overrides=QUICK)
    (count,) = estimate.job_counts(exp)
    pace = estimate.Pace(step_seconds=0.01, example_seconds=1e-4)
    paces = {(estimate._pace_key(count.spec), "cpu", True): pace}
    threads = torch.get_num_threads()
    report = estimate.estimate(exp, workers=2, paces=paces)
    assert torch.get_num_threads() == threads   # one thread per worker while timing, restored after
    job = 40 * 0.01 + 1e-4 * (3 * 1200 + 2 * 5800 + 2 * 1000)
    assert report["groups"][0]["job_seconds"] == pytest.approx(job)
    assert report["seconds"] == pytest.approx(10 * job / 2) and report["processes"] == 2
    assert report["threads_per_process"] == 1 and len(paces) == 1   # the given pace was used, nothing timed


def test_measured_pace_and_cli(tmp_path, capsys):
    exp = api.make_experiment("lenet", overrides=QUICK)
    pace = estimate.measure(exp.train_spec(0))
    assert 0 < pace.step_seconds < math.inf and 0 < pace.example_seconds < math.inf
    args = ["lottery", "--store", str(tmp_path), "--estimate", *sum((["--set", f"{k}={v}"] for k, v in QUICK.items()), [])]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{api.experiment_folder(exp, tmp_path).name}: lenet on synthetic, 10 jobs: about ")
    assert "10 jobs x (40 steps x" in out
    assert not list(tmp_path.iterdir())   # nothing trained, nothing written


def test_a_sweep_is_timed_once_per_architecture_and_arithmetic():
    base = api.make_experiment("lenet", overrides=QUICK).train_spec(0)
    key = estimate._pace_key
    same = api.make_experiment("lenet", overrides={**QUICK, "training.lr": 0.01, "model.init": "kaiming_normal",
                                                   "training.warmup": "10it"}).train_spec(1)
    assert key(same) == key(base)
    for change in ({"model.hidden": "64,16"}, {"training.batch_size": 30}, {"training.optimizer": "sgd"}):
        assert key(api.make_experiment("lenet", overrides={**QUICK, **change}).train_spec(0)) != key(base)
    assert status_duration(3 * 365.25 * 86400) == "3.0 years" and status_duration(3 * 86400) == "3.0 days"
