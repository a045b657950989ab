"""Models that cannot be pruned or quantized fail early, naming the layer and the fix."""
import pytest
from training.keras2 import keras

from training.compress.compressible import CompressionError
from training.compress.optimize import parse_stages
from training.compress.prune import PruneSettings, wrap_for_pruning
from training.compress.quantize import quantize_aware


def _prune(model):
    return wrap_for_pruning(model, PruneSettings(), 10)


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(3)

    def call(self, x):
        return self.dense(x)


def _functional(*layers, shape=(8, 8, 1)):
    inputs = keras.Input(shape)
    x = inputs
    for layer in layers:
        x = layer(x)
    return keras.Model(inputs, x)


def test_error_is_a_value_error():
    assert issubclass(CompressionError, ValueError)


@pytest.mark.parametrize("action", [_prune, quantize_aware])
def test_subclassed_model(action):
    model = Subclassed()
    model(keras.Input((4,)))
    with pytest.raises(CompressionError, match="subclassed model .*functional"):
        action(model)


@pytest.mark.parametrize("action", [_prune, quantize_aware])
def test_nested_model(action):
    base = _functional(keras.layers.Conv2D(4, 3, name="inner_conv"))
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.GlobalAveragePooling2D()(base(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    with pytest.raises(CompressionError, match=f"layer '{base.name}' is a whole model nested.*base.output"):
        action(model)


def test_not_a_tf_keras_model():
    with pytest.raises(CompressionError, match="tf_keras"):
        quantize_aware(object())


def test_preprocessing_layer_cannot_be_quantized():
    model = _functional(keras.layers.Rescaling(1 / 255, name="scale"), keras.layers.Conv2D(4, 3),
                        keras.layers.Flatten(), keras.layers.Dense(2))
    with pytest.raises(CompressionError, match="layer 'scale' \\(Rescaling\\).*export wrapper"):
        quantize_aware(model)


def test_unsupported_activation_is_named():
    model = _functional(keras.layers.Conv2D(4, 3, name="c"), keras.layers.Activation("elu", name="act"),
                        keras.layers.Flatten(), keras.layers.Dense(2))
    with pytest.raises(CompressionError, match="layer 'act' uses activation 'elu'"):
        quantize_aware(model)


def test_batch_norm_after_activated_conv_names_layer_and_fix():
    model = _functional(keras.layers.Conv2D(4, 3, activation="relu", name="c"),
                        keras.layers.BatchNormalization(name="bn"), keras.layers.Flatten(),
                        keras.layers.Dense(2))
    with pytest.raises(CompressionError, match="layer 'bn' \\(BatchNormalization\\).*use_bias=False"):
        quantize_aware(model)


def test_nothing_to_prune():
    model = _functional(keras.layers.Flatten(), shape=(4, 4))
    with pytest.raises(CompressionError, match="no Conv2D or Dense"):
        _prune(model)


@pytest.mark.parametrize("stages, message", [
    ("prune,banana", "unknown stage"),
    ("int8,prune", "out of order"),
    ("qat,distill", "out of order"),
    ("qat,pqat", "at most one"),
    ("qat,float16", "exports as int8"),
    ("pqat,dynamic", "exports as int8"),
    ("prune,prune", "prune more than once"),
    ("distill,prune,distill,int8", "distill more than once"),
])
def test_stage_order_is_checked(stages, message):
    with pytest.raises(ValueError, match=message):
        parse_stages(stages)
    assert parse_stages("distill, prune,PQAT,int8") == ["distill", "prune", "pqat", "int8"]


def test_dense_block_option_is_parsed_or_refused_clearly(capsys):
    from training.cli.main import build_parser
    from training.config import ConfigError, rows_cols
    assert rows_cols("4,1") == [4, 1]
    with pytest.raises(ConfigError, match="ROWS,COLS"):
        rows_cols("4x1")
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["optimize", "--dense-block", "4x1"])
    assert exit_info.value.code == 2 and "--dense-block takes ROWS,COLS" in capsys.readouterr().err


@pytest.mark.parametrize("stages,message", [("", "no optimize stage given"),
                                            ("prune,prune", "prune more than once")])
def test_optimize_with_no_stage_or_a_repeated_one_is_a_usage_error(stages, message, tmp_path, capsys):
    from training.cli.main import main
    with pytest.raises(SystemExit) as exit_info:
        main(["optimize", "--preset", "tiny", "--stages", stages, "--set", f"output_dir={tmp_path / 'runs'}",
              "--set", f"models_dir={tmp_path / 'models'}"])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1, err
    assert message in err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "models").exists()


def test_optimize_from_a_version_with_corrupted_weights_names_the_file(tmp_path, capsys, fixture_as_fashion):
    """A copy of a committed version whose keras_weights.h5 is damaged (the data is the fixture,
    written as Fashion-MNIST files, so the weights are what fails)."""
    import shutil
    from support.builders import ROOT
    from training.cli.main import main
    version = tmp_path / "fashion-small" / "1"
    shutil.copytree(ROOT / "models" / "fashion-small" / "1", version)
    (version / "keras_weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n cut short")
    with pytest.raises(SystemExit) as exit_info:
        main(["optimize", "--from", str(version), "--set", f"output_dir={tmp_path / 'runs'}",
              "--set", f"models_dir={tmp_path / 'models'}"])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1, err
    assert f"cannot load '{version / 'keras_weights.h5'}'" in err
    assert not (tmp_path / "models").exists()
