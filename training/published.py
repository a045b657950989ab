"""Rebuild a published version's Keras model, for retraining, distillation or compression.

Publishing itself (staging and the atomic rename) lives in ``artifact.versions``.
"""
from __future__ import annotations

from pathlib import Path

from artifact import metadata as md

from .config import config_from_dict
from .models import build_for_experiment


def load_keras_model(version_dir):
    """(model, metadata as a validated dict) rebuilt from the stored builder config and weights.
    The builder the config names must be registered (training.transfer registers "transfer")."""
    version_dir = Path(version_dir)
    meta = md.read(version_dir)
    weights = meta.format_path(version_dir, "keras")
    if weights is None:
        raise FileNotFoundError(f"{version_dir} has no Keras weights; it can be served but not retrained")
    model = build_for_experiment(config_from_dict(meta.config), meta.input.shape, len(meta.labels))
    model.load_weights(str(weights))
    return model, meta.to_dict()
