"""``decode_image``: an encoded image file -> the model's uint8 [H,W,C] input.

The one decoder of the project: training's folder loader and the service both
call it, so an image is preprocessed identically at training and at serving
time. Every step is driven by the version's ``InputSpec``:

1. the pixel-count guard, from the header, before any pixel is decoded;
2. EXIF orientation (upright as a viewer shows it);
3. transparency composited onto the model's background, 16-bit greyscale
   rescaled to 8 bits, then conversion to the colour mode (palette, CMYK,
   greyscale and RGB all go through Pillow's ``convert``);
4. resize to the model's size with the spec's filter;
5. inversion (255 - x) when the spec asks for it.

Anything that cannot be decoded raises ``ImageError``.
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .metadata import InputSpec

# Pillow's own decompression-bomb threshold (0.25 GiB of RGBA); the service
# passes its configured, smaller limit.
MAX_PIXELS = 89_478_485

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX, "hamming": Image.Resampling.HAMMING,
}


class ImageError(ValueError):
    """The input is not an image this decoder can turn into model input."""


def decode_image(source: Union[bytes, str, os.PathLike], spec: InputSpec,
                 max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """``source``: the encoded file's bytes, or a path to it."""
    where = ""
    if not isinstance(source, (bytes, bytearray, memoryview)):
        where = f"{source}: "
        try:
            source = Path(source).read_bytes()
        except OSError as exc:
            raise ImageError(f"{where}cannot read the file ({exc.strerror or exc})") from None
    if not source:
        raise ImageError(f"{where}empty image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(source))
            width, height = image.size
            if width * height > max_pixels:
                raise ImageError(f"{where}image has {width}x{height} pixels, more than the limit of {max_pixels}")
            image = _to_mode(ImageOps.exif_transpose(image), spec)
            if image.size != (spec.width, spec.height):
                image = image.resize((spec.width, spec.height), _RESAMPLE[spec.resize])
            pixels = np.asarray(image, dtype=np.uint8)
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{where}cannot decode image (unsupported format or too large)") from None
    except (OSError, ValueError, SyntaxError, EOFError):
        raise ImageError(f"{where}cannot decode image (truncated or corrupt)") from None
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if spec.invert:
        pixels = 255 - pixels
    return pixels


def _to_mode(image: Image.Image, spec: InputSpec) -> Image.Image:
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        # Transparent pixels become the model's background: black for models
        # that see white-on-black, white when the image is inverted afterwards.
        rgba = image.convert("RGBA")
        fill = (255, 255, 255, 255) if spec.invert else (0, 0, 0, 255)
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, fill), rgba)
    if image.mode.startswith("I;16"):
        # convert("L") would clip 16-bit values at 255; keep the top 8 bits instead.
        image = image.point(lambda v: v / 256).convert("L")
    return image.convert(spec.color_mode)
