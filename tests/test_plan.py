"""lottery/plan.py: the jobs an experiment's spec plans are the jobs the runner trains, in the same rounds and
the same order within each round (the batched engine stacks a round's jobs in that order, and a model's
bits depend on its slot), with the hyperparameters and start steps the plan gives them.

The configurations below were first run against the runner as it was before it read the plan (its own
generators, commit 6c94f46), so the expected rounds encode the order experiments have been trained in."""

from dataclasses import replace

import pytest

from ticketlab import api
from ticketlab.lottery import plan, status
from ticketlab.lottery.runner import Lottery
from ticketlab.store import layout

QUICK = {"data.dataset": "synthetic", "data.val_size": 200, "model.hidden": "16,8", "training.steps": "20it",
         "training.eval_every": "10it", "lottery.levels": 2, "lottery.trials": 1, "lottery.reinits": 0}

CONFIGS = {
    "reinits_and_random_controls": {"lottery.reinits": 2, "lottery.random_controls": "global,preserve_lpr"},
    "control_levels": {"lottery.levels": 3, "lottery.reinits": 1, "lottery.dm_reinits": 1, "lottery.control_levels": "2"},
    "ticket_via_eval_lr": {"lottery.reinits": 1, "eval.lr": 0.002},
    "continue": {"lottery.mode": "continue", "lottery.reinits": 1},
    "rewind": {"lottery.mode": "rewind", "lottery.rewind": "10it", "lottery.reinits": 1, "lottery.noise": "1"},
    "oneshot": {"lottery.oneshot": "0.5,0.8", "lottery.reinits": 1, "lottery.prune_at_init": True},
    "flips_outliving_the_trial": {"lottery.flip_levels": "1,2", "lottery.flip_rounds": 2, "lottery.reinits": 1,
                                  "lottery.trials": 2},
    "snip_and_iterative_snip": {"lottery.levels": 3, "lottery.snip": "layer", "lottery.snip_levels": "1,3",
                                "lottery.iterative_snip": "total", "lottery.iterative_snip_levels": "2"},
    "two_trials_everything": {"lottery.trials": 2, "lottery.reinits": 1, "lottery.random_controls": "global",
                              "lottery.snip": "layer", "lottery.oneshot": "0.5", "lottery.flip_levels": "2",
                              "lottery.flip_rounds": 1, "eval.lr": 0.002, "lottery.mode": "rewind",
                              "lottery.rewind": "10it"},
}

# The rounds the runner trained at 6c94f46 for two of the configurations, written out: the plan must
# reproduce them whatever reads it.
ORIGINAL_ROUNDS = {
    "flips_outliving_the_trial": [
        ["trial_0/level_0/main", "trial_1/level_0/main"],
        ["trial_0/level_1/main", "trial_1/level_1/main"],
        ["trial_0/level_2/main", "trial_0/level_1/reinit_0", "trial_1/level_2/main", "trial_1/level_1/reinit_0",
         "trial_0/flip_1/level_0/main", "trial_1/flip_1/level_0/main"],
        ["trial_0/level_2/reinit_0", "trial_1/level_2/reinit_0", "trial_0/flip_1/level_1/main",
         "trial_1/flip_1/level_1/main", "trial_0/flip_2/level_0/main", "trial_1/flip_2/level_0/main"],
        ["trial_0/flip_1/level_2/main", "trial_1/flip_1/level_2/main", "trial_0/flip_2/level_1/main",
         "trial_1/flip_2/level_1/main"],
        ["trial_0/flip_2/level_2/main", "trial_1/flip_2/level_2/main"],
    ],
    "ticket_via_eval_lr": [
        ["trial_0/level_0/main"],
        ["trial_0/level_1/main", "trial_0/level_0/ticket"],
        ["trial_0/level_2/main", "trial_0/level_1/ticket", "trial_0/level_1/reinit_0"],
        ["trial_0/level_2/ticket", "trial_0/level_2/reinit_0"],
    ],
}


@pytest.fixture
def trained(monkeypatch):
    """``trained(root_of_rounds)`` -> the runner's rounds as lists of items, recorded as it trains them."""
    calls = []
    real = Lottery._run_many

    def spy(self, items):
        if items:
            calls.append((self.root, list(items)))
        return real(self, items)

    monkeypatch.setattr(Lottery, "_run_many", spy)
    return calls


def _paths(root, items):
    return [str((item.folder / item.branch.name).relative_to(root)) for item in items]


def _run(tmp_path, overrides, trials=None):
    exp = api.make_experiment("lenet", overrides={**QUICK, **overrides})
    root = api.lottery(exp, tmp_path, trials=trials, progress=False, log=lambda *a: None)
    return exp, root


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_the_runner_trains_the_plans_rounds(tmp_path, trained, config):
    exp, root = _run(tmp_path, CONFIGS[config])
    ipe = (6000 - 200) // exp.training.batch_size      # the synthetic training split
    planned = plan.rounds(plan.jobs(exp, iterations_per_epoch=ipe))
    assert [_paths(root, items) for _, items in trained] == [[job.path for job in r] for r in planned]
    if config in ORIGINAL_ROUNDS:
        assert [[job.path for job in r] for r in planned] == ORIGINAL_ROUNDS[config]
    for items, jobs in zip((items for _, items in trained), planned):
        for item, job in zip(items, jobs):
            assert (item.trial, item.level, item.oneshot, item.flip) == (job.trial, job.level, job.oneshot, job.flip)
            assert item.branch.start_step == job.start.iterations(ipe)
            # controls that draw a fresh init record its seed; everything else is the plan's spec
            seeded = replace(item.branch.spec, model=replace(item.branch.spec.model, init_seed=job.spec.model.init_seed))
            assert seeded == job.spec
            assert item.branch.spec == job.spec or job.branch.startswith(("reinit_", "random_"))
    # a finished job's recorded spec is the one planned (level 0 with mode=rewind keeps the rewind point)
    level0 = next(j for r in planned for j in r if j.path == "trial_0/level_0/main")
    assert tuple(level0.spec.training.checkpoints) == ((plan.Step(10),) if exp.lottery.mode == "rewind" else ())


def test_a_subset_of_trials_trains_that_subsets_rounds(tmp_path, trained):
    """``--workers`` runs one trial per process: trial 1 alone trains trial 1's part of every round."""
    overrides = CONFIGS["flips_outliving_the_trial"]
    exp, root = _run(tmp_path, overrides, trials=[1])
    planned = plan.rounds(plan.jobs(exp, [1]))
    assert [_paths(root, items) for _, items in trained] == [[job.path for job in r] for r in planned]
    alone = [[p for p in r if p.startswith("trial_1/")] for r in ORIGINAL_ROUNDS["flips_outliving_the_trial"]]
    assert [[job.path for job in r] for r in planned] == [r for r in alone if r]


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_every_job_needs_only_jobs_of_earlier_rounds(config):
    exp = api.make_experiment("lenet", overrides={**QUICK, **CONFIGS[config]})
    jobs = plan.jobs(exp)
    by_path = {job.path: job for job in jobs}
    assert len(by_path) == len(jobs)                        # one folder per job
    assert [j.round for j in jobs] == sorted(j.round for j in jobs)
    for job in jobs:
        assert job.needs or job.path.endswith("level_0/main") and job.kind == "lottery"
        assert all(by_path[n].round < job.round for n in job.needs), job
    # a level's IMP job needs the one before; a level's controls its mask's source and theta_0
    for job in jobs:
        if job.kind == "lottery" and job.level > 0:
            previous = str(layout.level_dir(layout.trial_dir("", job.trial), job.level - 1) / "main")
            assert previous in job.needs and f"trial_{job.trial}/level_0/main" in job.needs


def test_status_and_estimate_read_the_plan():
    exp = api.make_experiment("lenet", overrides={**QUICK, **CONFIGS["two_trials_everything"]})
    jobs = plan.jobs(exp)
    assert [(j.path, j.kind, j.branch) for j in status.planned_jobs(exp)] == [(j.path, j.kind, j.branch) for j in jobs]
    from ticketlab.lottery import estimate
    counts = estimate.job_counts(exp)
    assert sum(c.jobs for c in counts) == len(jobs)
    find = [j for j in jobs if j.spec.training.lr == exp.training.lr]
    assert counts[0].jobs == len(find) == 2 * (3 + 2)   # per trial: IMP levels 0-2 and the flip chain's levels 0-1


def test_the_plan_reads_no_files_and_needs_no_torch():
    import subprocess
    import sys
    code = ("import sys; from ticketlab.lottery import plan; from ticketlab.spec import LotteryExperimentSpec; "
            "print(len(plan.jobs(LotteryExperimentSpec()))); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(16 + 15 * 3), "False"]    # the IMP levels 0-15, three reinits at each pruned level
