import json
import subprocess
import sys

import pytest

from support.callbacks import CrashAtEpoch
from training.config import ConfigError
from training.fit.train import train

from support.builders import ROOT


def test_interrupted_training_resumes_from_last_epoch(tiny_config, fixture_data):
    cfg = tiny_config("train.epochs=3", "data.limit=400")
    with pytest.raises(KeyboardInterrupt):
        train(cfg, data=fixture_data, callbacks=[CrashAtEpoch(2)])
    resumed = train(cfg, data=fixture_data)
    assert len(resumed.history["loss"]) == 1                 # only epoch 3 ran again
    rows = (resumed.run_dir / "history.csv").read_text().strip().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["0", "1", "2"]
    assert not (resumed.run_dir / "backup").exists() or not any((resumed.run_dir / "backup").iterdir())


def test_a_backup_of_a_different_config_is_refused_not_resumed(tiny_config, fixture_data, tmp_path):
    first = tiny_config("train.epochs=2", "data.limit=200", f"output_dir={tmp_path}")
    with pytest.raises(KeyboardInterrupt):
        train(first, data=fixture_data, callbacks=[CrashAtEpoch(1)])
    changed = tiny_config("train.epochs=2", "data.limit=200", f"output_dir={tmp_path}", "model.head_dropout=0.3")
    with pytest.raises(ConfigError, match="interrupted run of a different config"):
        train(changed, data=fixture_data)
    assert len(train(first, data=fixture_data).history["loss"]) == 1     # the same config still resumes
    assert len(train(changed, data=fixture_data).history["loss"]) == 2   # a finished run blocks nothing


def test_fixed_seed_reproduces_the_first_epoch(tiny_config, fixture_data, tmp_path):
    losses = []
    for run in range(2):
        cfg = tiny_config("train.epochs=1", f"output_dir={tmp_path / f'seed-run-{run}'}")
        losses.append(train(cfg, data=fixture_data).history["loss"][0])
    assert losses[0] == pytest.approx(losses[1], rel=1e-3)


def test_train_command_end_to_end_publishes(tmp_path):
    run = subprocess.run([sys.executable, "-m", "training", "train", "--preset", "tiny", "--publish", "--force",
                          "--set", f"models_dir={tmp_path / 'models'}", "--set", f"output_dir={tmp_path / 'runs'}",
                          "--set", "train.epochs=1", "--set", "train.verbose=0"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["published"].endswith("tiny/1")
    assert (tmp_path / "models" / "tiny" / "1" / "model.tflite").exists()


def test_preview_augment_writes_png(tmp_path):
    out = tmp_path / "grid.png"
    run = subprocess.run([sys.executable, "-m", "training", "preview-augment", "--preset", "tiny",
                          "--out", str(out), "--samples", "3", "--variants", "4"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
