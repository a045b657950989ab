"""The one training loop: compile, callbacks, resume, fit and history.

Every run goes through ``fit``: plain training, both transfer stages, the pruning
and QAT fine-tunes, and distillation (whose ``train_step`` computes its own loss).
Given a run directory, a fit keeps there:

    config.json                 what the run trains (config and technique settings)
    checkpoints/best.h5         weights of the best epoch (last.h5 when every epoch must run)
    history.csv                 one row per epoch, kept across a resume
    finished.json               written when the fit ends (not when interrupted): epochs run and
                                planned, and whether it stopped early (early stopping)
    tensorboard/                TensorBoard logs
    backup/                     BackupAndRestore state while a fit is unfinished

An interrupted fit resumes from its last finished epoch with its weights and its
optimizer (learning-rate step, Adam moments). Pruning's step counter and masks are
weights of the pruning wrappers, so they come back too and the sparsity schedule
continues where it stopped.
"""
from __future__ import annotations

import csv
import json
import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from training.keras2 import keras, tf

from training.config import ConfigError
from training.fit.average import WeightAverage

log = logging.getLogger(__name__)

HISTORY = "history.csv"
FINISHED = "finished.json"


@keras.utils.register_keras_serializable("training")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``peak`` then cosine decay to ``peak * floor`` (one-cycle style)."""

    def __init__(self, peak: float, total_steps: int, warmup_steps: int, floor: float = 0.01):
        self.peak, self.total_steps, self.warmup_steps, self.floor = peak, total_steps, warmup_steps, floor

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warm = self.peak * (step + 1) / max(self.warmup_steps, 1)
        progress = tf.clip_by_value((step - self.warmup_steps) / max(self.total_steps - self.warmup_steps, 1), 0.0, 1.0)
        cosine = self.peak * (self.floor + (1 - self.floor) * 0.5 * (1 + tf.cos(math.pi * progress)))
        return tf.where(step < self.warmup_steps, warm, cosine)

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "floor": self.floor}


@keras.utils.register_keras_serializable("training")
class Triangular(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``peak`` over ``warmup_steps``, then linear decay to 0 at ``total_steps``:
    the whole budget spent on one rise and one fall, the shape of budgeted-training schedules
    (Smith's one-cycle policy; Li et al. 2020 found a linear decay to 0 the best fixed-budget decay)."""

    def __init__(self, peak: float, total_steps: int, warmup_steps: int):
        self.peak, self.total_steps, self.warmup_steps = peak, total_steps, warmup_steps

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warm = self.peak * (step + 1) / max(self.warmup_steps, 1)
        left = (self.total_steps - step) / max(self.total_steps - self.warmup_steps, 1)
        return tf.where(step < self.warmup_steps, warm, self.peak * tf.clip_by_value(left, 0.0, 1.0))

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps}


def learning_rate(cfg, steps_per_epoch: int):
    total = steps_per_epoch * cfg.epochs
    if cfg.schedule == "constant":
        return cfg.learning_rate
    if cfg.schedule == "cosine":
        return WarmupCosine(cfg.learning_rate, total, 0)
    if cfg.schedule == "onecycle":
        return WarmupCosine(cfg.learning_rate, total, int(cfg.warmup_epochs * steps_per_epoch))
    if cfg.schedule == "triangular":
        return Triangular(cfg.learning_rate, total, int(cfg.warmup_epochs * steps_per_epoch))
    raise ValueError(f"unknown train.schedule '{cfg.schedule}' (constant, cosine, onecycle, triangular)")


def make_optimizer(cfg, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    lr = learning_rate(cfg, steps_per_epoch)
    if cfg.optimizer == "adam":
        return keras.optimizers.Adam(lr)
    if cfg.optimizer == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=cfg.adamw_weight_decay)
    if cfg.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    raise ValueError(f"unknown train.optimizer '{cfg.optimizer}' (adam, adamw, sgd)")


def compile_model(model: keras.Model, cfg, steps_per_epoch: int, own_loss: bool = False) -> None:
    """A fresh optimizer for ``cfg`` (a TrainConfig). ``own_loss``: the model's
    ``train_step`` computes its loss and metrics (distillation), so none are compiled in."""
    # The optimizer's variables belong with the model's: under its tf.distribute strategy, if any.
    with model.distribute_strategy.scope():
        optimizer = make_optimizer(cfg, steps_per_epoch)
        if own_loss:
            model.compile(optimizer=optimizer)
        else:
            model.compile(optimizer=optimizer, metrics=["accuracy"],
                          loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing))


def fit_verbosity(verbose) -> int:
    """Keras' ``verbose`` for ``train.verbose``: "auto" draws a progress bar inside each epoch on
    a terminal and one line per epoch into a log file or pipe (a bar there is a wall of redraws)."""
    if verbose == "auto":
        return 1 if sys.stdout.isatty() else 2
    return verbose


def run_dir_for(cfg) -> Path:
    """``<output_dir>/<name>``: plain training's run directory; other runs use sub-directories.
    Only a fit creates it: a command refused before training writes nothing."""
    return Path(cfg.output_dir) / cfg.name


def start_run(run_dir: Path, record: dict) -> None:
    """Record what runs in ``run_dir``, refusing to resume a backup another run left there.

    BackupAndRestore resumes whatever interrupted fit it finds, so a backup left by a
    different config is refused rather than silently resumed into this one (or failing
    later on mismatched weights). A fresh start also starts a fresh history.
    """
    recorded, record = run_dir / "config.json", json.loads(json.dumps(record))
    backup = run_dir / "backup"
    resuming = backup.is_dir() and any(backup.iterdir())
    if resuming and recorded.exists() and json.loads(recorded.read_text()) != record:
        raise ConfigError(f"{run_dir} holds an interrupted run of a different config ({recorded}); rerun "
                          f"with that config to resume it, or delete {backup} (or set name / output_dir) "
                          "to start afresh")
    if resuming:
        log.info("resuming the interrupted run in %s from its last finished epoch", run_dir)
    else:
        (run_dir / HISTORY).unlink(missing_ok=True)
    (run_dir / FINISHED).unlink(missing_ok=True)     # a run under way has not finished
    recorded.write_text(json.dumps(record, indent=2))


def epochs_done(run_dir: Path) -> int:
    """The epochs ``run_dir``'s history.csv records (a resumed fit's included)."""
    path = Path(run_dir) / HISTORY
    if not path.exists():
        return 0
    with open(path) as f:
        return len({row["epoch"] for row in csv.DictReader(f)})


def finish_run(run_dir: Path, planned: int) -> None:
    """Record that the fit in ``run_dir`` ended of itself. A fit that returns with fewer epochs
    than ``planned`` was stopped by a callback (early stopping), not interrupted: an
    interrupted one raises and never gets here."""
    done = epochs_done(run_dir)
    (Path(run_dir) / FINISHED).write_text(json.dumps(
        {"epochs": done, "planned_epochs": planned, "stopped_early": done < planned}, indent=2))


def run_progress(run_dir: Path) -> Optional[dict]:
    """How far the fit in ``run_dir`` got: {"epochs", "planned_epochs", "stopped_early",
    "finished"}; None where no fit was recorded there. A run without finished.json (interrupted,
    or written before the file existed) counts as finished only if it ran every planned epoch
    (``train.epochs`` of its config.json)."""
    run_dir = Path(run_dir)
    recorded = run_dir / "config.json"
    if not recorded.exists():
        return None
    if (run_dir / FINISHED).exists():
        return {**json.loads((run_dir / FINISHED).read_text()), "finished": True}
    planned = (json.loads(recorded.read_text()).get("train") or {}).get("epochs")
    done = epochs_done(run_dir)
    return {"epochs": done, "planned_epochs": planned, "stopped_early": False,
            "finished": planned is None or done >= planned}


def make_callbacks(cfg, run_dir: Path, monitor: str, keep_best: bool) -> list:
    """BackupAndRestore comes first: it restores the weights and the optimizer in
    on_train_begin, so the callbacks after it (UpdatePruningStep checks whether the
    wrappers' step counter is new) see the resumed state."""
    mode = "min" if monitor.endswith("loss") else "max"
    checkpoint = run_dir / "checkpoints" / ("best.h5" if keep_best else "last.h5")
    callbacks = [
        keras.callbacks.BackupAndRestore(str(run_dir / "backup")),
        keras.callbacks.ModelCheckpoint(str(checkpoint), monitor=monitor, mode=mode,
                                        save_best_only=keep_best, save_weights_only=True),
        keras.callbacks.CSVLogger(str(run_dir / HISTORY), append=True),
        keras.callbacks.TensorBoard(str(run_dir / "tensorboard"), profile_batch=0),
    ]
    if cfg.early_stopping_patience and keep_best:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=monitor, mode=mode, patience=cfg.early_stopping_patience, restore_best_weights=True))
    return callbacks


def restore_best(model: keras.Model, run_dir: Path) -> None:
    """Load the best epoch's weights, if the run kept them: the best epoch, not the last,
    is the result, so `train --publish` and a later `publish` (which reads best.h5) export
    the same weights."""
    best = Path(run_dir) / "checkpoints" / "best.h5"
    if best.exists():
        model.load_weights(str(best))


@dataclass
class Fit:
    history: dict          # metric -> one float per epoch of the whole run, a resumed one's earlier epochs included
    seconds: float
    epochs_run: int = 0    # epochs this call ran (a resume runs fewer than the history holds)


def recorded_history(run_dir: Path) -> dict:
    """metric -> one float per epoch, from ``run_dir``'s history.csv: every epoch of the run,
    those before an interruption included (Keras's History restarts at a resume, so a
    resumed run published from it recorded only its last epochs). The last row of an
    epoch wins; columns that are not numbers are skipped."""
    path = Path(run_dir) / HISTORY
    if not path.exists():
        return {}
    with open(path) as f:
        rows = {row["epoch"]: row for row in csv.DictReader(f)}
    history = {}
    for row in sorted(rows.values(), key=lambda r: int(r["epoch"])):
        for key, value in row.items():
            if key == "epoch":
                continue
            try:
                history.setdefault(key, []).append(float(value))
            except (TypeError, ValueError):
                pass
    return history


def fit(model: keras.Model, data: tf.data.Dataset, cfg, *, steps_per_epoch: int, validation=None,
        run_dir: Optional[Path] = None, record: Optional[dict] = None, callbacks=(),
        keep_best: bool = True, own_loss: bool = False, restore: bool = True) -> Fit:
    """Compile ``model`` afresh for ``cfg`` (a TrainConfig: optimizer, schedule, epochs) and fit it.

    ``run_dir``: where checkpoints, history, TensorBoard logs and the resume backup go
    (None writes nothing: quick probes); ``record`` identifies the run there (the config,
    plus any technique settings). ``keep_best=False`` when every epoch must run and the
    last one is the result (pruning ramps its sparsity, so an earlier epoch is a denser
    model): the last epoch is checkpointed and there is no early stopping. ``callbacks``
    run after the standard ones. ``restore=False`` leaves the last epoch's weights in
    ``model`` (see ``restore_best``): a distributed run restores on its chief alone.
    """
    compile_model(model, cfg, steps_per_epoch, own_loss)
    standard = []
    if run_dir is not None:
        run_dir = Path(run_dir)
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        start_run(run_dir, record)
        standard = make_callbacks(cfg, run_dir, "val_accuracy" if validation is not None else "accuracy",
                                  keep_best)
    if cfg.ema_decay:
        # after BackupAndRestore (the average starts from the weights it restores), before the
        # checkpoint, early stopping and the caller's callbacks (they all see the average)
        standard[1:1] = [WeightAverage(cfg.ema_decay)]
    start = time.perf_counter()
    history = model.fit(data, validation_data=validation, epochs=cfg.epochs, steps_per_epoch=steps_per_epoch,
                        callbacks=standard + list(callbacks), verbose=fit_verbosity(cfg.verbose))
    if run_dir is not None:
        finish_run(run_dir, cfg.epochs)
    if run_dir is not None and keep_best and restore:
        restore_best(model, run_dir)
    ran = {k: [float(v) for v in vs] for k, vs in history.history.items()}
    whole = recorded_history(run_dir) if run_dir is not None else {}
    return Fit(whole or ran, time.perf_counter() - start, len(next(iter(ran.values()), [])))
