"""The optimize pipeline: source model -> chosen compression stages -> a published version.

Stages run left to right on the current model; each one is measured (accuracy,
parameters, non-zero parameters, TFLite sizes) and recorded in the published
metadata under "stages", with "parent" naming the source version:

    train | (a published version)  ->  distill  ->  prune  ->  qat | pqat  ->  dynamic | float16 | int8
"""
from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Optional

from .config import ExperimentConfig
from .distill import distill, student_config
from .measure import measure
from .prune import PruneSettings, prune, sparsity_report
from .quantize import QATSettings, float_twin, qat, representative

log = logging.getLogger(__name__)

FLOAT_STAGES = ("distill", "prune")
QAT_STAGES = ("qat", "pqat")
EXPORT_STAGES = ("dynamic", "float16", "int8")
STAGES = FLOAT_STAGES + QAT_STAGES + EXPORT_STAGES


@dataclass
class OptimizeOptions:
    stages: list = field(default_factory=lambda: ["prune", "pqat", "int8"])
    # distillation
    student_preset: Optional[str] = None
    student_overrides: list = field(default_factory=list)
    alpha: float = 0.5                 # weight of the hard-label loss; 0 = soft labels only
    temperature: float = 4.0
    labelled: bool = True              # False: the transfer set's labels are not used
    distill_epochs: Optional[int] = None   # None: the student config's train.epochs
    # pruning
    prune: PruneSettings = field(default_factory=PruneSettings)
    # quantization-aware training
    qat: QATSettings = field(default_factory=QATSettings)
    calibration_samples: int = 300     # representative images for int8
    name: Optional[str] = None         # publish under this model name (default: the config's)


def parse_stages(text) -> list:
    """Validate the order: float stages, then at most one QAT stage, then at most one export."""
    stages = [s.strip().lower() for s in (text.split(",") if isinstance(text, str) else text) if s.strip()]
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stage(s) {', '.join(unknown)} (known: {', '.join(STAGES)})")
    rank = {s: 0 if s in FLOAT_STAGES else 1 if s in QAT_STAGES else 2 for s in STAGES}
    if [rank[s] for s in stages] != sorted(rank[s] for s in stages):
        raise ValueError(f"stages {','.join(stages)} out of order: distill/prune first, then qat or "
                         "pqat, then one of dynamic/float16/int8 (a quantized model cannot be "
                         "distilled or pruned again)")
    if sum(s in QAT_STAGES for s in stages) > 1 or sum(s in EXPORT_STAGES for s in stages) > 1:
        raise ValueError("choose at most one of qat/pqat and at most one of dynamic/float16/int8")
    if any(s in QAT_STAGES for s in stages) and ("float16" in stages or "dynamic" in stages):
        raise ValueError("a QAT model exports as int8 (from its own fake-quant ranges), "
                         "not dynamic or float16")
    return stages


@dataclass
class State:
    model: object                      # the current model (float, or QAT)
    cfg: ExperimentConfig              # its config; cfg.model rebuilds its float twin
    float_model: object                # the float model the current one was made from
    quantization: str = "none"
    records: list = field(default_factory=list)


def _record(state: State, stage: str, settings: dict, seconds: float, test, calibrate, workdir: Path,
            history: dict = None) -> None:
    metrics = measure(state.model, test, state.quantization,
                      calibrate if state.quantization == "int8" else None,
                      workdir / f"{len(state.records)}-{stage}")
    metrics.pop("tflite_path")
    entry = {"stage": stage, "settings": settings, "seconds": round(seconds, 1), "metrics": metrics,
             "sparsity": sparsity_report(state.model)}
    if history:
        entry["history"] = history
    state.records.append(entry)
    log.info("stage %s: %s", stage, {k: metrics[k] for k in ("keras_accuracy", "tflite_accuracy",
                                                              "nonzero_params", "tflite_gzip_bytes")})


def run_stages(model, cfg: ExperimentConfig, data: tuple, options: OptimizeOptions,
               workdir: Path) -> State:
    """Apply ``options.stages`` to ``model``; returns the final state with one record per
    stage. The files each stage is measured on are written under ``workdir``."""
    stages = parse_stages(options.stages)
    train, val, test = data
    workdir = Path(workdir)
    calibrate = representative(train, options.calibration_samples, seed=cfg.train.seed)
    state = State(model, cfg, model)
    _record(state, "source", {"config": cfg.name}, 0.0, test, calibrate, workdir)
    for stage in stages:
        start, history = time.perf_counter(), None
        if stage == "distill":
            student_cfg = student_config(state.cfg, options.student_preset, options.student_overrides)
            if options.distill_epochs:
                student_cfg = replace(student_cfg, train=replace(student_cfg.train, epochs=options.distill_epochs))
            student, history, _ = distill(state.model, student_cfg, train, val, alpha=options.alpha,
                                          temperature=options.temperature, labelled=options.labelled)
            settings = {"alpha": options.alpha if options.labelled else 0.0, "temperature": options.temperature,
                        "labelled": options.labelled, "epochs": student_cfg.train.epochs,
                        "student": student_cfg.model.__dict__, "teacher_params": int(state.model.count_params())}
            state = replace(state, model=student, cfg=student_cfg, float_model=student)
        elif stage == "prune":
            pruned, history = prune(state.model, train, state.cfg, options.prune, val)
            settings = asdict(options.prune)
            state = replace(state, model=pruned, float_model=pruned)
        elif stage in QAT_STAGES:
            settings = replace(options.qat, preserve_sparsity=stage == "pqat")
            if stage == "pqat" and sparsity_report(state.model)["kernels"] < 0.01:
                log.warning("pqat on a model with no pruned kernels: put 'prune' before it")
            qmodel, history = qat(state.model, train, state.cfg, settings, val)
            settings = asdict(settings)
            state = replace(state, model=qmodel, quantization="qat")
        else:
            if state.quantization == "qat":    # qat/pqat already measured this very file
                same = {k: v for k, v in state.records[-1].items() if k != "history"}
                state.records.append({**same, "stage": stage, "seconds": 0.0,
                                      "settings": {"ranges": "learned by quantization-aware training"}})
                continue
            settings = {"calibration_samples": options.calibration_samples} if stage == "int8" else {}
            state = replace(state, quantization=stage)
        _record(state, stage, settings, time.perf_counter() - start, test, calibrate, workdir, history)
    return state


def optimize(cfg: ExperimentConfig, options: OptimizeOptions, *, source_dir: Path = None,
             model=None, data: tuple = None) -> Path:
    """Load (``source_dir``) or train the source model, run the stages, publish the result."""
    from .cli_train import publish_model, techniques
    from .data import load_data
    from .train import train as train_model
    data = data or load_data(cfg.data)
    parent, source_record = None, None
    if source_dir is not None:
        from .publish import load_keras_model
        model, meta = load_keras_model(source_dir)
        parent = {"name": meta["name"], "version": meta["version"], "path": str(source_dir)}
    elif model is None:
        result = train_model(cfg, data)
        model = result.model
        source_record = {"stage": "train", "seconds": round(result.wall_seconds, 1),
                         "test_accuracy": result.test_accuracy}
    with tempfile.TemporaryDirectory(prefix="optimize-") as workdir:
        state = run_stages(model, cfg, data, options, workdir)
    if source_record:
        state.records.insert(0, source_record)
    final_cfg = replace(state.cfg, name=options.name or cfg.name, models_dir=cfg.models_dir)
    calibrate = representative(data[0], options.calibration_samples, seed=cfg.train.seed)
    weights = float_twin(state.model, state.float_model) if state.model is not state.float_model else None
    extra = {"techniques": {**techniques(final_cfg), "compression": parse_stages(options.stages)},
             "stages": state.records,
             "dataset": {"train": data[0].fingerprint(), "test": data[2].fingerprint(),
                         "source": cfg.data.source, "path": cfg.data.path}}
    return publish_model(final_cfg, state.model, data[2], extra=extra, quantization=state.quantization,
                         representative=calibrate if state.quantization == "int8" else None,
                         parent=parent, weights_model=weights)
