"""Rebuild a Keras model from its config and weights: a published version (for retraining,
distillation or compression) or a training run's checkpoint.

Publishing itself (staging and the atomic rename) lives in ``artifact.versions``.
"""
from __future__ import annotations

from pathlib import Path

from artifact import metadata as md

from training.config import ConfigError, config_from_dict
from training.keras2 import tf
from training.models.backbones import recorded_backbone_spec
from training.models.registry import build_for_experiment


class UnreadableWeights(ConfigError):
    """A weights file that is not HDF5, is cut short, or does not fit the model its config
    describes; the message names the file. A ConfigError, so the command exits 2."""


def load_weights_file(model, path: Path, made_by: str) -> None:
    """``path``'s weights into ``model``; what h5py or Keras raise (OSError for a file that is
    not HDF5 or is truncated, ValueError for another model's weights) as one line naming the file."""
    try:
        model.load_weights(str(path))
    except (OSError, ValueError, tf.errors.OpError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise UnreadableWeights(f"cannot load '{path}' as the HDF5 weights of the model {made_by}: "
                                f"{reason}") from None


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
    load_weights_file(model, weights, "its metadata.json describes")
    return model, recorded


def load_checkpoint(cfg, path: Path, input_shape: tuple, num_classes: int):
    """The model ``cfg`` describes with a training checkpoint's weights loaded."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint '{path}' not found; train first or pass --checkpoint")
    if not path.is_file():
        raise UnreadableWeights(f"checkpoint '{path}' is not a file; pass the .h5 weights file a run wrote "
                                "(<output_dir>/<name>/checkpoints/best.h5)")
    model = build_for_experiment(cfg, input_shape, num_classes)
    load_weights_file(model, path, "the config describes")
    return model
