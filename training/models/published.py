"""Rebuild a Keras model from its config and weights: a published version (for retraining,
distillation or compression) or a training run's checkpoint.

Publishing itself (staging and the atomic rename) lives in ``artifact.versions``.
"""
from __future__ import annotations

from pathlib import Path

from artifact import metadata as md

from training.config import config_from_dict
from training.models.backbones import recorded_backbone_spec
from training.models.registry import build_for_experiment


def load_keras_model(version_dir):
    """(model, metadata as a validated dict) rebuilt from the stored builder config and weights."""
    version_dir = Path(version_dir)
    meta = md.read(version_dir)
    weights = meta.format_path(version_dir, "keras")
    if weights is None:
        raise FileNotFoundError(f"{version_dir} has no Keras weights; it can be served but not retrained")
    recorded = meta.to_dict()
    model = build_for_experiment(config_from_dict(meta.config), meta.input.shape, len(meta.labels),
                                 backbone_spec=recorded_backbone_spec(recorded))
    model.load_weights(str(weights))
    return model, recorded


def load_checkpoint(cfg, path: Path, input_shape: tuple, num_classes: int):
    """The model ``cfg`` describes with a training checkpoint's weights loaded."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint '{path}' not found; train first or pass --checkpoint")
    model = build_for_experiment(cfg, input_shape, num_classes)
    model.load_weights(str(path))
    return model
