"""service.imaging: the HTTP side of images - 400s, base64, pixel arrays.
Decoding itself is artifact.imaging's (tests/artifact/test_artifact_imaging.py)."""
import base64
import io

import numpy as np
import pytest
from PIL import Image

from artifact.metadata import InputSpec
from service.imaging import ImageError, b64decode, decode_image, pixel_batch, pixels_from_array

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


def test_a_batch_of_plain_pixel_arrays_converts_in_one_go_or_not_at_all():
    """``pixel_batch`` (the v1 fast path) gives what ``pixels_from_array`` gives item by item,
    and None for anything it would not accept, so the per-item path still answers each error."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 28, 28, 1), dtype=np.uint8)
    for values in ([x.tolist() for x in images], [x[:, :, 0].tolist() for x in images]):
        out = pixel_batch(values, GREY)
        assert [o.dtype for o in out] == [np.uint8] * 3 and [o.shape for o in out] == [(28, 28, 1)] * 3
        for got, value in zip(out, values):
            np.testing.assert_array_equal(got, pixels_from_array(value, GREY))
    good = images[0].tolist()
    ragged = [row[:] for row in good]
    ragged[0], ragged[1] = ragged[0][:27], ragged[1] + [[1]]        # the same number of pixels
    deep = [[[p[:] for p in row] for row in good]]
    deep[0][0][0], deep[0][0][1] = [1, 2], []                         # again the same number
    for bad in ([[[1.5] * 28] * 28], [[[True] * 28] * 28], [[["5"] * 28] * 28], [[[-1] * 28] * 28],
                [[[256] * 28] * 28], [[[2 ** 70] * 28] * 28], [ragged], deep, [{"b64": "x"}],
                [{"pixels": good}], [good, 5], [good, {"b64": "x"}], [good, [[1] * 28] * 28],
                [[[[1]] * 28] * 27], [], [[]], [[[]]], [[{"a": 1}] * 28]):
        assert pixel_batch(bad, GREY) is None, bad
