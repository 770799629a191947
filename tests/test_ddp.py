"""Data-parallel training (exec/ddp.py) with the real torchrun and gloo on the CPU: two processes train
the same job as one process to float rounding, keep pruned weights exactly zero, find the same masks
in a lottery, and resume after a SIGKILL bit for bit."""

import os
import signal
import time
from pathlib import Path

import pytest
import torch

from ticketlab import TicketlabError, api
from ticketlab.data import augment_batch
from ticketlab.pruning import Mask
from ticketlab.store import layout
from ticketlab.store.artifacts import load_json, load_torch, save_torch
from ticketlab.train.job import build_model, run_job

from helpers import run_ticketlab

QUICK = ["--set", "data.dataset=synthetic", "--set", "data.val_size=200", "--set", "model.hidden=32,16",
         "--set", "training.eval_every=20it", "--set", "training.batch_size=30"]


def only_job(store):
    [job] = [p.parent for p in store.glob(f"train-*/{layout.SPEC}")]
    return job


def test_two_processes_train_like_one_and_keep_pruned_weights_zero(tmp_path):
    model = build_model(api.make_spec("lenet", overrides={"data.dataset": "synthetic", "model.hidden": "32,16"}),
                        api.load_splits(api.make_spec("lenet", "synthetic").data))
    g = torch.Generator().manual_seed(0)
    Mask.from_tensors({n: torch.rand(p.shape, generator=g) < 0.3 for n, p in model.prunable_weights().items()}
                      ).save(tmp_path / "mask.npz")
    args = [*QUICK, "--set", "training.steps=200it", "--set", "training.optimizer=adam",
            "--set", "training.weight_decay=0.01", "--mask", str(tmp_path / "mask.npz"), "--json"]
    one = run_ticketlab("train", *args, "--store", str(tmp_path / "one"))
    two = run_ticketlab("train", *args, "--store", str(tmp_path / "two"), "--nproc", "2")
    assert one.returncode == 0 and two.returncode == 0, two.stderr[-3000:]
    a, b = load_json(only_job(tmp_path / "one") / layout.SUMMARY), load_json(only_job(tmp_path / "two") / layout.SUMMARY)
    assert b["world_size"] == 2 and "world_size" not in a
    assert a["run_id"] == b["run_id"] and a["early_stop_iteration"] == b["early_stop_iteration"]
    assert b["val_loss_at_early_stop"] == pytest.approx(a["val_loss_at_early_stop"], rel=1e-4)
    assert abs(b["final_test_accuracy"] - a["final_test_accuracy"]) <= 0.002
    mask = Mask.load(tmp_path / "mask.npz")
    for name in (layout.FINAL, layout.BEST):
        wa, wb = load_torch(only_job(tmp_path / "one") / name), load_torch(only_job(tmp_path / "two") / name)
        for key in wa:
            assert torch.allclose(wa[key], wb[key], atol=1e-4), (name, key)
        for key in mask:
            assert torch.all(wb[key][~mask[key]] == 0), (name, key)
    metrics = (only_job(tmp_path / "two") / layout.METRICS).read_text()
    assert metrics.count('"step": 200,') >= 1 and "train/batch_loss" in metrics   # only rank 0 logs, once


def test_a_lottery_over_two_processes_finds_the_same_masks(tmp_path):
    args = ["lottery", *QUICK, "--set", "training.steps=200it", "--set", "lottery.levels=2",
            "--set", "lottery.reinits=1", "--engine", "sequential"]
    one = run_ticketlab(*args, "--store", str(tmp_path / "one"))
    two = run_ticketlab(*args, "--store", str(tmp_path / "two"), "--nproc", "2")
    assert one.returncode == 0 and two.returncode == 0, two.stderr[-3000:]
    assert "[lottery" in two.stdout and two.stdout.count("level 2 main") == 1   # printed once, by rank 0
    rows_a, rows_b = api.results(tmp_path / "one"), api.results(tmp_path / "two")
    assert len(rows_a) == len(rows_b) == 5
    for a, b in zip(rows_a, rows_b):
        assert (a["branch"], a["level"], a["mask_hash"], a["early_stop_iteration"]) == \
               (b["branch"], b["level"], b["mask_hash"], b["early_stop_iteration"])
        assert b["val_loss_at_early_stop"] == pytest.approx(a["val_loss_at_early_stop"], rel=1e-3)


def test_sigkill_and_resume_under_two_processes_is_bit_identical(tmp_path):
    args = ["train", *QUICK, "--set", "training.steps=800it", "--set", "training.eval_every=10it",
            "--set", "model.dropout=0.0", "--checkpoint-seconds", "0", "--nproc", "2"]
    reference = run_ticketlab(*args, "--store", str(tmp_path / "ref"))
    assert reference.returncode == 0, reference.stderr[-3000:]
    store = tmp_path / "killed"
    proc = run_ticketlab(*args, "--store", str(store), wait=False, new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        resume = list(store.glob(f"train-*/{layout.RESUME}"))
        if resume and load_torch(resume[0])["step"] >= 200:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)   # the launcher and torchrun; the ranks (own sessions) die with it
    proc.wait()
    deadline = time.monotonic() + 10
    while _processes_using(store) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _processes_using(store), "a rank outlived the killed command"
    assert not list(store.glob(f"train-*/{layout.SUMMARY}")), "the kill came too late to test resuming"
    assert load_torch(only_job(store) / layout.RESUME)["world_size"] == 2
    resumed = run_ticketlab(*args, "--store", str(store))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    ref, got = load_torch(only_job(tmp_path / "ref") / layout.FINAL), load_torch(only_job(store) / layout.FINAL)
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    strip = lambda s: {k: v for k, v in s.items() if k not in ("path", "wall_seconds")}
    assert strip(load_json(only_job(store) / layout.SUMMARY)) == strip(load_json(only_job(tmp_path / "ref") / layout.SUMMARY))


def _processes_using(store) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        found += [text] if str(store) in text else []
    return found


def test_bad_data_parallel_requests_are_clear_errors(tmp_path):
    odd = run_ticketlab("train", *QUICK, "--set", "training.steps=20it", "--set", "training.batch_size=31",
                    "--nproc", "2", "--store", str(tmp_path))
    assert odd.returncode != 0 and "does not split over 2 processes" in odd.stderr
    both = run_ticketlab("lottery", *QUICK, "--set", "lottery.trials=2", "--workers", "2", "--nproc", "2",
                     "--store", str(tmp_path))
    assert both.returncode != 0 and "use one" in both.stderr
    none = run_ticketlab("train", *QUICK, "--nproc", "0", "--store", str(tmp_path))
    assert none.returncode == 2 and "--nproc takes the number of processes" in none.stderr
    assert not list(tmp_path.rglob(layout.SUMMARY))


def test_a_batchnorm_resume_point_refuses_another_number_of_processes(tmp_path):
    spec = api.make_spec("cifar_resnet20", "synthetic", {"training.steps": "40it", "training.eval_every": "20it",
                                                          "data.val_size": 200})
    splits = api.load_splits(spec.data)
    job = tmp_path / "job"
    job.mkdir()
    save_torch(job / layout.RESUME, {"step": 20, "world_size": 2})
    with pytest.raises(TicketlabError, match="saved by 2 process.*--nproc"):
        run_job(job, spec, splits, progress=False)
    assert (job / layout.RESUME).exists()


def test_a_rank_augments_its_slice_as_the_whole_batch_would():
    x = torch.randn(12, 3, 8, 8)
    whole = augment_batch(x, seed=3, step=7)
    for part in (slice(0, 6), slice(6, 12), slice(4, 8)):
        assert torch.equal(augment_batch(x[part], seed=3, step=7, part=part, batch=12), whole[part])
    with pytest.raises(TicketlabError, match="not part"):
        augment_batch(x[:5], seed=3, step=7, part=slice(0, 6), batch=12)
