"""service.imaging: decoding, EXIF orientation, colour modes, resizing, guards."""
import io

import numpy as np
import pytest
from PIL import Image

from service.imaging import ImageError, decode_image, pixels_from_array
from service.repository import InputSpec

GREY = InputSpec(28, 28, 1, "L", False, "bilinear")


def encode(image: Image.Image, fmt="PNG", **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_grey_png_at_model_size_round_trips_exactly():
    pixels = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    out = decode_image(encode(Image.fromarray(pixels)), GREY, 10_000)
    assert out.shape == (28, 28, 1) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, :, 0], pixels)


def test_exif_orientation_is_applied_before_resizing():
    # A 56x28 image, white on its left half, stored with EXIF orientation 6
    # (rotate 90 degrees clockwise to display): upright it is 28 wide, 56 tall,
    # and the white half is on top.
    image = Image.new("L", (56, 28), 0)
    image.paste(255, (0, 0, 28, 28))
    exif = Image.Exif()
    exif[0x0112] = 6
    out = decode_image(encode(image, "JPEG", exif=exif.tobytes(), quality=95), GREY, 10_000)[:, :, 0]
    assert out[:10].mean() > 200 and out[-10:].mean() < 50


def test_rgb_is_converted_to_grey_and_resized_and_inverted():
    image = Image.new("RGB", (100, 60), (255, 255, 255))
    spec = InputSpec(28, 28, 1, "L", True, "bilinear")
    out = decode_image(encode(image), spec, 10_000)
    assert out.shape == (28, 28, 1) and out.max() == 0  # white page -> black after invert


def test_transparent_pixels_become_the_background():
    image = Image.new("RGBA", (28, 28), (255, 255, 255, 0))
    assert decode_image(encode(image), GREY, 10_000).max() == 0


def test_rgb_model_gets_three_channels_from_grey_input():
    spec = InputSpec(8, 8, 3, "RGB", False, "nearest")
    out = decode_image(encode(Image.new("L", (8, 8), 77)), spec, 10_000)
    assert out.shape == (8, 8, 3) and (out == 77).all()


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"definitely not an image", "cannot decode"),
    (encode(Image.new("L", (28, 28)))[:40], "cannot decode"),
])
def test_undecodable_input_is_a_client_error(data, message):
    with pytest.raises(ImageError, match=message) as info:
        decode_image(data, GREY, 10_000)
    assert info.value.status == 400


def test_pixel_count_guard_runs_before_decoding():
    big = encode(Image.new("L", (200, 200)))
    with pytest.raises(ImageError, match="more than the limit"):
        decode_image(big, GREY, max_pixels=200 * 199)


def test_pixel_arrays_are_checked_not_resized():
    grid = np.arange(28 * 28).reshape(28, 28) % 256
    np.testing.assert_array_equal(pixels_from_array(grid.tolist(), GREY)[:, :, 0], grid)
    assert pixels_from_array(grid[:, :, None].tolist(), GREY).shape == (28, 28, 1)
    for bad, message in [(grid[:27].tolist(), "shape"), ((grid + 300).tolist(), "0..255"),
                         ([["a"] * 28] * 28, "numbers"), ([[1, 2], [3]], "ragged|numbers"),
                         ((grid + 0.5).tolist(), "integers")]:
        with pytest.raises(ImageError, match=message):
            pixels_from_array(bad, GREY)
