"""Transfer learning: a pretrained backbone, a new head, two-stage fine-tuning.

Stage 1 trains only the new head on a frozen backbone (random head gradients
would otherwise wreck the pretrained features), by default on plain images with a
cosine-decayed rate (``transfer.head_augment``, ``transfer.head_schedule``: what
the transfer study found best). Stage 2 unfreezes the top N layers or blocks (or
all) and trains on augmented images at a low learning rate, by default the one for
the backbone's kind (``transfer.fine_tune_learning_rate: auto``). BatchNorm
layers of the backbone stay frozen throughout: in Keras 2 a non-trainable
BatchNormalization runs in inference mode, so its moving statistics, learned on
the source data, are not overwritten by small target batches. Keras needs a
recompile after every change of ``trainable``, so each stage compiles afresh.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

from training.config import AUTO, ExperimentConfig, Resolved, fine_tune_rate
from training.data.sufficiency import check_enough
from training.data.datasets import Dataset, dataset_record, load_data, resolve_data
from training.data.pipeline import make_dataset, steps_per_epoch, training_batches, validation_batches
from training.fit.recipe import auto_batch_size, auto_steps
from training.fit.train import accuracy
from training.fit.trainer import fit, run_dir_for
from training.keras2 import keras
from training.models.registry import build_for_experiment
from training.models.transfer import build_transfer_model, freeze_backbone, unfreeze_top
from training.publish.release import publish_version, techniques

log = logging.getLogger(__name__)


@dataclass
class TransferResult:
    cfg: ExperimentConfig              # as it ran: model.name "transfer", "auto" values resolved
    model: keras.Model
    backbone: dict
    train: Dataset
    validation: Dataset
    test: Dataset
    run_dir: Path
    stages: list
    resolved: Resolved = field(default_factory=Resolved)   # batch size, head epochs, a published backbone's spec


def transfer_model(cfg: ExperimentConfig, input_shape: tuple, num_classes: int, weights=None,
                   backbone_spec: Optional[dict] = None):
    """The transfer model ``cfg`` describes, a published backbone rebuilt through the registry
    (from ``backbone_spec``, see ``training.models.backbones.load_backbone``, when given)."""
    return build_transfer_model(cfg, input_shape, num_classes, build=build_for_experiment, weights=weights,
                                backbone_spec=backbone_spec)


def transfer_config(cfg: ExperimentConfig) -> ExperimentConfig:
    """``cfg`` for the transfer builder (a copy): publish/load_keras_model rebuild through it."""
    return replace(cfg, model=replace(cfg.model, name="transfer"))


def resolve_transfer(cfg: ExperimentConfig, train_set: Dataset, backbone_spec: Optional[dict],
                     backbone_kind: str = "published") -> Resolved:
    """The resolve step of transfer learning: the batch size, the head stage's passes (from
    ``transfer.head_steps``), stage 2's (from ``transfer.fine_tune_steps``), the fine-tune rate
    (for the backbone's kind), the input format and the published backbone's spec, as a record;
    ``cfg`` is left as it is."""
    batch = auto_batch_size(len(train_set)) if cfg.train.batch_size == AUTO else cfg.train.batch_size
    steps = steps_per_epoch(train_set, batch)
    tcfg = cfg.transfer

    def passes(stage: str, wanted) -> Optional[int]:
        """Whole passes for ``wanted`` optimizer steps ("auto": sized from the data); None: epochs as set."""
        if not wanted:
            return None
        # a small folder gives a few steps per pass: epochs alone leave a stage with a few dozen steps
        wanted = auto_steps(len(train_set), batch) if wanted == AUTO else wanted
        epochs = max(1, math.ceil(wanted / steps))
        log.info("%s stage: %d optimizer steps = %d passes x %d batches of %d", stage, epochs * steps, epochs,
                 steps, batch)
        return epochs

    return Resolved(batch_size=batch, head_epochs=passes("head", tcfg.head_steps),
                    fine_tune_epochs=passes("fine-tune", tcfg.fine_tune_steps), backbone_spec=backbone_spec,
                    fine_tune_learning_rate=fine_tune_rate(tcfg, backbone_kind), **resolve_data(cfg.data, train_set))


def run_transfer(cfg: ExperimentConfig, data: tuple = None) -> TransferResult:
    """Both stages on ``data`` = (train, val, test) or the configured data set."""
    cfg = transfer_config(cfg)
    keras.utils.set_random_seed(cfg.train.seed)
    train_set, val_set, test_set = data if data is not None else load_data(cfg.data)
    check_enough(train_set, val_set, test_set, need_validation=cfg.data.validation_split > 0)
    tm = transfer_model(cfg, train_set.input_shape, len(train_set.class_names))
    resolved = resolve_transfer(cfg, train_set, tm.backbone.spec, tm.backbone.kind)
    cfg = resolved.apply(cfg)          # the config as it runs (the caller's is left as it is)
    run_dir = run_dir_for(cfg)
    train_ds, val_ds = training_batches(train_set, cfg), validation_batches(val_set, cfg)
    steps = steps_per_epoch(train_set, cfg.train.batch_size)
    tcfg = cfg.transfer
    # the head stage's batches: shuffled like stage 2's, augmented only if asked
    head_ds = train_ds if tcfg.head_augment else make_dataset(
        train_set, cfg.train.batch_size, len(train_set.class_names), training=True, augment=None,
        seed=cfg.train.seed, cache=cfg.data.cache)

    def stage(number: int, name: str, epochs: int, lr: float, unfrozen: list, batches, schedule: str) -> dict:
        # fit() compiles afresh: a new optimizer sees the changed trainable flags.
        run = fit(tm.model, batches, replace(cfg.train, epochs=epochs, learning_rate=lr, schedule=schedule),
                  steps_per_epoch=steps, validation=val_ds, run_dir=run_dir / f"stage{number}",
                  record=cfg.to_dict())
        checkpoint = run_dir / "checkpoints" / f"stage{number}.h5"
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        tm.model.save_weights(str(checkpoint))     # the state the next stage starts from
        return {"stage": number, "name": name, "epochs": epochs, "learning_rate": lr, "schedule": schedule,
                "augmented": cfg.augment.enabled and batches is train_ds,
                "unfrozen_layers": len(unfrozen), "unfrozen": unfrozen,
                "trainable_params": int(sum(v.shape.num_elements() for v in tm.model.trainable_weights)),
                "fit_seconds": round(run.seconds, 1), "checkpoint": str(checkpoint),
                "val_accuracy": run.history["val_accuracy"][-1] if "val_accuracy" in run.history else None,
                "test_accuracy": accuracy(tm.model, test_set, cfg.train.batch_size), "history": run.history}

    freeze_backbone(tm)
    stages = [stage(1, "head", tcfg.head_epochs, tcfg.head_learning_rate, [], head_ds, tcfg.head_schedule)]
    if tcfg.unfreeze not in (0, "0") and tcfg.fine_tune_epochs > 0:
        unfrozen = unfreeze_top(tm, tcfg.unfreeze, tcfg.unfreeze_unit)
        stages.append(stage(2, "fine_tune", tcfg.fine_tune_epochs, tcfg.fine_tune_learning_rate, unfrozen,
                            train_ds, cfg.train.schedule))
    return TransferResult(cfg, tm.model, {**tm.backbone.info, "adapter": tm.adapter}, train_set,
                          val_set, test_set, run_dir, stages, resolved)


def publish_transfer(result: TransferResult, preset: str = None, force: bool = False) -> Path:
    """Publish through the same artifact path as ``train``, with each stage's metrics."""
    cfg = result.cfg
    stages = [{k: v for k, v in s.items() if k != "unfrozen"} for s in result.stages]
    summary = {"backbone": result.backbone, "unfreeze": cfg.transfer.unfreeze,
               "unfreeze_unit": cfg.transfer.unfreeze_unit, "stages": stages}
    extra = {
        "resolved": result.resolved.to_dict(),      # the backbone spec rebuilds the model (load_keras_model)
        "techniques": {**techniques(cfg), "transfer_learning": {
            k: v for k, v in summary.items() if k != "stages"}},
        "preset": preset,
        "dataset": dataset_record(cfg.data, result.train, result.validation, result.test),
        "training": {"params": int(result.model.count_params()),
                     "fit_seconds": round(sum(s["fit_seconds"] for s in result.stages), 1)},
        "transfer": summary,
    }
    spec = result.resolved.backbone_spec  # lineage, in training.compress.optimize's shape, for own backbones
    parent = {k: spec[k] for k in ("name", "version", "path")} if spec else None
    history = result.stages[-1]["history"]
    return publish_version(cfg, result.model, result.test, extra=extra, parent=parent, history=history,
                           force=force, validation=result.validation)
