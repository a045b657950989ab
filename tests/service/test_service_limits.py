"""Input limits and back-pressure on a real server with tight settings (tflite)."""
import pytest
import requests

from support.service import Server, fashion_data, model_root, png_bytes

PIXELS = fashion_data()["x_test"][0]


@pytest.fixture(scope="module")
def tight(tmp_path_factory, artifact):
    root = model_root(tmp_path_factory, artifact, "root-tight")
    server = Server(root, tmp_path_factory.mktemp("logs") / "tight.log", backend="tflite",
                    poll_interval_s=0, max_queue=0, max_content_length=64 * 1024, max_items=2,
                    max_image_pixels=100 * 100).wait()
    yield server
    server.stop()


def error_of(r, status):
    assert r.status_code == status, r.text
    return r.json()["error"]


def test_413_over_the_configured_body_limit(tight):
    r = requests.post(tight.url + "/predict", data=b"\0" * (100 * 1024), headers={"Content-Type": "image/png"})
    assert "limit" in error_of(r, 413)


def test_400_too_many_items(tight):
    r = requests.post(tight.url + "/v1/models/fashion:predict", json={"instances": [PIXELS.tolist()] * 3})
    assert "limit is 2" in error_of(r, 400)


def test_400_decompression_bomb_guard(tight):
    from PIL import Image
    import io
    buf = io.BytesIO()
    Image.new("L", (400, 400)).save(buf, format="PNG")  # tiny file, 160,000 pixels
    assert len(buf.getvalue()) < 64 * 1024
    r = requests.post(tight.url + "/predict", data=buf.getvalue(), headers={"Content-Type": "image/png"})
    assert "more than the limit" in error_of(r, 400)


def test_429_when_the_batching_queue_is_full(tight):
    # max_queue=0: the queue can never take a request, so valid ones are turned away.
    r = requests.post(tight.url + "/v1/models/fashion:predict", json={"instances": [PIXELS.tolist()]})
    assert "queue is full" in error_of(r, 429)
    r = requests.post(tight.url + "/predict", data=png_bytes(PIXELS), headers={"Content-Type": "image/png"})
    error_of(r, 429)
