"""What a compression stage bought: accuracy, parameters, file sizes and latency.

Every model is measured in its exported forms, not only in Keras (a QAT model
can look fine in Keras and collapse in TFLite, model-optimization#368). Files
go through the same ServingModule + converter as a published artifact, and
latency is timed on the ``artifact`` runners the service itself uses.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

from artifact.litert import LiteRTRunner

from training.compress.tfmot_wrappers import nonzero_params
from training.data.datasets import Dataset
from training.fit.train import accuracy
from training.publish.export import convert_tflite, gzip_bytes, save_saved_model
from training.publish.scoring import score


def export_tflite(model, quantization: str, representative, workdir: Path) -> tuple:
    """(SavedModel dir, TFLite bytes) for ``model``. The SavedModel under ``workdir`` is
    reused if already there, so one model converts to several variants at one export's cost."""
    workdir = Path(workdir)
    saved = workdir / "saved_model"
    if not saved.exists():
        save_saved_model(model, tuple(int(d) for d in model.input_shape[1:]), saved)
    return saved, convert_tflite(saved, quantization, representative)


def measure(model, test: Dataset, quantization: str, representative, workdir: Path) -> dict:
    """Keras and TFLite test accuracy, parameters, non-zero parameters, TFLite and gzip bytes;
    the files stay under ``workdir`` (``tflite_path`` names the TFLite one)."""
    workdir = Path(workdir)
    _, tflite = export_tflite(model, quantization, representative, workdir)
    path = workdir / f"model_{quantization}.tflite"
    path.write_bytes(tflite)
    probs = LiteRTRunner(path).predict(test.x)
    return {"keras_accuracy": round(accuracy(model, test), 4),
            "tflite_accuracy": score(test.y, probs.argmax(1), test.class_names).accuracy,
            **nonzero_params(model), "quantization": quantization,
            "tflite_bytes": len(tflite), "tflite_gzip_bytes": gzip_bytes(tflite),
            "tflite_path": str(path)}


def latency_ms(runner, image: np.ndarray, repeats: int = 300, warmup: int = 20) -> float:
    """Median single-image latency of ``runner`` (an ``artifact`` LiteRT or SavedModel runner)."""
    batch = image[None]
    for _ in range(warmup):
        runner(batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        runner(batch)
        times.append(time.perf_counter() - start)
    return round(1000 * statistics.median(times), 4)
