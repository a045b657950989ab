"""Run a ``model.tflite`` with LiteRT: uint8 pixels [N,H,W,C] in, float32 probabilities [N,K] out.

Handles every file the training side publishes: float and dynamic-range or
float16 weights (uint8 or float32 input tensor), and fully quantized files
whose input and output tensors are int8/uint8. Quantized inputs use the
interpreter's own scale and zero point, so the real value fed is the pixel
itself (scaling lives inside the graph); quantized outputs are dequantized.

A LiteRT interpreter is not thread-safe: use one ``LiteRTRunner`` per thread,
or guard a shared one with a lock.
"""
from __future__ import annotations

import os
from typing import Union

import numpy as np

from .metadata import ENERGY_NAME, OUTPUT_NAME, SIGNATURE, MetadataError

_INPUT_TYPES = (np.uint8, np.int8, np.float32)


class LiteRTRunner:
    """``input`` / ``output``: the interpreter's details of the input and the probabilities
    tensor; ``energy``: those of the energy tensor, None in a file without one.

    A file with several outputs lists them in no promised order (the converter numbers them
    as it builds the graph), so they are picked by their signature names; a file with one
    output (every version before the energy output) has that one as its probabilities."""

    def __init__(self, model: Union[bytes, str, os.PathLike], num_threads: int = 1):
        """``model``: the file's bytes or its path. A file LiteRT cannot read (corrupted,
        truncated, not a .tflite) raises MetadataError naming it: the version's metadata
        promises a model its files do not hold."""
        from ai_edge_litert.interpreter import Interpreter
        named = "the TFLite bytes given" if isinstance(model, (bytes, bytearray)) else f"'{os.fspath(model)}'"
        try:
            if isinstance(model, (bytes, bytearray)):
                self.interpreter = Interpreter(model_content=bytes(model), num_threads=num_threads)
            else:
                self.interpreter = Interpreter(model_path=os.fspath(model), num_threads=num_threads)
            self.interpreter.allocate_tensors()
        except ValueError as exc:       # what LiteRT raises for a file that is not a model
            reason = " ".join(str(exc).split())[:200]
            raise MetadataError(f"cannot load {named} as a TFLite model: {reason}") from None
        self._batch = None
        self._names = self._output_names()
        self._details()
        if self.input["dtype"] not in _INPUT_TYPES:
            raise TypeError(f"unsupported LiteRT input dtype {np.dtype(self.input['dtype']).name}")

    def _output_names(self) -> dict:
        """Output name -> tensor index, from the serving signature; {} when the file has a
        single output or no signature (read by position, as always)."""
        outputs = self.interpreter.get_output_details()
        if len(outputs) == 1:
            return {}
        signatures = self.interpreter.get_signature_list()
        key = SIGNATURE if SIGNATURE in signatures else next(iter(signatures), None)
        if key is None:
            raise MetadataError("a TFLite file with several outputs and no signature to name them")
        named = self.interpreter.get_signature_runner(key).get_output_details()
        if OUTPUT_NAME not in named:
            raise MetadataError(f"the TFLite file's outputs {sorted(named)} have no {OUTPUT_NAME!r}")
        return {name: detail["index"] for name, detail in named.items()}

    def _details(self) -> None:
        self.input = self.interpreter.get_input_details()[0]
        if not self._names:
            self.output, self.energy = self.interpreter.get_output_details()[0], None
            return
        by_index = {detail["index"]: detail for detail in self.interpreter.get_output_details()}
        self.output = by_index[self._names[OUTPUT_NAME]]
        self.energy = by_index[self._names[ENERGY_NAME]] if ENERGY_NAME in self._names else None

    @property
    def has_energy(self) -> bool:
        return self.energy is not None

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        return self.run(pixels)[0]

    def run(self, pixels: np.ndarray) -> tuple:
        """(probabilities float32 [N,K], energy float32 [N] or None)."""
        if self._batch != len(pixels):
            self.interpreter.resize_tensor_input(self.input["index"], [len(pixels), *pixels.shape[1:]],
                                                 strict=False)
            self.interpreter.allocate_tensors()
            self._details()
            self._batch = len(pixels)
        self.interpreter.set_tensor(self.input["index"], quantize_input(pixels, self.input))
        self.interpreter.invoke()
        probabilities = dequantize_output(self.interpreter.get_tensor(self.output["index"]), self.output)
        if self.energy is None:
            return probabilities, None
        return probabilities, dequantize_output(self.interpreter.get_tensor(self.energy["index"]), self.energy)

    def predict(self, pixels: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """``pixels`` in batches of at most ``batch_size`` (bounded memory for a whole test set)."""
        return np.concatenate([self(pixels[i:i + batch_size]) for i in range(0, len(pixels), batch_size)])

    def predict_energy(self, pixels: np.ndarray, batch_size: int = 256) -> tuple:
        """``run`` in batches: (probabilities [N,K], energy [N] or None)."""
        parts = [self.run(pixels[i:i + batch_size]) for i in range(0, len(pixels), batch_size)]
        energy = None if self.energy is None else np.concatenate([e for _, e in parts])
        return np.concatenate([p for p, _ in parts]), energy


def quantize_input(pixels: np.ndarray, detail: dict) -> np.ndarray:
    dtype = detail["dtype"]
    if dtype == np.uint8:
        return np.asarray(pixels, np.uint8)
    if dtype == np.float32:
        return pixels.astype(np.float32)
    scale, zero_point = detail["quantization"]
    q = np.round(pixels.astype(np.float32) / scale) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def dequantize_output(values: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    if values.dtype in (np.int8, np.uint8) and scale:
        return ((values.astype(np.float32) - zero_point) * scale).astype(np.float32)
    return values.astype(np.float32, copy=True)
