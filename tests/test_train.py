"""The one training loop: masks hold under every optimizer, schedules, early stopping, checkpoints, resume."""

import json
import math

from dataclasses import replace

import pytest
import torch

from ticketlab import TicketlabError, api
from ticketlab.spec import TrainingSpec, apply_overrides
from ticketlab.steps import Step
from ticketlab.store import layout
from ticketlab.store.artifacts import load_torch, save_torch
from ticketlab.train.job import build_model
from ticketlab.train.loop import WALL, train
from ticketlab.train.metrics import read_metrics
from ticketlab.train.optim import Schedule

from helpers import OPTIMIZERS, quick_spec, random_mask

@pytest.mark.parametrize("training", [*OPTIMIZERS.values(), {"training.optimizer": "adam", "training.precision": "bf16"}],
                         ids=[*OPTIMIZERS, "adam-bf16"])
def test_pruned_weights_stay_exactly_zero(training):
    spec = quick_spec(**training)
    splits = api.load_splits(spec.data)
    model = build_model(spec, splits)
    with torch.no_grad():  # start from weights that are non-zero everywhere
        for p in model.parameters():
            p.add_(0.01)
    mask = random_mask(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    train(model, mask, splits, spec.training)
    params = dict(model.named_parameters())
    for name, m in mask.items():
        assert torch.all(params[name][~m] == 0), name
        assert not torch.equal(params[name][m], before[name][m]), f"{name} did not train"


@pytest.mark.parametrize("engine", ["single", "mlp"])
def test_pruned_weights_stay_zero_when_training_diverges(engine):
    from ticketlab.train.batched import train_batched
    spec = quick_spec(**{"training.optimizer": "sgd", "training.lr": "1e30", "training.steps": "20it"})
    splits = api.load_splits(spec.data)
    models = [build_model(spec, splits) for _ in range(2 if engine == "mlp" else 1)]
    mask = random_mask(models[0])
    if engine == "single":
        train(models[0], mask, splits, spec.training)
    else:
        train_batched(models, [mask, mask], splits, [spec.training] * 2, engine="mlp", sparse_below=0)
    for model in models:
        params = dict(model.named_parameters())
        assert not all(torch.isfinite(params[n]).all() for n in mask), "the run was meant to diverge"
        for name, m in mask.items():   # NaN * 0 is NaN: the mask must not be applied by a multiply
            assert torch.all(params[name][~m] == 0), name


def test_schedules():
    spec = TrainingSpec(lr=1.0, schedule="step", milestones=(Step(100), Step(2, "ep")), warmup=Step(50))
    s = Schedule(spec, iterations_per_epoch=100, total=300)
    assert s(0) == 0.0 and s(25) == pytest.approx(0.5) and s(50) == 1.0
    assert s(99) == 1.0 and s(100) == pytest.approx(0.1) and s(200) == pytest.approx(0.01)
    cos = Schedule(apply_overrides(api.make_spec("lenet"), {"training.schedule": "cosine", "training.warmup": "10it"}).training, 100, 110)
    assert cos(10) == pytest.approx(1.2e-3) and cos(60) == pytest.approx(0.6e-3) and cos(110) == pytest.approx(0.0)
    # the warmup ends at the first drop (Resnet-18 with 20K warmup): the drop applies to the warmed-up lr
    r = Schedule(TrainingSpec(lr=0.03, schedule="step", milestones=(Step(20),), warmup=Step(20)), 10, 30)
    assert r(19) == pytest.approx(0.03 * 19 / 20) and r(20) == pytest.approx(0.003)


def test_job_records_early_stop_and_is_idempotent(tmp_path):
    spec = quick_spec(**{"training.checkpoints": "0it,40it"})
    summary = api.train(spec, tmp_path)
    job = tmp_path / f"train-{summary['run_id']}"
    val = dict(read_metrics(job / layout.METRICS)["val/loss"])
    assert sorted(val) == [0, 20, 40, 60]
    assert summary["early_stop_iteration"] == min(val, key=val.get)
    assert 0 <= summary["test_accuracy_at_early_stop"] <= 1 and summary["pm"] == 100.0
    assert (job / layout.step_checkpoint(0)).exists() and (job / layout.step_checkpoint(40)).exists()
    at_zero, init = load_torch(job / layout.step_checkpoint(0)), load_torch(job / layout.INIT)
    assert all(torch.equal(at_zero[k], init[k]) for k in init)
    mtime = (job / layout.SUMMARY).stat().st_mtime_ns
    again = api.train(spec, tmp_path)
    assert again == summary and (job / layout.SUMMARY).stat().st_mtime_ns == mtime
    rows = api.results(tmp_path)
    assert len(rows) == 1 and rows[0]["run_id"] == summary["run_id"]


def test_rewind_checkpoint_equals_state_at_that_step(tmp_path):
    long = api.train(quick_spec(**{"training.checkpoints": "20it"}), tmp_path)
    short = api.train(quick_spec(**{"training.steps": "20it"}), tmp_path)
    kept = load_torch(tmp_path / f"train-{long['run_id']}" / layout.step_checkpoint(20))
    final_short = load_torch(tmp_path / f"train-{short['run_id']}" / layout.FINAL)
    assert kept.keys() == final_short.keys()
    assert all(torch.equal(kept[k], final_short[k]) for k in kept)


def test_patience_stops_training():
    spec = quick_spec(**{"training.steps": "2000it", "training.eval_every": "10it", "training.patience": "2",
                         "training.lr": "0.05"})
    splits = api.load_splits(spec.data)
    model = build_model(spec, splits)
    result = train(model, None, splits, spec.training)
    assert result.stopped_early and result.iterations < 2000
    assert result.iterations - result.early_stop_iteration == 20


def test_resume_after_crash_is_bit_identical(tmp_path, crash_at):
    spec = quick_spec(**{"training.steps": "100it"})
    reference = api.train(spec, tmp_path / "a")
    ref_final = load_torch(tmp_path / "a" / f"train-{reference['run_id']}" / layout.FINAL)

    with crash_at(70), pytest.raises(RuntimeError):
        api.train(spec, tmp_path / "b", checkpoint_seconds=0)
    job = tmp_path / "b" / f"train-{reference['run_id']}"
    assert (job / layout.RESUME).exists() and not (job / layout.SUMMARY).exists()
    assert load_torch(job / layout.RESUME)["step"] == 60
    resumed = api.train(spec, tmp_path / "b")
    final = load_torch(job / layout.FINAL)
    assert all(torch.equal(final[k], ref_final[k]) for k in ref_final)
    for key in ("early_stop_iteration", "test_accuracy_at_early_stop", "final_test_accuracy", "final_train_accuracy"):
        assert resumed[key] == reference[key]
    steps = [json.loads(l)["step"] for l in (job / layout.METRICS).read_text().splitlines() if '"val/loss"' in l]
    assert steps == [0, 20, 40, 60, 80, 100]  # no duplicated records after the resume


def _logged_seconds(job):
    return dict(read_metrics(job / layout.METRICS).get(WALL, []))


@pytest.mark.parametrize("recorded", [True, False])
def test_a_runs_time_counts_every_process_that_trained_it(tmp_path, crash_at, recorded):
    spec = quick_spec(**{"training.steps": "100it"})
    with crash_at(70), pytest.raises(RuntimeError):
        api.train(spec, tmp_path, checkpoint_seconds=0)
    job = next(tmp_path.glob("train-*"))
    state = load_torch(job / layout.RESUME)
    assert state["wall_seconds"] > 0 and _logged_seconds(job)[60] <= state["wall_seconds"]
    if recorded:   # pretend the first process ran for 1000 s before the crash
        state["wall_seconds"] = 1000.0
    else:          # a resume file from before the time was recorded
        del state["wall_seconds"]
    save_torch(job / layout.RESUME, state)
    summary = api.train(spec, tmp_path)
    seconds = _logged_seconds(job)
    if recorded:
        assert sorted(seconds) == [0, 20, 40, 60, 80, 100]
        assert seconds[60] < 1000 < seconds[80] <= seconds[100] <= summary["wall_seconds"]
    else:  # the time is unknown: nothing logged after the resume, the summary counts this process only
        assert sorted(seconds) == [0, 20, 40, 60] and summary["wall_seconds"] < 1000
    assert summary["batch_models"] == 1


def test_corrupt_checkpoint_is_a_clear_error_and_keeps_the_store(tmp_path):
    spec = quick_spec()
    done = api.train(spec, tmp_path)
    other = quick_spec(**{"training.lr": "0.002"})
    from ticketlab.spec import spec_hash
    job = tmp_path / f"train-{spec_hash(other, 'train')}"
    job.mkdir()
    (job / layout.RESUME).write_bytes(b"not a checkpoint")
    with pytest.raises(TicketlabError, match="corrupt.*delete it"):
        api.train(other, tmp_path)
    assert (tmp_path / f"train-{done['run_id']}" / layout.SUMMARY).exists()
    assert [r["run_id"] for r in api.results(tmp_path)] == [done["run_id"]]
    (job / layout.RESUME).unlink()
    assert api.train(other, tmp_path)["run_id"] == job.name.removeprefix("train-")


def test_masked_training_records_pm(tmp_path):
    spec = quick_spec()
    model = build_model(spec, api.load_splits(spec.data))
    mask = random_mask(model, 0.3)
    summary = api.train(spec, tmp_path, mask=mask)
    assert summary["mask_hash"] == mask.hash()
    assert math.isclose(summary["pm"], 100 * mask.count() / summary["weights_total"])
    assert summary["run_id"] != api.train(spec, tmp_path)["run_id"]


def test_progress_lines_for_logs_and_workers(monkeypatch):
    """A file or pipe gets plain lines at most every LINE_SECONDS (first after one period), a final
    line when forced, no carriage returns; disabled progress writes nothing."""
    import io
    from ticketlab.train import progress as progress_module
    clock = [0.0]
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: clock[0])
    out = io.StringIO()
    bar = progress_module.Progress("trial=0 x4", 1000, enabled="lines", stream=out)
    for step in range(0, 1000, 50):
        clock[0] = step * 0.1          # 10 steps per second: 100 s in all
        bar.update(step, "val acc 0.9")
    bar.update(1000, "val acc 0.95", force=True)
    bar.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and 1 <= len(lines) <= 3
    assert lines[-1].startswith("trial=0 x4: 1000/1000") and "val acc 0.95" in lines[-1]
    silent = io.StringIO()
    quiet = progress_module.Progress("x", 10, enabled=False, stream=silent)
    quiet.update(10, force=True)
    quiet.close()
    assert silent.getvalue() == ""
    monkeypatch.setenv("CI", "true")
    assert not progress_module.Progress("x", 10, stream=io.StringIO()).enabled


@pytest.mark.parametrize("engine", ["single", "mlp"])
def test_train_eval_size_measures_training_accuracy_on_every_kth_example(engine, tmp_path):
    from ticketlab.data import train_eval_split
    from ticketlab.train.batched import train_batched
    from ticketlab.train.loop import evaluate
    spec = quick_spec(**{"data.train_eval_size": "100", "training.steps": "20it"})
    splits = api.load_splits(spec.data)
    x, y = train_eval_split(splits)
    k = len(splits.train_x) // 100   # 5,800 // 100 = 58: spread over the whole split
    assert len(y) == 100 and torch.equal(x, splits.train_x[::k]) and torch.equal(y, splits.train_y[::k])
    assert train_eval_split(api.load_splits(quick_spec().data))[0].shape == splits.train_x.shape   # default: all
    models = [build_model(spec, splits) for _ in range(2 if engine == "mlp" else 1)]
    mask = random_mask(models[0])
    if engine == "single":
        results = [train(models[0], mask, splits, spec.training)]
    else:
        results = train_batched(models, [mask, mask], splits, [spec.training] * 2, engine="mlp", sparse_below=0)
    for model, result in zip(models, results):
        loss, accuracy = evaluate(model, x, y)
        whole_loss, _ = evaluate(model, splits.train_x, splits.train_y)
        assert result.final["train/accuracy"] == pytest.approx(accuracy, abs=1e-9)
        assert result.final["train/loss"] == pytest.approx(loss, rel=1e-5)
        assert loss != pytest.approx(whole_loss, rel=1e-5)
    summary = api.train(spec, tmp_path)
    assert summary["train_eval_examples"] == 100 and "train_eval_examples" not in api.train(quick_spec(), tmp_path)
    with pytest.raises(TicketlabError, match="train_eval_size"):
        quick_spec(**{"data.train_eval_size": "-1"})


def test_dropout_runs_are_reproducible_whatever_the_global_rng_held():
    # torch seeds its global RNG at random in each process; dropout draws from it, so the loop seeds it
    # from the job's data seed at a fresh start
    spec = api.make_spec("conv2", overrides={"data.dataset": "synthetic_rgb", "data.val_size": 200,
                                            "training.steps": "6it", "training.eval_every": "6it",
                                            "model.dropout": 0.5})
    splits = api.load_splits(spec.data)
    finals = []
    for noise in (1, 2):
        torch.manual_seed(noise)   # another history of the global RNG
        model = build_model(spec, splits)
        model.load_state_dict(build_model(spec, splits).state_dict())
        train(model, None, splits, spec.training)
        finals.append(model.state_dict())
    assert all(torch.equal(finals[0][n], finals[1][n]) for n in finals[0])
    other = build_model(spec, splits)
    train(other, None, splits, replace(spec.training, data_seed=1))
    assert not all(torch.equal(finals[0][n], other.state_dict()[n]) for n in finals[0])   # the seed matters


def test_one_resume_format_across_engines(tmp_path, crash_at):
    """A job stopped in the stacked engine resumes in the single loop (and the file is versioned)."""
    from ticketlab.train import resume
    from ticketlab.train.batched import train_batched
    spec = quick_spec(**{"training.steps": "40it", "training.eval_every": "10it"})
    splits = api.load_splits(spec.data)
    jobs = [tmp_path / "a", tmp_path / "b"]
    for job in jobs:
        job.mkdir()
    models = [build_model(spec, splits) for _ in jobs]
    init = [m.state_dict() for m in models]
    with crash_at(25), pytest.raises(RuntimeError):
        train_batched(models, [None, None], splits, [spec.training] * 2, jobs=jobs, engine="mlp",
                      checkpoint_seconds=0)
    state = resume.read(jobs[1])
    assert state["version"] == resume.VERSION and state["step"] == 20 and state["slot"] == 1
    model = build_model(spec, splits)
    model.load_state_dict(init[1])
    result = train(model, None, splits, spec.training, job=jobs[1])
    assert result.iterations == 40 and min(s for s, _ in read_metrics(jobs[1] / layout.METRICS)["val/loss"]) == 0
    save_torch(jobs[0] / layout.RESUME, {**resume.read(jobs[0]), "version": resume.VERSION + 1})
    with pytest.raises(TicketlabError, match="newer ticketlab"):
        train(build_model(spec, splits), None, splits, spec.training, job=jobs[0])
