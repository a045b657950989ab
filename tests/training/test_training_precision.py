"""train.precision=mixed_bfloat16: the model trains in bfloat16, and nothing after the fit sees it.

Whatever trains, ``train`` returns a float32 model, the global Keras policy is the one it found,
and export writes float32 graphs (SavedModel and TFLite) even when handed a bfloat16 model.
"""
import logging

import numpy as np
import pytest

from artifact.litert import LiteRTRunner

from training.config import ConfigError, load_config
from training.fit import precision
from training.fit.train import predict_probabilities, train
from training.keras2 import keras, tf
from training.models.registry import build_model
from training.publish.export import ServingModule, export_files

from support.builders import tiny_config

BF16 = tf.bfloat16.as_datatype_enum


class RecordDtypes(keras.callbacks.Callback):
    """What the model being fitted computes in, and the global policy, at the start of the fit."""

    def on_train_begin(self, logs=None):
        self.seen = precision.compute_dtypes(self.model)
        self.softmax = self.model.get_layer("probabilities").compute_dtype
        self.variables = {v.dtype.name for v in self.model.variables}


class Warnings(logging.Handler):
    """The warnings a logger emitted, as text."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def graph_dtypes(concrete) -> set:
    """Every dtype an op of ``concrete``'s graph, nested functions included, is typed with."""
    graph_def = concrete.graph.as_graph_def()
    nodes = list(graph_def.node) + [n for f in graph_def.library.function for n in f.node_def]
    found = set()
    for node in nodes:
        for value in node.attr.values():
            if value.HasField("type"):
                found.add(value.type)
            found.update(value.list.type)
    return found


@pytest.fixture(scope="module")
def bf16_run(fixture_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bf16")
    cfg = tiny_config(tmp, "train.precision=mixed_bfloat16", epochs=1)
    before = keras.mixed_precision.global_policy().name
    recorder = RecordDtypes()
    warnings = Warnings()
    logging.getLogger("training.fit.train").addHandler(warnings)
    try:
        result = train(cfg, data=fixture_data, callbacks=[recorder])
    finally:
        logging.getLogger("training.fit.train").removeHandler(warnings)
    recorder.warnings = warnings.messages
    return cfg, result, recorder, before


def test_a_bad_precision_is_refused_with_its_choices():
    with pytest.raises(ConfigError, match="'train.precision' must be one of float32, mixed_bfloat16"):
        load_config("tiny", ["train.precision=bfloat16"])


def test_the_fit_computes_in_bfloat16_with_float32_variables_and_softmax(bf16_run):
    _, result, recorder, _ = bf16_run
    assert "bfloat16" in recorder.seen
    assert recorder.softmax == "float32"
    assert recorder.variables <= {"float32", "int64"}      # int64: none expected, but not a float16
    assert np.isfinite(result.history["loss"]).all()


def test_the_policy_is_restored_and_the_result_is_float32(bf16_run, fixture_data):
    cfg, result, _, before = bf16_run
    assert keras.mixed_precision.global_policy().name == before == "float32"
    assert precision.compute_dtypes(result.model) == {"float32"}
    # a model built later in the same process is float32 too
    later = build_model(cfg.model, fixture_data[0].input_shape, 10)
    assert precision.compute_dtypes(later) == {"float32"}
    assert 0.0 <= result.test_accuracy <= 1.0


def test_the_policy_is_restored_after_an_error():
    with pytest.raises(RuntimeError):
        with precision.policy("mixed_bfloat16"):
            assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
            raise RuntimeError("inside")
    assert keras.mixed_precision.global_policy().name == "float32"


def test_the_float32_copy_keeps_the_weights_and_the_answers(fixture_data):
    cfg = tiny_config(None, "train.precision=mixed_bfloat16")
    with precision.policy("mixed_bfloat16"):
        mixed = build_model(cfg.model, fixture_data[0].input_shape, 10)
    copy = precision.float32_copy(mixed)
    assert precision.compute_dtypes(mixed) == {"bfloat16", "float32"}
    assert precision.compute_dtypes(copy) == {"float32"}
    for a, b in zip(mixed.get_weights(), copy.get_weights()):
        np.testing.assert_array_equal(a, b)
    test = fixture_data[2]
    # bfloat16 keeps 8 bits of mantissa: the two disagree a little, never by much
    p_mixed, p_copy = predict_probabilities(mixed, test), predict_probabilities(copy, test)
    assert np.abs(p_mixed - p_copy).max() < 0.05
    assert precision.float32_copy(copy) is copy


def test_export_writes_float32_graphs_from_a_bfloat16_model(fixture_data, tmp_path):
    cfg = tiny_config(tmp_path, "train.precision=mixed_bfloat16")
    with precision.policy("mixed_bfloat16"):
        mixed = build_model(cfg.model, fixture_data[0].input_shape, 10)
    # the check below can fail: the bfloat16 model served as it is has bfloat16 ops
    assert BF16 in graph_dtypes(ServingModule(mixed, (28, 28, 1)).serve.get_concrete_function())

    export_files(tmp_path, mixed, name="tiny", class_names=fixture_data[0].class_names, color_mode="L")
    loaded = tf.saved_model.load(str(tmp_path / "saved_model"))
    serve = loaded.signatures["serving_default"]
    assert BF16 not in graph_dtypes(serve)
    assert serve.structured_outputs["probabilities"].dtype == tf.float32

    interpreter = tf.lite.Interpreter(model_path=str(tmp_path / "model.tflite"))
    assert interpreter.get_input_details()[0]["dtype"] == np.uint8
    assert all(out["dtype"] == np.float32 for out in interpreter.get_output_details())  # probabilities, energy
    dtypes = {np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()}
    assert "bfloat16" not in dtypes and "float32" in dtypes
    probabilities = LiteRTRunner(tmp_path / "model.tflite")(fixture_data[2].x[:1])   # the output picked by name
    assert probabilities.shape == (1, 10) and abs(float(probabilities.sum()) - 1) < 1e-3


def test_bfloat16_on_a_cpu_without_bfloat16_instructions_is_flagged_as_slow():
    zen3 = {"avx2", "fma", "sse4_2"}        # AMD EPYC Zen 3: measured about 0.13x float32
    skylake = zen3 | {"avx512f", "avx512bw"}   # AVX-512 without bfloat16 instructions
    zen4 = skylake | {"avx512_bf16"}       # AMD EPYC Zen 4: measured 2.2x float32
    assert "0.13x" in precision.slow_bfloat16("mixed_bfloat16", flags=zen3, gpus=0)
    assert precision.slow_bfloat16("mixed_bfloat16", flags=skylake, gpus=0) is not None
    assert precision.slow_bfloat16("mixed_bfloat16", flags=zen4, gpus=0) is None
    assert precision.slow_bfloat16("mixed_bfloat16", flags=skylake | {"amx_bf16", "amx_tile"}, gpus=0) is None
    assert precision.slow_bfloat16("mixed_bfloat16", flags=zen3, gpus=1) is None
    assert precision.slow_bfloat16("float32", flags=zen3, gpus=0) is None


def test_train_warns_on_this_machine_exactly_when_bfloat16_is_emulated(bf16_run):
    recorder = bf16_run[2]
    expected = precision.slow_bfloat16("mixed_bfloat16")   # this machine's CPU flags and GPUs
    warned = [m for m in recorder.warnings if "without bfloat16 instructions" in m]
    assert warned == ([expected] if expected else [])
