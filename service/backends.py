"""Model runtimes behind one call: ``predict(uint8 [N,H,W,C]) -> float32 [N,K]``, or [N,K+1]
with the energy as the last column for a version that has the energy output (``energy``).

``tf`` calls the SavedModel's serving signature (GPU when visible, with memory
growth) through ``artifact.saved_model``; ``tflite`` runs ``model.tflite``
through ``artifact.litert`` (float, dynamic-range, float16 and fully-quantized
files) - the runners evaluation and the benchmarks use too. TensorFlow and
LiteRT are imported when a backend is created, never at package import, so
the gunicorn master stays free of both.
"""
from __future__ import annotations

import importlib.util

import glob
import os
import threading

import numpy as np

from artifact.litert import LiteRTRunner
from artifact.saved_model import SavedModelRunner

from . import energy as energy_rule
from .repository import VersionInfo

_tf_lock = threading.Lock()
_tf_configured = False


def gpu_visible() -> bool:
    """Cheap check (no TF import) for an NVIDIA device node in this process."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return bool(glob.glob("/dev/nvidia[0-9]*"))


def choose_backend(requested: str, info: VersionInfo, device: str) -> str:
    if requested != "auto":
        return requested
    # auto: the tf runtime when a GPU is there to use (batched calls on the
    # GPU win); otherwise LiteRT, which on CPU is faster per small batch
    # (XNNPACK), needs no TensorFlow import (hundreds of MB less per worker)
    # and runs the int8 file training published. Fall back to whichever
    # format the artifact has.
    # A slim image has no TensorFlow at all: auto must not pick tf there even on a
    # GPU host, or every load fails.
    has_tflite = info.format_path("tflite") is not None
    has_saved = info.format_path("saved_model") is not None and tensorflow_installed()
    if has_saved and (not has_tflite or (device != "cpu" and gpu_visible())):
        return "tf"
    return "tflite"


def tensorflow_installed() -> bool:
    return importlib.util.find_spec("tensorflow") is not None


def _configure_tf(threads: int, device: str):
    """Once per process, before TF creates its runtime."""
    global _tf_configured
    import tensorflow as tf
    with _tf_lock:
        if not _tf_configured:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, threads)))
                gpus = tf.config.list_physical_devices("GPU")
                if device == "cpu":
                    tf.config.set_visible_devices([], "GPU")
                else:
                    for gpu in gpus:
                        tf.config.experimental.set_memory_growth(gpu, True)
            except RuntimeError:
                pass  # runtime already initialised (e.g. tests that built models)
            _tf_configured = True
    return tf


class TFBackend:
    """``mc_dropout``: whether the version's SavedModel has the Monte Carlo dropout signature
    (``artifact.saved_model.MC_DROPOUT_SIGNATURE``), which ``predict_mc`` runs. ``energy``:
    whether it has the energy output, which ``predict`` appends to each row as one more
    column (``service/energy.py``)."""

    name = "tf"

    def __init__(self, info: VersionInfo, threads: int, device: str = "auto"):
        tf = _configure_tf(threads, device)
        if info.format_path("saved_model") is None:
            raise FileNotFoundError(f"{info.name}/{info.version}: no saved_model")
        self._runner = SavedModelRunner.for_format(info.path, info.metadata.formats.saved_model)
        self.mc_dropout = self._runner.has_mc_dropout
        self.energy = self._runner.has_energy
        self._tf = tf
        visible_gpus = tf.config.get_visible_devices("GPU")
        self.device = "GPU:0" if (visible_gpus and device != "cpu") else "CPU:0"

    def predict(self, pixels: np.ndarray) -> np.ndarray:
        with self._tf.device("/" + self.device):
            return energy_rule.join(*self._runner.run(pixels))

    def predict_mc(self, pixels: np.ndarray, passes: int) -> tuple:
        """(mean, std) of ``passes`` Monte Carlo dropout passes, float32 [N,K] each."""
        with self._tf.device("/" + self.device):
            return self._runner.mc_dropout(pixels, passes)


class TFLiteBackend:
    """A LiteRT interpreter is not thread-safe: a call takes an idle one, made
    on demand. The batcher runs one call at a time, so that is usually one.
    ``energy``: as ``TFBackend``'s, for the TFLite file."""

    name = "tflite"
    device = "CPU:0"
    mc_dropout = False          # the TFLite file holds the serving signature only

    def __init__(self, info: VersionInfo, threads: int):
        path = info.format_path("tflite")
        if path is None:
            raise FileNotFoundError(f"{info.name}/{info.version}: no model.tflite")
        self._content = path.read_bytes()
        self._threads = threads
        # list.pop and list.append are atomic: no lock needed.
        self._idle = [LiteRTRunner(self._content, threads)]  # fail at load time, not on the first request
        self.energy = self._idle[0].has_energy

    def predict(self, pixels: np.ndarray) -> np.ndarray:
        try:
            runner = self._idle.pop()
        except IndexError:
            runner = LiteRTRunner(self._content, self._threads)
        try:
            return energy_rule.join(*runner.run(pixels))
        finally:
            self._idle.append(runner)


def load_backend(kind: str, info: VersionInfo, threads: int, device: str):
    if kind == "tf":
        return TFBackend(info, threads, device)
    if kind == "tflite":
        return TFLiteBackend(info, threads)
    raise ValueError(f"unknown backend {kind!r}")
