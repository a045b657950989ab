"""Pretrained feature extractors for transfer learning, and the input adapter in front of them.

A backbone is a tf_keras functional model (image -> feature map) with its weights
loaded: a keras.applications network (MobileNetV2, EfficientNetB0, ResNet50) or
a version of the project's own published models cut before its classifier head.
``training.transfer.pipeline`` rebuilds the backbone's graph from its own layers on the
adapted input, so the final model stays flat (TF-MOT cannot quantize a model
nested inside a model).

Models here take float images in [0, 1] (the export wrapper scales uint8). The
adapter converts them to what the backbone was trained on, with quantizable
layers only: an integer UpSampling2D (or ZeroPadding2D) up to the backbone's
minimum side, then one frozen 1x1 Conv2D doing greyscale->RGB, RGB->BGR and the
backbone's own preprocess_input arithmetic (Rescaling/Lambda would not quantize).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from artifact import metadata as md
from artifact.versions import latest_version

from training.config import ConfigError, config_from_dict
from training.keras2 import keras

# ImageNet channel means in BGR order: keras.applications.resnet.preprocess_input ("caffe" mode).
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)
LUMA = np.array([0.299, 0.587, 0.114], np.float32)   # ITU-R 601, as PIL's convert("L")


class WeightsUnavailable(ConfigError):
    """The requested backbone weights cannot be loaded; the message says how to provide them."""


@dataclass
class AppSpec:
    builder: Callable
    preprocess: str        # "tf": [-1,1] RGB; "caffe": 0-255 BGR minus mean; "raw255": 0-255 RGB
    block_pattern: str     # groups layer names into blocks for unfreeze_unit=blocks
    min_side: int = 32     # smallest input side with include_top=False


APPLICATIONS = {
    "mobilenetv2": AppSpec(keras.applications.MobileNetV2, "tf", r"^(block_\d+)_"),
    # EfficientNet rescales and normalises inside its own graph, so it wants 0-255 input.
    "efficientnetb0": AppSpec(keras.applications.EfficientNetB0, "raw255", r"^(block\d+[a-z])_"),
    "resnet50": AppSpec(keras.applications.ResNet50, "caffe", r"^(conv\d_block\d+)_"),
}
PROJECT_BLOCK_PATTERN = r"^(s\d+b\d+)"   # training.models.registry names conv blocks s<stage>b<block>_*
HEAD_START = ("head_maxpool", "pool")    # where training.models.classifier_head begins


@dataclass
class Backbone:
    name: str
    model: keras.Model                  # (H, W, C) -> feature map, weights loaded
    kind: str                           # "application" | "published"
    preprocess: str                     # see AppSpec; "identity" for published backbones
    min_side: int
    block_pattern: str
    info: dict = field(default_factory=dict)   # what went into it, for metadata.json
    spec: Optional[dict] = None         # published backbones: enough to rebuild without the files

    @property
    def channels(self) -> int:
        return int(self.model.input_shape[-1])


def _weights_choice(weights: Optional[str]) -> Optional[str]:
    return None if weights is None or str(weights).lower() in ("none", "null", "") else str(weights)


def recorded_backbone_spec(meta: dict) -> Optional[dict]:
    """The published backbone a version's model was built on (metadata.json as a dict), or None:
    its ``resolved`` block, or, in versions published before that block, its config's
    ``transfer.backbone_spec``."""
    spec = (meta.get("resolved") or {}).get("backbone_spec")
    return spec or ((meta.get("config") or {}).get("transfer") or {}).get("backbone_spec")


def load_backbone(tcfg, data_shape: tuple, build: Callable, weights: Optional[str] = None,
                  backbone_spec: Optional[dict] = None) -> Backbone:
    """The backbone ``tcfg.backbone`` with ``weights`` (default: ``tcfg.weights``) loaded.
    ``build(config, input_shape, classes, backbone_spec)`` is the model registry's builder: a
    published backbone is rebuilt through it from its recorded config, read from
    ``backbone_spec`` (what ``Backbone.spec`` held when the model was trained) when given, so
    a published transfer model rebuilds without its backbone's files."""
    weights = _weights_choice(tcfg.weights if weights is None else weights)
    name = tcfg.backbone.lower()
    if name in APPLICATIONS:
        return _application(name, tcfg, data_shape, weights)
    if tcfg.alpha != 1.0:
        raise ConfigError("transfer.alpha applies only to the mobilenetv2 backbone")
    return _published(tcfg, weights, build, backbone_spec)


def _application(name: str, tcfg, data_shape: tuple, weights: Optional[str]) -> Backbone:
    app = APPLICATIONS[name]
    if tcfg.alpha != 1.0 and name != "mobilenetv2":
        raise ConfigError("transfer.alpha applies only to the mobilenetv2 backbone")
    weights = "imagenet" if weights == "default" else weights
    if weights not in (None, "imagenet") and not Path(weights).is_file():
        raise WeightsUnavailable(f"backbone weights file '{weights}' not found (transfer.weights / --weights)")
    height, width = adapted_size(data_shape[:2], app.min_side, tcfg.resize, tcfg.scale)
    kwargs = {"alpha": tcfg.alpha} if name == "mobilenetv2" else {}
    try:
        model = app.builder(include_top=False, weights=weights, input_shape=(height, width, 3), **kwargs)
    except ValueError:
        raise                                  # a bad argument, already explained by Keras
    except Exception as exc:                   # get_file raises a bare Exception when offline
        if weights != "imagenet":
            raise
        raise WeightsUnavailable(_offline_message(name, exc)) from exc
    return Backbone(name, model, "application", app.preprocess, app.min_side, app.block_pattern,
                    info={"name": name, "weights": weights or "none", "alpha": tcfg.alpha if kwargs else None,
                          "input": [height, width, 3], "preprocess": app.preprocess})


def _offline_message(name: str, exc: Exception) -> str:
    url = re.search(r"https?://\S+?\.h5", str(exc))
    where = f" from {url.group(0)}" if url else ""
    file = url.group(0).rsplit("/", 1)[-1] if url else "<weights>.h5"
    return (f"could not download the ImageNet weights for backbone '{name}'{where} ({exc}). "
            f"Without internet, fetch that file on a machine that has it and either copy it to "
            f"~/.keras/models/{file} (where Keras looks for weights=imagenet) or pass its path: "
            f"--weights /path/to/{file} (config: transfer.weights=PATH). "
            f"Or use --weights none, or a published model as the backbone (--backbone models/<name>/<version>).")


def resolve_version_dir(path: str) -> Path:
    """A version directory, or a model directory meaning its latest version."""
    directory = Path(path)
    if (directory / "metadata.json").is_file():
        return directory
    if directory.is_dir():
        return latest_version(directory.parent, directory.name)
    raise ConfigError(f"unknown backbone '{path}': use {', '.join(APPLICATIONS)} or a published "
                      "version directory such as models/fashion/1")


def _published(tcfg, weights: Optional[str], build: Callable, spec: Optional[dict]) -> Backbone:
    """A published model cut where its classifier head begins (the feature map before pooling)."""
    if weights == "imagenet":
        raise WeightsUnavailable("a published backbone has no ImageNet weights; use "
                                 "--weights default (its own), none or a weights file")
    if spec is None or weights == "default":
        directory = resolve_version_dir(tcfg.backbone)
        meta = md.read(directory)
        spec = {"path": str(directory), "name": meta.name, "version": meta.version,
                "config": meta.config, "classes": len(meta.labels), "input": list(meta.input.shape),
                "backbone_spec": recorded_backbone_spec(meta.to_dict())}
    inner = spec.get("backbone_spec") or recorded_backbone_spec({"config": spec["config"]})
    full = build(config_from_dict(spec["config"]), tuple(spec["input"]), spec["classes"], inner)
    if weights == "default":                   # the version's own trained weights
        path = md.read(spec["path"]).format_path(Path(spec["path"]), "keras")
        if path is None:
            raise WeightsUnavailable(f"{spec['path']} has no Keras weights to use as a backbone")
        full.load_weights(str(path))
    else:                                      # none, or a weights file for the whole published model
        if weights is not None:
            if not Path(weights).is_file():
                raise WeightsUnavailable(f"backbone weights file '{weights}' not found")
            full.load_weights(weights)
    start = next((layer.name for layer in full.layers if layer.name in HEAD_START), None)
    if start is None:
        raise ConfigError(f"backbone '{tcfg.backbone}' has no {' or '.join(HEAD_START)} layer to cut its head at")
    trunk = keras.Model(full.input, full.get_layer(start).input, name="trunk")
    return Backbone(tcfg.backbone, trunk, "published", "identity", min(spec["input"][:2]),
                    PROJECT_BLOCK_PATTERN, spec=spec,
                    info={"name": f"{spec['name']}/{spec['version']}", "path": spec["path"],
                          "weights": weights or "none", "input": spec["input"]})


def adapted_size(size: tuple, min_side: int, resize: str, scale: int) -> tuple:
    """(height, width) the backbone sees for data of ``size``."""
    if resize == "pad":
        return tuple(max(s, min_side) for s in size)
    if resize not in ("bilinear", "nearest"):
        raise ConfigError(f"unknown transfer.resize '{resize}' (bilinear, nearest, pad)")
    # An integer factor keeps it an UpSampling2D, which TF-MOT quantizes; Resizing it does not.
    factor = scale or max(1, math.ceil(min_side / min(size)))
    return tuple(s * factor for s in size)


def pixel_map(channels_in: int, channels_out: int, preprocess: str):
    """(kernel [1,1,in,out], bias [out]) of the 1x1 conv mapping [0,1] pixels to backbone input,
    or None when it would be the identity."""
    if channels_in == channels_out:
        base = np.eye(channels_in, dtype=np.float32)
    elif channels_in == 1:
        base = np.ones((1, channels_out), np.float32)        # greyscale: same value on every channel
    elif channels_in == 3 and channels_out == 1:
        base = LUMA[:, None]
    else:
        raise ConfigError(f"cannot adapt {channels_in}-channel images to a {channels_out}-channel backbone")
    bias = np.zeros(channels_out, np.float32)
    if preprocess == "tf":
        base, bias = base * 2.0, bias - 1.0
    elif preprocess == "caffe":
        base, bias = base[:, ::-1] * 255.0, -CAFFE_MEAN_BGR
    elif preprocess == "raw255":
        base = base * 255.0
    elif preprocess == "identity" and channels_in == channels_out:
        return None
    return base.reshape(1, 1, channels_in, channels_out), bias


def adapt_input(inputs, backbone: Backbone, resize: str, scale: int, prefix: str = "adapt"):
    """Resize and preprocess ``inputs`` ([0,1] floats) for ``backbone``; returns (tensor, layers)."""
    layers = []
    size = tuple(int(d) for d in inputs.shape[1:3])
    target = adapted_size(size, backbone.min_side, resize, scale)
    if target != size and resize == "pad":
        pads = [((t - s) // 2, t - s - (t - s) // 2) for s, t in zip(size, target)]
        layers.append(keras.layers.ZeroPadding2D(tuple(pads), name=f"{prefix}_resize"))
    elif target != size:
        layers.append(keras.layers.UpSampling2D(target[0] // size[0], interpolation=resize,
                                                name=f"{prefix}_resize"))
    mapping = pixel_map(int(inputs.shape[-1]), backbone.channels, backbone.preprocess)
    if mapping is not None:
        kernel, bias = mapping
        layers.append(keras.layers.Conv2D(
            kernel.shape[-1], 1, name=f"{prefix}_pixels", trainable=False,
            kernel_initializer=keras.initializers.Constant(kernel),
            bias_initializer=keras.initializers.Constant(bias)))
    x = inputs
    for layer in layers:
        x = layer(x)
    return x, layers
