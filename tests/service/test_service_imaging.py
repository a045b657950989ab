"""service.imaging: the HTTP side of images - 400s, base64, pixel arrays.
Decoding itself is artifact.imaging's (tests/artifact/test_artifact_imaging.py)."""
import base64
import io

import numpy as np
import pytest
from PIL import Image

from artifact.metadata import InputSpec
from service.imaging import ImageError, b64decode, decode_image, pixels_from_array

GREY = InputSpec(28, 28, 1, "L", False, "bilinear")


def encode(image: Image.Image, fmt="PNG", **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_upload_decodes_with_the_artifact_decoder():
    pixels = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    out = decode_image(b64decode(base64.b64encode(encode(Image.fromarray(pixels))).decode()), GREY, 10_000)
    np.testing.assert_array_equal(out[:, :, 0], pixels)


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"definitely not an image", "cannot decode"),
    (encode(Image.new("L", (28, 28)))[:40], "cannot decode"),
])
def test_undecodable_input_is_a_client_error(data, message):
    with pytest.raises(ImageError, match=message) as info:
        decode_image(data, GREY, 10_000)
    assert info.value.status == 400


def test_pixel_count_guard_is_a_client_error():
    big = encode(Image.new("L", (200, 200)))
    with pytest.raises(ImageError, match="more than the limit") as info:
        decode_image(big, GREY, max_pixels=200 * 199)
    assert info.value.status == 400


def test_bad_base64_is_a_client_error():
    with pytest.raises(ImageError, match="not valid base64") as info:
        b64decode("not base64!")
    assert info.value.status == 400


def test_pixel_arrays_are_checked_not_resized():
    grid = np.arange(28 * 28).reshape(28, 28) % 256
    np.testing.assert_array_equal(pixels_from_array(grid.tolist(), GREY)[:, :, 0], grid)
    assert pixels_from_array(grid[:, :, None].tolist(), GREY).shape == (28, 28, 1)
    for bad, message in [(grid[:27].tolist(), "shape"), ((grid + 300).tolist(), "0..255"),
                         ([["a"] * 28] * 28, "numbers"), ([[1, 2], [3]], "ragged|numbers"),
                         ((grid + 0.5).tolist(), "integers")]:
        with pytest.raises(ImageError, match=message):
            pixels_from_array(bad, GREY)
