"""One typed config: dataclass defaults < YAML preset/file < ``--set key=value``.

Unknown keys are an error at every level, so a typo never silently trains the
wrong model. The config as it ran is saved inside the artifact.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional

import yaml

PRESET_DIR = Path(__file__).resolve().parent.parent / "configs"


class ConfigError(ValueError):
    """A config file or override names an unknown key or holds a bad value."""


@dataclass
class DataConfig:
    source: str = "fashion_mnist"      # "fashion_mnist" | "folder" | "npz"
    path: Optional[str] = None         # image folder root or .npz file
    image_size: Any = 28               # square side in pixels for folder data; "auto": the folder's
                                       # median short side within 16-32 px
    color_mode: str = "L"              # "L" (greyscale), "RGB", or "auto": RGB if any colour file is seen
    validation_split: float = 0.1      # fraction of training data held out for validation
    test_split: float = 0.1            # folders: fraction held out as the test set (by a hash of each
                                       # file's path, so it stays put as the folder grows)
    limit: Optional[int] = None        # use only the first N training images (smoke runs)
    cache: bool = True


@dataclass
class AugmentConfig:
    enabled: bool = True
    flip: bool = True                  # horizontal flip, p=0.5
    translate: float = 0.1             # max shift as a fraction of the side
    rotate: float = 0.0                # max rotation in degrees
    zoom: float = 0.0                  # max zoom in/out as a fraction
    contrast: float = 0.0              # max relative contrast change
    brightness: float = 0.0            # max brightness shift in [0,1] units
    erase: float = 0.0                 # probability of random erasing per image
    erase_size: float = 0.3            # max erased side as a fraction of the image


@dataclass
class ModelConfig:
    name: str = "cnn"                  # a registered builder, see training.models
    widths: List[int] = field(default_factory=lambda: [32, 64, 128])   # filters per stage
    convs_per_stage: Any = 2           # int, or a list with one count per stage
    batch_norm: bool = True
    activation: str = "relu"
    initializer: str = "auto"          # auto: He for ReLU family, Glorot for tanh/sigmoid
    dropout: Any = field(default_factory=lambda: [0.1, 0.2, 0.3])  # a rate, or one per stage
    head_dropout: float = 0.3
    head_pool: str = "avg"             # avg (global average) | flatten (max-pool, then flatten)
    dense_units: int = 0               # 0: global pooling straight into the classifier
    weight_decay: float = 5e-4         # L2 on conv/dense kernels


@dataclass
class TrainConfig:
    epochs: int = 15
    batch_size: int = 128
    optimizer: str = "adam"            # adam | adamw | sgd
    learning_rate: float = 3e-3
    momentum: float = 0.9              # sgd only
    schedule: str = "onecycle"         # constant | cosine | onecycle
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.0
    early_stopping_patience: int = 0   # 0: off
    seed: int = 42
    verbose: int = 2                   # Keras fit verbosity (1 = progress bar)


@dataclass
class TransferConfig:
    """Transfer learning (training.transfer): a pretrained backbone, a new head, two stages."""
    backbone: str = "mobilenetv2"      # mobilenetv2 | efficientnetb0 | resnet50 | a published version dir
    weights: Optional[str] = "default" # default | imagenet | none | path to a weights file (.h5);
                                       # default: imagenet for applications, the artifact's own for versions
    alpha: float = 1.0                 # MobileNetV2 width multiplier (0.35 is the smallest with ImageNet weights)
    resize: str = "bilinear"           # bilinear | nearest (integer UpSampling2D) | pad (ZeroPadding2D); all quantizable
    scale: int = 0                     # upsampling factor; 0: smallest reaching the backbone's minimum side
    head_epochs: int = 5               # stage 1: backbone frozen, only the new head learns
    head_learning_rate: float = 1e-3
    unfreeze: Any = "all"              # stage 2: "all", or the top N layers/blocks; 0 skips stage 2
    unfreeze_unit: str = "layers"      # layers (with weights, BatchNorm not counted) | blocks
    fine_tune_epochs: int = 5
    fine_tune_learning_rate: float = 1e-5  # low, so stage 2 nudges rather than overwrites pretrained features
    backbone_spec: Any = None          # filled in for published backbones: rebuilds the model without them


@dataclass
class ExperimentConfig:
    name: str = "fashion"              # model name in the repository
    output_dir: str = "runs"           # checkpoints, logs, history
    models_dir: str = "models"         # the model repository
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _merge(obj: Any, values: dict, where: str) -> None:
    """Assign ``values`` onto dataclass ``obj`` recursively, rejecting unknown keys."""
    hints = typing.get_type_hints(type(obj))
    for key, value in values.items():
        if key not in hints:
            raise ConfigError(f"unknown config key '{where}{key}' (known: {', '.join(sorted(hints))})")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"'{where}{key}' is a section; give a mapping")
            _merge(current, value, f"{where}{key}.")
        else:
            setattr(obj, key, _coerce(value, hints[key], f"{where}{key}"))


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check ``value`` against the field's declared type; ints are accepted for floats."""
    if hint is Any:
        return value
    if typing.get_origin(hint) is typing.Union:          # Optional[X]
        if value is None:
            return None
        hint = next(h for h in typing.get_args(hint) if h is not type(None))
    expected = typing.get_origin(hint) or hint
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is int and isinstance(value, bool) or not isinstance(value, expected):
        raise ConfigError(f"'{key}' must be {expected.__name__}, got {value!r}")
    return value


def parse_override(text: str) -> dict:
    """``train.epochs=3`` -> {"train": {"epochs": 3}}; the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key=value")
    dotted, raw = text.split("=", 1)
    value = yaml.safe_load(raw) if raw.strip() else ""
    nested: dict = {}
    cursor = nested
    parts = dotted.strip().split(".")
    for part in parts[:-1]:
        cursor = cursor.setdefault(part, {})
    cursor[parts[-1]] = value
    return nested


def resolve_preset(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return path
    preset = PRESET_DIR / f"{name_or_path}.yaml"
    if preset.exists():
        return preset
    known = sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))
    raise ConfigError(f"no config file or preset '{name_or_path}' (presets: {', '.join(known)})")


def load_config(preset: Optional[str] = None, overrides: Optional[list] = None,
                base: Optional[dict] = None) -> ExperimentConfig:
    config = ExperimentConfig()
    if preset:
        with open(resolve_preset(preset)) as f:
            _merge(config, yaml.safe_load(f) or {}, "")
    if base:
        _merge(config, base, "")
    for text in overrides or []:
        _merge(config, parse_override(text), "")
    return config


def config_from_dict(values: dict) -> ExperimentConfig:
    """Rebuild a config saved in an artifact's metadata."""
    config = ExperimentConfig()
    _merge(config, values, "")
    return config
