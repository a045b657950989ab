"""Train a tiny model once, publish it, and check every exported form against Keras.
Publishing itself (atomic rename, crashes, concurrency) is tests/artifact/test_artifact_versions.py."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from artifact.litert import LiteRTRunner
from training.publish.scoring import version_runner
from training.models.published import load_keras_model
from training.publish.release import publish_result
from training.fit.train import predict_probabilities, train

from support.builders import ROOT


@pytest.fixture(scope="module")
def published(fixture_data, tmp_path_factory):
    from training.config import load_config
    tmp = tmp_path_factory.mktemp("export")
    cfg = load_config("tiny", [f"output_dir={tmp / 'runs'}", f"models_dir={tmp / 'models'}",
                               "train.verbose=0", "train.epochs=2"])
    result = train(cfg, data=fixture_data)
    return cfg, result, publish_result(cfg, result, preset="tiny", force=True)


def test_artifact_layout_and_metadata(published):
    cfg, result, directory = published
    assert directory.name == "1" and directory.parent.name == "tiny"
    for name in ("saved_model/saved_model.pb", "model.tflite", "metadata.json", "keras_weights.h5"):
        assert (directory / name).exists(), name
    meta = json.loads((directory / "metadata.json").read_text())
    assert meta["schema_version"] == 1 and meta["version"] == 1 and meta["name"] == "tiny" and meta["created"].endswith("Z")
    assert meta["labels"][0] == "T-shirt/top" and len(meta["labels"]) == 10
    assert meta["input"] == {"height": 28, "width": 28, "channels": 1, "dtype": "uint8",
                             "color_mode": "L", "invert": False, "resize": "bilinear"}
    assert meta["config"]["train"]["epochs"] == 2
    assert meta["techniques"]["initializer"]["resolved"] == "HeNormal"
    assert meta["dataset"]["train"]["examples"] == len(result.train)
    for fmt in ("saved_model", "tflite"):
        assert 0.0 <= meta["metrics"][fmt]["accuracy"] <= 1.0
    assert meta["metrics"]["tflite"]["gzip_bytes"] < meta["metrics"]["tflite"]["bytes"]
    assert meta["parent"] is None and meta["publish_check"]["forced"] in (True, False)


def test_the_metrics_are_the_staged_files_scored_as_the_service_runs_them(published, fixture_data):
    """One score per format, through the service's runners; per class and confusion from the tflite file."""
    _, _, directory = published
    test = fixture_data[2]
    meta = json.loads((directory / "metadata.json").read_text())
    probs = LiteRTRunner(directory / "model.tflite").predict(test.x)
    confusion = np.zeros((10, 10), int)
    np.add.at(confusion, (test.y, probs.argmax(1)), 1)
    assert meta["metrics"]["confusion"] == confusion.tolist()
    assert meta["metrics"]["tflite"]["accuracy"] == round(float(np.mean(probs.argmax(1) == test.y)), 4)
    assert meta["metrics"]["per_class"]["Trouser"]["support"] == int(np.sum(test.y == 1))
    assert meta["metrics"]["test_examples"] == len(test)


def test_the_energy_rule_is_chosen_on_the_validation_split(published):
    """serving.max_energy keeps ENERGY_ACCEPT of the validation images as the served file scores
    them; the metadata records what it kept and where it was measured."""
    from training.publish.release import ENERGY_ACCEPT
    cfg, result, directory = published
    meta = json.loads((directory / "metadata.json").read_text())
    _, energy = LiteRTRunner(directory / "model.tflite").predict_energy(result.validation.x)
    limit = round(float(np.quantile(energy.astype(np.float64), ENERGY_ACCEPT)), 4)
    assert meta["serving"]["max_energy"] == limit
    rule = meta["serving"]["energy_rule"]
    assert rule["fitted_on"] == "validation" and rule["measured_with"] == "tflite"
    assert rule["validation_examples"] == len(result.validation) and rule["accept"] == ENERGY_ACCEPT
    assert rule["validation_accepted"] == round(float(np.mean(energy <= limit)), 4)
    assert abs(rule["validation_accepted"] - ENERGY_ACCEPT) <= 2 / len(result.validation) + 1e-4


def test_export_writes_files_and_leaves_the_metadata_to_the_publisher(published, tmp_path):
    """metadata.json is written once, by artifact.versions.publish, never by the export."""
    from training.publish.export import export_files
    _, result, _ = published
    meta = export_files(tmp_path, result.model, name="tiny", class_names=result.test.class_names, color_mode="L")
    assert (tmp_path / "model.tflite").exists() and (tmp_path / "saved_model").is_dir()
    assert not (tmp_path / "metadata.json").exists()
    assert meta.format_path(tmp_path, "tflite") == tmp_path / "model.tflite"


def test_saved_model_and_tflite_match_keras(published, fixture_data):
    """Both graphs answer the Keras model's probabilities with the recorded temperature baked in."""
    from training.publish.calibration import temper
    _, result, directory = published
    x = fixture_data[2].x
    temperature = json.loads((directory / "metadata.json").read_text())["calibration"]["temperature"]
    keras_probs = temper(predict_probabilities(result.model, fixture_data[2]), temperature)
    for probs in (version_runner(directory, "saved_model").predict(x),
                  LiteRTRunner(directory / "model.tflite").predict(x)):
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
        assert (out / f"reliability_{fmt}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert 0.0 <= report[fmt]["ece"] <= 1.0 and report[fmt]["nll"] > 0
    assert summary["tflite_ece"] == report["tflite"]["ece"]


def test_evaluate_images_errors_are_one_line_and_exit_2(published, tmp_path, capsys):
    from training.cli.main import main
    _, _, directory = published
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    for argv, message in [(["--images", str(tmp_path / "broken.png")], "needs --model-dir"),
                          (["--model-dir", str(directory), "--images", str(tmp_path / "broken.png")],
                           "broken.png: cannot decode image")]:
        with pytest.raises(SystemExit) as exit_info:
            main(["evaluate", "--preset", "tiny", *argv])
        err = capsys.readouterr().err.strip()
        assert exit_info.value.code == 2 and message in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("damaged, message", [
    ("model.tflite", "as a TFLite model"),
    ("saved_model/saved_model.pb", "as a SavedModel"),
])
def test_evaluate_of_a_corrupted_version_names_the_file(published, tmp_path, capsys, damaged, message):
    from training.cli.main import main
    _, _, directory = published
    version = tmp_path / "tiny" / "1"
    shutil.copytree(directory, version)
    (version / damaged).write_bytes(b"\x00 not a model \x00" * 8)
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--model-dir", str(version), "--out", str(tmp_path / "eval")])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1, err
    assert message in err and str(version / damaged.split("/")[0]) in err
    assert not (tmp_path / "eval").exists()


def test_evaluate_finds_a_relative_data_path_from_any_directory(published, tmp_path):
    """The fixture version records data.path as configs/tiny.yaml gives it (relative, as versions
    published before paths were recorded absolute do): it is found under the repository root."""
    _, _, directory = published
    assert not Path(json.loads((directory / "metadata.json").read_text())["config"]["data"]["path"]).is_absolute()
    run = subprocess.run([sys.executable, "-m", "training", "evaluate", "--model-dir", str(directory),
                          "--out", str(tmp_path / "eval")], cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]


def test_evaluate_says_where_it_looked_for_data_it_cannot_find(published, tmp_path, capsys):
    from training.cli.main import main
    _, _, directory = published
    version = tmp_path / "tiny" / "1"
    shutil.copytree(directory, version)
    meta = json.loads((version / "metadata.json").read_text())
    meta["config"]["data"]["path"] = "gone/fashion.npz"
    (version / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--model-dir", str(version), "--out", str(tmp_path / "eval")])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1, err
    assert "data.path 'gone/fashion.npz' does not exist" in err and str(ROOT / "gone" / "fashion.npz") in err
