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


STORE_COMMANDS = [["train"], ["lottery"], ["demo"], ["status"], ["verify"], ["report", "x", "--out", "o"], ["results"],
                  ["tables", "x"], ["plot", "x"], ["masks", "compare", "a", "b"], ["masks", "show", "a"]]


@pytest.mark.parametrize("argv", STORE_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_every_store_command_takes_store_from_the_shared_parent(argv):
    from ticketlab.cli import DEFAULT_STORE, parser
    assert parser().parse_args([*argv, "--store", "elsewhere"]).store == "elsewhere"
    assert parser().parse_args(argv).store == DEFAULT_STORE


def test_the_run_options_flags_build_one_run_options():
    from ticketlab.cli import parser
    from ticketlab.cli.common import run_options
    from ticketlab.options import RunOptions
    args = parser().parse_args(["train", "--device", "cpu", "--checkpoint-seconds", "5", "--engine", "sequential",
                                "--batch-models", "3", "--sparse-below", "0", "--threads", "2", "--data-dir", "d"])
    assert run_options(args) == RunOptions(device="cpu", data_dir="d", checkpoint_seconds=5.0, engine="sequential",
                                           batch_models=3, sparse_below=0.0, threads=2)
    assert run_options(parser().parse_args(["lottery"])) == RunOptions()   # no flags: RunOptions' own defaults


def test_settings_lists_each_field_with_type_default_and_help(capsys):
    code, out, _ = run(capsys, "settings", "training")
    assert code == 0
    line = next(line for line in out.splitlines() if line.startswith("training.lr "))
    assert line.split()[:3] == ["training.lr", "float", "0.0012"] and "learning rate" in line
    assert "lottery." not in out
    code, out, _ = run(capsys, "settings", "--json")
    rows = {r["key"]: r for r in json.loads(out)}
    assert rows["lottery.mode"]["type"] == "'reset' | 'rewind' | 'lr-rewind' | 'continue'"


def test_a_toml_list_and_the_old_comma_form_name_the_same_experiment(capsys, tmp_path):
    args = ["lottery", "--dry-run", "--store", str(tmp_path), "--set", "lottery.levels=2"]
    code, new, err = run(capsys, *args, "--set", "lottery.oneshot=[0.1, 0.2]")
    assert code == 0 and "hint" not in err
    code, old, err = run(capsys, *args, "--set", "lottery.oneshot=0.1,0.2")
    assert code == 0 and new.split(":")[0] == old.split(":")[0] and new.startswith("lottery-")
    assert err.count("\n") == 1 and "hint: --set lottery.oneshot=0.1,0.2" in err and "[0.1,0.2]" in err
    _, plain, _ = run(capsys, *args)
    assert plain.split(":")[0] != new.split(":")[0]   # the list took effect


def test_a_bad_choice_is_one_line_listing_the_allowed_values(capsys):
    code, _, err = run(capsys, "lottery", "--dry-run", "--set", "lottery.mode=rewnd")
    assert code == 2 and err.count("\n") == 1
    assert "lottery.mode must be one of 'reset', 'rewind', 'lr-rewind', 'continue', got 'rewnd'" in err


LOTTERY = ["lottery", "--set", "data.dataset=synthetic", "--set", "data.val_size=200", "--set", "model.hidden=16,8",
           "--set", "training.steps=20it", "--set", "training.eval_every=20it", "--set", "lottery.levels=1",
           "--set", "lottery.reinits=0"]


def test_the_first_line_of_lottery_names_the_processes_and_threads(capsys, tmp_path, monkeypatch):
    import torch

    from ticketlab.cli import run as cli_run
    monkeypatch.setattr(cli_run, "cores", lambda: 2)
    threads = torch.get_num_threads()
    try:
        code, _, err = run(capsys, *LOTTERY, "--store", str(tmp_path))   # 1 trial: 1 process, at 1 thread
        assert code == 0, err
        assert err.splitlines()[0] == ("ticketlab lottery: 1 worker process x 1 thread (2 cores; "
                                       "--workers/--threads to change)")
        assert torch.get_num_threads() == 1
        code, _, err = run(capsys, *LOTTERY, "--threads", "2", "--store", str(tmp_path))
        assert err.splitlines()[0].startswith("ticketlab lottery: 1 worker process x 2 threads")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    assert cli_run.workers_for(3, None) == 2 and cli_run.workers_for(1, None) == 1 and cli_run.workers_for(3, 3) == 3


@pytest.mark.parametrize("workers", ["0", "-2"])
def test_workers_below_one_is_a_one_line_error(capsys, workers):
    code, _, err = run(capsys, "lottery", "--workers", workers, "--dry-run")
    assert code == 2 and err.count("\n") == 1 and "--workers must be >= 1" in err


def test_an_experiment_is_named_by_id_hash_or_folder(capsys, tmp_path):
    code, out, err = run(capsys, *LOTTERY, "--store", str(tmp_path))
    assert code == 0, err
    name = out.split("experiment ", 1)[1].split()[0]
    for target in (name, name.removeprefix("lottery-"), str(tmp_path / name)):
        code, out, err = run(capsys, "status", target, "--store", str(tmp_path), "--json")
        assert code == 0, err
        assert json.loads(out)[0]["counts"]["done"] == 2
        code, out, err = run(capsys, "tables", target, "--store", str(tmp_path), "--json")
        assert code == 0 and [row["level"] for row in json.loads(out) if row["family"] == "ticket"] == [0, 1], err
        assert run(capsys, "verify", target, "--store", str(tmp_path))[0] == 0
    code, _, err = run(capsys, "tables", "lottery-0123456789abcdef", "--store", str(tmp_path))
    assert code == 2 and "no lottery experiment 'lottery-0123456789abcdef'" in err and "ticketlab status" in err


def test_list_flags_take_spaces_and_still_read_commas(capsys):
    from ticketlab.cli import parser
    assert parser().parse_args(["plot", "x", "--levels", "0", "3", "7"]).levels == [0, 3, 7]
    assert parser().parse_args(["plot", "x", "--levels", "0,3,7"]).levels == [0, 3, 7]
    assert "hint: --levels takes space-separated values: --levels 0 3 7" in capsys.readouterr().err
    assert parser().parse_args(["plot", "x", "--families", "ticket", "reinit"]).families == ["ticket", "reinit"]
    code, _, err = run(capsys, "tables", "x", "--kind", "weights", "--levels", "0,a")
    assert code == 2 and err.count("\n") == 2 and "--levels takes levels" in err   # the hint, then the error
