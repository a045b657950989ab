"""Model runtimes behind one call: ``predict(uint8 [N,H,W,C]) -> float32 [N,K]``.

``tf`` calls the SavedModel's ``serving_default`` signature (GPU when visible,
with memory growth). ``tflite`` runs ``model.tflite`` with ai_edge_litert and
handles float, dynamic-range, float16 and fully-quantized (int8/uint8 I/O)
files. TensorFlow and LiteRT are imported here, lazily, never at package
import, so the gunicorn master stays free of both.
"""
from __future__ import annotations

import glob
import os
import threading

import numpy as np

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
    has_tflite = info.format_path("tflite") is not None
    has_saved = info.format_path("saved_model") is not None
    if has_saved and (not has_tflite or (device != "cpu" and gpu_visible())):
        return "tf"
    return "tflite"


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
    name = "tf"

    def __init__(self, info: VersionInfo, threads: int, device: str = "auto"):
        tf = _configure_tf(threads, device)
        fmt = info.formats.get("saved_model", {})
        path = info.format_path("saved_model")
        if path is None:
            raise FileNotFoundError(f"{info.name}/{info.version}: no saved_model")
        self._loaded = tf.saved_model.load(str(path))
        self._fn = self._loaded.signatures[fmt.get("signature", "serving_default")]
        self._input = fmt.get("input", "pixels")
        self._output = fmt.get("output", "probabilities")
        self._tf = tf
        visible_gpus = tf.config.get_visible_devices("GPU")
        self.device = "GPU:0" if (visible_gpus and device != "cpu") else "CPU:0"

    def predict(self, pixels: np.ndarray) -> np.ndarray:
        tf = self._tf
        with tf.device("/" + self.device):
            out = self._fn(**{self._input: tf.constant(pixels, dtype=tf.uint8)})
        return out[self._output].numpy().astype(np.float32, copy=False)


class TFLiteBackend:
    """One interpreter per calling thread (an interpreter is not thread-safe)."""

    name = "tflite"
    device = "CPU:0"

    def __init__(self, info: VersionInfo, threads: int):
        from ai_edge_litert.interpreter import Interpreter
        path = info.format_path("tflite")
        if path is None:
            raise FileNotFoundError(f"{info.name}/{info.version}: no model.tflite")
        self._content = path.read_bytes()
        self._make = lambda: Interpreter(model_content=self._content, num_threads=threads)
        self._local = threading.local()
        self._state()  # fail at load time, not on the first request

    def _state(self):
        state = getattr(self._local, "state", None)
        if state is None:
            interp = self._make()
            interp.allocate_tensors()
            state = self._local.state = {"interp": interp, "batch": None}
        return state

    def predict(self, pixels: np.ndarray) -> np.ndarray:
        state = self._state()
        interp = state["interp"]
        n = pixels.shape[0]
        if state["batch"] != n:
            inp = interp.get_input_details()[0]
            interp.resize_tensor_input(inp["index"], [n, *pixels.shape[1:]], strict=False)
            interp.allocate_tensors()
            state["batch"] = n
        inp = interp.get_input_details()[0]
        out = interp.get_output_details()[0]
        interp.set_tensor(inp["index"], _to_input(pixels, inp))
        interp.invoke()
        return _from_output(interp.get_tensor(out["index"]), out)


def _to_input(pixels: np.ndarray, detail: dict) -> np.ndarray:
    dtype = detail["dtype"]
    if dtype == np.uint8:
        return pixels
    if dtype == np.float32:
        return pixels.astype(np.float32)
    if dtype == np.int8:
        # int8-I/O variant: the real-valued input is the pixel value itself
        # (scaling is inside the graph), quantized with the tensor's own params.
        scale, zero_point = detail["quantization"]
        q = np.round(pixels.astype(np.float32) / scale) + zero_point
        return np.clip(q, -128, 127).astype(np.int8)
    raise TypeError(f"unsupported tflite input dtype {dtype}")


def _from_output(values: np.ndarray, detail: dict) -> np.ndarray:
    if values.dtype in (np.int8, np.uint8):
        scale, zero_point = detail["quantization"]
        return ((values.astype(np.float32) - zero_point) * scale).astype(np.float32)
    return values.astype(np.float32, copy=True)


def load_backend(kind: str, info: VersionInfo, threads: int, device: str):
    if kind == "tf":
        return TFBackend(info, threads, device)
    if kind == "tflite":
        return TFLiteBackend(info, threads)
    raise ValueError(f"unknown backend {kind!r}")
