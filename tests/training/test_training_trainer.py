"""Pruning, QAT and distillation fit through the shared trainer: each run writes its
checkpoint, history and TensorBoard logs, and an interrupted run resumes where it stopped."""
import json
from dataclasses import replace

import numpy as np
import pytest
from training.keras2 import keras

from support.builders import fixture_data, tiny_config
from support.callbacks import CrashAtEpoch, EpochsRun
from training.config import ConfigError, ModelConfig
from training.compress.distill import distill
from training.models.registry import build_model
from training.compress.prune import PruneSettings, prune, sparsity_report
from training.compress.quantize import QATSettings, qat
from training.fit.trainer import run_dir_for


class StudentWeights(keras.callbacks.Callback):
    """The distiller's student weights at each epoch's start and end."""
    def __init__(self):
        super().__init__()
        self.seen = {}

    def on_epoch_begin(self, epoch, logs=None):
        self.seen[("begin", epoch)] = self.model.student.get_weights()

    def on_epoch_end(self, epoch, logs=None):
        self.seen[("end", epoch)] = self.model.student.get_weights()


def epochs_logged(run_dir) -> list:
    rows = (run_dir / "history.csv").read_text().strip().splitlines()
    return [int(row.split(",")[0]) for row in rows[1:]]


def assert_run_files(run_dir, checkpoint: str):
    assert (run_dir / "checkpoints" / checkpoint).is_file()
    assert any((run_dir / "tensorboard").rglob("events.out.tfevents*"))
    backup = run_dir / "backup"
    assert not backup.exists() or not any(backup.iterdir())        # a finished fit leaves no backup


@pytest.fixture
def small(tmp_path):
    cfg = tiny_config(tmp_path, batch_size=64)
    train, val, _ = fixture_data(cfg)
    keras.utils.set_random_seed(0)
    return cfg, train.take(256), val.take(64), build_model(cfg.model, train.input_shape, 10)


def test_an_interrupted_pruning_run_resumes_its_sparsity_schedule(small, tmp_path):
    cfg, train, _, model = small
    # 4 steps per epoch, sparsity ramps over all 12 steps: restarting the schedule at
    # step 0 on resume would end at about 0.53, not 0.75.
    settings = PruneSettings(target=0.75, epochs=3, keep_ends=False, ramp=1.0)
    run_dir = tmp_path / "prune"
    with pytest.raises(KeyboardInterrupt):
        prune(model, train, cfg, settings, run_dir=run_dir, callbacks=[CrashAtEpoch(2)])
    with pytest.raises(ConfigError, match="interrupted run of a different config"):
        prune(model, train, cfg, PruneSettings(target=0.5, epochs=3, keep_ends=False), run_dir=run_dir)

    resumed = EpochsRun()
    stripped, history = prune(model, train, cfg, settings, run_dir=run_dir, callbacks=[resumed])
    assert resumed.epochs == [2]                                       # only the third epoch ran again
    assert len(history["loss"]) == 3                                   # the history holds all three
    assert sparsity_report(stripped)["kernels"] == pytest.approx(0.75, abs=0.01)
    assert epochs_logged(run_dir) == [0, 1, 2]
    assert_run_files(run_dir, "last.h5")                  # every epoch runs: the last one is kept
    assert json.loads((run_dir / "config.json").read_text())["prune"]["target"] == 0.75


def test_a_qat_run_writes_checkpoint_history_and_logs_in_its_default_run_dir(small):
    cfg, train, val, model = small
    qmodel, history = qat(model, train, cfg, QATSettings(epochs=1), val)
    run_dir = run_dir_for(cfg) / "qat"
    assert epochs_logged(run_dir) == [0] and "val_accuracy" in history
    assert_run_files(run_dir, "best.h5")
    recorded = json.loads((run_dir / "config.json").read_text())
    assert recorded["qat"]["epochs"] == 1 and recorded["name"] == cfg.name


def test_an_interrupted_distillation_resumes_and_checkpoints_the_student_alone(small):
    cfg, train, val, teacher = small
    cfg = replace(cfg, train=replace(cfg.train, epochs=2), model=ModelConfig(widths=[4, 8], convs_per_stage=1))
    before = StudentWeights()
    with pytest.raises(KeyboardInterrupt):
        distill(teacher, cfg, train, val, callbacks=[before, CrashAtEpoch(1)])
    after = StudentWeights()
    student, history, _ = distill(teacher, cfg, train, val, callbacks=[after])

    assert ("begin", 0) not in after.seen and ("begin", 1) in after.seen     # only the second epoch ran
    assert len(history["loss"]) == 2 and {"hard_loss", "soft_loss", "val_accuracy"} <= set(history)
    for a, b in zip(before.seen[("end", 0)], after.seen[("begin", 1)]):   # restored, not rebuilt
        np.testing.assert_array_equal(a, b)
    run_dir = run_dir_for(cfg) / "distill"
    assert epochs_logged(run_dir) == [0, 1]
    assert_run_files(run_dir, "best.h5")
    fresh = build_model(cfg.model, train.input_shape, 10)
    fresh.load_weights(str(run_dir / "checkpoints" / "best.h5"))        # the student's weights only
    assert json.loads((run_dir / "config.json").read_text())["distill"]["temperature"] == cfg.distill.temperature
