"""Turn what a client sent into model input: uint8 [H,W,C] per item.

Encoded images (JPEG, PNG, ...) go through ``artifact.imaging.decode_image``,
the decoder training used too, driven by the version's ``InputSpec``.
Pixel arrays are taken as the model's input tensor as they are: exact shape,
integers 0..255, no resizing or inversion (as TF Serving does with tensors).
Every failure raises ``ImageError`` (a 400): bad input is the client's fault.
"""
from __future__ import annotations

import base64
import binascii
from itertools import chain

import numpy as np

from artifact import imaging
from artifact.metadata import InputSpec

from .errors import BadRequest


class ImageError(BadRequest):
    pass


def b64decode(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise ImageError("b64 field is not valid base64") from None


def decode_image(data: bytes, spec: InputSpec, max_pixels: int) -> np.ndarray:
    try:
        return imaging.decode_image(data, spec, max_pixels)
    except imaging.ImageError as exc:
        raise ImageError(str(exc)) from None


def pixels_from_array(value, spec: InputSpec) -> np.ndarray:
    """A nested list [H,W,C] or [H,W] (when C is 1) of integers 0..255."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):
        raise ImageError("pixel array is ragged") from None
    if array.dtype == object or array.dtype.kind not in "iuf" or array.dtype == bool:
        raise ImageError(f"pixel array must hold numbers 0..255, got dtype {array.dtype}")
    if array.ndim == 2 and spec.channels == 1:
        array = array[:, :, None]
    if array.shape != spec.shape:
        raise ImageError(f"pixel array has shape {list(array.shape)}, expected {list(spec.shape)}")
    if array.dtype.kind == "f" and not np.all(np.mod(array, 1) == 0):
        raise ImageError("pixel values must be integers 0..255")
    if array.size and (array.min() < 0 or array.max() > 255):
        raise ImageError("pixel values must lie in 0..255")
    return array.astype(np.uint8)


def pixel_batch(values: list, spec: InputSpec) -> list | None:
    """Every item of ``values`` as uint8 [H,W,C], when all of them are pixel arrays of
    integers 0..255 in the model's shape ([H,W,C], or [H,W] when C is 1); else None (b64
    objects, named inputs, floats, any bad item), and the caller decodes item by item
    with ``pixels_from_array``, which gives each bad item its own error.

    The nested lists are flattened level by level (each level's lengths checked, so a
    ragged array is never accepted) and converted by one ``np.array`` on the flat list:
    ``np.asarray`` on the nested lists (what ``pixels_from_array`` does per item) spends
    most of its time discovering the shape, one small list at a time (a 28x28x1 image
    is 813 lists)."""
    try:
        first = values[0][0]
        shape = spec.shape if isinstance(first[0], list) else spec.shape[:2] if spec.channels == 1 else ()
    except (IndexError, KeyError, TypeError):
        return None
    if not shape:
        return None
    level = values
    try:
        for size in shape:
            if size == 1:  # the channel of a grey image: unpacking fails on any other length
                level = [value for (value,) in level]
                continue
            sizes = list(map(len, level))
            if sizes.count(size) != len(sizes):
                return None
            level = list(chain.from_iterable(level))
        array = np.array(level)
    except (ValueError, TypeError, OverflowError):
        return None
    if array.ndim != 1 or array.dtype.kind not in "iu":  # floats, bools, objects, text
        return None
    if array.min() < 0 or array.max() > 255:
        return None
    return list(array.astype(np.uint8).reshape(len(values), *spec.shape))
