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

from .metadata import ENERGY_NAME, INPUT_NAME, OUTPUT_NAME, SIGNATURE, MetadataError, SavedModelFormat

# The Monte Carlo dropout signature training exports next to the serving one (for models with
# dropout): the same input and output names, one stochastic pass per input row, dropout on and
# batch norm in inference mode, no baked-in temperature. Versions published before it lack it.
MC_DROPOUT_SIGNATURE = "mc_dropout"
MAX_PASSES = 100                 # N passes cost N times the rows of one call: a bound on a request


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
        self._mc = self._loaded.signatures.get(MC_DROPOUT_SIGNATURE)
        self._input, self._output = input_name, output_name
        # the energy output (versions published since the energy rule), read by name
        self.has_energy = ENERGY_NAME in self._fn.structured_outputs

    @property
    def has_mc_dropout(self) -> bool:
        """Whether the SavedModel holds the Monte Carlo dropout signature."""
        return self._mc is not None

    @classmethod
    def for_format(cls, version_dir: os.PathLike, fmt: SavedModelFormat) -> "SavedModelRunner":
        """The runner for a version directory's ``formats.saved_model`` entry."""
        return cls(os.path.join(version_dir, fmt.path), fmt.signature, fmt.input, fmt.output)

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        return self.run(pixels)[0]

    def run(self, pixels: np.ndarray) -> tuple:
        """(probabilities float32 [N,K], energy float32 [N] or None)."""
        out = self._fn(**{self._input: self._tf.constant(pixels, dtype=self._tf.uint8)})
        probabilities = out[self._output].numpy().astype(np.float32, copy=False)
        if not self.has_energy:
            return probabilities, None
        return probabilities, out[ENERGY_NAME].numpy().astype(np.float32, copy=False)

    def mc_dropout(self, pixels: np.ndarray, passes: int) -> tuple:
        """(mean, std) over ``passes`` dropout passes, each float32 [N,K]: the rows repeated
        ``passes`` times go through the signature in one call (each row draws its own mask)."""
        if self._mc is None:
            raise MetadataError(f"this SavedModel has no '{MC_DROPOUT_SIGNATURE}' signature")
        if isinstance(passes, bool) or not isinstance(passes, int) or not 1 <= passes <= MAX_PASSES:
            raise ValueError(f"passes must be an integer in [1, {MAX_PASSES}], got {passes!r}")
        tiled = np.tile(np.asarray(pixels, np.uint8), (passes,) + (1,) * (np.ndim(pixels) - 1))
        out = self._mc(**{self._input: self._tf.constant(tiled, dtype=self._tf.uint8)})[self._output].numpy()
        samples = out.astype(np.float32, copy=False).reshape(passes, len(pixels), -1)
        return samples.mean(axis=0), samples.std(axis=0)

    def predict(self, pixels: np.ndarray, batch_size: int = 256) -> np.ndarray:
        return np.concatenate([self(pixels[i:i + batch_size]) for i in range(0, len(pixels), batch_size)])

    def predict_energy(self, pixels: np.ndarray, batch_size: int = 256) -> tuple:
        """``run`` in batches: (probabilities [N,K], energy [N] or None)."""
        parts = [self.run(pixels[i:i + batch_size]) for i in range(0, len(pixels), batch_size)]
        energy = None if not self.has_energy else np.concatenate([e for _, e in parts])
        return np.concatenate([p for p, _ in parts]), energy
