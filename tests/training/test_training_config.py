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
