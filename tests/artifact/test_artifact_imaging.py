"""artifact.imaging.decode_image: every kind of file training folders and uploads hold."""
import io

import numpy as np
import pytest
from PIL import Image

from artifact.imaging import ImageError, decode_image
from artifact.metadata import InputSpec

GREY = InputSpec.of(16, 16, "L")
RGB = InputSpec.of(4, 4, "RGB")
PALETTE = [255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759    # red, green, blue


def encode(image: Image.Image, fmt="PNG", **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


def palette_image() -> Image.Image:
    image = Image.new("P", (4, 4))
    image.putpalette(PALETTE)
    image.putdata([0, 1, 2, 1] * 4)
    return image


def test_grey_png_at_model_size_round_trips_exactly():
    pixels = np.random.default_rng(0).integers(0, 256, (16, 16), dtype=np.uint8)
    out = decode_image(encode(Image.fromarray(pixels)), GREY)
    assert out.shape == (16, 16, 1) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, :, 0], pixels)


def test_rgba_png_transparency_becomes_the_background():
    image = Image.new("RGBA", (16, 16), (255, 255, 255, 0))    # transparent white...
    image.paste((255, 0, 0, 255), (0, 0, 8, 16))                # ...beside opaque red
    out = decode_image(encode(image), GREY)[:, :, 0]
    assert (out[:, 8:] == 0).all()                              # black, as the model's background
    assert (out[:, :8] == 76).all()                             # ITU-R 601 luma of pure red
    inverted = decode_image(encode(image), InputSpec.of(16, 16, "L", invert=True))[:, :, 0]
    assert (inverted[:, 8:] == 0).all() and (inverted[:, :8] == 255 - 76).all()   # white, then inverted


def test_16_bit_png_keeps_its_top_8_bits():
    wide = (np.arange(256, dtype=np.uint16) * 257).reshape(16, 16)   # 0..65535
    data = encode(Image.fromarray(wide))
    assert Image.open(io.BytesIO(data)).mode.startswith("I;16")
    out = decode_image(data, GREY)[:, :, 0]
    np.testing.assert_array_equal(out, np.arange(256).reshape(16, 16))


def test_palette_gif_with_and_without_transparency():
    plain = decode_image(encode(palette_image(), "GIF"), RGB)
    np.testing.assert_array_equal(plain[0], [[255, 0, 0], [0, 255, 0], [0, 0, 255], [0, 255, 0]])
    see_through = decode_image(encode(palette_image(), "GIF", transparency=1), RGB)
    np.testing.assert_array_equal(see_through[0], [[255, 0, 0], [0, 0, 0], [0, 0, 255], [0, 0, 0]])


def test_cmyk_jpeg_becomes_rgb():
    data = encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95)
    out = decode_image(data, InputSpec.of(16, 16, "RGB")).astype(int)
    assert np.abs(out - [255, 0, 0]).max() <= 3


def test_exif_orientation_is_applied_before_resizing():
    # 32x16, white on its left half, stored with EXIF orientation 6 (rotate 90
    # degrees clockwise to display): upright it is 16 wide, 32 tall, white on top.
    image = Image.new("L", (32, 16), 0)
    image.paste(255, (0, 0, 16, 16))
    exif = Image.Exif()
    exif[0x0112] = 6
    out = decode_image(encode(image, "JPEG", exif=exif.tobytes(), quality=95), GREY)[:, :, 0]
    assert out[:6].mean() > 200 and out[-6:].mean() < 50


def test_colour_mode_conversion_resize_and_inversion():
    grey_to_rgb = decode_image(encode(Image.new("L", (8, 8), 77)), RGB)
    assert grey_to_rgb.shape == (4, 4, 3) and (grey_to_rgb == 77).all()
    page = decode_image(encode(Image.new("RGB", (100, 60), (255, 255, 255))),
                        InputSpec.of(28, 28, "L", invert=True))
    assert page.shape == (28, 28, 1) and page.max() == 0


def test_a_path_decodes_like_its_bytes(tmp_path):
    data = encode(Image.new("RGBA", (10, 6), (10, 200, 30, 128)))
    (tmp_path / "a.png").write_bytes(data)
    np.testing.assert_array_equal(decode_image(tmp_path / "a.png", RGB), decode_image(data, RGB))
    with pytest.raises(ImageError, match="missing.png: cannot read"):
        decode_image(tmp_path / "missing.png", RGB)


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"definitely not an image", "cannot decode"),
    (encode(Image.new("L", (28, 28)))[:40], "cannot decode"),
])
def test_undecodable_input_raises_image_error(data, message):
    with pytest.raises(ImageError, match=message):
        decode_image(data, GREY)


def test_pixel_count_guard_runs_before_decoding():
    big = encode(Image.new("L", (200, 200)))
    with pytest.raises(ImageError, match="more than the limit"):
        decode_image(big, GREY, max_pixels=200 * 199)
