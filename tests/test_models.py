"""Models: the paper's parameter counts, weight tags, forward shapes, init schemes, spec checks."""

import math
from dataclasses import replace

import pytest
import torch
from torch import nn

from ticketlab import TicketlabError
from ticketlab.models import build, describe, initialize, layer_init_std, names, paper_defaults
from ticketlab.models.resnet import resnet50
from ticketlab.spec import ModelSpec, PruningSpec, TrainSpec, apply_overrides

# ----------------------------------------------------------------------------- counts (PROTOCOL §2)

# name, spec overrides, expected subset of describe()
COUNTS = [
    ("lenet", {}, dict(weights=266_200, prunable=266_200, fc=265_200, output=1_000, conv=0, biases=410)),
    ("conv2", {}, dict(weights=4_300_992, prunable=4_300_992, conv=38_592, output=2_560)),
    ("conv2", {"padding": "valid"}, dict(weights=3_317_952, conv=38_592)),
    ("conv4", {}, dict(weights=2_425_024, conv=259_776)),
    ("conv6", {}, dict(weights=2_261_184, conv=1_144_512)),
    ("vgg19", {}, dict(weights=20_024_000, prunable=20_018_880, conv=20_018_880, output=5_120, biases=10)),
    # 267,696 3x3 + 2,560 1x1 projections (unpruned) + 640 FC (unpruned); BN on the projections adds 192
    ("cifar_resnet20", {}, dict(weights=270_896, prunable=267_696, conv=270_256, output=640,
                                bn_affine=1_568, bn_buffers=1_568, biases=10)),
    ("resnet50", {}, dict(conv=23_454_912, prunable=23_454_912, bn_affine=53_120, bn_buffers=53_120,
                          output=2_048_000, fc=0, biases=0, weights=25_502_912)),
]


@pytest.mark.parametrize("name,overrides,expected", COUNTS)
def test_describe_matches_protocol_counts(name, overrides, expected):
    counts = describe(name, ModelSpec(name=name, **overrides))
    assert {k: counts[k] for k in expected} == expected
    assert counts["weights"] == counts["conv"] + counts["fc"] + counts["output"]
    assert set(counts) == {"name", "weights", "prunable", "conv", "fc", "output", "biases", "bn_affine", "bn_buffers"}


def test_names_and_describe_default_spec():
    assert names() == ["lenet", "conv2", "conv4", "conv6", "vgg19", "cifar_resnet20", "resnet50"]
    assert describe("conv2")["weights"] == 4_300_992


def test_describe_agrees_with_a_built_model():
    model = build(ModelSpec(name="cifar_resnet20"))
    params = dict(model.named_parameters())
    assert sum(params[n].numel() for n in model.weight_infos) == describe("cifar_resnet20")["weights"]


def test_custom_shapes_and_classes():
    assert describe("resnet50", input_shape=(3, 64, 64), num_classes=200)["output"] == 2048 * 200
    assert describe("lenet", ModelSpec(hidden=(50,)))["weights"] == 784 * 50 + 50 * 10
    model = build(ModelSpec(name="conv2"), input_shape=(3, 64, 64), num_classes=100)
    assert model(torch.zeros(2, 3, 64, 64)).shape == (2, 100)
    assert (model.input_shape, model.num_classes) == ((3, 64, 64), 100)


# ----------------------------------------------------------------------------- forward and tags

@pytest.mark.parametrize("name", ["lenet", "conv2", "conv4", "conv6", "vgg19", "cifar_resnet20"])
def test_forward_shape_and_channels_last(name):
    model = build(ModelSpec(name=name)).eval()
    x = torch.randn(2, *model.input_shape, generator=torch.Generator().manual_seed(0))
    out = model(x)
    assert out.shape == (2, 10)
    if x.dim() == 4:
        last = model.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
        torch.testing.assert_close(last, out, rtol=1e-4, atol=1e-4)


def test_resnet50_forward_shape_on_meta():
    with torch.device("meta"):
        model = resnet50((3, 224, 224), 1000)
        assert model(torch.empty(2, 3, 224, 224)).shape == (2, 1000)


def _weight_names(model):
    """Independently: the 'weight' of every conv and linear layer (no biases, no BN)."""
    return [f"{mod_name}.weight" for mod_name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


@pytest.mark.parametrize("name", ["lenet", "conv4", "vgg19", "cifar_resnet20"])
def test_weight_infos_cover_exactly_the_weights(name):
    model = build(ModelSpec(name=name))
    order = [n for n, _ in model.named_parameters()]
    assert list(model.weight_infos) == [n for n in order if n in set(_weight_names(model))]
    assert set(model.weight_infos) == set(_weight_names(model))
    assert set(model.prunable_weights()) == {n for n, i in model.weight_infos.items() if i.prunable}


def _tags(model):
    return [(info.kind, info.prunable) for info in model.weight_infos.values()]


def test_tags_lenet_and_conv():
    assert _tags(build(ModelSpec(name="lenet"))) == [("fc", True), ("fc", True), ("output", True)]
    assert _tags(build(ModelSpec(name="conv6"))) == [("conv", True)] * 6 + [("fc", True)] * 2 + [("output", True)]


def test_tags_vgg_and_resnets():
    assert _tags(build(ModelSpec(name="vgg19"))) == [("conv", True)] * 16 + [("output", False)]
    r20 = build(ModelSpec(name="cifar_resnet20"))
    frozen = {n: r20.get_parameter(n).shape for n, i in r20.weight_infos.items() if not i.prunable}
    assert frozen == {"stages.1.0.shortcut.conv.weight": (32, 16, 1, 1),
                      "stages.2.0.shortcut.conv.weight": (64, 32, 1, 1), "output.weight": (10, 64)}
    assert sum(1 for i in r20.weight_infos.values() if i.kind == "conv") == 21  # 19 3x3 + 2 projections
    with torch.device("meta"):
        r50 = resnet50((3, 224, 224), 1000)
    assert _tags(r50) == [("conv", True)] * 53 + [("output", False)]
    assert r50.output.bias is None


def test_dropout_only_when_asked():
    plain = build(ModelSpec(name="conv2"))
    assert not any(isinstance(m, nn.Dropout) for m in plain.modules())
    model = build(ModelSpec(name="conv2", dropout=0.5))
    assert describe("conv2", ModelSpec(dropout=0.5))["weights"] == 4_300_992
    x = torch.randn(4, 3, 32, 32)
    torch.manual_seed(0)
    assert not torch.equal(model.train()(x), model(x))
    assert torch.equal(model.eval()(x), model(x))


# ----------------------------------------------------------------------------- initialization

def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("init", ["glorot_normal", "glorot_truncated", "kaiming_normal", "torch_default"])
def test_init_is_deterministic_and_leaves_the_global_rng_alone(init):
    spec = ModelSpec(name="conv2", init=init, init_seed=3)
    small = (3, 8, 8)   # a small FC1 keeps this quick; the draw order is the same at any size
    before = torch.get_rng_state()
    a = _state(build(spec, small))
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(2)
    b = _state(build(spec, small))
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = _state(build(replace(spec, init_seed=4), small))
    assert all(not torch.equal(a[k], other[k]) for k in ("features.0.weight", "output.weight"))


def test_glorot_normal_std_uses_fans_with_receptive_field():
    lenet = build(ModelSpec(name="lenet"))
    w = lenet.hidden[0].weight
    sigma = math.sqrt(2 / (784 + 300))
    assert w.std().item() == pytest.approx(sigma, rel=0.02)
    assert w.abs().max().item() > 3 * sigma   # untruncated
    conv = build(ModelSpec(name="conv2")).features[2].weight  # 64 -> 64, 3x3
    assert conv.std().item() == pytest.approx(math.sqrt(2 / (64 * 9 + 64 * 9)), rel=0.03)
    assert layer_init_std(lenet, ModelSpec())["hidden.0.weight"] == pytest.approx(sigma)


def test_glorot_truncated_stays_within_two_sigma_t():
    spec = ModelSpec(name="lenet", init="glorot_truncated")
    model = build(spec)
    stds = layer_init_std(model, spec)
    for name in model.weight_infos:
        w = model.get_parameter(name)
        fan_out, fan_in = w.shape
        sigma_t = math.sqrt(1.3 * 2 / (fan_in + fan_out))
        assert w.abs().max().item() <= 2 * sigma_t
        # the truncation nearly undoes the 1.3: the effective std is ~ the Glorot sigma
        assert stds[name] == pytest.approx(math.sqrt(2 / (fan_in + fan_out)), rel=0.01)
    assert model.hidden[0].weight.std().item() == pytest.approx(stds["hidden.0.weight"], rel=0.02)


def test_normal_kaiming_and_torch_default_scales():
    normal = build(ModelSpec(name="lenet", init="normal", init_std=0.05))
    assert normal.hidden[0].weight.std().item() == pytest.approx(0.05, rel=0.02)
    kaiming = build(ModelSpec(name="lenet", init="kaiming_normal"))
    assert kaiming.hidden[0].weight.std().item() == pytest.approx(math.sqrt(2 / 300), rel=0.02)
    torch_default = build(ModelSpec(name="lenet", init="torch_default"))
    bound = 1 / math.sqrt(784)
    assert torch_default.hidden[0].weight.abs().max().item() <= bound
    assert torch_default.hidden[0].bias.abs().max().item() <= bound
    assert torch_default.hidden[0].bias.abs().sum().item() > 0


def test_biases_zero_and_bn_identity():
    model = build(ModelSpec(name="cifar_resnet20"))
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)) and module.bias is not None:
            assert not module.bias.any()
        if isinstance(module, nn.BatchNorm2d):
            assert torch.equal(module.weight, torch.ones_like(module.weight)) and not module.bias.any()
            assert not module.running_mean.any() and torch.equal(module.running_var, torch.ones_like(module.running_var))


def test_zero_init_output():
    spec = ModelSpec(name="cifar_resnet20", zero_init_output=True)   # allowed through initialize(), not build()
    model = initialize(build(ModelSpec(name="cifar_resnet20")), spec)
    assert not model.output.weight.any() and model.stem[0].conv.weight.any()
    with torch.device("meta"):
        r50 = resnet50((3, 224, 224), 1000)
    stds = layer_init_std(r50, ModelSpec(name="resnet50", zero_init_output=True))
    assert stds["output.weight"] == 0.0 and stds["stem.0.conv.weight"] > 0


# ----------------------------------------------------------------------------- user errors

@pytest.mark.parametrize("spec,match", [
    (ModelSpec(name="resnet18"), "choose one of: lenet, conv2"),
    (ModelSpec(name="conv2", hidden=(10,)), "model.hidden does not apply to conv2"),
    (ModelSpec(name="lenet", padding="valid"), "model.padding does not apply to lenet"),
    (ModelSpec(name="lenet", dropout=0.5), "model.dropout"),
    (ModelSpec(name="vgg19", zero_init_output=True), "only to resnet50"),
    (ModelSpec(name="lenet", init="xavier"), "choose one of: glorot_normal"),
    (ModelSpec(name="lenet", init="normal"), "init_std > 0"),
    (ModelSpec(name="lenet", init_std=0.1), "init=normal only"),
])
def test_spec_errors(spec, match):
    with pytest.raises(TicketlabError, match=match):
        build(spec)


def test_shape_errors():
    with pytest.raises(TicketlabError, match="too small"):
        build(ModelSpec(name="conv6", padding="valid"), input_shape=(3, 16, 16))
    with pytest.raises(TicketlabError, match=r"\(C, H, W\)"):
        build(ModelSpec(name="conv2"), input_shape=(32, 32))
    with pytest.raises(TicketlabError, match="cannot take inputs"):
        build(ModelSpec(name="vgg19"), input_shape=(3, 8, 8))
    with pytest.raises(TicketlabError, match="num_classes"):
        build(ModelSpec(name="lenet"), num_classes=0)
    with pytest.raises(TicketlabError, match="choose one of"):
        describe("nope")


# ----------------------------------------------------------------------------- paper defaults

def _apply_paper(name):
    overrides = paper_defaults(name)
    pruning = {k.removeprefix("pruning."): v for k, v in overrides.items() if k.startswith("pruning.")}
    train = {k: v for k, v in overrides.items() if not k.startswith("pruning.")}
    spec = apply_overrides(TrainSpec(model=ModelSpec(name=name)), train)
    return spec, apply_overrides(PruningSpec(), pruning)


@pytest.mark.parametrize("name", names())
def test_paper_defaults_apply_and_build(name):
    spec, pruning = _apply_paper(name)
    assert spec.model.name == name
    describe(name, spec.model)   # the model accepts its own paper settings
    assert pruning.scope in ("layer", "global")


def test_paper_defaults_values():
    vgg, vgg_pruning = _apply_paper("vgg19")
    assert [str(s) for s in vgg.training.milestones] == ["56240it", "84360it"]
    assert (vgg.training.optimizer, vgg.training.batch_size, vgg.data.augment) == ("sgd", 64, True)
    assert (vgg_pruning.scope, vgg_pruning.global_rate) == ("global", 0.2)
    conv6, conv6_pruning = _apply_paper("conv6")
    assert (conv6.training.lr, str(conv6.training.steps)) == (3e-4, "30000it")
    assert conv6_pruning.rate_for("conv") == 0.15 and conv6_pruning.rate_for("output") == 0.1
    r50, _ = _apply_paper("resnet50")
    assert r50.model.zero_init_output and r50.training.schedule == "cosine" and str(r50.training.warmup) == "4800it"
    assert paper_defaults("lenet") == {"data.dataset": "mnist"}
    paper_defaults("lenet")["data.dataset"] = "changed"   # a copy: the registry is not mutated
    assert paper_defaults("lenet") == {"data.dataset": "mnist"}


# ----------------------------------------------------------------------------- device

@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    model = build(ModelSpec(name="cifar_resnet20")).eval()
    x = torch.randn(2, 3, 32, 32)
    cpu = model(x)
    cuda = model.cuda().to(memory_format=torch.channels_last)(x.cuda().to(memory_format=torch.channels_last))
    torch.testing.assert_close(cuda.cpu(), cpu, rtol=1e-3, atol=1e-3)
