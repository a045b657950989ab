"""Magnitude pruning with tfmot.sparsity.keras: wrap, fine-tune, strip, report sparsity.

Only Conv2D and Dense kernels are pruned (wrapped one by one through
clone_model, so BatchNormalization and the rest stay as they are). The zeros
save nothing until ``strip_pruning`` removes the wrappers and the file is
compressed: report gzip sizes, not raw ones.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np
from training.keras2 import keras, tfmot

from training.config import OptimizeConfig
from training.compress.compressible import PRUNABLE, check_prunable, translate
from training.data.datasets import Dataset
from training.compress.finetune import fine_tune, recalibrate_batch_norm
from training.data.pipeline import steps_per_epoch
from training.fit.trainer import run_dir_for
from training.compress.tfmot_wrappers import base_layers, copy_weights, kernel, nonzero_params

sparsity = tfmot.sparsity.keras
DEFAULTS = OptimizeConfig()            # the one place the pruning defaults are set (config section optimize)


@dataclass
class PruneSettings:
    """The ``optimize`` section's pruning keys in the shape ``prune`` takes
    (``training.compress.optimize.prune_settings`` maps them); defaults are the config's."""
    target: float = DEFAULTS.sparsity  # fraction of each Conv2D/Dense kernel set to zero
    schedule: str = DEFAULTS.schedule  # polynomial: ramp initial -> target; constant: target from the start
    initial: float = DEFAULTS.initial_sparsity   # polynomial start sparsity
    m_by_n: Optional[tuple] = None     # e.g. (2, 4): 2 zeros in every 4 weights (50%, hardware friendly)
    # Leave the first and last Conv2D/Dense dense. They hold ~0.4% of the default model's
    # weights, but 75% of a 3x3 one-channel filter leaves 2 of 9 weights: one-shot
    # 75% pruning scored 0.62 with them pruned, 0.88 without (after BN re-estimation).
    # A model with fewer than three such layers is pruned whole.
    keep_ends: bool = DEFAULTS.keep_ends
    # Block sparsity for Dense kernels, (input rows, output columns); TF-MOT does
    # blocks only for rank-2 kernels, so convolutions stay element-wise. (4, 1) makes
    # runs of zeros in TFLite's [out, in] weight layout, which gzip compresses better.
    dense_block: tuple = tuple(DEFAULTS.dense_block)
    epochs: int = DEFAULTS.prune_epochs   # fine-tune epochs while pruning
    ramp: float = DEFAULTS.ramp        # share of the fine-tune spent raising sparsity; the rest
                                       # retrains with the final masks (recovery)
    learning_rate: float = DEFAULTS.prune_learning_rate   # fine-tune peak rate; the model is already trained

    def __post_init__(self):
        if not 0.0 < self.target < 1.0:
            raise ValueError(f"target sparsity must be in (0, 1), got {self.target}")
        if not 0.0 < self.ramp <= 1.0:
            raise ValueError(f"pruning ramp must be in (0, 1], got {self.ramp}")
        if self.schedule not in ("polynomial", "constant"):
            raise ValueError(f"unknown pruning schedule '{self.schedule}' (polynomial, constant)")
        if len(self.dense_block) != 2 or min(self.dense_block) < 1:
            raise ValueError(f"dense block must be two whole numbers >= 1, got {self.dense_block}")


def make_schedule(settings: PruneSettings, end_step: int):
    """The mask must be updated at ``end_step`` itself to reach the target, so the
    first update is offset to make end_step - begin_step a multiple of the frequency."""
    end_step = max(int(end_step), 1)
    frequency = min(100, max(1, end_step // 8))    # at least ~8 mask updates in the run
    begin_step = end_step % frequency
    if settings.schedule == "polynomial":
        return sparsity.PolynomialDecay(settings.initial, settings.target, begin_step, end_step,
                                        frequency=frequency)
    return sparsity.ConstantSparsity(settings.target, begin_step, end_step, frequency=frequency)


def wrap_for_pruning(model: keras.Model, settings: PruneSettings, end_step: int) -> keras.Model:
    """A copy of ``model`` (same weights) whose Conv2D/Dense layers are pruning wrappers."""
    targets = pruned_layer_names(check_prunable(model), settings)
    schedule = make_schedule(settings, end_step)
    extra = {"sparsity_m_by_n": tuple(settings.m_by_n)} if settings.m_by_n else {}

    def clone(layer):
        # A fresh copy of every layer: wrapping the original would prune the source model too.
        copy = layer.__class__.from_config(layer.get_config())
        if layer.name not in targets:
            return copy
        dense = isinstance(layer, keras.layers.Dense) and not settings.m_by_n
        block = tuple(settings.dense_block) if dense else (1, 1)
        return sparsity.prune_low_magnitude(copy, pruning_schedule=schedule, block_size=block, **extra)

    try:
        wrapped = keras.models.clone_model(model, clone_function=clone)
    except (ValueError, RuntimeError) as exc:
        raise translate(exc, f"prune '{model.name}'") from exc
    copy_weights(model, wrapped)
    return wrapped


def pruned_layer_names(names: list, settings: PruneSettings) -> set:
    """Of the prunable layers ``names`` (in model order), those pruning wraps."""
    if settings.keep_ends and len(names) > 2:
        names = names[1:-1]
    return set(names)


def prune(model: keras.Model, train: Dataset, cfg, settings: PruneSettings,
          validation: Dataset = None, *, run_dir=None, callbacks=()) -> tuple:
    """Fine-tune ``model`` while pruning it; returns (stripped float model, history).

    The fine-tune keeps its checkpoint, history and resume backup in ``run_dir``
    (default ``<output_dir>/<name>/prune``); an interrupted run resumes there with
    its masks and pruning step, so the schedule continues where it stopped.
    """
    total_steps = steps_per_epoch(train, cfg.train.batch_size) * settings.epochs
    wrapped = wrap_for_pruning(model, settings, max(1, int(total_steps * settings.ramp)))
    # UpdatePruningStep starts the wrappers' step counter that drives the schedule and
    # re-applies the masks at each epoch end, so the saved weights are sparse. Every
    # epoch runs (keep_best=False): an earlier, better-scoring epoch is a denser model.
    history = fine_tune(wrapped, train, cfg, epochs=settings.epochs, learning_rate=settings.learning_rate,
                        validation=validation, run_dir=run_dir or run_dir_for(cfg) / "prune",
                        record={**cfg.to_dict(), "prune": asdict(settings)},
                        callbacks=[sparsity.UpdatePruningStep(), *callbacks], keep_best=False)
    stripped = strip(wrapped)
    recalibrate_batch_norm(stripped, train)
    return stripped, history


def strip(model: keras.Model) -> keras.Model:
    """Remove the wrappers: the same architecture as the original, with sparse kernels."""
    return sparsity.strip_pruning(model)


def sparsity_report(model: keras.Model) -> dict:
    """Zero fraction per Conv2D/Dense kernel, over all of them, and over every parameter."""
    layers, zeros, total = {}, 0, 0
    for name, layer in base_layers(model):
        if isinstance(getattr(layer, "layer", layer), PRUNABLE):
            values = kernel(layer).numpy()
            n_zero = int(np.sum(values == 0))
            layers[name] = round(n_zero / values.size, 4)
            zeros, total = zeros + n_zero, total + values.size
    params = nonzero_params(model)
    return {"layers": layers, "kernels": round(zeros / max(total, 1), 4),
            "params": params["params"], "nonzero_params": params["nonzero_params"],
            "overall": round(1 - params["nonzero_params"] / max(params["params"], 1), 4)}
