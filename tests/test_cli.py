"""The CLI contracts that later issues and reviews script against."""

import json

import pytest
import torch

from ticketlab.cli import main

QUICK = ["--set", "data.dataset=synthetic", "--set", "data.val_size=200", "--set", "model.hidden=32,16",
         "--set", "training.steps=40it", "--set", "training.eval_every=20it"]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_models_json_reproduces_protocol_counts(capsys):
    code, out, _ = run(capsys, "models", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    for row in rows.values():
        assert {"name", "weights", "prunable", "conv", "fc", "output", "biases", "bn_affine", "bn_buffers"} <= set(row)
    assert rows["lenet"]["weights"] == 266_200
    assert rows["conv2"]["weights"] == 4_300_992 and rows["conv2"]["conv"] == 38_592
    assert rows["conv4"]["weights"] == 2_425_024
    assert rows["conv6"]["weights"] == 2_261_184
    assert rows["cifar_resnet20"]["weights"] == 270_896
    assert rows["vgg19"]["weights"] == 20_024_000
    r50 = rows["resnet50"]
    assert (r50["conv"], r50["bn_affine"], r50["bn_buffers"], r50["output"]) == (23_454_912, 53_120, 53_120, 2_048_000)


def schedule(capsys, *argv):
    code, out, err = run(capsys, "schedule", *argv, "--json")
    assert code == 0, err
    return [lv["weights_remaining"] for lv in json.loads(out)], json.loads(out)


def test_schedule_reproduces_appendix_a(capsys):
    lenet, levels = schedule(capsys, "lenet", "--levels", "15")
    assert lenet == [266200, 213060, 170538, 136511, 109282, 87490, 70051, 56094, 44923, 35981, 28823,
                     23093, 18506, 14834, 11893, 9537]
    assert [round(lv["pm"], 2) for lv in levels[:4]] == [100.0, 80.04, 64.06, 51.28]
    assert schedule(capsys, "conv2", "--levels", "4")[0] == [4300992, 3444909, 2759630, 2211037, 1771829]
    assert schedule(capsys, "conv4", "--levels", "3")[0] == [2425024, 1966253, 1596612, 1298538]
    assert schedule(capsys, "conv6", "--levels", "3")[0] == [2261184, 1866429, 1542017, 1275167]
    assert schedule(capsys, "cifar_resnet20", "--levels", "4")[0] == [270896, 217357, 174526, 140261, 112849]
    vgg = schedule(capsys, "vgg19", "--levels", "32")[0]
    assert [vgg[k] for k in (4, 8, 12, 16, 20, 32)] == [8204853, 3363730, 1380806, 568601, 235922, 20981]
    # [S4]'s unpadded Conv-2 (PROTOCOL A6)
    assert schedule(capsys, "conv2", "--levels", "3", "--set", "model.padding=valid")[0] == [3317952, 2658477, 2130485, 1707721]
    # explicit rates and global scope
    assert schedule(capsys, "lenet", "--levels", "1", "--rates", "fc=0.5", "output=0.5")[0] == [266200, 133100]
    assert schedule(capsys, "lenet", "--levels", "1", "--global", "--rates", "global=0.5")[0] == [266200, 133100]


def test_train_then_results(capsys, tmp_path):
    code, out, err = run(capsys, "train", "--model", "lenet", "--store", str(tmp_path), "--json", *QUICK)
    assert code == 0, err
    summary = json.loads(out)
    code, out, _ = run(capsys, "results", "--store", str(tmp_path), "--json")
    rows = json.loads(out)
    assert len(rows) == 1
    for key in ("run_id", "kind", "level", "trial", "pm", "early_stop_iteration", "test_accuracy_at_early_stop",
                "final_test_accuracy"):
        assert key in rows[0]
    assert rows[0]["run_id"] == summary["run_id"] and rows[0]["kind"] == "train"
    code, out, _ = run(capsys, "results", "--store", str(tmp_path), "--csv")
    assert out.splitlines()[0].startswith("run_id,") and len(out.splitlines()) == 2
    code, out, _ = run(capsys, "results", "--store", str(tmp_path), "--reindex", "--where", "kind=lottery", "--json")
    assert json.loads(out) == []
    code, out, _ = run(capsys, "plot", summary["run_id"], "--store", str(tmp_path))
    assert code == 0 and out.strip().endswith(".pdf")


@pytest.mark.parametrize("argv, message", [
    (["train", "--model", "alexnet"], "unknown model 'alexnet'"),
    (["train", "--dataset", "imagenet21k", "--set", "training.steps=1it"], "imagenet21k"),
    (["train", "--set", "training.lr=fast"], "cannot read training.lr"),
    (["schedule", "lenet", "--rates", "fc=1.0"], r"\[0, 1\)"),
    (["schedule", "lenet", "--rates", "bias=0.1"], "KIND=RATE"),
    (["train", "--mask", "/nonexistent/mask.npz"], "mask"),
    (["train", "--device", "tpu"], "unknown device 'tpu'"),
    pytest.param(["lottery", "--model", "lenet", "--estimate", "--device", "cuda"], "no GPU is usable.*--device cpu",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is usable here")),
])
def test_bad_input_is_one_line_error(capsys, tmp_path, argv, message):
    argv = argv + (["--store", str(tmp_path)] if argv[0] == "train" else [])
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("ticketlab: error:")
    import re
    assert re.search(message, err), err
    assert not any(tmp_path.rglob("summary.json"))


def test_cli_sparse_below_reaches_the_engine(tmp_path, monkeypatch):
    # hidden layers at 30% after level 1 and 9% after level 2: only level 2 is below the default 15%
    from ticketlab.train.sparse import BlockSparseMatmul
    calls = []
    real = BlockSparseMatmul.apply
    monkeypatch.setattr(BlockSparseMatmul, "apply", lambda *a: calls.append(1) or real(*a))
    args = ["lottery", "--set", "data.dataset=synthetic", "--set", "data.val_size=200", "--set", "training.steps=20it",
            "--set", "training.eval_every=20it", "--set", "lottery.levels=2", "--set", "pruning.fc_rate=0.7"]
    assert main([*args, "--sparse-below", "0", "--store", str(tmp_path / "dense")]) == 0
    assert not calls
    assert main([*args, "--store", str(tmp_path / "default")]) == 0
    assert calls
    assert main([*args, "--sparse-below", "1.5", "--store", str(tmp_path / "bad")]) == 2


def test_the_allocator_is_tuned_where_glibc_allows():
    import platform

    from ticketlab import runtime
    assert runtime.tune_allocator() is (platform.libc_ver()[0] == "glibc")
