"""Presets: every file loads, every sweep point builds a valid experiment, and the facts the papers fix
(rates, learning rates, levels that reach the end of each figure's axis, run counts) hold. Fast: no
training, models are built on the meta device except the small ones whose shapes feed the Pm schedule."""

from __future__ import annotations

import functools
import json
import re
from importlib import resources

import pytest

from ticketlab import api, models, pruning
from ticketlab.cli import main
from ticketlab.lottery import presets
from ticketlab.lottery.runner import experiment_name
from ticketlab.models.init import check_init
from ticketlab.spec import LotteryExperimentSpec, ModelSpec
from ticketlab.steps import Step

ISSUE_NAMES = ["lenet_mnist", "conv2_cifar10", "conv4_cifar10", "conv6_cifar10", "vgg19_cifar10", "resnet20_cifar10"]
META_KEYS = ["description", "figures", "command", "runtime", "reference", "source", "notes", "runs"]
NAMES = presets.names()


@functools.lru_cache(maxsize=None)
def experiments(name: str) -> tuple[LotteryExperimentSpec, ...]:
    return tuple(api.make_experiments(None, name))


@functools.lru_cache(maxsize=None)
def describe(spec: ModelSpec) -> dict:
    """Weight counts (built on the meta device); raises if the spec sets a field its network does not read."""
    return models.describe(spec.name, spec)


def runs_of(exp: LotteryExperimentSpec) -> int:
    """Training jobs one experiment launches (runner.py): the IMP job of every level, a 'ticket' job per
    level >= 1 in mode continue, the controls of every control level, and each one-shot branch with its controls."""
    lot = exp.lottery
    controls = (lot.reinits + len(lot.random_controls) * lot.random_trials + lot.dm_reinits + len(lot.noise)
                + int(lot.prune_at_init))
    control_levels = len([k for k in lot.control_levels if 1 <= k <= lot.levels]) if lot.control_levels else lot.levels
    at_init = sum(len(levels) if levels else lot.levels for on, levels in ((lot.snip, lot.snip_levels),
                  (lot.iterative_snip, lot.iterative_snip_levels)) if on)
    decoupled = exp.eval is not None and exp.eval != exp.training   # a 'ticket' job at every level, 0 included
    tickets = lot.levels + 1 if decoupled else lot.levels if lot.mode == "continue" else 0
    per_trial = (lot.levels + 1 + tickets + control_levels * controls
                 + at_init + len(lot.flip_levels) * (lot.flip_rounds + 1)
                 + len(lot.oneshot) * (1 + controls + bool(lot.snip) + bool(lot.iterative_snip)))
    return lot.trials * per_trial


def final_pm(exp: LotteryExperimentSpec) -> float:
    """Pm (%) after the experiment's last level, predicted by the pruning schedule."""
    counts = describe(exp.model)
    if exp.pruning.scope == "global":  # one pool of every prunable tensor: its size alone fixes the counts
        assert set(exp.pruning.global_types) == {"conv", "fc", "output"}
        remaining = counts["prunable"]
        for _ in range(exp.lottery.levels):
            remaining -= pruning.removal_count(exp.pruning.global_rate, remaining)
        return 100 * (remaining + counts["weights"] - counts["prunable"]) / counts["weights"]
    model = models.build(exp.model)
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters() if n in model.weight_info()}
    return pruning.schedule(shapes, model.weight_info(), exp.pruning, exp.lottery.levels)[-1]["pm"]


def test_the_issues_presets_exist():
    assert set(ISSUE_NAMES) <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_preset_builds_valid_experiments(name):
    exps = experiments(name)
    assert exps and all(isinstance(e, LotteryExperimentSpec) for e in exps)
    assert len(exps) == len(presets.sweep_points(presets.load(name)))
    for exp in exps:
        describe(exp.model)  # model fields the network does not read are errors
        check_init(exp.model)
        # steps in iterations, as the paper counts them; a fixed-iteration accuracy exists only at an
        # evaluation point or the last step (runner reports the test accuracy logged there)
        steps, every = exp.training.steps, exp.training.eval_every
        assert all(s.unit == "it" for s in (steps, every, *exp.lottery.fixed_iterations))
        for s in exp.lottery.fixed_iterations:
            assert s.amount == steps.amount or s.amount % every.amount == 0, (name, s)
    # distinct points are distinct experiments in the store
    assert len({experiment_name(e) for e in exps}) == len(exps)


@pytest.mark.parametrize("name", NAMES)
def test_preset_meta(name):
    preset = presets.load(name)
    meta = preset["meta"]
    assert all(key in meta for key in META_KEYS), sorted(set(META_KEYS) - set(meta))
    assert all(isinstance(meta[k], str) and meta[k].strip() for k in META_KEYS if k not in ("figures", "runs"))
    if meta.get("paper") == "S4":   # the student report: its Figs 1-8 and Tables (T1-T7)
        assert meta["figures"] and all(re.fullmatch(r"[1-8]|T[1-7]", f) for f in meta["figures"])
    elif meta.get("paper") == "S0":   # the ResNet-50 / ImageNet results table
        assert meta["figures"] == ["T1"]
    elif meta.get("paper") == "S3":   # decoupled H_find / H_eval: Figs 1-9 and appendix figures A1-A17
        assert meta["figures"] and all(re.fullmatch(r"[1-9]|A([1-9]|1[0-7])", f) for f in meta["figures"])
    else:
        assert meta["figures"] and all(re.fullmatch(r"([1-9]|[1-3][0-9]|4[0-5])[abc]?", f) for f in meta["figures"])
    assert meta["command"].startswith(f"ticketlab lottery --preset {name}")
    assert re.search(rf"--preset {name}(\s|$)", meta["command"])
    assert "@" not in meta["runtime"] and "ms" in meta["runtime"]
    # the header repeats the command for readers; keep the two in step
    text = (resources.files("ticketlab.lottery") / "presets" / f"{name}.toml").read_text()
    assert text.splitlines()[0] == f"# {meta['command']}"
    # the run count the runtime estimate is built on matches what the runner will launch
    assert meta["runs"] == sum(runs_of(e) for e in experiments(name)), name


def test_figures_of_s1_are_covered():
    covered = {f.rstrip("abc") for name in NAMES for f in presets.load(name)["meta"]["figures"]
               if presets.load(name)["meta"].get("paper", "S1") == "S1"}
    # every [S1] experiment figure (Fig 2 is the architecture table)
    assert covered >= {str(i) for i in range(1, 46)} - {"2"}


def test_lenet_mnist():
    (exp,) = experiments("lenet_mnist")
    assert exp.model.name == "lenet" and exp.data.dataset == "mnist"
    assert (exp.lottery.trials, exp.lottery.reinits, exp.lottery.mode) == (5, 3, "reset")
    assert exp.lottery.fixed_iterations == (Step(50000),)
    assert exp.training.steps == Step(50000) and exp.training.lr == 1.2e-3 and exp.training.optimizer == "adam"
    assert (exp.pruning.rate_for("fc"), exp.pruning.rate_for("output")) == (0.2, 0.1)
    assert round(final_pm(exp), 2) == 0.26  # Fig 4's last tick, 0.3


@pytest.mark.parametrize("name, lr, steps, conv_rate, levels, pm", [
    ("conv2_cifar10", 2e-4, 20000, 0.10, 21, 1.02),
    ("conv4_cifar10", 3e-4, 25000, 0.10, 24, 1.28),
    ("conv6_cifar10", 3e-4, 30000, 0.15, 24, 1.27),
])
def test_conv_presets(name, lr, steps, conv_rate, levels, pm):
    (exp,) = experiments(name)
    assert exp.data.dataset == "cifar10" and exp.training.lr == lr and exp.training.steps == Step(steps)
    assert exp.pruning.scope == "layer" and exp.pruning.conv_rate == conv_rate
    assert (exp.pruning.rate_for("fc"), exp.pruning.rate_for("output")) == (0.2, 0.1)
    assert (exp.lottery.trials, exp.lottery.reinits, exp.lottery.levels) == (5, 3, levels)
    assert exp.lottery.fixed_iterations == (Step(steps),)
    assert round(final_pm(exp), 2) == pm  # PROTOCOL 1.2 / App. A


@pytest.mark.parametrize("name, model, points, levels, pm", [
    ("vgg19_cifar10", "vgg19", [(0.1, 0), (0.01, 0), (0.1, 10000)], 32, 0.10),
    ("resnet20_cifar10", "cifar_resnet20", [(0.1, 0), (0.01, 0), (0.03, 20000)], 14, 5.53),
])
def test_deep_network_presets(name, model, points, levels, pm):
    exps = experiments(name)
    assert [(e.training.lr, e.training.warmup.amount) for e in exps] == points
    for exp in exps:
        assert exp.model.name == model and exp.data.augment and exp.training.optimizer == "sgd"
        assert exp.pruning.scope == "global" and exp.pruning.global_rate == 0.2
        assert exp.lottery.levels == levels and exp.lottery.reinits >= 1
    assert round(final_pm(exps[0]), 2) == pm  # Figs 7/8's last ticks


@pytest.mark.parametrize("name", [n for n in NAMES if n.startswith(("vgg19", "resnet20"))])
def test_deep_network_scopes(name):
    for exp in experiments(name):
        if name.endswith("_layerwise"):
            assert exp.pruning.scope == "layer" and exp.pruning.conv_rate == 0.2
        else:
            assert exp.pruning.scope == "global" and exp.pruning.global_rate == 0.2


def test_a_sweep_point_can_change_the_network():
    # model.name in a sweep point picks that network's paper defaults, then the point's own values
    by_model = {e.model.name: e for e in experiments("conv_dropout")}
    assert [(e.training.lr, e.training.steps.amount, e.pruning.conv_rate, e.model.dropout) for e in by_model.values()] == [
        (3e-4, 60000, 0.1, 0.5), (2e-4, 75000, 0.1, 0.5), (2e-4, 90000, 0.15, 0.5)]
    assert all(e.data.dataset == "cifar10" for e in by_model.values())
    # App. H.2's temporary rates: Conv-6 at conv 10% in the learning-rate sweep
    assert {e.pruning.conv_rate for e in experiments("conv_lr_sweep")} == {0.1}


def test_lenet_oneshot_fractions():
    (exp,) = experiments("lenet_oneshot")
    fractions = exp.lottery.oneshot
    assert exp.lottery.levels == 0 and len(fractions) == 37
    assert fractions == tuple(sorted(fractions)) and (fractions[0], fractions[-1]) == (0.05, 0.95)
    # the axis labels (p = 0.125 i) and the text's values (PROTOCOL 1.3) are all on the grid
    assert {0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 0.325, 0.825} <= set(fractions)


@pytest.mark.parametrize("name", ["lenet_random_sparsity", "conv_random_sparsity"])
def test_random_sparsity(name):
    for exp in experiments(name):
        assert exp.lottery.random_controls == ("preserve_lpr",)
        assert exp.lottery.trials * exp.lottery.random_trials == 10  # Fig 1: ten random networks per point


def test_lenet_rate_sweep_levels_reach_the_axis_end():
    for exp in experiments("lenet_rate_sweep"):
        assert final_pm(exp) <= 0.3
        shorter = api.make_experiment("lenet", None, {"pruning.fc_rate": exp.pruning.fc_rate,
                                                        "lottery.levels": exp.lottery.levels - 1})
        assert final_pm(shorter) > 0.3  # no level more than needed


def test_cli_presets_json(capsys):
    assert main(["presets", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["name"] for row in rows] == NAMES
    for row in rows:
        assert set(row) == {"name", "meta", "settings", "sweep"}
        assert f"--preset {row['name']}" in row["meta"]["command"]


@pytest.mark.parametrize("name, kept", [
    ("s4_lenet_mnist", [213060, 170538, 136511, 109282, 87490, 70051, 56094, 44923, 35981, 28823]),
    ("s4_conv2_cifar10", [2658477, 2130485, 1707721, 1369177, 1098041, 880863, 706877, 567470, 455748, 366193])])
def test_s4_presets_reproduce_the_kept_columns(name, kept):
    """[S4] Tables 6/7 "Kept": the presets' schedules give them exactly (Conv-2 unpadded, PROTOCOL A6)."""
    (exp,) = experiments(name)
    model = models.build(exp.model, (1, 28, 28) if exp.model.name == "lenet" else (3, 32, 32), 10)
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters() if n in model.weight_info()}
    levels = pruning.schedule(shapes, model.weight_info(), exp.pruning, 10)
    assert [lv["weights_remaining"] for lv in levels[1:]] == kept
    assert exp.lottery.flip_levels == (7, 8) and exp.lottery.snip and exp.lottery.iterative_snip_levels == (7, 8, 9, 10)
    assert exp.training.patience == 4 and exp.training.eval_every.amount == 500


def test_s0_preset_follows_the_resnet50_recipe():
    """[S0]: 16K at constant lr 0.8, then per cycle 4,800 warmup + cosine over 48K from the 16K weights;
    conv-only global pruning whose counts stay within A17's +-200 of the paper's table."""
    from ticketlab.train.optim import Schedule
    (exp,) = experiments("s0_resnet50_imagenet")
    t, lot = exp.training, exp.lottery
    assert (t.optimizer, t.lr, t.momentum, t.weight_decay, t.batch_size) == ("sgd", 0.8, 0.9, 1e-4, 2048)
    assert (lot.mode, lot.rewind, lot.levels, lot.mask_source) == ("rewind", Step(16000), 18, "best")
    lr = Schedule(t, 625, 64000)
    assert lr(0) == lr(15999) == 0.8 and lr(16000) == 0 and lr(16000 + 4800) == pytest.approx(0.8) and lr(63999) < 1e-6
    assert exp.data.eval_sets == ("imagenet_v2", "imagenet_r", "imagenet_a", "imagenet_sketch") and exp.data.augment
    counts = describe(exp.model)
    assert counts["prunable"] == counts["conv"] == 23_454_912   # FC and BN never pruned
    paper = [23454912, 18764028, 15011282, 12009076, 9607294, 7685860, 6148710, 4918983, 3935188, 3148156,
             2518532, 2014828, 1611863, 1289491, 1031592, 825273, 660219, 528175, 422542]
    remaining = [counts["conv"]]
    for _ in range(lot.levels):
        remaining.append(remaining[-1] - pruning.removal_count(exp.pruning.global_rate, remaining[-1]))
    assert all(0 <= p - r <= 200 for p, r in zip(paper, remaining)), [p - r for p, r in zip(paper, remaining)]
