"""Run a version's ``saved_model/`` through its serving signature: uint8 pixels
[N,H,W,C] in, float32 probabilities [N,K] out - the call the TF service makes.

TensorFlow is imported when a runner is created, never at import time, and
``artifact/__init__`` does not import this module: a LiteRT-only process
(the slim serving image) never loads TensorFlow. A caller that must configure
TensorFlow (threads, GPU memory growth) does so before creating a runner.
"""
from __future__ import annotations

import os

import numpy as np

from .metadata import INPUT_NAME, OUTPUT_NAME, SIGNATURE, MetadataError, SavedModelFormat


class SavedModelRunner:
    def __init__(self, path: os.PathLike, signature: str = SIGNATURE, input_name: str = INPUT_NAME,
                 output_name: str = OUTPUT_NAME):
        """``path``: the SavedModel directory (a version's ``saved_model/``). A directory
        TensorFlow cannot load (a corrupted or missing ``saved_model.pb``, lost variables) or
        one without ``signature`` raises MetadataError naming it."""
        import tensorflow as tf
        self._tf = tf
        try:
            self._loaded = tf.saved_model.load(os.fspath(path))   # keeps the variables alive
        except (OSError, ValueError, tf.errors.OpError) as exc:
            reason = " ".join(str(exc).split())[:200]
            raise MetadataError(f"cannot load '{os.fspath(path)}' as a SavedModel: {reason}") from None
        if signature not in self._loaded.signatures:
            raise MetadataError(f"SavedModel '{os.fspath(path)}' has no signature '{signature}' "
                                f"(it has: {', '.join(self._loaded.signatures) or 'none'})")
        self._fn = self._loaded.signatures[signature]
        self._input, self._output = input_name, output_name

    @classmethod
    def for_format(cls, version_dir: os.PathLike, fmt: SavedModelFormat) -> "SavedModelRunner":
        """The runner for a version directory's ``formats.saved_model`` entry."""
        return cls(os.path.join(version_dir, fmt.path), fmt.signature, fmt.input, fmt.output)

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        out = self._fn(**{self._input: self._tf.constant(pixels, dtype=self._tf.uint8)})
        return out[self._output].numpy().astype(np.float32, copy=False)

    def predict(self, pixels: np.ndarray, batch_size: int = 256) -> np.ndarray:
        return np.concatenate([self(pixels[i:i + batch_size]) for i in range(0, len(pixels), batch_size)])
