"""Every exported TFLite variant loads in LiteRT and agrees with its Keras model."""
import numpy as np
import pytest

from artifact.litert import LiteRTRunner
from training.compress.measure import export_tflite, measure
from training.compress.prune import PruneSettings, prune, sparsity_report
from training.compress.quantize import QATSettings, float_twin, is_quantize_aware, qat, representative
from training.fit.train import predict_probabilities
from training.compress.tfmot_wrappers import own_weights

AGREEMENT = 0.9      # argmax agreement with the Keras model on the fixture's test images


def _agreement(model, tflite_bytes, test, tmp_path, name):
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(tflite_bytes)
    lite = LiteRTRunner(path).predict(test.x).argmax(1)
    return float(np.mean(lite == predict_probabilities(model, test).argmax(1)))


def test_post_training_variants_agree(trained, tmp_path):
    cfg, result = trained
    calibrate = representative(result.train, 100)
    assert next(iter(calibrate())).dtype == np.uint8      # serving input, scaled by the wrapper
    sizes = {}
    for quantization in ("none", "dynamic", "float16", "int8"):
        _, data = export_tflite(result.model, quantization, calibrate, tmp_path)
        sizes[quantization] = len(data)
        assert _agreement(result.model, data, result.test, tmp_path, quantization) >= AGREEMENT, quantization
    assert sizes["int8"] < sizes["float16"] < sizes["none"]
    lite = LiteRTRunner(tmp_path / "int8.tflite")
    assert lite.input["dtype"] == np.uint8                 # int8 I/O: uint8 pixels straight in


def test_qat_and_pqat_export_as_int8_and_agree(trained, tmp_path):
    cfg, result = trained
    train = result.train.take(512)
    qmodel, _ = qat(result.model, train, cfg, QATSettings(epochs=1))
    assert is_quantize_aware(qmodel)
    _, data = export_tflite(qmodel, "qat", None, tmp_path / "qat")
    assert _agreement(qmodel, data, result.test, tmp_path, "qat") >= AGREEMENT

    stripped, _ = prune(result.model, train, cfg, PruneSettings(target=0.5, epochs=1))
    _, data = export_tflite(stripped, "none", None, tmp_path / "pruned")
    assert _agreement(stripped, data, result.test, tmp_path, "pruned") >= AGREEMENT
    pq, _ = qat(stripped, train, cfg, QATSettings(epochs=1, preserve_sparsity=True))
    metrics = measure(pq, result.test, "qat", None, tmp_path / "pqat")
    assert metrics["tflite_accuracy"] == pytest.approx(metrics["keras_accuracy"], abs=0.05)
    assert metrics["nonzero_params"] < metrics["params"] * 0.75
    assert sparsity_report(pq)["kernels"] == pytest.approx(sparsity_report(stripped)["kernels"], abs=0.01)
    assert sparsity_report(pq)["layers"]["s1b0_conv"] == pytest.approx(0.5, abs=0.01)


def test_float_twin_holds_the_qat_weights(trained):
    cfg, result = trained
    qmodel, _ = qat(result.model, result.train.take(128), cfg, QATSettings(epochs=1, learning_rate=1e-3))
    twin = float_twin(qmodel, result.model)
    assert not is_quantize_aware(twin)
    q_kernel = own_weights(qmodel.get_layer("quant_s1b0_conv"))["kernel"].numpy()
    np.testing.assert_array_equal(twin.get_layer("s1b0_conv").kernel.numpy(), q_kernel)
    assert not np.array_equal(result.model.get_layer("s1b0_conv").kernel.numpy(), q_kernel)
