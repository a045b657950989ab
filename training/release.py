"""Publishing a trained model as a new version: export it, measure every format on
the test set, and record what the run applied."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from artifact.metadata import Metadata
from artifact.versions import publish

from .config import ExperimentConfig
from .data import Dataset, dataset_record
from .evaluate import classification_report, evaluate_artifact
from .export import write_artifact
from .models import initializer_for
from .train import TrainResult, predict_probabilities


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


def publish_model(cfg: ExperimentConfig, model, test: Dataset, *, extra: dict,
                  quantization: str = "none", representative=None, parent=None,
                  weights_model=None, check: Callable[[Path], dict] = None) -> Path:
    """Export ``model`` and publish it with metrics measured on ``test`` for every format.

    ``check(staging)`` runs on the complete staged version before it is renamed into
    place: it returns further metadata blocks, or raises to publish nothing."""
    keras_report = classification_report(test.y, predict_probabilities(model, test).argmax(1), test.class_names)

    def write(staging: Path) -> Metadata:
        metadata = write_artifact(staging, model, name=cfg.name, class_names=test.class_names,
                                  color_mode=cfg.data.color_mode if cfg.data.source == "folder" else "L",
                                  quantization=quantization, representative=representative,
                                  extra={"config": cfg.to_dict(), "parent": parent, **extra},
                                  weights_model=weights_model)
        reports = evaluate_artifact(staging, test)
        metadata.metrics = {"test_examples": len(test), "keras": {"accuracy": keras_report["accuracy"]}}
        for fmt, report in reports.items():
            metadata.metrics[fmt] = {"accuracy": report["accuracy"], **metadata.sizes[fmt]}
        metadata.metrics["per_class"] = keras_report["per_class"]
        return metadata.updated(check(staging)) if check else metadata

    return publish(cfg.models_dir, cfg.name, write)


def publish_result(cfg: ExperimentConfig, result: TrainResult, preset: str = None) -> Path:
    extra = {
        "techniques": techniques(cfg),
        "preset": preset,
        "dataset": dataset_record(cfg.data, result.train, result.validation, result.test),
        "training": {"params": int(result.model.count_params()), "fit_seconds": round(result.wall_seconds, 1),
                     "history": result.history, "distribution": result.distribution},
    }
    return publish_model(cfg, result.model, result.test, extra=extra)
