"""Own image folders through the CLI: the budget sized from the data, the publish
check, pre-split folders, the recorded config reused, and one-line CLI errors."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from support.builders import ROOT


def _cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "training", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def _noise_folder(root, classes=3, per_class=60, seed=0):
    """Random-noise images under random class names: nothing to learn, so any model is at chance."""
    rng = np.random.default_rng(seed)
    for k in range(classes):
        (root / f"c{k}").mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (12, 12), np.uint8), "L").save(root / f"c{k}" / f"{i:03d}.png")
    return root


def _bars_folder(root, per_class=60):
    """Horizontal versus vertical bars: learnable in a few steps."""
    rng = np.random.default_rng(1)
    for name, axis in (("horizontal", 0), ("vertical", 1)):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.zeros((12, 12), np.uint8)
            index = [slice(None), slice(None)]
            index[axis] = slice(int(rng.integers(0, 10)), None, 4)
            pixels[tuple(index)] = 255
            Image.fromarray(pixels, "L").save(root / name / f"{i:03d}.png")
    return root


def _where(tmp_path, name, folder):
    return ["--set", f"name={name}", "--set", f"data.path={folder}", "--set", f"models_dir={tmp_path / 'models'}",
            "--set", f"output_dir={tmp_path / 'runs'}", "--set", "train.verbose=0",
            "--set", "model.widths=[8,16]", "--set", "model.convs_per_stage=1"]


def test_a_model_at_chance_is_refused_and_nothing_is_published(tmp_path):
    folder = _noise_folder(tmp_path / "noise")
    run = _cli("train", "--preset", "folder", *_where(tmp_path, "noise", folder), "--set", "train.steps=20",
               "--publish")
    assert run.returncode == 3, run.stderr[-2000:]
    refusal = run.stderr.strip().splitlines()[-1]
    assert refusal.startswith("refused: not published: held-out accuracy") and "majority-class rate" in refusal
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "models" / "noise").exists() or not any((tmp_path / "models" / "noise").iterdir())


def test_folder_recipe_publishes_the_best_epoch_and_evaluate_reuses_the_recorded_data(tmp_path):
    folder = _bars_folder(tmp_path / "bars")
    run = _cli("train", "--preset", "folder", *_where(tmp_path, "bars", folder), "--set", "train.steps=100",
               "--set", "data.test_split=0.25", "--publish")
    assert run.returncode == 0, run.stderr[-2000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["budget"]["batch_size"] == 16 and summary["budget"]["optimizer_steps"] >= 100
    assert "image folder" in run.stderr and "'horizontal', 'vertical'" in run.stderr and "budget:" in run.stderr
    version = tmp_path / "models" / "bars" / "1"
    metadata = json.loads((version / "metadata.json").read_text())
    assert metadata["publish_check"]["passed"] and metadata["config"]["train"]["batch_size"] == 16
    assert metadata["config"]["data"]["image_size"] == 16 and metadata["config"]["data"]["color_mode"] == "L"
    assert metadata["dataset"]["folder"]["layout"] == "hash split"
    assert metadata["command"].startswith("python -m training train --preset folder --set name=bars")

    # no data flags: the version's own data and preprocessing are used
    evaluated = _cli("evaluate", "--model-dir", str(version), "--out", str(tmp_path / "eval"))
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    scores = json.loads(evaluated.stdout.strip().splitlines()[-1])
    assert scores["tflite"] == pytest.approx(metadata["metrics"]["tflite"]["accuracy"])

    # publish needs only the run's name: the rest comes from the run's recorded config
    again = _cli("publish", "--set", "name=bars", "--set", f"output_dir={tmp_path / 'runs'}",
                 "--set", f"models_dir={tmp_path / 'models'}")
    assert again.returncode == 0, again.stderr[-2000:]
    second = json.loads((tmp_path / "models" / "bars" / "2" / "metadata.json").read_text())
    assert second["metrics"]["confusion"] == metadata["metrics"]["confusion"]   # the same best-epoch weights


@pytest.mark.parametrize("overrides, message", [
    (["data.color_mode=grey"], "color_mode"),
    (["data.image_size=-5"], "image_size"),
    (["train.epochs=0"], "'train.epochs' must be at least 1"),
    (["train.batch_size=0"], "'train.batch_size' must be an integer"),
    (["data.path=/nonexistent/folder"], "does not exist"),
])
def test_cli_errors_are_one_line_with_exit_2(tmp_path, overrides, message):
    folder = _bars_folder(tmp_path / "bars", per_class=4)
    sets = [arg for o in overrides for arg in ("--set", o)]
    run = _cli("train", "--preset", "folder", *_where(tmp_path, "bars", folder), *sets)
    assert run.returncode == 2, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last


def test_nested_folder_is_refused_not_read_as_two_classes(tmp_path):
    for part in ("batch1", "batch2"):      # root/<part>/<class>/<image>: one level too deep
        _bars_folder(tmp_path / "data" / part, per_class=3)
    run = _cli("train", "--preset", "folder", *_where(tmp_path, "nested", tmp_path / "data"))
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "inside the class folder" in run.stderr.strip().splitlines()[-1]


def test_config_command_prints_every_key_with_its_comment():
    run = _cli("config", "--preset", "folder")
    assert run.returncode == 0
    assert "train.steps = auto (default 0)" in run.stdout and "# optimizer steps instead of epochs" in run.stdout
    assert "optimize.sparsity = 0.75" in run.stdout


def test_a_folder_given_relative_is_recorded_absolute_and_evaluates_from_anywhere(tmp_path):
    _bars_folder(tmp_path / "work" / "bars")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-m", "training", "train", "--preset", "folder", "--publish", "--force",
                          *_where(tmp_path, "bars", "bars"), "--set", "train.steps=10"],
                         cwd=tmp_path / "work", env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    version = tmp_path / "models" / "bars" / "1"
    meta = json.loads((version / "metadata.json").read_text())
    assert meta["config"]["data"]["path"] == str(tmp_path / "work" / "bars") == meta["dataset"]["path"]
    assert json.loads((tmp_path / "runs" / "bars" / "config.json").read_text())["data"]["path"] == str(
        tmp_path / "work" / "bars")
    evaluated = _cli("evaluate", "--model-dir", str(version), "--out", str(tmp_path / "eval"))   # from the repository
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
