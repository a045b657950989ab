import subprocess
import sys

import pytest

from training.config import ConfigError, config_from_dict, load_config, parse_override

from support.builders import ROOT


def test_defaults_then_preset_then_overrides():
    cfg = load_config("default", ["train.epochs=3", "model.widths=[8, 16]", "augment.flip=false"])
    assert cfg.train.epochs == 3
    assert cfg.model.widths == [8, 16]
    assert cfg.augment.flip is False
    assert cfg.model.convs_per_stage == [1, 2, 2]          # from the preset
    assert cfg.train.momentum == 0.9                        # dataclass default


@pytest.mark.parametrize("override", ["train.epoch=3", "modle.name=cnn", "augment.flip.x=1"])
def test_unknown_override_keys_are_rejected(override):
    with pytest.raises(ConfigError, match="unknown config key|is not|section|must be"):
        load_config(None, [override])


def test_unknown_key_in_yaml_file_is_rejected(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  epochs: 2\n  lerning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="train.lerning_rate"):
        load_config(str(path))


@pytest.mark.parametrize("override", ["train.epochs=many", "augment.flip=3", "model.widths=8"])
def test_wrong_types_are_rejected(override):
    with pytest.raises(ConfigError, match="must be"):
        load_config(None, [override])


def test_int_is_accepted_for_float_and_optional_none():
    cfg = load_config(None, ["train.learning_rate=1", "data.limit=null"])
    assert cfg.train.learning_rate == 1.0 and isinstance(cfg.train.learning_rate, float)
    assert cfg.data.limit is None


def test_unknown_preset_names_presets():
    with pytest.raises(ConfigError, match="default"):
        load_config("no-such-preset")


def test_round_trip_through_dict():
    cfg = load_config("accurate")
    assert config_from_dict(cfg.to_dict()) == cfg


def test_override_syntax():
    assert parse_override("a.b=[1, 2]") == {"a": {"b": [1, 2]}}
    with pytest.raises(ConfigError):
        parse_override("no-equals-sign")


def test_cli_help_and_clear_config_error():
    help_text = subprocess.run([sys.executable, "-m", "training", "--help"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout
    for command in ("train", "evaluate", "publish", "preview-augment"):
        assert command in help_text
    bad = subprocess.run([sys.executable, "-m", "training", "train", "--set", "train.nope=1"],
                         cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2
    assert "unknown config key 'train.nope'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_every_section_is_frozen():
    import dataclasses
    cfg = load_config("tiny")
    for target, key in ((cfg, "name"), (cfg.train, "epochs"), (cfg.optimize, "sparsity"), (cfg.data, "image_size")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(target, key, 1)


@pytest.mark.parametrize("override, choices", [
    ("train.optimizer=foo", "adam, adamw, sgd"),
    ("model.activation=foo", "relu"),
    ("train.schedule=foo", "constant, cosine, onecycle"),
    ("data.color_mode=CMYK", "L, RGB, auto"),
    ("transfer.unfreeze=some", "all"),
    ("optimize.schedule=linear", "polynomial, constant"),
])
def test_a_value_outside_a_fields_choices_names_the_key_and_the_choices(override, choices):
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=f"'{key}' must be .*{choices}"):
        load_config(None, [override])


def test_the_config_is_checked_without_loading_tensorflow():
    code = ("import sys\nfrom training.config import ConfigError, load_config\n"
            "try:\n    load_config(None, ['train.optimizer=foo'])\nexcept ConfigError as e:\n    print(e)\n"
            "assert 'tensorflow' not in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "'train.optimizer' must be one of adam, adamw, sgd" in done.stdout


def test_the_resolve_step_returns_a_record_and_leaves_the_config_as_it_is():
    from training.config import Resolved
    from training.fit.recipe import resolve_budget
    cfg = load_config("folder")
    before = cfg.to_dict()
    budget = resolve_budget(cfg.train, 1000)
    assert cfg.to_dict() == before and cfg.train.batch_size == "auto"
    assert (budget.batch_size, budget.epochs * budget.steps_per_epoch) == (32, budget.optimizer_steps)
    assert budget.optimizer_steps >= 3000 and budget.early_stopping_patience >= 10
    resolved = Resolved(image_size=24, color_mode="RGB", batch_size=budget.batch_size, budget=budget)
    ran = resolved.apply(cfg)
    assert cfg.to_dict() == before                         # apply makes a copy
    assert (ran.data.image_size, ran.data.color_mode, ran.train.batch_size) == (24, "RGB", 32)
    assert ran.train.epochs == budget.epochs and ran.train.steps == "auto"
    assert Resolved.from_dict(resolved.to_dict()) == resolved
    assert resolved.to_dict()["budget"]["optimizer_steps"] == budget.optimizer_steps


def test_the_fine_tune_rate_follows_the_backbones_kind_unless_given():
    from training.config import FINE_TUNE_RATES, Resolved, fine_tune_rate, rate_or_auto
    auto = load_config("transfer").transfer
    assert auto.fine_tune_learning_rate == "auto" == load_config("folder_transfer").transfer.fine_tune_learning_rate
    assert fine_tune_rate(auto, "application") == FINE_TUNE_RATES["application"] == 1e-5   # the Keras guide's
    assert fine_tune_rate(auto, "published") == FINE_TUNE_RATES["published"]
    given = load_config("transfer", ["transfer.fine_tune_learning_rate=0.0003"]).transfer
    assert fine_tune_rate(given, "published") == fine_tune_rate(given, "application") == 3e-4
    ran = Resolved(fine_tune_learning_rate=1e-4).apply(load_config("transfer"))
    assert ran.transfer.fine_tune_learning_rate == 1e-4                           # the config as it ran
    assert (rate_or_auto("auto"), rate_or_auto("1e-4")) == ("auto", 1e-4)        # the --fine-tune-lr flag
    for bad in ("0", "fast"):
        with pytest.raises(ConfigError, match="'auto' or a number above 0"):
            rate_or_auto(bad)
    with pytest.raises(ConfigError, match="'transfer.fine_tune_learning_rate' must be above 0"):
        load_config(None, ["transfer.fine_tune_learning_rate=-1"])


def test_the_folder_input_is_resolved_without_changing_the_data_config():
    import numpy as np
    from training.data.datasets import Dataset, resolve_auto_input, resolve_data
    cfg = load_config("folder").data
    summary = {"median_short_side": 27, "modes_seen": ["RGB", "L"]}
    assert resolve_auto_input(cfg, summary) == (24, "RGB") and cfg.image_size == "auto"
    data = Dataset(np.zeros((2, 24, 24, 3), np.uint8), np.zeros(2, np.int64), ["a", "b"])
    assert resolve_data(cfg, data) == {"image_size": 24, "color_mode": "RGB"}
    assert resolve_data(load_config("default").data, data) == {}


def test_recorded_configs_with_removed_keys_still_load_but_set_rejects_them():
    import json
    for path in sorted(ROOT.glob("models/*/*/metadata.json")) + [ROOT / "tests" / "data" / "metadata_schema0.json"]:
        recorded = json.loads(path.read_text())["config"]
        cfg = config_from_dict(recorded)
        assert cfg.model.widths == recorded["model"]["widths"], path
    old = load_config("transfer").to_dict()
    old["transfer"]["backbone_spec"] = {"path": "models/fashion/1", "config": {}}
    assert config_from_dict(old) == load_config("transfer")
    assert load_config(None, base=old) == load_config(None, base=load_config("transfer").to_dict())
    with pytest.raises(ConfigError, match="unknown config key 'transfer.backbone_spec'"):
        load_config(None, ["transfer.backbone_spec=null"])


def test_the_fashion_mnist_dir_defaults_to_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FASHION_MNIST_DIR", str(tmp_path))
    assert load_config(None).data.fashion_mnist_dir == str(tmp_path)
    assert load_config(None, ["data.fashion_mnist_dir=/data/fm"]).data.fashion_mnist_dir == "/data/fm"
    # another machine's folder in a recorded config is not carried over
    assert config_from_dict({"data": {"fashion_mnist_dir": "/elsewhere"}}).data.fashion_mnist_dir == str(tmp_path)


def test_command_flags_come_from_the_config_fields():
    from training.cli import optimize, retrain, transfer
    from training.cli.main import build_parser
    from training.config import config_flags, flagged_keys
    offered = [*optimize.KEYS, *transfer.KEYS, *retrain.KEYS]
    assert sorted(offered) == sorted(flagged_keys())    # every flagged key is offered, each once per command
    parser = build_parser()
    for key, spec, _, default, _ in config_flags(offered):
        section, name = key.split(".")
        assert getattr(getattr(load_config(None), section), name) == default
        command = "optimize" if key in optimize.KEYS else "transfer" if key in transfer.KEYS else "retrain"
        args = parser.parse_args([command, *(["--name", "x"] if command == "retrain" else [])])
        assert getattr(args, key) is None               # not given: the config decides
    args = parser.parse_args(["optimize", "--sparsity", "0.6", "--prune-ends", "--dense-block", "2,1",
                              "--stages", "prune, int8", "--student-set", "train.epochs=1"])
    assert optimize.flags_from_args(args, optimize.KEYS) == {
        "optimize": {"sparsity": 0.6, "keep_ends": False, "dense_block": [2, 1], "stages": ["prune", "int8"]},
        "distill": {"student_overrides": ["train.epochs=1"]}}


def test_the_retrain_metrics_are_the_publish_policies():
    import typing
    from training.config import RetrainConfig
    from training.publish.policies import METRICS
    assert typing.get_args(typing.get_type_hints(RetrainConfig)["metric"]) == tuple(METRICS)


def test_pruning_and_qat_settings_default_to_the_config():
    from training.compress.prune import PruneSettings
    from training.compress.quantize import QATSettings
    from training.config import OptimizeConfig
    o, p, q = OptimizeConfig(), PruneSettings(), QATSettings()
    assert (p.target, p.schedule, p.initial, p.keep_ends, list(p.dense_block), p.epochs, p.ramp, p.learning_rate) == (
        o.sparsity, o.schedule, o.initial_sparsity, o.keep_ends, o.dense_block, o.prune_epochs, o.ramp,
        o.prune_learning_rate)
    assert (q.epochs, q.learning_rate) == (o.qat_epochs, o.qat_learning_rate)


def test_every_numeric_field_has_a_range_or_is_declared_unbounded():
    import dataclasses
    import typing
    from training.config import RANGES, UNBOUNDED, ExperimentConfig

    def numeric(hint) -> bool:
        args = typing.get_args(hint)
        return hint in (int, float) or any(numeric(a) for a in args if a is not type(None))

    config = ExperimentConfig()
    sections = [getattr(config, f.name) for f in dataclasses.fields(config)
                if dataclasses.is_dataclass(getattr(config, f.name))]
    fields = {f"{type(section).__name__.removesuffix('Config').lower()}.{name}"
              for section in sections for name, hint in typing.get_type_hints(type(section)).items() if numeric(hint)}
    assert fields - set(RANGES) - UNBOUNDED == set()
    assert set(RANGES) <= fields


@pytest.mark.parametrize("override,message", [
    ("train.learning_rate=-1", "'train.learning_rate' must be above 0, got -1.0"),
    ("data.validation_split=1.5", "'data.validation_split' must be in [0, 1), got 1.5"),
    ("model.dropout=[0.1,1.2]", "'model.dropout' must be in [0, 1), got [0.1, 1.2]"),
    ("optimize.sparsity=1", "'optimize.sparsity' must be in [0, 1), got 1.0"),
    ("augment.rotate=270", "'augment.rotate' must be in [0, 180], got 270.0"),
    ("model.name=foo", "'model.name' must be one of cnn, resnet, transfer, got 'foo'"),
    ("model.initializer=he", "'model.initializer' must be one of auto, naive, he_normal"),
])
def test_numbers_and_choices_are_checked_with_the_allowed_values(override, message):
    from training.config import ConfigError, load_config
    with pytest.raises(ConfigError) as error:
        load_config("tiny", [override])
    assert message in str(error.value)


def test_folder_splits_must_leave_training_images():
    from training.config import ConfigError, load_config
    with pytest.raises(ConfigError, match="must leave images to train on"):
        load_config("folder", ["data.path=x", "data.validation_split=0.5", "data.test_split=0.5"])
    load_config("default", ["data.validation_split=0.5", "data.test_split=0.5"])   # Fashion-MNIST brings its test set


def test_the_model_choices_are_the_registry_and_the_initializers_are_keras():
    import typing
    from training.config import Initializer, ModelName
    from training.keras2 import keras
    from training.models.registry import BUILDERS
    assert set(typing.get_args(ModelName)) == set(BUILDERS)
    for name in set(typing.get_args(Initializer)) - {"auto", "naive", "dirac"}:   # the project's own
        assert keras.initializers.get(name) is not None
