"""The train / publish / evaluate commands, as functions the CLI and benchmarks share."""
from __future__ import annotations

import json
from pathlib import Path

from artifact.metadata import Metadata
from artifact.versions import publish

from .config import ExperimentConfig
from .data import Dataset
from .evaluate import classification_report, evaluate_artifact, plot_confusion
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
                  weights_model=None) -> Path:
    """Export ``model`` and publish it with metrics measured on ``test`` for every format."""
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
        return metadata

    return publish(cfg.models_dir, cfg.name, write)


def publish_result(cfg: ExperimentConfig, result: TrainResult, preset: str = None) -> Path:
    extra = {
        "techniques": techniques(cfg),
        "preset": preset,
        "dataset": {"train": result.train.fingerprint(), "validation": result.validation.fingerprint(),
                    "test": result.test.fingerprint(), "source": cfg.data.source, "path": cfg.data.path},
        "training": {"params": int(result.model.count_params()), "fit_seconds": round(result.wall_seconds, 1),
                     "history": result.history},
    }
    return publish_model(cfg, result.model, result.test, extra=extra)


def evaluate_published(directory: Path, test: Dataset, out_dir: Path) -> dict:
    """Reports and confusion-matrix PNGs for a published version's SavedModel and TFLite."""
    reports = evaluate_artifact(directory, test, out_dir)
    (Path(out_dir) / "report.json").write_text(json.dumps(reports, indent=2))
    return reports


def evaluate_keras(model, test: Dataset, out_dir: Path, title: str) -> dict:
    report = classification_report(test.y, predict_probabilities(model, test).argmax(1), test.class_names)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    plot_confusion(report, test.class_names, Path(out_dir) / "confusion_keras.png", title)
    (Path(out_dir) / "report_keras.json").write_text(json.dumps(report, indent=2))
    return report
