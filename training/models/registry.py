"""The registry of model builders, filled explicitly: ``model.name`` picks one.

A builder gets the whole ExperimentConfig and returns the architecture with
initial weights: pretrained backbone weights are the transfer pipeline's
business, trained weights the business of whoever rebuilds a model. The
transfer builder gets this module's ``build_for_experiment`` as an argument,
because a published version used as a backbone is itself rebuilt through it.
"""
from __future__ import annotations

from typing import Optional

from training.config import ExperimentConfig
from training.keras2 import keras
from training.models import cnn, transfer


def _build_transfer(cfg: ExperimentConfig, input_shape: tuple, num_classes: int,
                    backbone_spec: Optional[dict] = None) -> keras.Model:
    return transfer.build_transfer(cfg, input_shape, num_classes, build=build_for_experiment,
                                   backbone_spec=backbone_spec)


BUILDERS = {
    "cnn": cnn.build_cnn,
    "resnet": cnn.build_resnet,
    "transfer": _build_transfer,
}


def available() -> list:
    return sorted(BUILDERS)


def build_for_experiment(cfg: ExperimentConfig, input_shape: tuple, num_classes: int,
                         backbone_spec: Optional[dict] = None) -> keras.Model:
    """The model a whole ExperimentConfig describes, built by the builder ``cfg.model.name`` names;
    ``backbone_spec``: the published backbone a transfer model was trained on (the ``Resolved``
    record's), so it rebuilds without that backbone's files."""
    name = cfg.model.name
    if name not in BUILDERS:
        raise ValueError(f"unknown model '{name}' (available: {', '.join(available())})")
    extra = {"backbone_spec": backbone_spec} if backbone_spec else {}
    return BUILDERS[name](cfg, tuple(input_shape), num_classes, **extra)


def build_model(cfg, input_shape: tuple, num_classes: int) -> keras.Model:
    """The model a ModelConfig describes, every other config section at its default."""
    return build_for_experiment(ExperimentConfig(model=cfg), input_shape, num_classes)
