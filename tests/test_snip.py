"""SNIP (PROTOCOL 1.15, 1.16): saliency against finite differences of L(c ⊙ m ⊙ θ), masks against
a direct top-k, and iterative SNIP against a hand-written loop of one-shot steps.

Tiny Lenets (16 -> 8 -> 6 -> 3) on random data: every test runs in well under a second on a CPU.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from ticketlab import TicketlabError
from ticketlab.models import build
from ticketlab.pruning import Mask
from ticketlab.pruning.snip import iterative_snip_mask, saliency, snip_mask
from ticketlab.spec import ModelSpec

SHAPE, CLASSES = (1, 4, 4), 3


def lenet(seed=0, dtype=torch.float32):
    return build(ModelSpec(name="lenet", hidden=(8, 6), init_seed=seed), SHAPE, CLASSES).to(dtype)


def batch(seed=0, n=32, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *SHAPE, generator=g, dtype=dtype), torch.randint(0, CLASSES, (n,), generator=g)


def random_mask(model, density=0.7, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Mask.from_tensors({n: torch.rand(p.shape, generator=g) < density
                              for n, p in model.prunable_weights().items()})


def masked_loss(model, state, mask, c, x, y):
    """The reference: L on a copy of the model whose weights are c ⊙ m ⊙ θ (no functional_call)."""
    net = copy.deepcopy(model).eval()
    net.load_state_dict(state)
    with torch.no_grad():
        for name, w in net.prunable_weights().items():
            w.mul_(mask[name].to(w.dtype)).mul_(c[name])
        return F.cross_entropy(net(x), y).item()


def candidates(mask, scores, names=None):
    """The scores of the mask's kept positions, pooled over ``names`` (all tensors by default)."""
    names = list(mask) if names is None else names
    return torch.cat([scores[n][mask[n]] for n in names])


# ----------------------------------------------------------------------------- saliency

def test_saliency_matches_central_differences_in_c():
    torch.manual_seed(0)
    model = lenet(dtype=torch.float64)
    state, mask = model.state_dict(), random_mask(model)
    x, y = batch(dtype=torch.float64)
    scores = saliency(model, state, mask, x, y)
    eps, checked = 1e-6, 0
    ones = {n: torch.ones_like(p) for n, p in model.prunable_weights().items()}
    for name in mask:
        flat = torch.randperm(mask[name].numel())[:6].tolist()   # kept and pruned positions alike
        for j in flat:
            plus, minus = copy.deepcopy(ones), copy.deepcopy(ones)
            plus[name].view(-1)[j] += eps
            minus[name].view(-1)[j] -= eps
            g = (masked_loss(model, state, mask, plus, x, y) - masked_loss(model, state, mask, minus, x, y)) / (2 * eps)
            assert scores[name].view(-1)[j].item() == pytest.approx(abs(g), rel=1e-6, abs=1e-9), (name, j)
            checked += bool(mask[name].view(-1)[j])
    assert checked >= len(mask)   # some kept weight was checked (random sample, fixed seed)


def test_saliency_ignores_pruned_weights_and_leaves_everything_as_it_was():
    model = lenet()
    state, mask = model.state_dict(), random_mask(model, density=0.5)
    x, y = batch()
    scores = saliency(model, state, mask, x, y)
    for name in mask:
        assert (scores[name][~mask[name]] == 0).all()
        assert scores[name].shape == mask[name].shape

    # huge pruned weights change nothing: the scores differentiate the masked network's loss
    wild = {n: t.clone() for n, t in state.items()}
    for name in mask:
        wild[name][~mask[name]] = 1e6
    before = {n: t.clone() for n, t in wild.items()}
    for name, s in saliency(model, wild, mask, x, y).items():
        assert torch.equal(s, scores[name])
    assert all(torch.equal(wild[n], before[n]) for n in wild)       # the caller's tensors are untouched

    # ...and equal the dense scores of the network whose pruned weights are zero, at kept positions
    zeroed = {n: (t * mask[n] if n in mask else t) for n, t in state.items()}
    dense = saliency(model, zeroed, Mask.ones({n: m.shape for n, m in mask.items()}), x, y)
    for name in mask:
        assert torch.allclose(dense[name][mask[name]], scores[name][mask[name]])

    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.train()
    saliency(model, wild, mask, x, y)
    assert model.training
    assert all(p.grad is None and torch.equal(p, params[n]) for n, p in model.named_parameters())


def test_saliency_is_deterministic_with_dropout():
    # eval mode, as Lee et al.'s code: dropout off, so the same batch always gives the same scores
    model = build(ModelSpec(name="conv2", dropout=0.5), (3, 8, 8), CLASSES).train()
    mask = Mask.ones({n: p.shape for n, p in model.prunable_weights().items()})
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 3, 8, 8, generator=g), torch.randint(0, CLASSES, (8,), generator=g)
    first, second = (saliency(model, model.state_dict(), mask, x, y) for _ in range(2))
    assert all(torch.equal(first[n], second[n]) for n in mask)
    assert model.training


# ----------------------------------------------------------------------------- snip_mask

def test_snip_mask_per_layer_keeps_the_top_scores():
    model = lenet()
    state, mask = model.state_dict(), random_mask(model, density=0.8)
    x, y = batch()
    counts = random_mask(model, density=0.4, seed=1).layer_counts()
    counts = {n: min(c, mask.layer_counts()[n]) for n, c in counts.items()}
    out = snip_mask(model, state, mask, x, y, counts=counts)
    scores = saliency(model, state, mask, x, y)
    assert out.layer_counts() == counts
    assert out.is_subset_of(mask)
    for name in mask:
        kept = scores[name][out[name]]
        top = torch.topk(candidates(mask, scores, [name]), counts[name]).values
        assert torch.equal(kept.sort().values, top.sort().values)


def test_snip_mask_total_ranks_globally():
    model = lenet()
    state, mask = model.state_dict(), random_mask(model, density=0.8)
    x, y = batch()
    total = mask.count() // 3
    out = snip_mask(model, state, mask, x, y, total=total)
    scores = saliency(model, state, mask, x, y)
    assert out.count() == total and out.is_subset_of(mask)
    top = torch.topk(candidates(mask, scores), total).values
    assert torch.equal(candidates(out, scores).sort().values, top.sort().values)
    assert snip_mask(model, state, mask, x, y, total=mask.count()).equals(mask)
    assert snip_mask(model, state, mask, x, y, total=0).count() == 0


def test_ties_drop_the_lower_index_first():
    # inputs whose first 8 features are zero give the first 8 columns of the first layer score 0
    model = lenet()
    state = model.state_dict()
    mask = Mask.ones({n: p.shape for n, p in model.prunable_weights().items()})
    x, y = batch()
    x.view(len(x), -1)[:, :8] = 0
    first = "hidden.0.weight"
    scores = saliency(model, state, mask, x, y)
    zero = scores[first] == 0
    assert zero[:, :8].all() and not zero[:, 8:].any()
    keep = int((~zero).sum()) + 10          # all nonzero scores plus 10 of the 64 tied zeros
    counts = {**mask.layer_counts(), first: keep}
    out = snip_mask(model, state, mask, x, y, counts=counts)
    tied = zero.view(-1).nonzero().squeeze(1)
    assert out[first].view(-1)[tied].tolist() == [False] * 54 + [True] * 10


# ----------------------------------------------------------------------------- iterative SNIP

def test_iterative_snip_is_a_loop_of_one_shot_steps():
    model = lenet()
    state, mask = model.state_dict(), random_mask(model, density=0.9)
    batches = [batch(seed=s) for s in range(3)]
    totals = [round(mask.count() * f) for f in (0.7, 0.5, 0.3)]
    out = iterative_snip_mask(model, state, mask, batches, totals_schedule=totals)
    step = mask
    for (x, y), total in zip(batches, totals):
        nxt = snip_mask(model, state, step, x, y, total=total)
        assert nxt.is_subset_of(step) and nxt.count() == total
        step = nxt
    assert out.equals(step)

    one = iterative_snip_mask(model, state, mask, batches[:1], totals_schedule=totals[-1:])
    assert one.equals(snip_mask(model, state, mask, *batches[0], total=totals[-1]))


def test_iterative_snip_per_layer_and_batch_reuse():
    model = lenet()
    state, mask = model.state_dict(), random_mask(model, density=0.9)
    have = mask.layer_counts()
    schedule = [{n: round(c * f) for n, c in have.items()} for f in (0.8, 0.64, 0.512)]
    b = batch()
    out = iterative_snip_mask(model, state, mask, [b], counts_schedule=schedule)
    assert out.equals(iterative_snip_mask(model, state, mask, [b, b, b], counts_schedule=schedule))
    assert out.layer_counts() == schedule[-1] and out.is_subset_of(mask)
    one = iterative_snip_mask(model, state, mask, [b], counts_schedule=schedule[-1:])
    assert one.equals(snip_mask(model, state, mask, *b, counts=schedule[-1]))


def test_iterative_snip_can_differ_from_one_shot():
    # Scores change as weights go (a unit losing inputs changes its downstream gradients), so the
    # schedule matters; at least one of a few seeds must show it, or recomputation did nothing.
    differs = []
    for seed in range(4):
        model = lenet(seed=seed)
        state = model.state_dict()
        mask = Mask.ones({n: p.shape for n, p in model.prunable_weights().items()})
        x, y = batch(seed=seed)
        totals = [round(mask.count() * 0.8 ** k) for k in range(1, 8)]
        iterative = iterative_snip_mask(model, state, mask, [(x, y)], totals_schedule=totals)
        assert iterative.count() == totals[-1]
        differs.append(not iterative.equals(snip_mask(model, state, mask, x, y, total=totals[-1])))
    assert any(differs)


# ----------------------------------------------------------------------------- bad inputs

def test_bad_inputs_raise():
    model = lenet()
    state, mask = model.state_dict(), random_mask(model)
    x, y = batch()
    have = mask.layer_counts()
    first = next(iter(mask))
    bad_calls = [
        dict(),                                              # neither
        dict(counts=have, total=3),                          # both
        dict(counts={**have, first: have[first] + 1}),       # more than the mask keeps
        dict(counts={**have, first: -1}),
        dict(counts={**have, first: 1.5}),
        dict(counts={n: c for n, c in have.items() if n != first}),   # a tensor left out
        dict(counts={**have, "nope.weight": 0}),
        dict(total=mask.count() + 1),
        dict(total=-1),
        dict(total=True),
    ]
    for kwargs in bad_calls:
        with pytest.raises(TicketlabError):
            snip_mask(model, state, mask, x, y, **kwargs)

    other = random_mask(build(ModelSpec(name="lenet", hidden=(4,)), SHAPE, CLASSES))   # another architecture
    with pytest.raises(TicketlabError, match="prunable weights"):
        saliency(model, state, other, x, y)
    with pytest.raises(TicketlabError, match="state does not match"):
        saliency(model, {n: t for n, t in state.items() if n != "output.bias"}, mask, x, y)
    nan = {**state, first: torch.full_like(state[first], float("nan"))}
    with pytest.raises(TicketlabError, match="NaN"):
        snip_mask(model, nan, mask, x, y, total=1)

    total = mask.count()
    for schedule, batches in [
        (dict(totals_schedule=[total // 2, total // 2 + 1]), [(x, y)]),     # increasing
        (dict(totals_schedule=[]), [(x, y)]),
        (dict(totals_schedule=[1], counts_schedule=[have]), [(x, y)]),
        (dict(), [(x, y)]),
        (dict(totals_schedule=[1]), (x, y)),                                # one pair, not a list of pairs
        (dict(totals_schedule=[1]), []),
        (dict(totals_schedule=[1]), [(x, y), (x, y)]),                      # a batch never used
        (dict(counts_schedule=[have, {**have, first: have[first] + 1}]), [(x, y)]),
    ]:
        with pytest.raises(TicketlabError):
            iterative_snip_mask(model, state, mask, batches, **schedule)
