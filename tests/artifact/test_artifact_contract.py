"""The artifact contract end to end: train a tiny model with the training CLI on an
image folder holding awkward files, publish it, serve it with a real gunicorn, and
check that the service answers exactly what ``python -m training evaluate`` computes
for the same files. One decoder and one runner on both sides make them equal."""
import base64
import json
import subprocess
import sys

import numpy as np
import pytest
import requests
from PIL import Image

from artifact import metadata as md
from support.service import REPO, Server

CLASSES = ("dots", "plain", "stripes")


def _save(image: Image.Image, path, fmt: str, **kw) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format=fmt, **kw)


def _ordinary(kind: str, rng) -> Image.Image:
    size = int(rng.integers(12, 40))
    base = rng.integers(0, 60, (size, size, 3))
    if kind == "dots":
        base[rng.random((size, size)) < 0.2] = 255
    elif kind == "stripes":
        base[::3] = [40, 200, 90]
    return Image.fromarray(base.astype(np.uint8))


def awkward_files(root) -> dict:
    """The files whose decoding differs most between naive loaders: name -> path."""
    rgba = Image.new("RGBA", (20, 20), (250, 250, 250, 0))
    rgba.paste((200, 40, 40, 255), (4, 4, 16, 16))
    wide = Image.fromarray(((np.arange(400).reshape(20, 20) * 163) % 65536).astype(np.uint16))
    palette = Image.new("P", (18, 18))
    palette.putpalette([255, 0, 0, 0, 200, 0, 0, 0, 255] + [0] * 759)
    palette.putdata([(i // 3) % 3 for i in range(18 * 18)])
    cmyk = Image.new("CMYK", (24, 16), (0, 200, 120, 30))
    files = {"rgba": root / "dots" / "rgba.png", "png16": root / "plain" / "wide.png",
             "gif": root / "stripes" / "palette.gif", "cmyk": root / "plain" / "cmyk.jpg"}
    _save(rgba, files["rgba"], "PNG")
    _save(wide, files["png16"], "PNG")
    _save(palette, files["gif"], "GIF", transparency=2)
    _save(cmyk, files["cmyk"], "JPEG", quality=90)
    return files


def _cli(*args) -> list:
    run = subprocess.run([sys.executable, "-m", "training", *args], cwd=REPO, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]


def test_service_answers_what_evaluate_computes_for_the_same_files(tmp_path):
    rng = np.random.default_rng(0)
    images = tmp_path / "images"
    for kind in CLASSES:
        for i in range(6):
            _save(_ordinary(kind, rng), images / kind / f"{i}.png", "PNG")
    files = awkward_files(images)
    assert Image.open(files["png16"]).mode.startswith("I;16") and Image.open(files["cmyk"]).mode == "CMYK"

    models = tmp_path / "models"
    summary = _cli("train", "--preset", "tiny", "--publish", "--force", "--set", "name=contract",
                   "--set", "data.source=folder", "--set", f"data.path={images}", "--set", "data.image_size=16",
                   "--set", "data.color_mode=RGB", "--set", f"models_dir={models}",
                   "--set", f"output_dir={tmp_path / 'runs'}", "--set", "train.epochs=1",
                   "--set", "train.verbose=0")[-1]
    version = models / "contract" / "1"
    assert summary["published"] == str(version)
    meta = md.read(version)
    assert meta.labels == list(CLASSES) and meta.input == md.InputSpec.of(16, 16, "RGB")

    names = list(files)
    evaluated = _cli("evaluate", "--preset", "tiny", "--model-dir", str(version),
                     "--images", *[str(files[n]) for n in names])
    assert [line["file"] for line in evaluated] == [str(files[n]) for n in names]
    expected = np.array([line["tflite"] for line in evaluated], np.float32)
    assert expected.shape == (len(names), len(CLASSES))
    np.testing.assert_allclose(np.array([line["saved_model"] for line in evaluated]), expected, atol=1e-5)

    server = Server(models, tmp_path / "server.log", backend="tflite", poll_interval_s=0).wait()
    try:
        encoded = [base64.b64encode(files[n].read_bytes()).decode() for n in names]
        v2 = requests.post(f"{server.url}/v2/models/contract/infer", json={"inputs": [
            {"name": meta.input_name, "datatype": "BYTES", "shape": [len(names)], "data": encoded}]})
        assert v2.status_code == 200, v2.text
        served = np.array(v2.json()["outputs"][0]["data"], np.float32).reshape(expected.shape)
        np.testing.assert_allclose(served, expected, atol=1e-5)
        v1 = requests.post(f"{server.url}/v1/models/contract:predict",
                           json={"instances": [{"b64": e} for e in encoded]})
        assert v1.status_code == 200, v1.text
        np.testing.assert_allclose(np.array(v1.json()["predictions"], np.float32), expected, atol=1e-5)
    finally:
        server.stop()


@pytest.mark.parametrize("name", ["rgba", "png16", "gif", "cmyk"])
def test_awkward_files_are_real_images_not_blank(tmp_path, name):
    """Guards the contract test's premise: each awkward file decodes to something non-trivial."""
    from artifact.imaging import decode_image
    path = awkward_files(tmp_path)[name]
    pixels = decode_image(path, md.InputSpec.of(16, 16, "RGB"))
    assert pixels.std() > 5, (name, pixels.std())
    assert pixels.min() < 250 and pixels.max() > 5
