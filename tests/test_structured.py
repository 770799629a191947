"""Structured pruning (pruning.strategy=structured, [S3] Fig 5): whole filters and neurons, checked against
torch.nn.utils.prune.ln_structured, the schedule's predicted counts, and a one-shot lottery run."""

import pytest
import torch
import torch.nn.utils.prune as torch_prune

from ticketlab import TicketlabError, api, models
from ticketlab.pruning import Mask, prune, schedule
from ticketlab.spec import PruningSpec, apply_overrides
from ticketlab.store import layout


def conv2_weights(seed=0):
    model = models.build(api.make_spec("conv2").model, (3, 32, 32), 10)
    g = torch.Generator().manual_seed(seed)
    weights = {n: torch.randn(p.shape, generator=g) for n, p in model.prunable_weights().items()}
    return model, weights, Mask.ones({n: w.shape for n, w in weights.items()})


@pytest.mark.parametrize("norm, n", [("l1", 1), ("l2", 2)])
def test_one_layerwise_round_equals_torch_ln_structured(norm, n):
    model, weights, mask = conv2_weights()
    spec = PruningSpec(strategy="structured", conv_rate=0.25, fc_rate=0.3, structure_norm=norm)
    infos = model.weight_info()
    out = prune(spec, weights, mask, infos)
    for name, w in weights.items():
        if infos[name].kind == "output":
            assert out[name].all()   # classes are never removed
            continue
        amount = round(spec.rate_for(infos[name].kind) * w.shape[0])
        holder = torch.nn.Module()
        holder.weight = torch.nn.Parameter(w.clone())
        torch_prune.ln_structured(holder, "weight", amount=amount, n=n, dim=0)
        assert torch.equal(out[name], holder.weight_mask.bool()), name


def test_rounds_remove_whole_units_nested_at_the_schedules_counts():
    model, weights, mask = conv2_weights(1)
    spec = PruningSpec(strategy="structured", conv_rate=0.1, fc_rate=0.2)
    infos = model.weight_info()
    shapes = {n: tuple(w.shape) for n, w in weights.items()}
    predicted = schedule(shapes, infos, spec, 3)
    for level in range(1, 4):
        nxt = prune(spec, weights, mask, infos)
        assert nxt.is_subset_of(mask)
        for name, m in nxt.items():
            rows = m.reshape(m.shape[0], -1)
            assert bool((rows.all(1) | ~rows.any(1)).all()), name   # every unit all kept or all gone
        assert nxt.layer_counts() == predicted[level]["layers"]
        weights = {n: w * nxt[n] for n, w in weights.items()}   # pruned weights are zero after training
        mask = nxt


def test_global_units_compete_by_their_norm_per_weight():
    infos = {"a": models.base.WeightInfo("fc", True), "b": models.base.WeightInfo("fc", True)}
    weights = {"a": torch.tensor([[1.0] * 8, [0.1] * 8]),   # per-weight 1.0 and 0.1, totals 8 and 0.8
               "b": torch.tensor([[0.5, 0.5], [3.0, 3.0]])}  # per-weight 0.5 and 3.0, totals 1 and 6
    mask = Mask.ones({n: w.shape for n, w in weights.items()})
    spec = PruningSpec(strategy="structured", scope="global", global_rate=0.5, global_types=("fc",))
    out = prune(spec, weights, mask, infos)
    assert out["a"][:, 0].tolist() == [True, False] and out["b"][:, 0].tolist() == [False, True]
    with pytest.raises(TicketlabError, match="structure_norm"):
        apply_overrides(PruningSpec(), {"structure_norm": "l3"})


def test_a_structured_oneshot_lottery(tmp_path):
    exp = api.make_experiment("lenet", overrides={
        "data.dataset": "synthetic", "data.val_size": 200, "model.hidden": "32,16", "training.steps": "60it",
        "training.eval_every": "20it", "lottery.levels": 2, "lottery.reinits": 0, "lottery.oneshot": "0.5",
        "pruning.strategy": "structured"})
    root = api.lottery(exp, tmp_path, progress=False, log=lambda *a: None)
    oneshot = Mask.load(layout.trial_dir(root, 0) / "oneshot_0.5" / layout.MASK)
    hidden = oneshot["hidden.0.weight"]
    assert int(hidden.all(1).sum()) == 16 and not bool(hidden[~hidden.all(1)].any())   # 16 of 32 neurons gone
    assert oneshot["output.weight"].all()
    report = api.verify_lottery(root)
    assert report.ok and report.checked["schedule"] == 2, report.failures
