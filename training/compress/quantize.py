"""Quantization: post-training (dynamic range, float16, full int8) and quantization-aware
training, plain or prune-preserving, all exported through the TFLite converter.

Post-training quantization is a converter setting (``export.convert_tflite``);
this module supplies its representative data, already in the serving form
(uint8 pixels that go through the same ``to_float`` wrapper as training), and
the QAT fine-tunes. A QAT model is exported like any other: the converter reads
its fake-quant ranges and writes int8 kernels.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from training.keras2 import keras, tfmot

from training.config import OptimizeConfig
from training.compress.compressible import check_quantizable, translate
from training.data.datasets import Dataset
from training.compress.finetune import fine_tune
from training.fit.trainer import run_dir_for
from training.compress.tfmot_wrappers import copy_weights

qkeras = tfmot.quantization.keras


@dataclass
class QATSettings:
    """The ``optimize`` section's QAT keys (``training.compress.optimize.qat_settings``); defaults are the config's."""
    epochs: int = OptimizeConfig.qat_epochs
    learning_rate: float = OptimizeConfig.qat_learning_rate   # fine-tune peak rate: QAT starts from a trained model
    preserve_sparsity: bool = False    # prune-preserving scheme for pruned models


def representative(data: Dataset, samples: int = OptimizeConfig.calibration_samples, seed: int = 0):
    """Callable yielding single uint8 images (the serving input, not pre-scaled floats):
    the export wrapper scales them exactly as training did, so the calibrated
    activation ranges match what the model saw (tensorflow#47027)."""
    index = np.random.default_rng(seed).permutation(len(data))[:samples]
    images = data.x[index]

    def batches():
        for image in images:
            yield image[None]

    return batches


def prune_preserve_scheme():
    """collab_opts is the current home; experimental.combine the deprecated alias."""
    collab = getattr(qkeras, "collab_opts", None)
    if collab is not None:
        return collab.Default8BitPrunePreserveQuantizeScheme()
    return tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()


def quantize_aware(model: keras.Model, preserve_sparsity: bool = False) -> keras.Model:
    """A QAT copy of ``model`` (fake-quant wrappers, same weights). With
    ``preserve_sparsity`` the zeros of a stripped pruned model stay zero."""
    check_quantizable(model)
    purpose = f"quantize '{model.name}'"
    try:
        if preserve_sparsity:
            return qkeras.quantize_apply(qkeras.quantize_annotate_model(model), prune_preserve_scheme())
        return qkeras.quantize_model(model)
    except (ValueError, RuntimeError) as exc:
        raise translate(exc, purpose) from exc


def qat(model: keras.Model, train: Dataset, cfg, settings: QATSettings,
        validation: Dataset = None, *, run_dir=None) -> tuple:
    """Fine-tune with simulated int8; returns (QAT model, history). The fine-tune keeps
    its files in ``run_dir`` (default ``<output_dir>/<name>/qat``, or ``pqat``)."""
    qmodel = quantize_aware(model, settings.preserve_sparsity)
    default_dir = run_dir_for(cfg) / ("pqat" if settings.preserve_sparsity else "qat")
    history = fine_tune(qmodel, train, cfg, epochs=settings.epochs, learning_rate=settings.learning_rate,
                        validation=validation, run_dir=run_dir or default_dir,
                        record={**cfg.to_dict(), "qat": asdict(settings)})
    return qmodel, history


def is_quantize_aware(model: keras.Model) -> bool:
    return any(type(layer).__name__ == "QuantizeLayer" for layer in model.layers)


def float_twin(qmodel: keras.Model, template: keras.Model) -> keras.Model:
    """The plain float model holding a QAT model's fine-tuned weights: what a published
    version stores as Keras weights, so training can rebuild it from the builder config."""
    twin = keras.models.clone_model(template)
    copy_weights(qmodel, twin)
    return twin
