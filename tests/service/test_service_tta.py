"""A version with test-time augmentation in its graphs (``publish.tta``, training/publish/tta.py),
served unchanged by a real gunicorn: it loads, answers, and its probabilities are the mean of the
plain model's on the image, its mirror and the four 1-pixel shifts, computed here in-process.

The version is exported by training's own export (a tiny untrained CNN, seeded), since the views
live in the graph training writes; the service has nothing TTA-specific to run."""
import numpy as np
import pytest
import requests

from artifact import metadata as md
from artifact.versions import publish
from support.builders import tiny_config
from support.service import LABELS, Server, fashion_data, png_bytes
from support.views import NUMPY_VIEWS

X = fashion_data()["x_test"][:3]
VIEWS = ["identity", "flip", "up1", "down1", "left1", "right1"]


@pytest.fixture(scope="module")
def tta_version(tmp_path_factory):
    """(models root, the plain Keras model's probabilities per view of X): fashion/1 exported with
    publish.tta's six views and no temperature."""
    from training.config import load_config
    from training.keras2 import keras
    from training.models.registry import build_for_experiment
    from training.publish import tta
    from training.publish.export import export_files
    cfg = tiny_config(None)
    keras.utils.set_random_seed(0)
    model = build_for_experiment(cfg, (28, 28, 1), len(LABELS))
    views = tta.views(load_config(None, ["publish.tta=true"]).publish, cfg.augment, 28)
    assert [v.name for v in views] == VIEWS
    root = tmp_path_factory.mktemp("tta") / "models"
    root.mkdir()

    def write(staging):
        return export_files(staging, model, name="fashion", class_names=LABELS, color_mode="L", views=views)

    directory = publish(root, "fashion", write)
    assert md.read(directory).extra["tta"]["views"] == VIEWS
    x = X[..., None]
    per_view = np.stack([model(NUMPY_VIEWS[name](x) / 255.0, training=False).numpy() for name in VIEWS])
    return root, per_view


@pytest.fixture(scope="module")
def tta_server(tta_version, tmp_path_factory):
    server = Server(tta_version[0], tmp_path_factory.mktemp("logs") / "tta.log", backend="tflite",
                    poll_interval_s=0).wait()
    yield server
    server.stop()


def test_a_tta_version_answers_the_mean_of_the_plain_models_views(tta_version, tta_server):
    _, per_view = tta_version
    files = [("file", (f"item{i}.png", png_bytes(img), "image/png")) for i, img in enumerate(X)]
    r = requests.post(tta_server.url + "/predict?top_k=10&min_confidence=0&max_energy=off", files=files)
    assert r.status_code == 200, r.text
    served = np.array([[{t["label"]: t["probability"] for t in item["top_k"]}[label] for label in LABELS]
                       for item in r.json()["predictions"]])
    mean = per_view.mean(axis=0)
    np.testing.assert_allclose(served, mean, atol=1e-4)
    assert np.abs(mean - per_view[0]).max() > 1e-3     # not the plain answer: the views are in the graph
