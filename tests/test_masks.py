"""Mask comparison ([S4] Tables 6-7) and layer-wise pruning ratio ([S3]): hand-computed numbers on
tiny masks, a set-based oracle on random ones, the file and store access, the plots and the CLI."""

import argparse
import json

import numpy as np
import pytest
import torch

from ticketlab import TicketlabError
from ticketlab import mask_cli
from ticketlab.analysis import masks
from ticketlab.analysis.mask_plots import plot_lpr, plot_overlap
from ticketlab.pruning import Mask
from ticketlab.store import index, layout


def bits(*values, shape=None):
    t = torch.tensor(values, dtype=torch.bool)
    return t.reshape(shape) if shape else t


@pytest.fixture
def pair():
    """fc1: |A|=|B|=4 of 8 with 2 shared; fc2: |A|=|B|=1 of 4, the same weight."""
    a = Mask({"fc1.weight": bits(1, 1, 1, 1, 0, 0, 0, 0, shape=(2, 4)), "fc2.weight": bits(1, 0, 0, 0)})
    b = Mask({"fc1.weight": bits(1, 1, 0, 0, 1, 1, 0, 0, shape=(2, 4)), "fc2.weight": bits(1, 0, 0, 0)})
    return a, b


def test_compare_matches_hand_computed_numbers(pair):
    result = masks.compare(*pair)
    fc1, fc2 = result["layers"]
    assert [fc1["name"], fc2["name"]] == ["fc1.weight", "fc2.weight"]
    assert {k: fc1[k] for k in ("n", "kept_a", "kept_b", "overlap", "difference", "symmetric_difference")} == \
        {"n": 8, "kept_a": 4, "kept_b": 4, "overlap": 2, "difference": 2, "symmetric_difference": 4}
    assert fc1["jaccard"] == pytest.approx(2 / 6)
    assert fc1["chance"] == pytest.approx(8 * 0.5 * 0.5) and fc1["ratio"] == pytest.approx(1.0)
    assert (fc2["overlap"], fc2["difference"], fc2["jaccard"]) == (1, 0, 1.0)
    assert fc2["chance"] == pytest.approx(4 * 0.25 ** 2) and fc2["ratio"] == pytest.approx(4.0)
    total = result["total"]
    assert (total["n"], total["kept_a"], total["overlap"], total["difference"], total["symmetric_difference"]) == (12, 5, 3, 2, 4)
    assert total["jaccard"] == pytest.approx(3 / 7)
    # Chance sums the per-layer values (Σ n_l d_l²), not n·d² of the pooled density (12·(5/12)² = 2.083).
    assert total["chance"] == pytest.approx(2.25) and total["ratio"] == pytest.approx(3 / 2.25)
    assert total["overlap_fraction"] == pytest.approx(3 / 5) and total["chance_fraction"] == pytest.approx(2.25 / 5)


def random_pair(kept_a, kept_b, seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = {"conv.weight": (4, 3, 3, 3), "fc.weight": (10, 20), "out.weight": (3, 10)}

    def mask(kept):
        out = {}
        for (name, shape), k in zip(shapes.items(), kept):
            flat = torch.zeros(int(np.prod(shape)), dtype=torch.bool)
            flat[torch.randperm(flat.numel(), generator=g)[:k]] = True
            out[name] = flat.reshape(shape)
        return Mask(out)
    return mask(kept_a), mask(kept_b)


@pytest.mark.parametrize("seed", range(5))
def test_compare_agrees_with_a_set_oracle_and_s4_difference_identity(seed):
    a, b = random_pair([50, 120, 9], [50, 120, 9], seed)  # equal counts, as LTH vs SNIP at one level
    result = masks.compare(a, b)
    for row in result["layers"]:
        sa = set(a[row["name"]].reshape(-1).nonzero().reshape(-1).tolist())
        sb = set(b[row["name"]].reshape(-1).nonzero().reshape(-1).tolist())
        assert row["overlap"] == len(sa & sb) and row["difference"] == len(sa - sb)
        assert row["symmetric_difference"] == len(sa ^ sb) and row["jaccard"] == pytest.approx(len(sa & sb) / len(sa | sb))
    total = result["total"]
    assert total["kept_a"] == total["kept_b"] == 179
    assert total["difference"] == total["kept_a"] - total["overlap"]  # [S4]'s "difference"
    assert total["symmetric_difference"] == 2 * total["difference"]

    a, b = random_pair([50, 120, 9], [30, 150, 20], seed)  # unequal counts: xor = |A∧¬B| + |B∧¬A|
    forward, backward = masks.compare(a, b)["total"], masks.compare(b, a)["total"]
    assert forward["symmetric_difference"] == forward["difference"] + backward["difference"]
    assert forward["overlap"] == backward["overlap"] and forward["chance"] == pytest.approx(backward["chance"])


def test_lpr_is_one_minus_kept_over_n_in_mask_order():
    mask = Mask({"z.weight": bits(1, 0, 0, 0, 0, 0, 0, 1), "a.weight": bits(1, 1, 1, 1), "m.weight": bits(0, 0)})
    assert list(masks.lpr(mask).items()) == [("z.weight", 0.75), ("a.weight", 0.0), ("m.weight", 1.0)]
    described = masks.describe(mask)
    assert [r["kept"] for r in described["layers"]] == [2, 4, 0]
    assert described["total"]["lpr"] == pytest.approx(1 - 6 / 14)


def test_masks_of_different_tensors_or_shapes_raise(pair):
    a, _ = pair
    reshaped = Mask({"fc1.weight": a["fc1.weight"].reshape(4, 2), "fc2.weight": a["fc2.weight"]})
    with pytest.raises(TicketlabError, match=r"fc1.weight \(2, 4\) vs \(4, 2\).*same model"):
        masks.compare(a, reshaped)
    with pytest.raises(TicketlabError, match="different tensors.*only in A: \\['fc2.weight'\\]"):
        masks.compare(a, Mask({"fc1.weight": a["fc1.weight"]}))


def test_format_compare_lists_every_layer_and_the_total(pair):
    text = masks.format_compare(masks.compare(*pair))
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["layer", "n", "kept", "A"]
    assert lines[1].startswith("fc1.weight") and lines[2].startswith("fc2.weight") and lines[-1].startswith("total")
    assert "0.4286" in lines[-1] and "2.2" in lines[-1]  # Jaccard 3/7, chance 2.25
    assert len({len(line) for line in lines}) == 1  # fixed width


def test_load_mask_from_file_job_dir_and_run_id(pair, tmp_path):
    a, _ = pair
    job = tmp_path / "store" / "train-abc"
    a.save(job / layout.MASK)
    assert masks.load_mask(job / layout.MASK).equals(a)
    assert masks.load_mask(str(job)).equals(a)
    index.record(tmp_path / "store", {"run_id": "abc", "path": str(job)})
    assert masks.load_mask("abc", store=tmp_path / "store").equals(a)
    with pytest.raises(TicketlabError, match="'nope' is not a mask file, a job directory, or a run id of store"):
        masks.load_mask("nope", store=tmp_path / "store")
    with pytest.raises(TicketlabError, match="neither a mask file nor a job directory.*--store"):
        masks.load_mask("nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TicketlabError, match="has no mask.npz"):
        masks.load_mask(tmp_path / "empty")
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes((job / layout.MASK).read_bytes()[:40])
    with pytest.raises(TicketlabError, match="corrupt or truncated.*rerun"):
        masks.load_mask(corrupt)


def lottery_store(tmp_path):
    """Two trials, levels 0-2 of 'main'; 'snip' only at levels 1-2 (and trial 1 level 2 not yet)."""
    store, root = tmp_path / "store", tmp_path / "store" / "lottery-x"
    for trial in (0, 1):
        for level in range(3):
            a, b = random_pair([100 >> level, 200 >> level, 30 >> level], [100 >> level, 200 >> level, 30 >> level],
                               seed=10 * trial + level)
            level_dir = layout.level_dir(layout.trial_dir(root, trial), level)
            a.save(level_dir / "main" / layout.MASK)
            index.record(store, {"experiment": "lottery-x", "kind": "lottery", "branch": "main", "trial": trial,
                                 "level": level, "pm": 99.0 / 2 ** level, "path": str(level_dir / "main")})
            if level > 0 and (trial, level) != (1, 2):
                b.save(level_dir / "snip" / layout.MASK)
    (root / "trial_0" / "level_9.tmp").mkdir()  # a stray folder is not a level
    return store


def test_overlap_by_level_pairs_the_branches_and_skips_missing_masks(tmp_path):
    store = lottery_store(tmp_path)
    rows = masks.overlap_by_level(store, "x", "main", "snip")
    assert [(r["trial"], r["level"]) for r in rows] == [(0, 1), (0, 2), (1, 1)]
    assert [r["pm"] for r in rows] == [49.5, 24.75, 49.5]  # from the index
    root = store / "lottery-x"
    for r in rows:
        level_dir = layout.level_dir(layout.trial_dir(root, r["trial"]), r["level"])
        expected = masks.compare(Mask.load(level_dir / "main" / layout.MASK), Mask.load(level_dir / "snip" / layout.MASK))
        assert r["overlap"] == expected["total"]["overlap"] and r["jaccard"] == expected["total"]["jaccard"]
    assert [r["trial"] for r in masks.overlap_by_level(store, "lottery-x", trials=[1])] == [1]
    with pytest.raises(TicketlabError, match="no experiment lottery-y"):
        masks.overlap_by_level(store, "y")

    series = masks.overlap_series(rows)
    pm, mean, lo, hi = series["jaccard"]
    assert list(pm) == [49.5, 24.75]  # Pm decreasing
    level1 = [r["jaccard"] for r in rows if r["level"] == 1]
    assert (mean[0], lo[0], hi[0]) == pytest.approx((np.mean(level1), min(level1), max(level1)))


def test_plots_write_png_and_pdf(pair, tmp_path):
    a, b = pair
    for path in plot_lpr({"A": a, "B": b}, tmp_path / "lpr"):
        assert path.suffix in (".png", ".pdf") and path.stat().st_size > 0
    rows = masks.overlap_by_level(lottery_store(tmp_path), "x")
    paths = plot_overlap(rows, tmp_path / "plots" / "overlap")
    assert sorted(p.name for p in paths) == ["overlap.pdf", "overlap.png"] and all(p.stat().st_size > 0 for p in paths)
    with pytest.raises(TicketlabError, match="no levels"):
        plot_overlap([], tmp_path / "none")


def run_cli(argv):
    parser = argparse.ArgumentParser(prog="ticketlab")
    mask_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    assert args.command == "masks"
    mask_cli.cmd_masks(args)


def test_cli_compare_and_show(pair, tmp_path, capsys):
    a, b = pair
    a.save(tmp_path / "a.npz")
    b.save(tmp_path / "b" / layout.MASK)
    run_cli(["masks", "compare", str(tmp_path / "a.npz"), str(tmp_path / "b"), "--json"])
    assert json.loads(capsys.readouterr().out) == masks.compare(a, b)
    run_cli(["masks", "compare", str(tmp_path / "a.npz"), str(tmp_path / "b"), "--plot", str(tmp_path / "cmp")])
    out = capsys.readouterr().out
    assert "total" in out and str(tmp_path / "cmp.png") in out and (tmp_path / "cmp.pdf").exists()

    run_cli(["masks", "show", str(tmp_path / "a.npz"), "--json", "--plot", str(tmp_path / "show")])
    captured = capsys.readouterr()
    assert [r["lpr"] for r in json.loads(captured.out)["layers"]] == [0.5, 0.75]
    assert "show.png" in captured.err and (tmp_path / "show.png").exists()
    with pytest.raises(TicketlabError, match="missing.npz' is not a mask file"):
        run_cli(["masks", "show", str(tmp_path / "missing.npz"), "--store", str(tmp_path / "nostore")])
