"""Masks and pruning: the paper's counts (PROTOCOL Appendix A), torch.nn.utils.prune as an oracle,
and the properties every level relies on (masks only shrink, ties are deterministic, files are atomic).

Shapes are written out by hand rather than built from ticketlab.models, so these tests pin the
pruning rule independently of the model code.
"""

from __future__ import annotations

import dataclasses
import time

import pytest
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

import ticketlab.pruning.mask as mask_module
from ticketlab import TicketlabError
from ticketlab.pruning import STRATEGIES, Mask, apply_mask, mask_gradients, prune, random_like, schedule
from ticketlab.pruning.schedule import removal_count
from ticketlab.spec import PruningSpec

# ----------------------------------------------------------------------------- architectures by hand

@dataclasses.dataclass(frozen=True)
class WeightInfo:
    """Stand-in for ticketlab.models.base.WeightInfo (same fields): pruning reads only these two."""

    kind: str
    prunable: bool


FC, OUT, CONV = WeightInfo("fc", True), WeightInfo("output", True), WeightInfo("conv", True)
FIXED_CONV, FIXED_OUT = WeightInfo("conv", False), WeightInfo("output", False)


def lenet():
    shapes = {"fc1": (300, 784), "fc2": (100, 300), "out": (10, 100)}
    return shapes, {"fc1": FC, "fc2": FC, "out": OUT}


def convnet(channels, flat, fc_in=None):
    """Conv-2/4/6: 3x3 convs at ``channels``, then FC ``flat``->256->256->10."""
    shapes, infos, c_in = {}, {}, 3
    for i, c in enumerate(channels):
        shapes[f"conv{i}"], infos[f"conv{i}"], c_in = (c, c_in, 3, 3), CONV, c
    shapes.update(fc1=(256, flat), fc2=(256, 256), out=(10, 256))
    infos.update(fc1=FC, fc2=FC, out=OUT)
    return shapes, infos


def resnet20():
    """[S1]'s "Resnet-18": 3x3 convs pooled; 1x1 projections and the FC never pruned (PROTOCOL A5)."""
    shapes = {"stem": (16, 3, 3, 3)}
    for stage, (c_in, c) in enumerate([(16, 16), (16, 32), (32, 64)], start=1):
        for j in range(6):
            shapes[f"s{stage}.conv{j}"] = (c, c_in if j == 0 else c, 3, 3)
        if c_in != c:
            shapes[f"s{stage}.proj"] = (c, c_in, 1, 1)
    shapes["fc"] = (10, 64)
    infos = {n: (FIXED_CONV if n.endswith("proj") else FIXED_OUT if n == "fc" else CONV) for n in shapes}
    return shapes, infos


def vgg19():
    plan = [64, 64, 128, 128, 256, 256, 256, 256] + [512] * 8
    shapes, c_in = {}, 3
    for i, c in enumerate(plan):
        shapes[f"conv{i}"], c_in = (c, c_in, 3, 3), c
    shapes["fc"] = (10, 512)
    # The FC is prunable but outside global_types: under scope='global' it keeps its mask.
    return shapes, {n: (OUT if n == "fc" else CONV) for n in shapes}


GLOBAL_CONV = PruningSpec(scope="global", global_rate=0.2, global_types=("conv",))

# ----------------------------------------------------------------------------- Appendix A, exactly

LENET_WEIGHTS = [266200, 213060, 170538, 136511, 109282, 87490, 70051, 56094, 44923, 35981, 28823, 23093,
                 18506, 14834, 11893, 9537, 7650, 6139, 4928, 3958, 3179, 2556, 2056, 1655, 1332, 1074,
                 866, 700, 565, 457, 370]
LENET_PM = ["100.00", "80.04", "64.06", "51.28", "41.05", "32.87", "26.32", "21.07", "16.88", "13.52", "10.83",
            "8.68", "6.95", "5.57", "4.47", "3.58", "2.87", "2.31", "1.85", "1.49", "1.19", "0.96", "0.77",
            "0.62", "0.50", "0.40", "0.33", "0.26", "0.21", "0.17", "0.14"]
S4_TABLE6_KEPT = [213060, 170538, 136511, 109282, 87490, 70051, 56094, 44923, 35981, 28823]

TABLES = {
    "conv2": (convnet([64, 64], 16384), PruningSpec(conv_rate=0.1), dict(enumerate(zip(
        [4300992, 3444909, 2759630, 2211037, 1771829, 1420163, 1138560, 913035, 732396, 587689, 471746,
         378833, 304358, 244649, 196766, 158355],
        ["100.00", "80.10", "64.16", "51.41", "41.20", "33.02", "26.47", "21.23", "17.03", "13.66", "10.97",
         "8.81", "7.08", "5.69", "4.57", "3.68"])))),
    "conv2_unpadded": (convnet([64, 64], 12544), PruningSpec(conv_rate=0.1), dict(enumerate(zip(
        [3317952, 2658477, 2130485, 1707721, 1369177, 1098041, 880863, 706877, 567470, 455748, 366193,
         294391, 236805],
        ["100.00", "80.12", "64.21", "51.47", "41.27", "33.09", "26.55", "21.30", "17.10", "13.74", "11.04",
         "8.87", "7.14"])))),
    "conv4": (convnet([64, 64, 128, 128], 8192), PruningSpec(conv_rate=0.1), dict(enumerate(zip(
        [2425024, 1966253, 1596612, 1298538, 1057954, 863575, 706350, 579022, 475765, 391904, 323687,
         268098, 222711, 185578, 155132, 130107],
        ["100.00", "81.08", "65.84", "53.55", "43.63", "35.61", "29.13", "23.88", "19.62", "16.16", "13.35",
         "11.06", "9.18", "7.65", "6.40", "5.37"])))),
    "conv6": (convnet([64, 64, 128, 128, 256, 256], 4096), PruningSpec(conv_rate=0.15), dict(enumerate(zip(
        [2261184, 1866429, 1542017, 1275167, 1055464, 874412, 725072, 601776, 499889, 415615, 345845,
         288033, 240084, 200280, 167209, 139708],
        ["100.00", "82.54", "68.20", "56.39", "46.68", "38.67", "32.07", "26.61", "22.11", "18.38", "15.29",
         "12.74", "10.62", "8.86", "7.39", "6.18"])))),
    "resnet20": (resnet20(), GLOBAL_CONV, dict(enumerate(zip(
        [270896, 217357, 174526, 140261, 112849, 90919, 73375, 59340, 48112, 39130, 31944, 26195, 21596,
         17917, 14974, 12619, 10735],
        ["100.00", "80.24", "64.43", "51.78", "41.66", "33.56", "27.09", "21.91", "17.76", "14.44", "11.79",
         "9.67", "7.97", "6.61", "5.53", "4.66", "3.96"])))),
    "vgg19": (vgg19(), GLOBAL_CONV, dict(zip(
        [0, 4, 8, 12, 15, 16, 19, 20, 24, 28, 32],
        zip([20024000, 8204853, 3363730, 1380806, 709471, 568601, 293622, 235922, 99657, 43842, 20981],
            ["100.00", "40.98", "16.80", "6.90", "3.54", "2.84", "1.47", "1.18", "0.50", "0.22", "0.10"])))),
}


def test_appendix_a_lenet_and_s4_table6():
    shapes, infos = lenet()
    rows = schedule(shapes, infos, PruningSpec(), levels=30)
    assert [r["weights_remaining"] for r in rows] == LENET_WEIGHTS
    assert [f"{r['pm']:.2f}" for r in rows] == LENET_PM
    assert [r["weights_remaining"] for r in rows[1:11]] == S4_TABLE6_KEPT
    assert [r["level"] for r in rows] == list(range(31))
    assert rows[1]["layers"] == {"fc1": 188160, "fc2": 24000, "out": 900}


@pytest.mark.parametrize("network", sorted(TABLES))
def test_appendix_a_tables(network):
    (shapes, infos), spec, table = TABLES[network]
    rows = schedule(shapes, infos, spec, levels=max(table))
    for level, (weights, pm) in table.items():
        assert rows[level]["weights_remaining"] == weights, (network, level)
        assert f"{rows[level]['pm']:.2f}" == pm, (network, level)


def test_appendix_a_global_rows_report_the_pool():
    shapes, infos = resnet20()
    rows = schedule(shapes, infos, GLOBAL_CONV, levels=2)
    assert rows[0]["pool_remaining"] == 267696
    assert rows[1]["pool_remaining"] == 267696 - round(0.2 * 267696)
    assert rows[1]["layers"]["stem"] is None
    assert (rows[1]["layers"]["s2.proj"], rows[1]["layers"]["s3.proj"], rows[1]["layers"]["fc"]) == (512, 2048, 640)
    assert schedule(*vgg19(), GLOBAL_CONV, levels=1)[1]["layers"]["fc"] == 5120  # prunable, not pooled


def test_appendix_a_conv6_at_ten_percent_and_lenet_one_shot():
    rows = schedule(*convnet([64, 64, 128, 128, 256, 256], 4096), PruningSpec(conv_rate=0.1), levels=30)
    expected = {3: "62.21", 6: "39.88", 9: "26.27", 11: "20.15", 12: "17.71", 13: "15.60", 15: "12.18",
                17: "9.57", 18: "8.50", 21: "6.01", 24: "4.28", 27: "3.07", 30: "2.21"}
    assert {k: f"{rows[k]['pm']:.2f}" for k in expected} == expected
    one_shot = {0.05: 95.01, 0.375: 62.57, 0.5: 50.09, 0.825: 17.655, 0.95: 5.178}
    for p, pm in one_shot.items():
        assert schedule(*lenet(), PruningSpec(fc_rate=p), levels=1)[1]["pm"] == pytest.approx(pm, abs=0.006)


# ----------------------------------------------------------------------------- prune() agrees with schedule()

def random_weights(shapes, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randn(s, generator=g, dtype=dtype) for n, s in shapes.items()}


def prunable_mask(shapes, infos):
    return Mask.ones({n: s for n, s in shapes.items() if infos[n].prunable})


@pytest.mark.parametrize("strategy", ["magnitude", "random"])
def test_prune_counts_equal_schedule_layer_scope(strategy):
    shapes, infos = lenet()
    spec = PruningSpec(strategy=strategy)
    rows = schedule(shapes, infos, spec, levels=12)
    mask, g = prunable_mask(shapes, infos), torch.Generator().manual_seed(1)
    for row in rows[1:]:
        mask = prune(spec, random_weights(shapes, seed=row["level"]), mask, infos, generator=g)
        assert mask.layer_counts() == row["layers"]


@pytest.mark.parametrize("strategy", ["magnitude", "random"])
def test_prune_counts_equal_schedule_global_scope(strategy):
    shapes, infos = resnet20()
    spec = dataclasses.replace(GLOBAL_CONV, strategy=strategy)
    rows = schedule(shapes, infos, spec, levels=6)
    mask, g = prunable_mask(shapes, infos), torch.Generator().manual_seed(1)
    for row in rows[1:]:
        mask = prune(spec, random_weights(shapes, seed=row["level"]), mask, infos, generator=g)
        assert mask.count() == row["pool_remaining"]
        assert mask.count() + 512 + 2048 + 640 == row["weights_remaining"]


def test_ties_keep_reproduces_ext_a_rule_and_s0s_extra_survivors():
    """[EXT-a]: score = fl32(|w|+1)-1, keep score >= the k-th largest. At ResNet-50-like magnitudes
    (|w| ~ 1e-2) the +1 rounds scores to multiples of 2**-23, so ties keep a few more than the count
    (PROTOCOL A17: [S0]'s table lies +16..+162 above 0.8^k), never fewer; 'index' keeps the count exactly.
    Here: 267K weights at std 5e-4, tens of them per 2**-23 step near the threshold, as ResNet-50's 23M at ~1e-2."""
    shapes, infos = resnet20()
    weights = {n: w * 5e-4 for n, w in random_weights(shapes, seed=3).items()}
    start = prunable_mask(shapes, infos)
    exact = prune(GLOBAL_CONV, weights, start, infos)
    tied = prune(dataclasses.replace(GLOBAL_CONV, ties="keep"), weights, start, infos)
    pool = [n for n in start if infos[n].kind == "conv"]
    target = start.count() - removal_count(0.2, sum(start.layer_counts()[n] for n in pool))
    assert exact.count() == target and 0 < tied.count() - target < 200
    assert all(bool((exact[n] <= tied[n]).all()) for n in start)   # the exact mask is inside the tied one
    score = {n: (weights[n].abs() + 1) - 1 for n in pool}            # the rule itself, written out
    kept = torch.cat([score[n][tied[n]] for n in pool])
    dropped = torch.cat([score[n][~tied[n]] for n in pool])
    assert kept.min() > dropped.max()
    threshold = torch.sort(torch.cat([score[n].reshape(-1) for n in pool]), descending=True).values[target - 1]
    assert kept.min() == threshold and tied.count() == int(sum((score[n] >= threshold).sum() for n in pool))
    with pytest.raises(TicketlabError, match="pruning.ties must be 'index' or 'keep'"):
        PruningSpec(ties="first")


def test_global_scope_leaves_unpooled_tensors_alone():
    shapes, infos = vgg19()
    shapes = {n: (s[0] // 8, max(s[1] // 8, 1), *s[2:]) for n, s in shapes.items()}  # small, same structure
    mask = prunable_mask(shapes, infos)
    for level in range(3):
        mask = prune(GLOBAL_CONV, random_weights(shapes, seed=level), mask, infos)
    assert bool(mask["fc"].all())
    assert mask.count() < mask.size()


# ----------------------------------------------------------------------------- oracle: torch.nn.utils.prune

def oracle_net():
    """Mixed conv / fc / output tensors with float64 normal weights (ties have probability ~0)."""
    shapes = {"conv": (8, 3, 3, 3), "fc1": (64, 72), "fc2": (32, 64), "out": (10, 32)}
    infos = {"conv": CONV, "fc1": FC, "fc2": FC, "out": OUT}
    modules = {n: nn.Conv2d(3, 8, 3, bias=False) if n == "conv" else nn.Linear(s[1], s[0], bias=False)
               for n, s in shapes.items()}
    return shapes, infos, modules


def load_weights(modules, weights):
    with torch.no_grad():
        for n, m in modules.items():
            m.weight = nn.Parameter(weights[n].clone())


@pytest.mark.parametrize("amount_as", ["int", "float"])
def test_global_magnitude_matches_torch_global_unstructured(amount_as):
    shapes, infos, modules = oracle_net()
    spec = PruningSpec(scope="global", global_rate=0.3, global_types=("conv", "fc"))
    pooled = ["conv", "fc1", "fc2"]
    w1, w2 = random_weights(shapes, 1, torch.float64), random_weights(shapes, 2, torch.float64)
    load_weights(modules, w1)
    params = [(modules[n], "weight") for n in pooled]
    ours = prunable_mask(shapes, infos)

    # Round 2 ranks fresh "retrained" weights w2. torch ranks getattr(module, 'weight') by default,
    # which is stale until a forward pass, so the scores are passed explicitly. On a tensor that
    # already carries weight_mask, torch's PruningContainer applies the new method only to the
    # entries whose mask is still 1: an int amount is a count *among the survivors*, and a float
    # amount is round(amount * survivors) -- the same rule as ours. Old zeros stay zero.
    for weights in (w1, w2):
        survivors = sum(ours.layer_counts()[n] for n in pooled)
        amount = removal_count(spec.global_rate, survivors) if amount_as == "int" else spec.global_rate
        torch_prune.global_unstructured(params, pruning_method=torch_prune.L1Unstructured, amount=amount,
                                        importance_scores={(modules[n], "weight"): weights[n] for n in pooled})
        ours = prune(spec, weights, ours, infos)
        for n in pooled:
            assert torch.equal(ours[n], modules[n].weight_mask.bool()), n
        assert bool(ours["out"].all())  # output is outside global_types
    assert ours.count() == schedule(shapes, infos, spec, levels=2)[2]["weights_remaining"]


def test_layer_magnitude_matches_torch_l1_unstructured():
    shapes, infos, modules = oracle_net()
    spec = PruningSpec(conv_rate=0.1, fc_rate=0.2)
    ours = prunable_mask(shapes, infos)
    for seed in (1, 2, 3):
        weights = random_weights(shapes, seed, torch.float64)
        counts = ours.layer_counts()
        for n, module in modules.items():  # same count per layer; torch picks among survivors (see above)
            k = removal_count(spec.rate_for(infos[n].kind), counts[n])
            torch_prune.l1_unstructured(module, "weight", amount=k, importance_scores=weights[n])
        ours = prune(spec, weights, ours, infos)
        for n, module in modules.items():
            assert torch.equal(ours[n], module.weight_mask.bool()), (seed, n)


# ----------------------------------------------------------------------------- properties

@pytest.mark.parametrize("strategy,scope", [("magnitude", "layer"), ("magnitude", "global"),
                                            ("random", "layer"), ("random", "global")])
def test_masks_only_shrink_and_never_revive(strategy, scope):
    shapes, infos = convnet([8, 8], 8 * 8 * 8)
    spec = PruningSpec(strategy=strategy, scope=scope, global_rate=0.25)
    mask, g = prunable_mask(shapes, infos), torch.Generator().manual_seed(0)
    for level in range(20):
        weights = random_weights(shapes, seed=level)
        for n in mask:  # pruned positions get the largest magnitudes: a reviving rule would keep them
            weights[n][~mask[n]] = 1e6
        new = prune(spec, weights, mask, infos, generator=g)
        assert new.is_subset_of(mask)
        assert new.count() < mask.count() or mask.count() == 0
        mask = new


def test_ties_are_deterministic_and_prune_lowest_index_first():
    infos = {"a": FC, "b": FC}
    weights = {"a": torch.ones(10, 10), "b": torch.ones(5, 4)}
    mask = Mask.ones({n: w.shape for n, w in weights.items()})
    first = prune(PruningSpec(), weights, mask, infos)
    assert first.equals(prune(PruningSpec(), weights, mask, infos))
    assert torch.equal(first["a"].reshape(-1), torch.arange(100) >= 20)
    assert torch.equal(first["b"].reshape(-1), torch.arange(20) >= 4)
    # Global pool: stable over the concatenation in mask order, so 'a' loses first.
    pooled = prune(PruningSpec(scope="global", global_rate=0.5), weights, mask, infos)
    assert pooled.layer_counts() == {"a": 40, "b": 20}
    assert torch.equal(pooled["a"].reshape(-1), torch.arange(100) >= 60)
    # Ties among survivors after a round still go to the lowest surviving index.
    second = prune(PruningSpec(), weights, first, infos)
    assert torch.equal(second["a"].reshape(-1), torch.arange(100) >= 36)


def test_drop_lowest_equals_a_stable_sort_under_heavy_ties():
    """The O(n) selection must pick exactly the first k of a stable sort over the survivors."""
    g = torch.Generator().manual_seed(0)
    shapes = {"a": (30, 7), "b": (11,), "c": (4, 5, 6)}
    mask = Mask.from_tensors({n: torch.rand(s, generator=g) > 0.3 for n, s in shapes.items()})
    scores = {n: torch.randint(0, 5, s, generator=g).float() for n, s in shapes.items()}
    survivors = torch.cat([scores[n].reshape(-1)[mask[n].reshape(-1)] for n in shapes])
    positions = torch.cat([mask[n].reshape(-1).nonzero().squeeze(1) + 1000 * i for i, n in enumerate(shapes)])
    for k in (0, 1, 17, 60, survivors.numel()):
        dropped = mask.drop_lowest(scores, k)
        expected = set(positions[torch.sort(survivors, stable=True).indices[:k]].tolist())
        removed = [(mask[n] & ~dropped[n]).reshape(-1).nonzero().squeeze(1) + 1000 * i for i, n in enumerate(shapes)]
        gone = set(torch.cat(removed).tolist())
        assert gone == expected, k
        assert dropped.is_subset_of(mask) and dropped.count() == mask.count() - k


def test_magnitude_ranks_by_absolute_value():
    w = torch.tensor([[-5.0, 0.1, -0.2, 3.0, -0.05]])
    mask = prune(PruningSpec(fc_rate=0.4), {"w": w}, Mask.ones({"w": w.shape}), {"w": FC})
    assert mask["w"].tolist() == [[True, False, True, True, False]]


def test_non_finite_weights_are_rejected():
    w = torch.tensor([[1.0, float("nan"), 2.0]])
    with pytest.raises(TicketlabError, match="diverged"):
        prune(PruningSpec(), {"w": w}, Mask.ones({"w": w.shape}), {"w": FC})


# ----------------------------------------------------------------------------- Mask value, hash, files

def sample_mask(seed=0):
    g = torch.Generator().manual_seed(seed)
    return Mask.from_tensors({"a": torch.rand(7, 9, generator=g) > 0.3, "b": torch.rand(13, generator=g) > 0.6,
                              "c": torch.rand(2, 3, 5, generator=g) > 0.5})


def test_mask_counts_and_algebra():
    m = sample_mask()
    assert m.size() == 63 + 13 + 30
    assert m.count() == sum(m.layer_counts().values()) == sum(int(t.sum()) for t in m.values())
    assert m.density() == pytest.approx(m.count() / m.size())
    assert m.layer_density()["b"] == pytest.approx(m.layer_counts()["b"] / 13)
    other = sample_mask(1)
    both = m & other
    assert both.is_subset_of(m) and both.is_subset_of(other)
    assert not m.is_subset_of(both)  # the two random masks differ, so the intersection is smaller
    assert (~m).count() == m.size() - m.count()
    assert (m & ~m).count() == 0
    assert (~~m).equals(m) and m == sample_mask() and m != other
    with pytest.raises(TicketlabError):
        m & Mask.ones({"a": (7, 9)})


def test_from_tensors_copies_and_binarizes():
    source = torch.tensor([0.0, 2.0, -1.0])
    m = Mask.from_tensors({"w": source})
    source.zero_()
    assert m["w"].dtype == torch.bool and m["w"].tolist() == [False, True, True]


def test_hash_is_stable_and_content_sensitive(tmp_path):
    m = sample_mask()
    reordered = Mask.from_tensors({n: m[n] for n in reversed(list(m))})
    assert reordered.hash() == m.hash()
    assert m.to("cpu").hash() == m.hash()
    if torch.cuda.is_available():
        assert m.to("cuda").hash() == m.hash()
    m.save(tmp_path / "m.npz")
    assert Mask.load(tmp_path / "m.npz").hash() == m.hash()
    flipped = {n: t.clone() for n, t in m.items()}
    flipped["c"].view(-1)[17] ^= True
    assert Mask.from_tensors(flipped).hash() != m.hash()
    renamed = Mask.from_tensors({("z" if n == "a" else n): t for n, t in m.items()})
    assert renamed.hash() != m.hash()


def test_save_load_roundtrip_is_bit_exact(tmp_path):
    m = sample_mask()
    path = tmp_path / "sub" / "mask.npz"
    m.save(path)
    loaded = Mask.load(path)
    assert list(loaded) == list(m)  # insertion order survives too
    assert all(torch.equal(loaded[n], m[n]) and loaded[n].dtype == torch.bool for n in m)
    # Compact: bit-packed (a 1M-weight dense mask is far smaller than 1 MB).
    Mask.ones({"big": (1000, 1000)}).save(tmp_path / "big.npz")
    assert (tmp_path / "big.npz").stat().st_size < 10_000


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip_byte", "empty"])
def test_corrupt_files_raise_ticketlab_error(tmp_path, damage):
    path = tmp_path / "mask.npz"
    sample_mask().save(path)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a mask at all" * 10)
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        corrupted = bytearray(data)
        corrupted[60] ^= 0xFF  # inside the first member's data
        path.write_bytes(bytes(corrupted))
    with pytest.raises(TicketlabError, match="mask.npz.*delete it"):
        Mask.load(path)


def test_missing_file_raises_ticketlab_error(tmp_path):
    with pytest.raises(TicketlabError, match="does not exist"):
        Mask.load(tmp_path / "nope.npz")


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "mask.npz"
    old = sample_mask(0)
    old.save(path)

    def write_half_then_crash(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(mask_module.np, "savez_compressed", write_half_then_crash)
    with pytest.raises(OSError):
        sample_mask(1).save(path)
    assert Mask.load(path).equals(old)
    assert [p.name for p in tmp_path.iterdir()] == ["mask.npz"]  # no temporary left behind


# ----------------------------------------------------------------------------- random masks

def test_random_like_per_layer_counts_seeds_and_lpr_alias():
    shapes, infos = convnet([16, 16], 16 * 8 * 8)
    reference = prune(PruningSpec(), random_weights(shapes), prunable_mask(shapes, infos), infos)
    reference = prune(PruningSpec(), random_weights(shapes, 1), reference, infos)
    dense = prunable_mask(shapes, infos)

    def draw(seed, mode="per_layer"):
        return random_like(dense, torch.Generator().manual_seed(seed), mode=mode, reference=reference)

    a = draw(0)
    assert a.layer_counts() == reference.layer_counts()
    assert a.equals(draw(0)) and a.equals(draw(0, "preserve_lpr"))
    assert not a.equals(draw(1))
    assert not a.equals(reference)
    # Nested: candidates restricted to a previous mask.
    nested = random_like(a, torch.Generator().manual_seed(2), mode="per_layer",
                         reference=prune(PruningSpec(), random_weights(shapes, 3), reference, infos))
    assert nested.is_subset_of(a)


def test_random_like_global_is_uniform_across_layers():
    shapes = {f"l{i}": (n, 100) for i, n in enumerate([50, 200, 400, 800, 1600])}
    dense = Mask.ones(shapes)
    reference = Mask.from_tensors({n: torch.arange(dense[n].numel()).view(dense[n].shape) < (40 if n == "l0" else 1000)
                                   for n in shapes})
    g = torch.Generator().manual_seed(0)
    m = random_like(dense, g, mode="global", reference=reference)
    assert m.count() == reference.count()
    density = reference.count() / dense.size()
    for name in ("l2", "l3", "l4"):  # >= 40,000 positions: binomial sd < 0.003
        assert m.layer_density()[name] == pytest.approx(density, abs=0.02)
    assert not m.equals(random_like(dense, torch.Generator().manual_seed(1), mode="global", reference=reference))
    assert m.equals(random_like(dense, torch.Generator().manual_seed(0), mode="global", reference=reference))


def test_random_errors():
    dense = Mask.ones({"w": (4, 4)})
    with pytest.raises(TicketlabError, match="per_layer"):
        random_like(dense, torch.Generator(), mode="uniform", reference=dense)
    with pytest.raises(TicketlabError, match="Generator"):
        prune(PruningSpec(strategy="random"), {"w": torch.randn(4, 4)}, dense, {"w": FC})
    small = random_like(dense, torch.Generator().manual_seed(0), mode="per_layer", reference=~dense)
    with pytest.raises(TicketlabError, match="candidates"):
        random_like(small, torch.Generator(), mode="per_layer", reference=dense)


def test_random_prune_is_seeded():
    shapes, infos = lenet()
    spec, weights = PruningSpec(strategy="random"), random_weights(shapes)

    def run(seed):
        return prune(spec, weights, prunable_mask(shapes, infos), infos, generator=torch.Generator().manual_seed(seed))

    assert run(0).equals(run(0)) and not run(0).equals(run(1))


# ----------------------------------------------------------------------------- masked training helpers

def test_apply_mask_and_mask_gradients_zero_exactly_the_pruned_entries():
    g = torch.Generator().manual_seed(0)
    params = {"a": nn.Parameter(torch.randn(6, 5, generator=g)), "b": nn.Parameter(torch.randn(7, generator=g))}
    before = {n: p.detach().clone() for n, p in params.items()}
    mask = Mask.from_tensors({n: torch.rand(p.shape, generator=g) > 0.5 for n, p in params.items()})
    (sum((p ** 2).sum() for p in params.values())).backward()
    params["a"].data[0, 0] = float("nan")  # a pruned NaN must still become exactly 0
    mask = Mask.from_tensors({**mask, "a": mask["a"].clone().index_put_((torch.tensor([0]), torch.tensor([0])),
                                                                          torch.tensor(False))})
    apply_mask(params, mask)
    mask_gradients(params, mask)
    for n, p in params.items():
        m = mask[n]
        assert torch.equal(p.detach()[m], before[n][m])
        assert bool((p.detach()[~m] == 0).all()) and not bool(torch.signbit(p.detach()[~m]).any())
        assert bool((p.grad[~m] == 0).all()) and torch.equal(p.grad[m], 2 * before[n][m])
    with pytest.raises(TicketlabError, match="different model"):
        apply_mask({"a": params["a"]}, mask)


# ----------------------------------------------------------------------------- registry and validation

def test_rate_of_one_is_rejected():
    shapes, infos = lenet()
    with pytest.raises(TicketlabError, match="fc_rate"):
        prune(dataclasses.replace(PruningSpec(), fc_rate=1.0), random_weights(shapes),
              prunable_mask(shapes, infos), infos)
    with pytest.raises(TicketlabError, match=r"\[0, 1\)"):
        removal_count(1.0, 10)


def test_registry_errors():
    shapes, infos = lenet()
    weights, mask = random_weights(shapes), prunable_mask(shapes, infos)
    assert set(STRATEGIES) >= {"magnitude", "random"}
    bad = PruningSpec(strategy="snipp")
    with pytest.raises(TicketlabError, match="magnitude.*random"):
        prune(bad, weights, mask, infos)
    with pytest.raises(TicketlabError, match="unprunable"):
        prune(PruningSpec(), weights, mask, {**infos, "out": FIXED_OUT})
    with pytest.raises(TicketlabError, match="shapes differ"):
        prune(PruningSpec(), {**weights, "out": torch.randn(10, 99)}, mask, infos)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_masks_equal_cpu_masks():
    shapes, infos = lenet()
    weights, mask = random_weights(shapes), prunable_mask(shapes, infos)
    for spec in (PruningSpec(), PruningSpec(scope="global")):
        cpu = prune(spec, weights, mask, infos)
        cuda = prune(spec, {n: w.cuda() for n, w in weights.items()}, mask.to("cuda"), infos)
        assert cuda["fc1"].is_cuda and cuda.equals(cpu) and cuda.hash() == cpu.hash()
        params = {n: w.cuda() for n, w in weights.items()}
        apply_mask(params, cpu)  # a CPU mask applies to CUDA weights
        assert all(bool((params[n][~cpu[n].cuda()] == 0).all()) for n in cpu)


def test_big_global_prune_is_fast():
    """A VGG-19-sized pool (20M weights) in one global round: the sort must stay a single pass."""
    shapes, infos = vgg19()
    weights = {n: torch.randn(s) for n, s in shapes.items()}
    start = time.perf_counter()
    mask = prune(GLOBAL_CONV, weights, prunable_mask(shapes, infos), infos)
    assert mask.count() == schedule(shapes, infos, GLOBAL_CONV, levels=1)[1]["weights_remaining"]
    assert time.perf_counter() - start < 15
