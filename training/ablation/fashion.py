"""One Fashion-MNIST run of a study: a variant's config overrides, trained by ``training.fit.train``.

The initialisation, regularisation and scarcity studies share this. Every variant of
a study trains the same small CNN through the project's one trainer, on the same
optimizer steps, and is measured the same way:

- ``test_accuracy``: the weights after the last step, on the (budget's) test set, so
  every variant is judged at equal steps. ``kept_test_accuracy`` is what the trainer
  keeps and would publish (the best validation pass), for reference.
- ``train_accuracy`` and ``gap`` (train minus test): train accuracy measured in
  inference mode on a fixed sample of the training images, so dropout and
  augmentation do not pull it down as Keras's running ``accuracy`` does.
- ``early_val_accuracy``: validation accuracy at the first pass ending after a quarter
  of the steps (how fast a variant learns).
- ``mc_test_accuracy`` (a variant whose settings hold ``mc_passes``): the same last weights
  on the same test set, the class taken from the mean of ``mc_passes`` Monte Carlo dropout
  passes (dropout on, batch norm in inference mode; ``training.publish.ood.mc_passes``),
  their random draws seeded by the run's seed: dropout's ensemble view, next to the one
  deterministic pass of ``test_accuracy``.
- ``served_test_accuracy`` and ``tta_test_accuracy``, ``tta_flip_test_accuracy`` (a variant
  whose settings hold ``tta``): the same last weights answered by the export's own serving
  function (``training.publish.export.ServingModule``: uint8 pixels in, the float32 graph every
  runner serves, a mixed_bfloat16 model's float32 copy), plain, with the test-time views
  ``publish.tta`` bakes in (``training.publish.tta.views``: the image, its mirror, four shifts of
  ``publish.tta_shift`` px), and with the image and its mirror only; each also on the validation
  sample (``served_val_accuracy``, ...), where a choice between them would be made.
- curves, one point per pass: validation accuracy and loss from the trainer, and
  the inference-mode train accuracy.

Knobs a variant's settings may hold besides config overrides (none of the older studies
uses them, so their records and fingerprints are unchanged):

- ``train_images``: this variant's training subset size instead of the budget's.
- ``val_every``: also read validation accuracy every that many optimizer steps; the
  ``curves`` then hold that finer curve (``step``, ``val_accuracy``) and the per-pass
  ones under ``pass_step``, ``pass_val_accuracy``, ``pass_loss``, ...
- ``target_accuracy`` (with ``val_every``): ``steps_to_target``, the first step whose
  validation accuracy reaches it; the steps run plus ``val_every`` when none does.
- ``batch_norm_momentum``: the momentum of every BatchNormalization layer's moving
  averages (Keras' default is 0.99).
- ``tta``: true reads the weights through the serving graph, plain and with test-time views
  (above).
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import shutil
from pathlib import Path

import numpy as np

from training.config import load_config
from training.ablation.study import Budget, RunFn, Variant

VALIDATION_IMAGES = 1000   # fixed sample of the 6,000 held out; evaluated every pass, so kept small
TRAIN_PROBE_IMAGES = 500   # training images measured in inference mode for the curves and the gap
                           # (a forward pass over them costs about 4 training steps, every pass)
WARMUP_SHARE = 0.1         # of the optimizer steps, whatever a pass holds (the preset counts passes)

# No technique on unless a variant switches it on: the studies add one thing at a time.
PLAIN_CNN = {"model.name": "cnn", "model.widths": [16, 32], "model.convs_per_stage": 2,
             "model.batch_norm": False, "model.dropout": 0.0, "model.head_dropout": 0.0,
             "model.weight_decay": 0.0, "augment.enabled": False,
             "train.early_stopping_patience": 0, "train.verbose": 0}


@functools.lru_cache(maxsize=1)
def fashion_splits() -> tuple:
    """(training pool, validation sample, test set): the project's 54,000 / 6,000 split."""
    from training.data.datasets import load_fashion_mnist, split
    train, test = load_fashion_mnist()
    pool, validation = split(train, 0.1, seed=1)
    return pool, validation.take(VALIDATION_IMAGES), test


def training_subset(pool, n, seed: int):
    """``n`` images drawn with ``seed`` (every variant of a seed sees the same ones); None: all."""
    if n is None or n >= len(pool):
        return pool
    return pool.subset(np.sort(np.random.default_rng(seed).permutation(len(pool))[:n]))


def run_config(settings: dict, seed: int, budget: Budget, n_train: int, run_dir: Path):
    """The ExperimentConfig of one run: the plain CNN, the budget, then the variant's overrides."""
    per_pass = math.ceil(n_train / budget.batch_size)
    overrides = {**PLAIN_CNN, "name": "ablate", "output_dir": str(run_dir),
                 "train.steps": budget.steps, "train.batch_size": budget.batch_size, "train.seed": seed,
                 "train.warmup_epochs": WARMUP_SHARE * budget.steps / per_pass, **settings}
    return load_config(None, [f"{key}={json.dumps(value)}" for key, value in overrides.items()])


def mc_accuracy(model, data, passes: int, seed: int) -> float:
    """Accuracy of the mean of ``passes`` Monte Carlo dropout passes over ``data``."""
    from training.publish.ood import mc_passes
    mean = mc_passes(model, data.x, passes, seeds=[seed])[0].mean(axis=0)
    return float(np.mean(mean.argmax(1) == data.y))


def tta_view_sets(cfg, side: int) -> dict:
    """Reading name -> test-time views: "served" none, "tta" what ``publish.tta`` would bake
    into a version of ``cfg`` (whatever its ``publish.tta`` says), "tta_flip" the image and its
    mirror alone (``publish.tta_shift`` 0)."""
    from training.publish import tta
    on = dataclasses.replace(cfg.publish, tta=True)
    return {"served": (), "tta": tta.views(on, cfg.augment, side),
            "tta_flip": tta.views(dataclasses.replace(on, tta_shift=0), cfg.augment, side)}


def serving_function(model, views: tuple):
    """``model``'s weights as the export's serving function (``ServingModule.serve`` with
    ``views``, as ``save_saved_model`` writes it; no temperature): the function a published
    version runs, not a re-implementation. Built (and traced) once per set of views."""
    from training.fit.precision import float32_copy
    from training.publish.export import ServingModule
    model = float32_copy(model)
    return ServingModule(model, tuple(int(d) for d in model.input_shape[1:]), views=views).serve


def _answer(serve, x: np.ndarray, batch_size: int = 128) -> np.ndarray:
    """The serving function's probabilities for uint8 images ``x``, in batches."""
    from artifact.metadata import OUTPUT_NAME
    return np.concatenate([serve(x[i:i + batch_size])[OUTPUT_NAME].numpy() for i in range(0, len(x), batch_size)])


def served_probabilities(model, x: np.ndarray, views: tuple, batch_size: int = 128) -> np.ndarray:
    """``model``'s weights answering uint8 images ``x`` through ``serving_function``."""
    return _answer(serving_function(model, views), x, batch_size)


def served_accuracies(model, splits: dict, view_sets: dict) -> dict:
    """``<views>_<split>_accuracy`` -> the accuracy on each split ({"test": Dataset, ...}) of
    the serving function with each named set of test-time views."""
    accuracies = {}
    for name, views in view_sets.items():
        serve = serving_function(model, views)
        for split, data in splits.items():
            accuracies[f"{name}_{split}_accuracy"] = float(np.mean(_answer(serve, data.x).argmax(1) == data.y))
    return accuracies


def _probe(probe, test, per_pass: int, curves: bool, mc: int = 0, seed: int = 0, views=None, validation=None):
    """A callback recording, each pass, the optimizer steps so far and (``curves``) the
    inference-mode train accuracy; at the end of training (before the trainer restores its
    best pass) the final train and test accuracy, (``mc`` passes) the Monte Carlo dropout
    test accuracy, and (``views``, ``tta_view_sets``) the serving graph's test and
    ``validation`` accuracy with each set of test-time views."""
    from training.keras2 import keras

    from training.fit.train import accuracy

    class Probe(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.steps, self.train_accuracy, self.final = [], [], {}

        def on_epoch_end(self, epoch, logs=None):
            self.steps.append((epoch + 1) * per_pass)
            if curves:
                self.train_accuracy.append(accuracy(self.model, probe))

        def on_train_end(self, logs=None):
            self.final = {"train_accuracy": accuracy(self.model, probe), "test_accuracy": accuracy(self.model, test)}
            if mc:
                self.final["mc_test_accuracy"] = mc_accuracy(self.model, test, mc, seed)
            if views:
                self.final.update(served_accuracies(self.model, {"test": test, "val": validation}, views))
    return Probe()


def steps_to_target(steps: list, accuracies: list, target: float, never: int) -> int:
    """The first step whose validation accuracy reaches ``target``; ``never`` if none does."""
    return next((step for step, acc in zip(steps, accuracies) if acc >= target), never)


def step_validation(validation, every: int, bn_momentum):
    """A callback reading validation accuracy (inference mode) every ``every`` optimizer steps, and
    (``bn_momentum`` not None) setting every BatchNormalization layer's momentum before the first
    step, before Keras traces the training step."""
    from training.keras2 import keras

    from training.fit.train import accuracy

    class StepValidation(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.done, self.steps, self.val_accuracy = 0, [], []

        def on_train_begin(self, logs=None):
            if bn_momentum is not None:
                for layer in self.model.submodules:
                    if isinstance(layer, keras.layers.BatchNormalization):
                        layer.momentum = bn_momentum

        def on_train_batch_end(self, batch, logs=None):
            self.done += 1
            if every and self.done % every == 0:
                self.steps.append(self.done)
                self.val_accuracy.append(accuracy(self.model, validation))
    return StepValidation()


def train_variant(settings: dict, seed: int, budget: Budget, workdir: Path, curves: bool = True) -> dict:
    """Train one variant for one seed; ``settings`` are config overrides plus ``train_images``
    (this variant's training subset size, instead of the budget's). ``curves=False`` skips
    the per-pass train accuracy (the validation curve comes from the trainer either way)."""
    from training.fit.train import train
    settings = dict(settings)
    mc = settings.pop("mc_passes", 0)        # a measurement, not a config override
    val_every, target = settings.pop("val_every", 0), settings.pop("target_accuracy", None)
    bn_momentum = settings.pop("batch_norm_momentum", None)
    tta = settings.pop("tta", False)
    pool, validation, test = fashion_splits()
    train_set = training_subset(pool, settings.pop("train_images", budget.train_images), seed)
    test = test.take(budget.test_images)
    cfg = run_config(settings, seed, budget, len(train_set), workdir)
    per_pass = math.ceil(len(train_set) / budget.batch_size)
    views = tta_view_sets(cfg, int(train_set.x.shape[1])) if tta else None
    probe = _probe(train_set.take(TRAIN_PROBE_IMAGES), test, per_pass, curves, mc, seed, views, validation)
    callbacks = [probe]
    if val_every or bn_momentum is not None:
        stepwise = step_validation(validation, val_every, bn_momentum)
        callbacks.append(stepwise)
    shutil.rmtree(workdir, ignore_errors=True)     # an interrupted run starts afresh
    try:
        result = train(cfg, data=(train_set, validation, test), callbacks=callbacks, run_dir=workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    final, val_curve = probe.final, result.history.get("val_accuracy", [])
    early = next(i for i, step in enumerate(probe.steps) if step >= budget.steps / 4)
    measured = {"mc_test_accuracy": final["mc_test_accuracy"]} if mc else {}
    if tta:
        measured |= {key: value for key, value in final.items() if key.startswith(("served_", "tta_"))}
    record = {"test_accuracy": final["test_accuracy"], **measured, "train_accuracy": final["train_accuracy"],
              "gap": final["train_accuracy"] - final["test_accuracy"], "early_val_accuracy": val_curve[early],
              "kept_test_accuracy": result.test_accuracy, "steps": result.budget["optimizer_steps"],
              "seconds": result.wall_seconds, "train_images": len(train_set), "test_images": len(test),
              "curves": {"step": probe.steps, "train_accuracy": probe.train_accuracy, "val_accuracy": val_curve,
                         "val_loss": result.history.get("val_loss", []), "loss": result.history.get("loss", [])}}
    if val_every:
        record["curves"] = {"step": stepwise.steps, "val_accuracy": stepwise.val_accuracy,
                            **{f"pass_{key}": value for key, value in record["curves"].items()}}
        record["final_val_accuracy"] = stepwise.val_accuracy[-1] if stepwise.val_accuracy else None
        if target is not None:
            record["steps_to_target"] = steps_to_target(stepwise.steps, stepwise.val_accuracy, target,
                                                        record["steps"] + val_every)
    return record


def fashion_run(base: dict, curves: bool = True) -> RunFn:
    """The study's RunFn: ``base`` overrides (shared by its variants), then the variant's own."""
    def run(variant: Variant, seed: int, budget: Budget, workdir: Path) -> dict:
        return train_variant({**base, **variant.settings}, seed, budget, workdir, curves)
    return run
