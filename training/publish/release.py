"""Publishing a trained model as a new version: export it, measure every format on
the test set, and record what the run applied."""
from __future__ import annotations

import logging
import shlex
import sys
from pathlib import Path
from typing import Callable

from artifact.metadata import Metadata
from artifact.versions import publish

from training.config import ExperimentConfig
from training.data.datasets import Dataset, dataset_record
from training.publish.evaluate import classification_report, evaluate_artifact
from training.publish.export import write_artifact
from training.publish.gate import check, enforce
from training.models.cnn import initializer_for
from training.fit.train import TrainResult, predict_probabilities

log = logging.getLogger(__name__)


def techniques(cfg: ExperimentConfig) -> dict:
    """What the run applied, with the settings a reader needs to reproduce it."""
    init = initializer_for(cfg.model.activation, cfg.model.initializer)
    return {
        "initializer": {"choice": cfg.model.initializer, "resolved": type(init).__name__,
                        "activation": cfg.model.activation},
        "batch_norm": cfg.model.batch_norm,
        "dropout": {"stages": cfg.model.dropout, "head": cfg.model.head_dropout},
        "augmentation": cfg.augment.__dict__ if cfg.augment.enabled else False,
        "label_smoothing": cfg.train.label_smoothing,
        "weight_decay": cfg.model.weight_decay,
    }


def command_line() -> str:
    """The running command as a user would retype it, so a version says how it was made."""
    script = Path(sys.argv[0])
    head = ["python", "-m", script.parent.name] if script.name == "__main__.py" else ["python", sys.argv[0]]
    return shlex.join(head + sys.argv[1:])


def _best_epoch_accuracies(history: dict) -> tuple:
    """(train, validation) accuracy of the epoch whose weights are kept (the best validation)."""
    val = (history or {}).get("val_accuracy")
    if not val:
        return None, None
    best = max(range(len(val)), key=val.__getitem__)
    return history["accuracy"][best], val[best]


def publish_model(cfg: ExperimentConfig, model, test: Dataset, *, extra: dict,
                  quantization: str = "none", representative=None, parent=None,
                  weights_model=None, history: dict = None, force: bool = False,
                  judge: Callable[[Path], dict] = None) -> Path:
    """Export ``model`` and publish it with metrics measured on ``test`` for every format.

    The publish check (training.publish.gate) runs first: a model not clearly above the
    majority-class rate raises PublishRefused and nothing is written, unless ``force``.
    ``judge(staging)`` runs on the complete staged version before it is renamed into
    place: it returns further metadata blocks, or raises to publish nothing.
    """
    keras_report = classification_report(test.y, predict_probabilities(model, test).argmax(1), test.class_names)
    report = check(keras_report["accuracy"], test.y, *_best_epoch_accuracies(history))
    for warning in report.warnings:
        log.warning("%s", warning)
    if not force:
        enforce(report)
    checks = report.to_dict() | {"forced": force and not report.passed}

    def write(staging: Path) -> Metadata:
        metadata = write_artifact(staging, model, name=cfg.name, class_names=test.class_names,
                                  color_mode=cfg.data.color_mode if cfg.data.source == "folder" else "L",
                                  quantization=quantization, representative=representative,
                                  extra={"config": cfg.to_dict(), "parent": parent, "publish_check": checks,
                                         "command": command_line(), **extra},
                                  weights_model=weights_model)
        reports = evaluate_artifact(staging, test)
        metadata.metrics = {"test_examples": len(test), "keras": {"accuracy": keras_report["accuracy"]}}
        for fmt, measured in reports.items():
            metadata.metrics[fmt] = {"accuracy": measured["accuracy"], **metadata.sizes[fmt]}
        metadata.metrics["per_class"] = keras_report["per_class"]
        return metadata.updated(judge(staging)) if judge else metadata

    return publish(cfg.models_dir, cfg.name, write)


def publish_result(cfg: ExperimentConfig, result: TrainResult, preset: str = None, force: bool = False) -> Path:
    cfg = result.resolved.apply(cfg)   # the config as it ran: a retrain of this version keeps its input size
    extra = {
        "resolved": result.resolved.to_dict(),
        "techniques": techniques(cfg),
        "preset": preset,
        "dataset": dataset_record(cfg.data, result.train, result.validation, result.test),
        "training": {"params": int(result.model.count_params()), "fit_seconds": round(result.wall_seconds, 1),
                     "history": result.history, "budget": result.budget, "distribution": result.distribution},
    }
    return publish_model(cfg, result.model, result.test, extra=extra, history=result.history, force=force)
