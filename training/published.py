"""A published version read back as a Keras model: the builder config stored in its
metadata rebuilt through the model registry, then its Keras weights loaded.

Training reads published versions this way to retrain, compress or cut them into
transfer backbones; the service reads the SavedModel and TFLite files instead.
"""
from __future__ import annotations

import json
from pathlib import Path

from .config import config_from_dict
from .models import build_for_experiment


def load_keras_model(version_dir):
    """(model, metadata) of a published version, rebuilt from its stored builder config and weights."""
    version_dir = Path(version_dir)
    meta = json.loads((version_dir / "metadata.json").read_text())
    weights = version_dir / meta.get("formats", {}).get("keras", {}).get("path", "keras_weights.h5")
    if not weights.exists():
        raise FileNotFoundError(f"{version_dir} has no Keras weights ({weights.name}); "
                                "it can be served but not retrained")
    spec = meta["input"]
    model = build_for_experiment(config_from_dict(meta["config"]),
                                 (spec["height"], spec["width"], spec["channels"]), len(meta["labels"]))
    model.load_weights(str(weights))
    return model, meta
