import json
import os
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
    assert resumed.epochs_run == 1                           # only epoch 3 ran again
    assert len(resumed.history["loss"]) == 3                 # and the history holds all three (what publish records)
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
    assert train(first, data=fixture_data).epochs_run == 1      # the same config still resumes
    assert train(changed, data=fixture_data).epochs_run == 2    # a finished run blocks nothing


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


def test_publish_of_an_interrupted_run_is_refused_and_forced_records_the_epochs_trained(
        tiny_config, fixture_data, tmp_path, capsys):
    from training.cli.main import main
    cfg = tiny_config("train.epochs=3", "data.limit=400")
    with pytest.raises(KeyboardInterrupt):
        train(cfg, data=fixture_data, callbacks=[CrashAtEpoch(2)])
    where = ["--preset", "tiny", "--set", f"output_dir={tmp_path / 'runs'}", "--set", f"models_dir={tmp_path / 'models'}"]
    with pytest.raises(SystemExit) as exit_info:
        main(["publish", *where])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1, err
    assert "unfinished: 2 of 3 epochs" in err and "--force" in err
    assert not (tmp_path / "models").exists()

    main(["publish", *where, "--force"])
    published = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["published"]
    training = json.loads((tmp_path / "models" / "tiny" / "1" / "metadata.json").read_text())["training"]
    assert published.endswith("tiny/1")
    assert (training["epochs"], training["planned_epochs"], training["finished"]) == (2, 3, False)
    assert len(training["history"]["loss"]) == 2


def test_an_early_stopped_run_is_finished_not_interrupted(tiny_config, fixture_data, tmp_path, capsys):
    """A learning rate too small to change any prediction (and no batch norm, whose statistics
    move without one) never improves the validation accuracy: early stopping ends the run."""
    from training.cli.main import main
    cfg = tiny_config("train.epochs=5", "data.limit=400", "train.early_stopping_patience=1",
                      "train.learning_rate=1.0e-12", "model.batch_norm=false")
    train(cfg, data=fixture_data)
    main(["publish", "--preset", "tiny", "--set", f"output_dir={tmp_path / 'runs'}", "--force"])
    training = json.loads((tmp_path / "models" / "tiny" / "1" / "metadata.json").read_text())["training"]
    assert training["epochs"] < 5 and training["stopped_early"] and training["finished"]


def test_publish_of_a_run_without_validation_images_reads_its_history(tiny_config, fixture_data, tmp_path, capsys):
    """With no validation split Keras writes NA in every val_* column of history.csv."""
    from training.cli.main import main
    from training.data.datasets import load_data
    cfg = tiny_config("train.epochs=1", "data.validation_split=0")
    train(cfg, data=load_data(cfg.data))
    assert ",NA" in (tmp_path / "runs" / "tiny" / "history.csv").read_text()
    main(["publish", "--preset", "tiny", "--set", f"output_dir={tmp_path / 'runs'}", "--force"])
    meta = json.loads((tmp_path / "models" / "tiny" / "1" / "metadata.json").read_text())
    assert set(meta["training"]["history"]) == {"accuracy", "loss"}


def test_publish_of_a_checkpoint_that_is_not_hdf5_names_the_file(tmp_path, capsys):
    from training.cli.main import main
    checkpoint = tmp_path / "weights.h5"
    checkpoint.write_bytes(b"not an HDF5 file")
    with pytest.raises(SystemExit) as exit_info:
        main(["publish", "--preset", "tiny", "--checkpoint", str(checkpoint),
              "--set", f"output_dir={tmp_path / 'runs'}", "--set", f"models_dir={tmp_path / 'models'}"])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("error: cannot load") and str(checkpoint) in err
    assert not (tmp_path / "models").exists()


@pytest.mark.parametrize("argv, message", [
    (["--samples", "0"], "--samples: must be at least 1"),
    (["--variants", "-1"], "--variants: must be at least 1"),
])
def test_preview_augment_refuses_an_empty_grid(tmp_path, capsys, argv, message):
    from training.cli.main import main
    out = tmp_path / "grid.png"
    with pytest.raises(SystemExit) as exit_info:
        main(["preview-augment", "--preset", "tiny", "--out", str(out), *argv])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err.strip().splitlines()[-1]
    assert not out.exists()


def test_tiny_preset_trains_and_publishes_from_another_directory_recording_absolute_paths(tmp_path):
    """configs/tiny.yaml names its data relative to the repository; run from elsewhere it is
    still found, and the run and the version record where it is."""
    run = subprocess.run([sys.executable, "-m", "training", "train", "--preset", "tiny", "--publish", "--force",
                          "--set", "models_dir=models", "--set", "output_dir=runs",
                          "--set", "train.epochs=1", "--set", "train.verbose=0"],
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    fixture = str(ROOT / "tests" / "data" / "fashion_fixture.npz")
    meta = json.loads((tmp_path / "models" / "tiny" / "1" / "metadata.json").read_text())
    assert meta["config"]["data"]["path"] == fixture and meta["dataset"]["path"] == fixture
    assert json.loads((tmp_path / "runs" / "tiny" / "config.json").read_text())["data"]["path"] == fixture


def test_the_recorded_command_leaves_out_where_files_went_and_an_unused_force(monkeypatch, tmp_path):
    """A version's command reproduces it on another machine: no path of the machine it ran on,
    no --force that overrode nothing (the publish check records ``forced`` either way)."""
    from training.publish.release import command_line
    monkeypatch.chdir(tmp_path)
    argv = ["/x/training/__main__.py", "train", "--preset", "accurate", "--set", "models_dir=/work/best/models",
            "--set", "output_dir=/work/best/runs", "--set", "model.widths=[64,128]", "--publish", "--force",
            "--models-dir", "/srv/models", "--set=output_dir=/tmp/r", "--data", str(tmp_path / "photos")]
    assert command_line(argv=argv) == ("python -m training train --preset accurate --set 'model.widths=[64,128]' "
                                       "--publish --data photos")
    assert command_line(forced=True, argv=argv).endswith("--publish --force --data photos")
