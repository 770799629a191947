"""The batched engine against its trusted reference, the single loop: same weights, metrics, early stops
and files for every model of a batch; pruned weights exactly zero; bit-identical resume."""

import dataclasses
import json
from dataclasses import replace

import pytest
import torch

from ticketlab import TicketlabError, api
from ticketlab.steps import Step
from ticketlab.store import layout
from ticketlab.store.artifacts import load_json, load_torch, save_torch
from ticketlab.train.batched import JobEntry, run_jobs_batched, train_batched
from ticketlab.train.job import build_model, run_job
from ticketlab.train.loop import WALL, train
from ticketlab.train.metrics import read_metrics

from helpers import OPTIMIZERS, quick_spec, random_mask

def model_for(spec, splits, seed):
    return build_model(replace(spec, model=replace(spec.model, init_seed=seed)), splits)


def variants(spec, k):
    """K runs that differ in everything a batch allows: lr, weight decay, data order."""
    return [replace(spec.training, lr=spec.training.lr * (1 + 0.5 * i), data_seed=i,
                    weight_decay=spec.training.weight_decay * (1 + i)) for i in range(k)]


def assert_same_metrics(single_job, batched_job, val_size):
    a, b = read_metrics(single_job / layout.METRICS), read_metrics(batched_job / layout.METRICS)
    assert a.keys() == b.keys()
    for name in a:
        assert [s for s, _ in a[name]] == [s for s, _ in b[name]], name
        if name == WALL:
            continue  # times differ, the steps they are logged at do not
        for (_, x), (_, y) in zip(a[name], b[name]):
            # accuracies: equal or within one example of the split; losses: float rounding
            tolerance = 1.0 / val_size + 1e-9 if "accuracy" in name else 1e-4 * max(1.0, abs(x))
            assert abs(x - y) <= tolerance, (name, x, y)


_BATCHED = ("adam+wd", "adamw", "nesterov+wd", "sgdw")


@pytest.mark.parametrize("training", [*(OPTIMIZERS[k] for k in _BATCHED),
                                      {"training.optimizer": "adam", "training.lr": "0.01", "training.patience": "2",
                                       "training.eval_every": "5it", "training.steps": "200it"}],
                         ids=[*_BATCHED, "adam+patience"])
def test_each_model_follows_the_single_loop(training, tmp_path):
    spec = quick_spec(**training)
    splits = api.load_splits(spec.data)
    specs = variants(spec, 3)
    masks = [random_mask(model_for(spec, splits, 0), density, seed=i) for i, density in enumerate((0.3, 0.5, 0.8))]
    for i in range(3):
        (tmp_path / f"single{i}").mkdir()
        (tmp_path / f"batched{i}").mkdir()
    singles, single_results = [], []
    for i in range(3):
        model = model_for(spec, splits, i)
        single_results.append(train(model, masks[i], splits, specs[i], job=tmp_path / f"single{i}"))
        singles.append(model)
    batched = [model_for(spec, splits, i) for i in range(3)]
    results = train_batched(batched, masks, splits, specs, jobs=[tmp_path / f"batched{i}" for i in range(3)])

    for i in range(3):
        a, b = singles[i].state_dict(), batched[i].state_dict()
        assert all(torch.allclose(a[n], b[n], atol=1e-5, rtol=0) for n in a), i
        for name, m in masks[i].items():
            assert torch.all(b[name][~m] == 0), name  # pruned weights exactly zero
        ref, got = single_results[i], results[i]
        assert (got.iterations, got.early_stop_iteration, got.stopped_early) == \
               (ref.iterations, ref.early_stop_iteration, ref.stopped_early)
        assert all(torch.allclose(ref.best_state[n], got.best_state[n], atol=1e-5, rtol=0) for n in ref.best_state)
        for name in ref.final:
            assert got.final[name] == pytest.approx(ref.final[name], abs=1e-3)
            assert got.at_early_stop[name] == pytest.approx(ref.at_early_stop[name], abs=1e-3)
        assert_same_metrics(tmp_path / f"single{i}", tmp_path / f"batched{i}", len(splits.val_y))
    assert not masks[0].equals(masks[1])
    if spec.training.patience:
        assert len({r.iterations for r in results}) > 1  # the models stopped at different steps


def test_coupled_and_decoupled_decay_share_a_batch():
    spec = quick_spec(**{"training.weight_decay": "0.05"})
    splits = api.load_splits(spec.data)
    specs = [spec.training, replace(spec.training, decoupled_weight_decay=True)]
    singles = [model_for(spec, splits, 0) for _ in specs]
    for model, s in zip(singles, specs):
        train(model, None, splits, s)
    batched = [model_for(spec, splits, 0) for _ in specs]
    train_batched(batched, [None, None], splits, specs)
    for a, b in zip(singles, batched):
        assert all(torch.allclose(a.state_dict()[n], b.state_dict()[n], atol=1e-5, rtol=0) for n in a.state_dict())
    assert not torch.allclose(batched[0].output.weight, batched[1].output.weight)


@pytest.mark.parametrize("engine", ["vmap", "auto"])
def test_conv2_fallback_follows_the_single_loop(engine):
    spec = api.make_spec("conv2", overrides={"data.dataset": "synthetic_rgb", "data.val_size": 100,
                                             "training.batch_size": 8, "training.steps": "5it",
                                             "training.eval_every": "5it"})
    full = api.load_splits(spec.data)  # Conv-2 is slow on a CPU: evaluate on small slices
    splits = dataclasses.replace(full, train_x=full.train_x[:64], train_y=full.train_y[:64], val_x=full.val_x[:32],
                                 val_y=full.val_y[:32], test_x=full.test_x[:32], test_y=full.test_y[:32])
    specs = [replace(spec.training, data_seed=i, lr=spec.training.lr * (1 + i)) for i in range(2)]
    masks = [random_mask(model_for(spec, splits, 0), 0.3 + 0.4 * i, seed=i) for i in range(2)]
    singles = [model_for(spec, splits, i) for i in range(2)]
    single_results = [train(m, mask, splits, s) for m, mask, s in zip(singles, masks, specs)]
    batched = [model_for(spec, splits, i) for i in range(2)]
    results = train_batched(batched, masks, splits, specs, engine=engine)
    # The single loop convolves in channels_last on CPU, vmap in NCHW: different kernels round differently,
    # and Adam turns last-bit gradient differences on near-zero moments into lr-sized ones (seen: 4e-5).
    for a, b, ref, got, mask in zip(singles, batched, single_results, results, masks):
        assert all(torch.allclose(a.state_dict()[n], b.state_dict()[n], atol=1e-4, rtol=0) for n in a.state_dict())
        assert all(torch.all(b.state_dict()[n][~m] == 0) for n, m in mask.items())
        assert got.final["val/loss"] == pytest.approx(ref.final["val/loss"], rel=1e-4)


def _entries(tmp_path, spec, splits, k=3, steps="100it", density=0.5):
    spec = replace(spec, training=replace(spec.training, steps=Step.parse(steps)))
    out = []
    for i, s in enumerate(variants(spec, k)):
        model = model_for(spec, splits, i)
        out.append(JobEntry(tmp_path / f"job{i}", replace(spec, training=s), random_mask(model, density, seed=i),
                            model.state_dict(), {"branch": f"b{i}", "trial": 0, "level": 1}))
    return out


def test_resume_after_crash_is_bit_identical(tmp_path, crash_at):
    spec = quick_spec()
    splits = api.load_splits(spec.data)
    reference = run_jobs_batched(_entries(tmp_path / "a", spec, splits), splits)

    with crash_at(70), pytest.raises(RuntimeError):
        run_jobs_batched(_entries(tmp_path / "b", spec, splits), splits, checkpoint_seconds=0)
    jobs = [tmp_path / "b" / f"job{i}" for i in range(3)]
    assert all(load_torch(j / layout.RESUME)["step"] == 60 and not (j / layout.SUMMARY).exists() for j in jobs)

    # a batch resumes only from one common step
    saved = (jobs[0] / layout.RESUME).read_bytes()
    (jobs[0] / layout.RESUME).unlink()
    models = [build_model(spec, splits) for _ in jobs]
    with pytest.raises(TicketlabError, match="different steps"):
        train_batched(models, [None] * 3, splits, [e.spec.training for e in _entries(tmp_path / "c", spec, splits)],
                      jobs=jobs)
    (jobs[0] / layout.RESUME).write_bytes(saved)
    for j in jobs:  # pretend the crashed process had run for 1000 s
        save_torch(j / layout.RESUME, {**load_torch(j / layout.RESUME), "wall_seconds": 1000.0})

    resumed = run_jobs_batched(_entries(tmp_path / "b", spec, splits), splits)
    for i, (ref, got) in enumerate(zip(reference, resumed)):
        a, b = load_torch(tmp_path / "a" / f"job{i}" / layout.FINAL), load_torch(jobs[i] / layout.FINAL)
        assert all(torch.equal(a[n], b[n]) for n in a)
        for key in ("early_stop_iteration", "test_accuracy_at_early_stop", "final_test_accuracy", "final_train_accuracy"):
            assert got[key] == ref[key]
        steps = [json.loads(l)["step"] for l in (jobs[i] / layout.METRICS).read_text().splitlines() if '"val/loss"' in l]
        assert steps == [0, 20, 40, 60, 80, 100]  # no duplicated records after the resume
        seconds = dict(read_metrics(jobs[i] / layout.METRICS)[WALL])   # the time before the crash carries over
        assert sorted(seconds) == steps and seconds[60] < 1000 < seconds[80] <= got["wall_seconds"]
        assert got["batch_models"] == 3


def test_run_jobs_batched_writes_what_run_job_writes(tmp_path):
    spec = quick_spec(**{"training.checkpoints": "20it"})
    splits = api.load_splits(spec.data)
    entries = _entries(tmp_path / "batched", spec, splits, k=2, steps="60it")
    # a third job that cannot share the batch (another batch size) is trained in a batch of its own
    odd = entries[0]._replace(job=tmp_path / "batched" / "odd", spec=replace(spec, training=replace(
        entries[0].spec.training, batch_size=20)))
    summaries = run_jobs_batched([*entries, odd], splits, store=tmp_path / "batched")
    for e, summary in zip([*entries, odd], summaries):
        single_job = tmp_path / "single" / e.job.name
        single = run_job(single_job, e.spec, splits, mask=e.mask, init_state=e.init_state, context=e.context)
        assert summary.keys() == single.keys()
        assert sorted(p.name for p in e.job.iterdir()) == sorted(p.name for p in single_job.iterdir())
        for key in ("mask_hash", "weights_remaining", "pm", "iterations", "early_stop_iteration", "branch"):
            assert summary[key] == single[key]
        assert summary["final_test_accuracy"] == pytest.approx(single["final_test_accuracy"], abs=2e-3)
        a, b = load_torch(single_job / layout.step_checkpoint(20)), load_torch(e.job / layout.step_checkpoint(20))
        assert all(a[n].shape == b[n].shape and torch.allclose(a[n], b[n], atol=1e-5) for n in a)
        assert load_json(e.job / layout.SPEC) == load_json(single_job / layout.SPEC)
    assert {r["branch"] for r in api.results(tmp_path / "batched")} == {"b0", "b1"}
    mtime = (entries[0].job / layout.SUMMARY).stat().st_mtime_ns
    assert run_jobs_batched(entries, splits) == summaries[:2]  # finished jobs are not trained again
    assert (entries[0].job / layout.SUMMARY).stat().st_mtime_ns == mtime


def test_specs_that_cannot_share_a_batch_are_an_error():
    spec = quick_spec()
    splits = api.load_splits(spec.data)
    models = [build_model(spec, splits) for _ in range(2)]
    with pytest.raises(TicketlabError, match="batch_size"):
        train_batched(models, [None, None], splits, [spec.training, replace(spec.training, batch_size=20)])
    with pytest.raises(TicketlabError, match="architecture"):
        other = build_model(quick_spec(**{"model.hidden": "16"}), splits)
        train_batched([models[0], other], [None, None], splits, [spec.training] * 2)


def test_a_models_trajectory_does_not_depend_on_its_batch_mates():
    # Why resuming a partly finished batch (a smaller batch) reproduces the uninterrupted run exactly; nor
    # on its slot, so a job restarted from scratch in a smaller batch (killed before its first checkpoint
    # while its mates finished) ends where the uninterrupted one would have.
    spec = quick_spec()
    splits = api.load_splits(spec.data)

    def model_2_after(seeds):
        models = [build_model(replace(spec, model=replace(spec.model, init_seed=s)), splits) for s in seeds]
        masks = [random_mask(m, 0.5, seed=s) for s, m in zip(seeds, models)]
        train_batched(models, masks, splits, [replace(spec.training, data_seed=s) for s in seeds], engine="mlp")
        return dict(models[seeds.index(2)].named_parameters())

    in_four = model_2_after([0, 1, 2, 3])
    for mates in ([2], [2, 0], [1, 2], [3, 0, 1, 2, 5]):  # a batch of one included: it trains with a phantom twin
        other = model_2_after(mates)
        assert all(torch.equal(other[n], in_four[n]) for n in other), mates


def test_resuming_part_of_a_batch_is_bit_identical(tmp_path, crash_at):
    # A kill can land after some jobs of a batch finished: the rest resume in a smaller batch, in the
    # slots they had (twins fill the others), and end exactly where the uninterrupted batch ended.
    spec = quick_spec()
    splits = api.load_splits(spec.data)
    run_jobs_batched(_entries(tmp_path / "a", spec, splits), splits)
    with crash_at(70), pytest.raises(RuntimeError):
        run_jobs_batched(_entries(tmp_path / "b", spec, splits), splits, checkpoint_seconds=0)
    for survivors in ([1, 2], [2]):
        folder = tmp_path / f"b{len(survivors)}"
        import shutil
        shutil.copytree(tmp_path / "b", folder)
        run_jobs_batched([_entries(folder, spec, splits)[i] for i in survivors], splits)
        for i in survivors:
            a, b = load_torch(tmp_path / "a" / f"job{i}" / layout.FINAL), load_torch(folder / f"job{i}" / layout.FINAL)
            assert all(torch.equal(a[n], b[n]) for n in a), (survivors, i)


def test_compiled_forward_follows_the_eager_loop(tmp_path):
    """training.compile=true (torch.compile of the forward pass) in both engines: the same training
    within float rounding, pruned weights exactly zero, and the compile time in the summary."""
    spec = quick_spec(**{"training.steps": "30it", "training.eval_every": "10it"})
    compiled = replace(spec, training=replace(spec.training, compile=True))
    splits = api.load_splits(spec.data)
    eager_model = model_for(spec, splits, 0)
    mask = random_mask(eager_model)
    train(eager_model, mask, splits, spec.training)
    single = run_job(tmp_path / "single", compiled, splits, mask=mask, init_state=model_for(spec, splits, 0).state_dict())
    assert single["compile_seconds"] > 0
    models_ = [model_for(spec, splits, 0), model_for(spec, splits, 1)]
    results = train_batched(models_, [mask, mask], splits, [compiled.training] * 2)
    assert results[0].compile_seconds > 0
    final = load_torch(tmp_path / "single" / layout.FINAL)
    for name, w in eager_model.state_dict().items():
        assert torch.allclose(final[name], w, atol=1e-5), name
        assert torch.allclose(models_[0].state_dict()[name], w, atol=1e-5), name
    for name, m in mask.items():
        assert torch.all(final[name][~m] == 0) and torch.all(models_[0].state_dict()[name][~m] == 0)


@pytest.mark.parametrize("patience", [0, 2])
def test_test_eval_reported_gives_the_same_reported_numbers(tmp_path, patience):
    """training.test_eval=reported skips the test set at intermediate evaluations; the early-stop and
    final test numbers (evaluated at the end on the kept weights) equal those of test_eval=every, in
    both engines, also when patience stops the run early."""
    spec = quick_spec(**{"training.steps": "200it", "training.eval_every": "10it", "training.patience": str(patience),
                         "training.lr": "0.01"})
    reported = replace(spec.training, test_eval="reported")
    splits = api.load_splits(spec.data)
    mask = random_mask(model_for(spec, splits, 0))
    runs = {}
    for name, training in (("every", spec.training), ("reported", reported)):
        (tmp_path / name).mkdir()
        single = train(model_for(spec, splits, 0), mask, splits, training, job=(tmp_path / name).resolve())
        batched = train_batched([model_for(spec, splits, 0), model_for(spec, splits, 1)], [mask, mask], splits,
                                [training, replace(training, data_seed=1)])
        runs[name] = (single, batched[0])
    for single_or_batched in (0, 1):
        a, b = runs["every"][single_or_batched], runs["reported"][single_or_batched]
        assert a.early_stop_iteration == b.early_stop_iteration and a.iterations == b.iterations
        assert a.at_early_stop["test/accuracy"] == pytest.approx(b.at_early_stop["test/accuracy"], abs=1e-12)
        assert a.final["test/accuracy"] == pytest.approx(b.final["test/accuracy"], abs=1e-12)
    if patience:
        assert runs["every"][0].stopped_early
    logged = read_metrics(tmp_path / "reported" / layout.METRICS)
    assert len(logged["val/accuracy"]) > 2 and [s for s, _ in logged.get("test/accuracy", [])] in ([], [200])


# ----------------------------------------------------------------------------- sparse layers

def test_block_sparse_matmul_equals_the_masked_dense_product_and_its_gradients():
    from ticketlab.train.sparse import BlockSparseMatmul, Pattern
    g = torch.Generator().manual_seed(0)
    mask = (torch.rand(3, 7, 5, generator=g) < 0.4).double()
    stack = (torch.randn(3, 7, 5, generator=g, dtype=torch.float64) * mask).requires_grad_()
    h = torch.randn(3, 6, 7, generator=g, dtype=torch.float64, requires_grad=True)
    pattern = Pattern(mask)
    values = stack.detach().reshape(-1)[pattern.flat].requires_grad_()
    assert len(values) == int(mask.sum()) and 0 < len(values) < mask.numel()
    y = BlockSparseMatmul.apply(h, values, pattern)
    reference = torch.bmm(h, stack)
    assert torch.allclose(y, reference, atol=1e-12, rtol=0)
    upstream = torch.randn(y.shape, generator=g, dtype=torch.float64)
    got, want = torch.autograd.grad(y, (h, values), upstream), torch.autograd.grad(reference, (h, stack), upstream)
    assert torch.allclose(got[0], want[0], atol=1e-12, rtol=0)
    assert torch.allclose(got[1], want[1].reshape(-1)[pattern.flat], atol=1e-12, rtol=0)
    # model k's kept weights are values[offsets[k]:offsets[k+1]], at pattern.local within its [in, out]
    for k in range(3):
        a, b = pattern.offsets[k], pattern.offsets[k + 1]
        assert torch.equal(stack.detach()[k].reshape(-1)[pattern.local[a:b]], values.detach()[a:b])


def _count_sparse_calls(monkeypatch):
    from ticketlab.train.sparse import BlockSparseMatmul
    calls = []
    real = BlockSparseMatmul.apply
    monkeypatch.setattr(BlockSparseMatmul, "apply", lambda *a: calls.append(1) or real(*a))
    return calls


def test_sparse_layers_follow_the_single_loop(tmp_path, monkeypatch):
    spec = quick_spec(**OPTIMIZERS["adam+wd"])
    splits = api.load_splits(spec.data)
    specs = variants(spec, 3)
    masks = [random_mask(model_for(spec, splits, 0), 0.06, seed=i) for i in range(3)]
    singles = [model_for(spec, splits, i) for i in range(3)]
    for model, mask, s in zip(singles, masks, specs):
        train(model, mask, splits, s)
    calls = _count_sparse_calls(monkeypatch)
    batched = [model_for(spec, splits, i) for i in range(3)]
    train_batched(batched, masks, splits, specs, sparse_below=0.1)
    assert calls  # the sparse path ran
    for single, model, mask in zip(singles, batched, masks):
        a, b = single.state_dict(), model.state_dict()
        assert all(torch.allclose(a[n], b[n], atol=1e-5, rtol=0) for n in a)
        assert all(torch.all(b[n][~mask[n]] == 0) for n in mask)


def test_sparse_trajectories_do_not_depend_on_batch_mates(monkeypatch):
    spec = quick_spec()
    splits = api.load_splits(spec.data)
    calls = _count_sparse_calls(monkeypatch)

    def model_2_after(seeds):
        models = [build_model(replace(spec, model=replace(spec.model, init_seed=s)), splits) for s in seeds]
        masks = [random_mask(m, 0.05, seed=s) for s, m in zip(seeds, models)]
        train_batched(models, masks, splits, [replace(spec.training, data_seed=s) for s in seeds])
        return dict(models[seeds.index(2)].named_parameters())

    in_three = model_2_after([0, 1, 2])
    for mates in ([2], [2, 0], [1, 2, 0]):
        other = model_2_after(mates)
        assert all(torch.equal(other[n], in_three[n]) for n in other), mates
    assert calls


def test_models_on_sparse_and_dense_paths_train_in_separate_batches(tmp_path, monkeypatch):
    from ticketlab.train import engines as engine, job as runner
    spec = quick_spec()
    splits = api.load_splits(spec.data)
    entries = _entries(tmp_path, spec, splits, k=3)
    entries[2] = entries[2]._replace(mask=random_mask(model_for(spec, splits, 2), 0.05, seed=2))
    sizes = []
    real = runner.train_batched
    monkeypatch.setattr(runner, "train_batched", lambda models, *a, **k: sizes.append(len(models)) or real(models, *a, **k))
    run_jobs_batched(entries, splits)
    assert sorted(sizes) == [1, 2]
    assert engine.sparse_layers(entries[2].mask, 0.1) and not engine.sparse_layers(entries[0].mask, 0.1)
    assert engine.sparse_layers(entries[2].mask, 0.0) == ()


def test_a_sparse_batch_resumes_bit_identically_and_writes_dense_files(tmp_path, crash_at, monkeypatch):
    spec = quick_spec(**OPTIMIZERS["adam+wd"])
    splits = api.load_splits(spec.data)
    calls = _count_sparse_calls(monkeypatch)
    run_jobs_batched(_entries(tmp_path / "a", spec, splits, density=0.05), splits)
    with crash_at(70), pytest.raises(RuntimeError):
        run_jobs_batched(_entries(tmp_path / "b", spec, splits, density=0.05), splits, checkpoint_seconds=0)
    entries = _entries(tmp_path / "b", spec, splits, density=0.05)
    resume = load_torch(entries[0].job / layout.RESUME)
    moments = resume["optimizer"]["state"]
    assert calls and resume["step"] == 60 and all(resume["model"][n].shape == entries[0].init_state[n].shape
                                                  for n in resume["model"])
    # the single loop's layout: dense tensors, Adam moments exactly zero where pruned
    names = list(resume["model"])
    for i, name in enumerate(names):
        if name in entries[0].mask:
            pruned = ~entries[0].mask[name]
            assert torch.all(resume["model"][name][pruned] == 0) and torch.all(moments[i]["exp_avg_sq"][pruned] == 0)
            assert moments[i]["exp_avg_sq"].shape == resume["model"][name].shape
    run_jobs_batched(entries, splits)
    for e in entries:
        a, b = load_torch(tmp_path / "a" / e.job.name / layout.FINAL), load_torch(e.job / layout.FINAL)
        assert all(torch.equal(a[n], b[n]) for n in a)
