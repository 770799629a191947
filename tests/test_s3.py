"""[S3] on top of the lottery runner: LPR-constrained masks (PROTOCOL 1.20, lottery.lpr_from: another
experiment's per-layer counts at every level, this experiment's weights choosing which survive within each
layer) and early pruning (1.19: find runs trained shorter than the tickets)."""

import pytest
import torch

from ticketlab import TicketlabError, api, models
from ticketlab.pruning import Mask, prune
from ticketlab.pruning.magnitude import prune_to_counts
from ticketlab.store import layout
from ticketlab.store.artifacts import load_torch

QUICK = {"data.dataset": "synthetic", "data.val_size": 200, "model.hidden": "32,16", "training.steps": "60it",
         "training.eval_every": "20it", "lottery.levels": 3, "lottery.trials": 1, "lottery.reinits": 0}


def run(store, **overrides):
    exp = api.make_experiment("lenet", overrides={**QUICK, **overrides})
    return api.lottery(exp, store, progress=False, log=lambda *a: None)


def level_mask(root, level):
    return Mask.load(layout.level_dir(layout.trial_dir(root, 0), level) / "main" / layout.MASK)   # = the level's


def test_prune_to_counts_keeps_the_largest_weights_of_each_layer():
    weights = {"a": torch.tensor([[0.5, -3.0, 0.1], [2.0, -0.2, 1.0]]), "b": torch.tensor([4.0, -1.0, 0.3, 0.0])}
    mask = Mask.from_tensors({"a": torch.tensor([[True, True, True], [True, False, True]]), "b": torch.ones(4, dtype=torch.bool)})
    out = prune_to_counts(weights, mask, {"a": 2, "b": 3})
    assert out["a"].tolist() == [[False, True, False], [True, False, False]]   # -3.0 and 2.0; -0.2 was pruned already
    assert out["b"].tolist() == [True, True, True, False]
    with pytest.raises(TicketlabError, match="never revived"):
        prune_to_counts(weights, mask, {"a": 6, "b": 1})   # a keeps 5
    with pytest.raises(TicketlabError, match="counts for"):
        prune_to_counts(weights, mask, {"a": 1})


def test_a_global_run_held_to_a_layerwise_runs_counts(tmp_path):
    reference = run(tmp_path)   # layer-wise: fc 20%, output 10% per level
    free = run(tmp_path, **{"pruning.scope": "global", "training.lr": "0.003"})
    held = run(tmp_path, **{"pruning.scope": "global", "training.lr": "0.003", "lottery.lpr_from": reference.name})
    for level in range(1, 4):
        ref, mine, unconstrained = level_mask(reference, level), level_mask(held, level), level_mask(free, level)
        assert mine.layer_counts() == ref.layer_counts()             # the reference's LPR at every level
        assert mine.layer_counts() != unconstrained.layer_counts()   # which global pruning would not give
        assert not mine.equals(ref)                                  # but its own weights chose the survivors
        assert mine.is_subset_of(level_mask(held, level - 1))
        trained = load_torch(layout.level_dir(layout.trial_dir(held, 0), level - 1) / "main" / layout.FINAL)
        previous = level_mask(held, level - 1)
        assert prune_to_counts({n: trained[n] for n in previous}, previous, ref.layer_counts()).equals(mine)
    report = api.verify_lottery(held)
    assert report.ok, report.failures


def test_a_missing_reference_is_a_clear_error(tmp_path):
    with pytest.raises(TicketlabError, match="lottery-0123456789abcdef.*run that experiment"):
        run(tmp_path, **{"lottery.lpr_from": "lottery-0123456789abcdef"})
    with pytest.raises(TicketlabError, match="lpr_from names an experiment"):
        api.make_experiment("lenet", overrides={"lottery.lpr_from": "my-run"})


def test_early_pruning_finds_masks_from_short_runs_and_trains_tickets_to_the_end(tmp_path):
    root = run(tmp_path, **{"training.steps": "40it", "eval.steps": "80it", "lottery.levels": 2})
    rows = {(r["branch"], r["level"]): r for r in api.results(tmp_path)}
    assert {k: r["iterations"] for k, r in rows.items()} == {("main", 0): 40, ("ticket", 0): 80, ("main", 1): 40,
                                                            ("ticket", 1): 80, ("main", 2): 40, ("ticket", 2): 80}
    find = load_torch(layout.level_dir(layout.trial_dir(root, 0), 0) / "main" / layout.FINAL)   # at iteration 40
    exp = api.make_experiment("lenet", overrides={**QUICK, "training.steps": "40it", "eval.steps": "80it", "lottery.levels": 2})
    infos = models.build(exp.model, (1, 28, 28), 10).weight_info()
    full = level_mask(root, 0)
    assert prune(exp.pruning, {n: find[n] for n in full}, full, infos).equals(level_mask(root, 1))
    assert api.lottery_status(exp, tmp_path)["counts"]["done"] == 6
