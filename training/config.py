"""One typed config: dataclass defaults < YAML preset/file < ``--set key=value``.

Unknown keys are an error at every level, so a typo never silently trains the
wrong model. The config as it ran is saved inside the artifact.
"""
from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional

import yaml

PRESET_DIR = Path(__file__).resolve().parent.parent / "configs"
STRATEGIES = ("default", "mirrored", "multi_worker")   # tf.distribute set-ups, see training.fit.distribute


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
    name: str = "cnn"                  # a registered builder, see training.models.registry
    widths: List[int] = field(default_factory=lambda: [32, 64, 128])   # filters per stage
    convs_per_stage: Any = 2           # int, or a list with one count per stage
    batch_norm: bool = True
    activation: str = "relu"
    initializer: str = "auto"          # auto: He for ReLU family, Glorot for tanh/sigmoid; naive: normal
                                       # with std 0.01 (the baseline to beat); or any Keras initializer name
                                       # (he_normal, glorot_uniform, lecun_normal, ...)
    dropout: Any = field(default_factory=lambda: [0.1, 0.2, 0.3])  # a rate, or one per stage
    head_dropout: float = 0.3
    head_pool: str = "avg"             # avg (global average) | flatten (max-pool, then flatten)
    dense_units: int = 0               # 0: global pooling straight into the classifier
    weight_decay: float = 5e-4         # L2 on conv/dense kernels


@dataclass
class TrainConfig:
    epochs: int = 15                   # passes over the training data (unless ``steps`` is set)
    batch_size: Any = 128              # images per optimizer step, or "auto": sized from the data
                                       # (training.fit.recipe: about n/32 within 16-64)
    steps: Any = 0                     # optimizer steps instead of epochs, rounded up to whole passes;
                                       # "auto": sized from the data (at least 3,000); 0: use epochs
    optimizer: str = "adam"            # adam | adamw | sgd
    learning_rate: float = 3e-3
    momentum: float = 0.9              # sgd only
    schedule: str = "onecycle"         # constant | cosine | onecycle
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.0
    early_stopping_patience: Any = 0   # passes without a better validation accuracy before stopping;
                                       # 0: off; "auto": a third of the passes (at least 10). The best
                                       # weights are restored either way, and those are what is published
    seed: int = 42
    verbose: int = 2                   # Keras fit verbosity (1 = progress bar)


@dataclass
class TransferConfig:
    """Transfer learning (training.transfer.pipeline): a pretrained backbone, a new head, two stages."""
    backbone: str = "mobilenetv2"      # mobilenetv2 | efficientnetb0 | resnet50 | a published version dir
    weights: Optional[str] = "default" # default | imagenet | none | path to a weights file (.h5);
                                       # default: imagenet for applications, the artifact's own for versions
    alpha: float = 1.0                 # MobileNetV2 width multiplier (0.35 is the smallest with ImageNet weights)
    resize: str = "bilinear"           # bilinear | nearest (integer UpSampling2D) | pad (ZeroPadding2D); all quantizable
    scale: int = 0                     # upsampling factor; 0: smallest reaching the backbone's minimum side
    head_epochs: int = 5               # stage 1: backbone frozen, only the new head learns
    head_steps: Any = 0                # stage 1 in optimizer steps instead (rounded up to whole passes);
                                       # "auto": sized from the data like train.steps; 0: head_epochs
    head_learning_rate: float = 1e-3
    unfreeze: Any = "all"              # stage 2: "all", or the top N layers/blocks; 0 skips stage 2
    unfreeze_unit: str = "layers"      # layers (with weights, BatchNorm not counted) | blocks
    fine_tune_epochs: int = 5
    fine_tune_learning_rate: float = 1e-5  # low, so stage 2 nudges rather than overwrites pretrained features
    backbone_spec: Any = None          # filled in for published backbones: rebuilds the model without them


@dataclass
class DistillConfig:
    """Knowledge distillation (training.compress.distill), the ``distill`` stage of ``optimize``."""
    alpha: float = 0.1                 # weight of the hard-label loss (0 = soft labels only); the best
                                       # of the compression study's grid (0.1, 0.5) at T=4
    temperature: float = 4.0           # softens both softmaxes; the soft term is scaled by T^2
    labelled: bool = True              # False: the transfer set's labels are not used
    epochs: Optional[int] = None       # student epochs; None: the student config's train.epochs
    student_preset: Optional[str] = None   # preset/YAML for the student; None: the source's own config
    student_overrides: List[str] = field(default_factory=list)   # KEY=VALUE lines for the student


@dataclass
class OptimizeConfig:
    """Compression (training.compress.optimize): stages, pruning and quantization-aware training."""
    # see optimize.STAGES; docs/compression.md has the measurement behind this default
    stages: List[str] = field(default_factory=lambda: ["prune", "int8"])
    name: Optional[str] = None         # publish under this model name; None: the config's name
    # pruning (training.compress.prune.PruneSettings)
    sparsity: float = 0.75             # fraction of each pruned Conv2D/Dense kernel set to zero
    schedule: str = "polynomial"       # polynomial: ramp initial_sparsity -> sparsity; constant
    initial_sparsity: float = 0.0      # polynomial start
    two_four: bool = False             # 2:4 structured sparsity (50%) instead of ``sparsity``
    keep_ends: bool = True             # first and last Conv2D/Dense stay dense
    # Dense kernel blocks (rows, cols): 4,1 puts runs of zeros in TFLite's [out, in] layout
    dense_block: List[int] = field(default_factory=lambda: [4, 1])
    prune_epochs: int = 3              # fine-tune epochs while pruning
    ramp: float = 0.7                  # share of the pruning epochs spent raising sparsity
    prune_learning_rate: float = 5e-4  # fine-tune peak rate; the model is already trained
    # quantization-aware training (training.compress.quantize.QATSettings) and int8 calibration
    qat_epochs: int = 1
    qat_learning_rate: float = 1e-4
    calibration_samples: int = 300     # representative images for int8 post-training quantization


@dataclass
class RetrainConfig:
    """Batch retraining (training.jobs.retrain): how a candidate starts and when it may replace the served version."""
    metric: str = "accuracy"           # accuracy | class_floor (no class's recall may drop), see training.jobs.promotion
    tolerance: float = 0.005           # how far below the served version the candidate may score and still publish
    learning_rate_scale: float = 0.1   # fine-tuning from the served version: train.learning_rate x this
    epochs: Optional[int] = None       # fine-tuning passes; None: the recipe's budget (train.epochs or train.steps)


@dataclass
class AblateConfig:
    """Ablation studies (``python -m training ablate``): the budget; None keeps the study's own default."""
    steps: Optional[int] = None        # optimizer steps per run, the same for every variant
    batch_size: Optional[int] = None   # images per optimizer step
    train_images: Any = None           # training subset size, or "all" (54,000 Fashion-MNIST images)
    test_images: Any = None            # test subset size, or "all" (the 10,000-image test set)
    seeds: Any = None                  # one run per seed and variant: a list [1, 2, 3] or "1,2,3"
    reports_dir: str = "reports"       # <reports_dir>/<study>/: runs.jsonl, report.md and the plots
    workdir: str = "runs/ablate"       # each run's checkpoints while it trains (removed when it ends)
    evidence: str = "docs/evidence.md" # every study's verdicts and plots on one page


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
    distill: DistillConfig = field(default_factory=DistillConfig)
    optimize: OptimizeConfig = field(default_factory=OptimizeConfig)
    retrain: RetrainConfig = field(default_factory=RetrainConfig)
    ablate: AblateConfig = field(default_factory=AblateConfig)

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
                base: Optional[dict] = None, flags: Optional[dict] = None) -> ExperimentConfig:
    """Defaults < ``preset`` < ``base`` (e.g. a published version's config) < ``flags`` (CLI
    shorthands, given as a mapping so paths are never parsed as YAML) < ``overrides``
    (``--set`` lines): an explicit --set wins over a flag."""
    config = ExperimentConfig()
    if preset:
        with open(resolve_preset(preset)) as f:
            _merge(config, yaml.safe_load(f) or {}, "")
    for values in (base, flags):
        if values:
            _merge(config, values, "")
    for text in overrides or []:
        _merge(config, parse_override(text), "")
    return validate(config)


def _check_budget(train: TrainConfig) -> None:
    """Values the types allow but training cannot use, named before TensorFlow loads."""
    def positive_or_auto(key, value, zero_ok=False):
        if value == "auto" or (isinstance(value, int) and not isinstance(value, bool)
                               and (value > 0 or (zero_ok and value == 0))):
            return
        least = "0 (off)" if zero_ok else "1"
        raise ConfigError(f"'train.{key}' must be an integer of at least {least}, or auto; got {value!r}")
    if train.epochs < 1:
        raise ConfigError(f"'train.epochs' must be at least 1, got {train.epochs} "
                          "(or set train.steps to count optimizer steps instead)")
    positive_or_auto("batch_size", train.batch_size)
    positive_or_auto("steps", train.steps, zero_ok=True)
    positive_or_auto("early_stopping_patience", train.early_stopping_patience, zero_ok=True)


def _check_ablate(cfg: AblateConfig) -> None:
    """Normalise the study budget's values ("all" -> None, "1,2,3" -> [1, 2, 3]) or name the bad one."""
    def count(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value > 0
    for key in ("steps", "batch_size"):
        if getattr(cfg, key) is not None and not count(getattr(cfg, key)):
            raise ConfigError(f"'ablate.{key}' must be an integer of at least 1, got {getattr(cfg, key)!r}")
    for key in ("train_images", "test_images"):
        value = getattr(cfg, key)
        if value is not None and value != "all" and not count(value):
            raise ConfigError(f"'ablate.{key}' must be an integer of at least 1, or all; got {value!r}")
    seeds = cfg.seeds
    if isinstance(seeds, str):
        try:
            seeds = [int(s) for s in seeds.split(",") if s.strip()]
        except ValueError:
            seeds = None
    elif isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = [seeds]
    if cfg.seeds is not None and not (isinstance(seeds, list) and seeds
                                      and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
                                      and len(set(seeds)) == len(seeds)):
        raise ConfigError(f"'ablate.seeds' must be distinct integers such as 1,2,3; got {cfg.seeds!r}")
    cfg.seeds = seeds


def validate(config: ExperimentConfig) -> ExperimentConfig:
    _check_budget(config.train)
    _check_ablate(config.ablate)
    steps = config.transfer.head_steps
    if not (steps == "auto" or (isinstance(steps, int) and not isinstance(steps, bool) and steps >= 0)):
        raise ConfigError(f"'transfer.head_steps' must be an integer of at least 0 (off), or auto; got {steps!r}")
    return config


def config_from_dict(values: dict) -> ExperimentConfig:
    """Rebuild a config saved in an artifact's metadata."""
    config = ExperimentConfig()
    _merge(config, values, "")
    return config


def _field_comments(cls) -> dict:
    """field name -> its comment in this file (continuation comment lines joined)."""
    comments, current = {}, None
    for line in inspect.getsource(cls).splitlines()[1:]:
        match = re.match(r"\s+(\w+): [^#]*?(?:#\s*(.*))?$", line)
        if match:
            current = match.group(1)
            comments[current] = match.group(2) or ""
        elif current and re.match(r"\s+#", line):
            comments[current] += " " + line.strip().lstrip("#").strip()
    return comments


def describe_config(config: ExperimentConfig) -> str:
    """Every key as ``section.key = value  # comment``, marking values a preset or --set
    changed from the default, for ``python -m training config``."""
    lines = []

    def show(value) -> str:
        text = yaml.safe_dump(value, default_flow_style=True).strip()
        return text[:-4].strip() if text.endswith("\n...") else text

    def walk(obj, default, prefix):
        comments = _field_comments(type(obj))
        for f in dataclasses.fields(obj):
            value, initial = getattr(obj, f.name), getattr(default, f.name)
            if dataclasses.is_dataclass(value):
                lines.append("")
                walk(value, initial, f"{prefix}{f.name}.")
                continue
            text = f"{prefix}{f.name} = {show(value)}"
            if value != initial:
                text += f" (default {show(initial)})"
            comment = comments.get(f.name, "")
            lines.append(f"{text:<48}  # {comment}" if comment else text)

    walk(config, ExperimentConfig(), "")
    return "\n".join(lines)
