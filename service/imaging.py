"""Turn what a client sent into model input: uint8 [H,W,C] per item.

Encoded images (JPEG, PNG, ...) are decoded with Pillow, turned upright
(EXIF orientation), converted to the colour mode, resized and, when the
metadata says so, inverted - all driven by the version's ``InputSpec``.
Pixel arrays are taken as the model's input tensor as they are: exact shape,
integers 0..255, no resizing or inversion (as TF Serving does with tensors).
Every failure raises ``ImageError`` (a 400): bad input is the client's fault.
"""
from __future__ import annotations

import base64
import binascii
import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import BadRequest
from .repository import InputSpec

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX, "hamming": Image.Resampling.HAMMING,
}


class ImageError(BadRequest):
    pass


def b64decode(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise ImageError("b64 field is not valid base64") from None


def decode_image(data: bytes, spec: InputSpec, max_pixels: int) -> np.ndarray:
    if not data:
        raise ImageError("empty image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            # Checked from the header, before any pixel is decoded.
            if width * height > max_pixels:
                raise ImageError(f"image has {width}x{height} pixels, more than the limit of {max_pixels}")
            image = ImageOps.exif_transpose(image)
            image = _to_mode(image, spec)
            if image.size != (spec.width, spec.height):
                image = image.resize((spec.width, spec.height), _RESAMPLE[spec.resize])
            pixels = np.asarray(image, dtype=np.uint8)
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError("cannot decode image (unsupported format or too large)") from None
    except (OSError, ValueError, SyntaxError, EOFError):
        raise ImageError("cannot decode image (truncated or corrupt)") from None
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if spec.invert:
        pixels = 255 - pixels
    return pixels


def _to_mode(image: Image.Image, spec: InputSpec) -> Image.Image:
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        # Transparent pixels become the model's background: black for models
        # that see white-on-black, white when the service inverts afterwards.
        rgba = image.convert("RGBA")
        fill = (255, 255, 255, 255) if spec.invert else (0, 0, 0, 255)
        background = Image.new("RGBA", rgba.size, fill)
        image = Image.alpha_composite(background, rgba)
    if image.mode == "I;16" or image.mode.startswith("I;16"):
        image = image.point(lambda v: v / 256).convert("L")
    return image.convert(spec.color_mode)


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
