import pytest

from ticketlab import TicketlabError
from ticketlab.spec import (DataSpec, PruningSpec, TrainingSpec, TrainSpec, apply_overrides, from_dict, non_defaults, parse_set,
                            spec_hash, to_dict)
from ticketlab.steps import Step


def test_step_parsing_and_units():
    assert Step.parse("50000it") == Step(50000, "it")
    assert Step.parse("2ep").iterations(916) == 1832
    assert Step.parse(300).iterations(10) == 300
    for bad in ("12", "2 epochs", "-3it", "1.5ep"):
        with pytest.raises(TicketlabError, match="50000it"):
            Step.parse(bad)


def test_run_names_are_pinned():
    # Changing these breaks every existing store: a new field with a default must leave them alone.
    assert spec_hash(TrainSpec(), "train") == "1c8392ad8a7667bf"
    spec = apply_overrides(TrainSpec(), {"training.milestones": "1ep,2000it", "training.schedule": "step"})
    assert spec_hash(spec, "train") == "972c6ca29f13f923"


def test_hash_depends_only_on_non_defaults():
    spec = apply_overrides(TrainSpec(), {"training.lr": "0.1"})
    assert non_defaults(spec) == {"training": {"lr": 0.1}}
    assert spec_hash(spec, "train") != spec_hash(TrainSpec(), "train")
    assert spec_hash(spec, "train") != spec_hash(spec, "lottery")
    assert spec_hash(spec, "train", {"mask": "a"}) != spec_hash(spec, "train", {"mask": "b"})
    # setting a field to its default value names the same run
    assert spec_hash(apply_overrides(TrainSpec(), {"training.lr": "0.0012"}), "train") == spec_hash(TrainSpec(), "train")


def test_overrides_are_typed_and_order_free():
    spec = apply_overrides(TrainSpec(), parse_set([
        "training.milestones=20000it,25000it", "training.schedule=step", "model.hidden=100,30",
        "training.betas=0.8,0.9", "data.augment=true", "training.steps=2ep"]))
    assert spec.training.milestones == (Step(20000), Step(25000))
    assert spec.model.hidden == (100, 30)
    assert spec.training.betas == (0.8, 0.9)
    assert spec.data.augment is True
    assert from_dict(TrainSpec, to_dict(spec)) == spec


@pytest.mark.parametrize("overrides, message", [
    ({"training.lr": "abc"}, "cannot read training.lr"),
    ({"training.foo": "1"}, "unknown setting 'training.foo'"),
    ({"nope.lr": "1"}, "unknown setting"),
    ({"training": "1"}, "names a section"),
    ({"training.optimizer": "rmsprop"}, "training.optimizer must be 'sgd' or 'adam', got 'rmsprop'"),
    ({"training.schedule": "linear"}, "must be one of 'constant', 'step', 'cosine', got 'linear'"),
    ({"model.hidden": "[100, 3.5]"}, "cannot read model.hidden"),
    ({"training.steps": "300"}, "50000it"),
    ({"training.milestones": "100it"}, "schedule=step only"),
    ({"training.momentum": "0.9"}, "sgd only"),
    ({"data.train_subset": "-1"}, ">= 0"),
])
def test_bad_overrides_are_clear_errors(overrides, message):
    with pytest.raises(TicketlabError, match=message):
        apply_overrides(TrainSpec(), overrides)


def test_pruning_rates_validated():
    for rate in (1.0, -0.1, 1.5):
        with pytest.raises(TicketlabError, match=r"\[0, 1\)"):
            PruningSpec(fc_rate=rate)
    assert PruningSpec().rate_for("output") == 0.1
    assert PruningSpec(output_rate=0.3).rate_for("output") == 0.3


def test_parse_set_rejects_malformed():
    with pytest.raises(TicketlabError, match="section.field=value"):
        parse_set(["training.lr"])
    assert DataSpec().val_size == 5000


def test_fixed_iterations_must_be_evaluation_points():
    from ticketlab.spec import LotteryExperimentSpec
    with pytest.raises(TicketlabError, match="not an evaluation point"):
        apply_overrides(LotteryExperimentSpec(), {"lottery.fixed_iterations": "150it"})
    with pytest.raises(TicketlabError, match="past the end"):
        apply_overrides(LotteryExperimentSpec(), {"lottery.fixed_iterations": "60000it"})
    spec = apply_overrides(LotteryExperimentSpec(), {"lottery.fixed_iterations": "200it,50000it"})
    assert [str(s) for s in spec.lottery.fixed_iterations] == ["200it", "50000it"]


def test_eval_section_starts_from_training():
    from ticketlab.spec import LotteryExperimentSpec
    spec = apply_overrides(LotteryExperimentSpec(), {"eval.lr": "0.5", "training.optimizer": "sgd", "training.lr": "0.1"})
    assert spec.eval.optimizer == "sgd" and spec.eval.lr == 0.5 and spec.training.lr == 0.1
    assert from_dict(LotteryExperimentSpec, to_dict(spec)) == spec
    assert LotteryExperimentSpec().eval is None and LotteryExperimentSpec().evaluation == TrainingSpec()


def test_set_values_are_toml_read_by_the_field_type():
    from ticketlab.spec import LotteryExperimentSpec
    spec = apply_overrides(LotteryExperimentSpec(), parse_set([
        "training.steps=300it", "lottery.mode=rewind", "lottery.rewind=100it", "training.lr=0.001",
        "training.optimizer=sgd", "training.momentum=0.9", "training.nesterov=true", "lottery.oneshot=[0.1, 0.2]",
        "lottery.random_controls=[global, preserve_lpr]", "data.dataset=\"synthetic\"", "data.val_size=1_000"]))
    assert spec.training.steps == Step(300) and spec.lottery.mode == "rewind" and spec.training.lr == 0.001
    assert spec.training.nesterov is True and spec.lottery.oneshot == (0.1, 0.2)
    assert spec.lottery.random_controls == ("global", "preserve_lpr") and spec.data.dataset == "synthetic"
    assert spec.data.val_size == 1000
    # the old comma form reads the same, names the same experiment, and is recognised for the CLI's hint
    from ticketlab.spec import comma_lists
    old = parse_set(["lottery.oneshot=0.1,0.2", "training.lr=0.001"])
    assert apply_overrides(LotteryExperimentSpec(), old).lottery.oneshot == (0.1, 0.2)
    assert comma_lists(old) == ["lottery.oneshot"] and comma_lists(parse_set(["lottery.oneshot=[0.1,0.2]"])) == []
    # names stay names: a number-like string field is not turned into a number
    assert apply_overrides(LotteryExperimentSpec(), {"data.dataset": "10"}).data.dataset == "10"


@pytest.mark.parametrize("overrides, message", [
    ({"lottery.mode": "rewnd"}, "lottery.mode must be one of 'reset', 'rewind', 'lr-rewind', 'continue', got 'rewnd'"),
    ({"lottery.random_controls": "global,everywhere"}, "random_controls may hold one of 'global', 'preserve_lpr', "
                                                       "'per_layer'; got \\['everywhere'\\]"),
    ({"model.padding": "full"}, "model.padding must be 'same' or 'valid'"),
    ({"lottery.snip": "all"}, "lottery.snip must be one of '', 'layer', 'total'"),
    ({"training.nesterov": "maybe"}, "cannot read training.nesterov"),
    ({"lottery.levels": "2.5"}, "cannot read lottery.levels"),
])
def test_literal_fields_list_their_allowed_values(overrides, message):
    from ticketlab.spec import LotteryExperimentSpec
    with pytest.raises(TicketlabError, match=message):
        apply_overrides(LotteryExperimentSpec(), overrides)


def test_settings_describe_every_field_from_its_type():
    from ticketlab.spec import LotteryExperimentSpec, settings
    rows = {r["key"]: r for r in settings()}
    assert rows["training.lr"] == {"key": "training.lr", "type": "float", "default": 1.2e-3, "help": "learning rate"}
    assert rows["training.optimizer"]["type"] == "'sgd' | 'adam'"
    assert rows["lottery.oneshot"]["type"] == "list of float" and rows["training.steps"]["default"] == "50000it"
    every = {f"{s}.{k}" for s, v in to_dict(LotteryExperimentSpec()).items() if v for k in v}
    assert every == set(rows) and all(r["help"] for r in rows.values())
    assert {r["key"] for r in settings("eval")} == {k.replace("training.", "eval.") for k in rows if k.startswith("training.")}
    with pytest.raises(TicketlabError, match="choose one of data, model"):
        settings("optim")


def test_every_preset_round_trips_through_its_spec_json():
    from ticketlab import api
    from ticketlab.lottery import presets
    from ticketlab.spec import LotteryExperimentSpec
    for name in presets.names():
        for exp in api.make_experiments(None, name, {}):
            assert from_dict(LotteryExperimentSpec, to_dict(exp)) == exp, name
