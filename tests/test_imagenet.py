"""ImageNet as folders of JPEGs ([S0]): finding and checking the folders, decoding, training crops drawn
from (seed, step, position), the shifted test sets with their class projection, and training end to end
on a small generated tree laid out as the real one."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ticketlab import TicketlabError, api
from ticketlab.data import BatchSampler, ImageFiles, imagefolder, load
from ticketlab.spec import DataSpec
from ticketlab.store import layout
from ticketlab.store.artifacts import load_torch

WNIDS = ["n01440764", "n01443537", "n01484850", "n01491361"]
COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30)]


def _write(folder, name, colour, seed, size=(48, 40)):
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour) + rng.normal(0, 40, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(folder / name, quality=90)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """imagenet/{train,val}, imagenet_v2 (by index, unpacked one folder deep), imagenet_r (2 classes), imagenet_a."""
    root = tmp_path_factory.mktemp("data")
    for c, (wnid, colour) in enumerate(zip(WNIDS, COLOURS)):
        for i in range(30):
            _write(root / "imagenet/train" / wnid, f"{wnid}_{i}.JPEG", colour, 100 * c + i, (48 + i % 5 * 7, 40))
        for i in range(5):
            _write(root / "imagenet/val" / wnid, f"ILSVRC2012_val_{c}{i}.JPEG", colour, 1000 + 10 * c + i)
        for i in range(3):
            _write(root / "imagenet_v2/imagenetv2-matched-frequency-format-val" / str(c), f"{i}.jpeg", colour, 2000 + c * 10 + i)
            _write(root / "imagenet_sketch/sketch" / wnid, f"{i}.JPEG", colour, 3000 + c * 10 + i)
    for wnid in WNIDS[1:3]:
        colour = COLOURS[WNIDS.index(wnid)]
        for i in range(4):
            _write(root / "imagenet_r" / wnid, f"art_{i}.jpg", colour, 4000 + i)
            _write(root / "imagenet_a" / wnid, f"a_{i}.jpg", colour, 5000 + i)
    (root / "imagenet_a" / "README.txt").write_text("not a class")
    return root


def spec(**extra):
    values = {"dataset": "imagenet", "val_size": 20, "image_size": 32, "allow_unofficial": True, **extra}
    return DataSpec(**values)


def test_the_folders_load_as_splits_with_a_validation_split_from_train(tree):
    splits = load(spec(eval_sets=("imagenet_v2", "imagenet_r", "imagenet_a", "imagenet_sketch")), tree)
    assert isinstance(splits.train_x, ImageFiles) and splits.train_x.shape == (100, 3, 32, 32)
    assert len(splits.val_x) == 20 and len(splits.test_x) == 20 and splits.info.input_shape == (3, 32, 32)
    assert not set(splits.train_x.files) & set(splits.val_x.files)
    assert all("/imagenet/train/" in f for f in splits.val_x.files)   # never the official val (the test set)
    assert splits.info.label == "imagenet (unofficial copy: image counts differ)" and not splits.info.official
    # labels are the positions of the wnids in sorted order, from the folder each file is in
    for f, y in zip(splits.train_x.files, splits.train_y.tolist()):
        assert f.split("/")[-2] == WNIDS[y]
    v2 = splits.eval_sets["imagenet_v2"]
    assert v2.classes is None and v2.y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    r = splits.eval_sets["imagenet_r"]   # 2 of the classes: scored on their logits, labels are positions among them
    assert r.classes.tolist() == [1, 2] and r.y.tolist() == [0] * 4 + [1] * 4
    assert splits.eval_sets["imagenet_a"].classes.tolist() == [1, 2]
    assert splits.eval_sets["imagenet_sketch"].classes is None and len(splits.eval_sets["imagenet_sketch"].x) == 12


def test_bad_folders_are_clear_errors(tree, tmp_path):
    with pytest.raises(TicketlabError, match="not the official image sets.*allow_unofficial"):
        load(spec(allow_unofficial=False), tree)
    with pytest.raises(TicketlabError, match=r"image folders missing under .*imagenet/train.*--data-dir"):
        load(spec(), tmp_path)
    with pytest.raises(TicketlabError, match="unknown data.eval_sets"):
        load(spec(eval_sets=("imagenet_c",)), tree)
    with pytest.raises(TicketlabError, match="apply to image folders"):
        load(DataSpec("synthetic", eval_sets=("imagenet_r",)), tree)
    bad = tmp_path / "bad"
    (bad / "imagenet/train" / WNIDS[0]).mkdir(parents=True)
    (bad / "imagenet/train" / WNIDS[0] / "broken.JPEG").write_bytes(b"not a jpeg")
    (bad / "imagenet/val/n99999999").mkdir(parents=True)
    with pytest.raises(TicketlabError, match="class 'n99999999' is not one of ImageNet's training classes"):
        load(spec(val_size=0), bad)
    files = ImageFiles([str(bad / "imagenet/train" / WNIDS[0] / "broken.JPEG")], 32, (0.5,) * 3, (0.5,) * 3, workers=0)
    with pytest.raises(TicketlabError, match="cannot decode .*broken.JPEG"):
        files[:1]
    # from a worker process: the message alone, not the worker's traceback
    with pytest.raises(TicketlabError, match=r"^cannot decode .*broken.JPEG.*readable copy[^\n]*$"):
        list(ImageFiles(files.files * 3, 32, (0.5,) * 3, (0.5,) * 3, workers=1).chunks(1))


def test_evaluation_crops_are_central_and_workers_decode_the_same_bits(tree):
    splits = load(spec(), tree)
    x = splits.test_x
    assert x[:3].shape == (3, 3, 32, 32) and x[:3].dtype == torch.float32
    inline = torch.cat(list(ImageFiles(x.files, 32, x.mean, x.std, workers=0).chunks(7)))
    pooled = torch.cat(list(ImageFiles(x.files, 32, x.mean, x.std, workers=2).chunks(7)))
    assert torch.equal(inline, pooled) and torch.equal(inline, x[torch.arange(len(x))])
    # the central square of the short side: a 48x40 image keeps 35x35 pixels around its centre
    raw = np.asarray(Image.open(x.files[0]).convert("RGB"), dtype=np.float32)
    expected = raw[2:37, 6:41].mean((0, 1)) / 255
    got = (inline[0] * torch.tensor(x.std).view(3, 1, 1) + torch.tensor(x.mean).view(3, 1, 1)).mean((1, 2))
    assert np.allclose(got.numpy(), expected, atol=0.02)


def test_training_crops_depend_on_seed_step_and_position_only(tree):
    from ticketlab.data.images import TrainBatches
    splits = load(spec(), tree)
    sampler = BatchSampler(len(splits.train_y), 10, seed=3)
    whole = TrainBatches(splits.train_x, sampler, 3, True, slice(0, 10), 6)
    batches = [whole.batch(s)[0] for s in range(6)]
    idx = [whole.batch(s)[1] for s in (4, 5)]         # asking again restarts the stream from step 4
    assert torch.equal(whole.batch(4)[0], batches[4]) and torch.equal(idx[0], sampler.indices(4))
    pooled = splits.train_x.to("cpu")
    pooled.workers = 2
    halves = [TrainBatches(pooled, sampler, 3, True, part, 6) for part in (slice(0, 5), slice(5, 10))]
    for s in range(2, 6):   # two data-parallel ranks' halves, decoded by worker processes, from step 2
        assert torch.equal(torch.cat([h.batch(s)[0] for h in halves]), batches[s])
    plain = TrainBatches(splits.train_x, sampler, 3, False, slice(0, 10), 6).batch(1)[0]
    other_seed = TrainBatches(splits.train_x, sampler, 4, True, slice(0, 10), 6).batch(1)[0]
    assert torch.equal(plain, splits.train_x[sampler.indices(1)])   # no augmentation: the evaluation crop
    assert not torch.equal(batches[1], plain) and not torch.equal(batches[1], other_seed)


DATA = {"data.dataset": "imagenet", "data.val_size": 20, "data.allow_unofficial": True, "data.augment": True,
        "data.eval_sets": "imagenet_r,imagenet_v2"}


def _train_spec(tmp_path, **extra):
    return api.make_spec("lenet", overrides={
        **DATA, "data.image_size": 16, "model.hidden": "32,16", "training.steps": "40it",
        "training.eval_every": "10it", "training.batch_size": 10, **extra})


def test_training_on_image_folders_reports_the_shifted_sets_and_resumes_bit_for_bit(tree, tmp_path, crash_at,
                                                                                        monkeypatch):
    monkeypatch.setenv("TICKETLAB_DATA", str(tree))
    s = _train_spec(tmp_path)
    reference = api.train(s, tmp_path / "a")
    assert reference["data_label"] == "imagenet (unofficial copy: image counts differ)"
    assert len(reference["data_files"]) == 16   # the file list's fingerprint
    for name in ("imagenet_r", "imagenet_v2"):
        assert 0.0 <= reference[f"{name}_accuracy_at_early_stop"] <= 1.0
        assert 0.0 <= reference[f"final_{name}_accuracy"] <= 1.0
    # four well-separated colours: the network learns them
    assert reference["final_test_accuracy"] >= 0.75 and reference["final_imagenet_v2_accuracy"] >= 0.75
    job_a = tmp_path / "a" / f"train-{reference['run_id']}"
    with crash_at(25), pytest.raises(RuntimeError):
        api.train(s, tmp_path / "b", checkpoint_seconds=0)
    job = tmp_path / "b" / job_a.name
    assert load_torch(job / layout.RESUME)["step"] == 20
    resumed = api.train(s, tmp_path / "b")
    final, ref = load_torch(job / layout.FINAL), load_torch(job_a / layout.FINAL)
    assert all(torch.equal(final[k], ref[k]) for k in ref)
    assert {k: v for k, v in resumed.items() if k not in ("path", "wall_seconds")} == \
        {k: v for k, v in reference.items() if k not in ("path", "wall_seconds")}
    assert json.loads((job / layout.SPEC).read_text())["data"] == reference["data_label"]


def test_a_job_does_not_resume_on_a_folder_whose_files_changed(tree, tmp_path, crash_at, monkeypatch):
    import shutil
    copy = tmp_path / "data"
    shutil.copytree(tree / "imagenet", copy / "imagenet")
    monkeypatch.setenv("TICKETLAB_DATA", str(copy))
    s = _train_spec(tmp_path, **{"data.eval_sets": ""})
    with crash_at(25), pytest.raises(RuntimeError):
        api.train(s, tmp_path / "store", checkpoint_seconds=0)
    next((copy / "imagenet/train" / WNIDS[2]).iterdir()).unlink()   # one training image fewer: other splits
    api.load_splits.cache_clear()   # as a new process would: the folder is scanned again
    with pytest.raises(TicketlabError, match="listed other files .*restore the folder"):
        api.train(s, tmp_path / "store")
    [job] = (tmp_path / "store").glob("train-*")
    assert (job / layout.RESUME).exists()   # nothing lost: the resume point is still there


def test_s0_rewinding_on_image_folders(tree, tmp_path, monkeypatch):
    """[S0]'s recipe in small: constant lr up to the rewind point, then warmup + cosine per level; each
    level restarts from the rewind point's weights under the pruned conv-only global mask."""
    monkeypatch.setenv("TICKETLAB_DATA", str(tree))
    exp = api.make_experiment("conv2", overrides={
        **{k: v for k, v in DATA.items()}, "data.image_size": 32, "training.batch_size": 10,
        "training.eval_every": "10it", "training.optimizer": "sgd", "training.lr": 0.01, "training.momentum": 0.9,
        "training.schedule": "cosine", "training.warmup": "4it", "training.schedule_start": "10it",
        "training.steps": "30it", "lottery.mode": "rewind", "lottery.rewind": "10it", "lottery.levels": 1,
        "lottery.trials": 1, "lottery.reinits": 0, "lottery.mask_source": "best", "pruning.scope": "global",
        "pruning.global_rate": 0.2})
    folder = api.lottery(exp, tmp_path / "store", progress=False)
    rows = [r for r in api.results(tmp_path / "store") if r["experiment"] == folder.name]
    assert [r["level"] for r in rows] == [0, 1] and all(r["data_label"].startswith("imagenet") for r in rows)
    assert all(0 <= r["final_imagenet_r_accuracy"] <= 1 for r in rows)
    assert rows[1]["iterations"] == 30 and rows[1]["pm"] < rows[0]["pm"]
    assert api.verify_lottery(folder).ok


def test_a_schedule_start_holds_the_lr_then_runs_the_schedule_after_it():
    from ticketlab.spec import TrainingSpec
    from ticketlab.steps import Step
    from ticketlab.train.optim import Schedule
    spec = TrainingSpec(optimizer="sgd", lr=0.8, schedule="cosine", warmup=Step(4800, "it"),
                        schedule_start=Step(16000, "it"), steps=Step(64000, "it"))
    lr = Schedule(spec, 625, 64000)
    assert lr(0) == lr(15999) == 0.8                                  # the constant 16K phase
    assert lr(16000) == 0.0 and lr(16000 + 2400) == pytest.approx(0.4)   # warmup from 0 over 4,800
    assert lr(16000 + 4800) == pytest.approx(0.8) and lr(16000 + 4800 + 21600) == pytest.approx(0.4)
    assert lr(63999) < 1e-6
    plain = Schedule(TrainingSpec(optimizer="sgd", lr=0.8, schedule="cosine", warmup=Step(4800, "it"),
                                  steps=Step(48000, "it")), 625, 48000)
    assert all(lr(16000 + s) == plain(s) for s in range(0, 48000, 997))   # the same as a 48K run from there
    with pytest.raises(TicketlabError, match="schedule_start"):
        Schedule(TrainingSpec(schedule_start=Step(100, "it"), steps=Step(100, "it")), 10, 100)


def test_the_s0_preset_runs_resnet50_end_to_end_from_the_cli(tree, tmp_path):
    """The [S0] preset itself, shrunk: ResNet-50 on the image folders with all four shifted test sets,
    bf16 autocast, rewinding, two cycles; then the results query shows the shifted sets' columns."""
    from helpers import run_ticketlab
    shrink = ["data.image_size=64", "data.val_size=8", "data.allow_unofficial=true", "training.batch_size=4",
              "training.steps=6it", "training.schedule_start=2it", "training.warmup=2it", "lottery.rewind=2it",
              "training.eval_every=2it", "lottery.levels=1"]
    argv = ["lottery", "--preset", "s0_resnet50_imagenet", "--data-dir", str(tree), "--store", str(tmp_path)]
    for item in shrink:
        argv += ["--set", item]
    done = run_ticketlab(*argv, TICKETLAB_DECODE_WORKERS="1")
    assert done.returncode == 0, done.stderr[-3000:]
    rows = api.results(tmp_path)
    assert [(r["model"], r["level"]) for r in rows] == [("resnet50", 0), ("resnet50", 1)]
    for r in rows:
        for name in imagefolder.EVAL_SETS:
            assert 0.0 <= r[f"final_{name}_accuracy"] <= 1.0 and 0.0 <= r[f"{name}_accuracy_at_early_stop"] <= 1.0
    assert rows[1]["weights_remaining"] == rows[0]["weights_remaining"] - round(0.2 * 23_454_912)
    # [S0]'s table from the store, and the level figure with a panel per shifted test set
    table = run_ticketlab("tables", rows[0]["experiment"], "--kind", "s0", "--store", str(tmp_path))
    assert table.returncode == 0, table.stderr
    header, dense, pruned = table.stdout.strip().splitlines()
    assert header.split() == ["cycle", "n", "conv", "params", "fraction", "IN", "IN-V2", "IN-R", "IN-A", "IN-S"]
    assert dense.split()[:4] == ["0", "1", "23,454,912", "1.0000"] and pruned.split()[:4] == ["1", "1", "18,763,930", "0.8000"]
    in_a = 100 * rows[1]["imagenet_a_accuracy_at_early_stop"]
    assert pruned.split()[7] == f"{in_a:.3f}" and pruned.split()[4] == f"{100 * rows[1]['test_accuracy_at_early_stop']:.2f}"
    from ticketlab.analysis import lottery_plots
    paths = lottery_plots.plot_levels(tmp_path, rows[0]["experiment"], tmp_path / "plots")
    assert any(p.suffix == ".png" for p in paths)
    api.lottery_report(tmp_path / rows[0]["experiment"], tmp_path / "report")
    assert (tmp_path / "report" / "s0.txt").read_text().strip() == table.stdout.strip()


def test_estimate_refuses_image_folders_with_the_way_to_time_them():
    exp = api.make_experiment(preset="s0_resnet50_imagenet")
    with pytest.raises(TicketlabError, match="decoding bounds the pace.*training.steps=300it"):
        api.estimate_lottery(exp)


def test_two_data_parallel_processes_train_on_image_folders_like_one(tree, tmp_path):
    """--nproc 2 under the real torchrun: each rank decodes its half of every batch (same crops as the
    whole batch) and its share of every evaluation, shifted test sets included."""
    from helpers import run_ticketlab
    from ticketlab.store.artifacts import load_json
    args = ["train", "--model", "lenet", "--data-dir", str(tree), "--json"]
    for key, value in {**DATA, "data.image_size": 16, "model.hidden": "32,16", "training.steps": "30it",
                       "training.eval_every": "10it", "training.batch_size": 10}.items():
        args += ["--set", f"{key}={str(value).lower() if isinstance(value, bool) else value}"]
    one = run_ticketlab(*args, "--store", str(tmp_path / "one"), TICKETLAB_DECODE_WORKERS="0")
    two = run_ticketlab(*args, "--store", str(tmp_path / "two"), "--nproc", "2", TICKETLAB_DECODE_WORKERS="0")
    assert one.returncode == 0 and two.returncode == 0, (one.stderr + two.stderr)[-3000:]
    [a], [b] = ([load_json(p) for p in (tmp_path / d).glob(f"train-*/{layout.SUMMARY}")] for d in ("one", "two"))
    assert b["world_size"] == 2 and a["run_id"] == b["run_id"]
    assert a["early_stop_iteration"] == b["early_stop_iteration"]
    assert b["val_loss_at_early_stop"] == pytest.approx(a["val_loss_at_early_stop"], rel=1e-4)
    for key in ("final_imagenet_r_accuracy", "imagenet_v2_accuracy_at_early_stop", "final_test_accuracy"):
        assert b[key] == pytest.approx(a[key], abs=1e-9), key
    wa, wb = (load_torch(Path(s["path"]) / layout.FINAL) for s in (a, b))
    assert all(torch.allclose(wa[k], wb[k], atol=1e-5) for k in wa)
