"""Train a tiny model once, publish it, and check every exported form against Keras."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from training.release import publish_result
from training.evaluate import predict_saved_model, predict_tflite
from training.publish import latest_version, publish, versions
from training.published import load_keras_model
from training.train import predict_probabilities, train

from conftest import ROOT


@pytest.fixture(scope="module")
def published(fixture_data, tmp_path_factory):
    from training.config import load_config
    tmp = tmp_path_factory.mktemp("export")
    cfg = load_config("tiny", [f"output_dir={tmp / 'runs'}", f"models_dir={tmp / 'models'}",
                               "train.verbose=0", "train.epochs=2"])
    result = train(cfg, data=fixture_data)
    return cfg, result, publish_result(cfg, result, preset="tiny")


def test_artifact_layout_and_metadata(published):
    cfg, result, directory = published
    assert directory.name == "1" and directory.parent.name == "tiny"
    for name in ("saved_model/saved_model.pb", "model.tflite", "metadata.json", "keras_weights.h5"):
        assert (directory / name).exists(), name
    meta = json.loads((directory / "metadata.json").read_text())
    assert meta["version"] == 1 and meta["name"] == "tiny" and meta["created"].endswith("Z")
    assert meta["labels"][0] == "T-shirt/top" and len(meta["labels"]) == 10
    assert meta["input"] == {"height": 28, "width": 28, "channels": 1, "dtype": "uint8",
                             "color_mode": "L", "invert": False, "resize": "bilinear"}
    assert meta["config"]["train"]["epochs"] == 2
    assert meta["techniques"]["initializer"]["resolved"] == "HeNormal"
    assert meta["dataset"]["train"]["examples"] == len(result.train)
    for fmt in ("keras", "saved_model", "tflite"):
        assert 0.0 <= meta["metrics"][fmt]["accuracy"] <= 1.0
    assert meta["metrics"]["tflite"]["gzip_bytes"] < meta["metrics"]["tflite"]["bytes"]
    assert meta["parent"] is None


def test_saved_model_and_tflite_match_keras(published, fixture_data):
    _, result, directory = published
    x = fixture_data[2].x
    keras_probs = predict_probabilities(result.model, fixture_data[2])
    for probs in (predict_saved_model(directory, x), predict_tflite(directory / "model.tflite", x)):
        assert probs.shape == keras_probs.shape
        np.testing.assert_array_equal(probs.argmax(1), keras_probs.argmax(1))
        np.testing.assert_allclose(probs, keras_probs, atol=1e-4)


def test_keras_model_round_trips_from_the_artifact(published, fixture_data):
    _, result, directory = published
    model, meta = load_keras_model(directory)
    np.testing.assert_allclose(predict_probabilities(model, fixture_data[2]),
                               predict_probabilities(result.model, fixture_data[2]), atol=1e-6)


def test_training_wrote_checkpoint_history_and_logs(published):
    _, result, _ = published
    assert (result.run_dir / "checkpoints" / "best.h5").exists()
    assert (result.run_dir / "history.csv").read_text().count("\n") == 3      # header + 2 epochs
    assert any((result.run_dir / "tensorboard").rglob("events.out.tfevents*"))
    assert json.loads((result.run_dir / "config.json").read_text())["name"] == "tiny"


def test_failed_write_leaves_no_version_and_no_staging(tmp_path):
    def write(staging):
        (staging / "model.tflite").write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        publish(tmp_path, "m", write)
    assert versions(tmp_path, "m") == []
    assert list((tmp_path / "m").iterdir()) == []


CRASHING_WRITER = """
import os, sys, time
sys.path.insert(0, {root!r})
from training.publish import publish
def write(staging):
    (staging / "model.tflite").write_bytes(b"partial")
    print("writing", flush=True)
    time.sleep(60)
publish({models!r}, "m", write)
"""


def test_killed_publisher_leaves_only_a_hidden_dir(tmp_path):
    """A crash mid-publish (SIGKILL, nothing cleaned up) is invisible to readers."""
    proc = subprocess.Popen([sys.executable, "-c", CRASHING_WRITER.format(root=str(ROOT), models=str(tmp_path))],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    leftovers = list((tmp_path / "m").iterdir())
    assert leftovers and all(p.name.startswith(".") for p in leftovers)
    assert versions(tmp_path, "m") == []
    with pytest.raises(FileNotFoundError):
        latest_version(tmp_path, "m")
    done = publish(tmp_path, "m", lambda staging: {"name": "m"})
    assert done.name == "1" and json.loads((done / "metadata.json").read_text())["version"] == 1


def test_concurrent_publishers_get_distinct_versions(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    def slow_write(staging):
        time.sleep(0.05)
        return {"name": "m"}

    with ThreadPoolExecutor(4) as pool:
        dirs = list(pool.map(lambda _: publish(tmp_path, "m", slow_write), range(6)))
    assert sorted(int(d.name) for d in dirs) == [1, 2, 3, 4, 5, 6]
    assert versions(tmp_path, "m") == [1, 2, 3, 4, 5, 6]


def test_evaluate_command_writes_reports_and_confusion_png(published, tmp_path):
    _, _, directory = published
    out = tmp_path / "eval"
    run = subprocess.run([sys.executable, "-m", "training", "evaluate", "--preset", "tiny",
                          "--model-dir", str(directory), "--out", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert set(summary) >= {"saved_model", "tflite"}
    report = json.loads((out / "report.json").read_text())
    assert set(report["saved_model"]["per_class"]["Trouser"]) == {"precision", "recall", "f1", "support"}
    for fmt in ("saved_model", "tflite"):
        assert (out / f"confusion_{fmt}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
