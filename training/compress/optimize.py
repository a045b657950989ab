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

from training.config import ConfigError, ExperimentConfig, Resolved
from training.data.datasets import dataset_record, load_data
from training.compress.distill import distill, student_config
from training.compress.measure import measure
from training.compress.prune import PruneSettings, prune, sparsity_report
from training.models.backbones import recorded_backbone_spec
from training.models.published import load_keras_model
from training.compress.quantize import QATSettings, float_twin, qat, representative
from training.publish.release import publish_version, techniques
from training.fit.train import train as train_model

log = logging.getLogger(__name__)

FLOAT_STAGES = ("distill", "prune")
QAT_STAGES = ("qat", "pqat")
EXPORT_STAGES = ("dynamic", "float16", "int8")
STAGES = FLOAT_STAGES + QAT_STAGES + EXPORT_STAGES


def parse_stages(text) -> list:
    """Validate the order: float stages, then at most one QAT stage, then at most one export;
    each stage at most once (a second ``prune`` would prune the pruned model again, to a
    sparsity nobody asked for). No stage at all is valid here (the compression study's float
    baseline); ``optimize`` refuses it, as a command with nothing to do."""
    stages = [s.strip().lower() for s in (text.split(",") if isinstance(text, str) else text) if s.strip()]
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ConfigError(f"unknown stage(s) {', '.join(unknown)} (known: {', '.join(STAGES)})")
    repeated = sorted({s for s in stages if stages.count(s) > 1}, key=stages.index)
    if repeated:
        raise ConfigError(f"stages {','.join(stages)} name {', '.join(repeated)} more than once; "
                          "give each stage once (for more pruning raise optimize.sparsity)")
    rank = {s: 0 if s in FLOAT_STAGES else 1 if s in QAT_STAGES else 2 for s in STAGES}
    if [rank[s] for s in stages] != sorted(rank[s] for s in stages):
        raise ConfigError(f"stages {','.join(stages)} out of order: distill/prune first, then qat or "
                          "pqat, then one of dynamic/float16/int8 (a quantized model cannot be "
                          "distilled or pruned again)")
    if sum(s in QAT_STAGES for s in stages) > 1 or sum(s in EXPORT_STAGES for s in stages) > 1:
        raise ConfigError("choose at most one of qat/pqat and at most one of dynamic/float16/int8")
    if any(s in QAT_STAGES for s in stages) and ("float16" in stages or "dynamic" in stages):
        raise ConfigError("a QAT model exports as int8 (from its own fake-quant ranges), "
                          "not dynamic or float16")
    return stages


def prune_settings(cfg: ExperimentConfig) -> PruneSettings:
    """The ``optimize`` section's pruning settings."""
    o = cfg.optimize
    try:
        return PruneSettings(target=0.5 if o.two_four else o.sparsity, schedule=o.schedule,
                             initial=o.initial_sparsity, m_by_n=(2, 4) if o.two_four else None,
                             keep_ends=o.keep_ends, dense_block=tuple(o.dense_block), epochs=o.prune_epochs,
                             ramp=o.ramp, learning_rate=o.prune_learning_rate)
    except ValueError as exc:
        raise ConfigError(f"optimize: {exc}") from None


def qat_settings(cfg: ExperimentConfig, preserve_sparsity: bool) -> QATSettings:
    """The ``optimize`` section's quantization-aware training settings."""
    return QATSettings(epochs=cfg.optimize.qat_epochs, learning_rate=cfg.optimize.qat_learning_rate,
                       preserve_sparsity=preserve_sparsity)


@dataclass
class State:
    model: object                      # the current model (float, or QAT)
    cfg: ExperimentConfig              # its config; cfg.model rebuilds its float twin
    float_model: object                # the float model the current one was made from
    quantization: str = "none"
    records: list = field(default_factory=list)
    resolved: Resolved = field(default_factory=Resolved)   # the source's: what rebuilds it (a published backbone)


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


def apply_stage(state: State, stage: str, cfg: ExperimentConfig, train, val) -> tuple:
    """One stage on ``state``; returns (new state, the stage's settings, its fine-tune history).
    An export stage after qat/pqat returns ``None`` settings: the QAT file is already the int8 one."""
    d, history = cfg.distill, None
    if stage == "distill":
        student_cfg = student_config(state.cfg, d.student_preset, d.student_overrides)
        if d.epochs:
            student_cfg = replace(student_cfg, train=replace(student_cfg.train, epochs=d.epochs))
        student, history, _ = distill(state.model, student_cfg, train, val, alpha=d.alpha,
                                      temperature=d.temperature, labelled=d.labelled)
        settings = {"alpha": d.alpha if d.labelled else 0.0, "temperature": d.temperature,
                    "labelled": d.labelled, "epochs": student_cfg.train.epochs,
                    "student": student_cfg.model.__dict__, "teacher_params": int(state.model.count_params())}
        return (replace(state, model=student, cfg=student_cfg, float_model=student, resolved=Resolved()),
                settings, history)
    if stage == "prune":
        settings = prune_settings(cfg)
        pruned, history = prune(state.model, train, state.cfg, settings, val)
        return replace(state, model=pruned, float_model=pruned), asdict(settings), history
    if stage in QAT_STAGES:
        settings = qat_settings(cfg, preserve_sparsity=stage == "pqat")
        if stage == "pqat" and sparsity_report(state.model)["kernels"] < 0.01:
            log.warning("pqat on a model with no pruned kernels: put 'prune' before it")
        qmodel, history = qat(state.model, train, state.cfg, settings, val)
        return replace(state, model=qmodel, quantization="qat"), asdict(settings), history
    if state.quantization == "qat":
        return state, None, None
    settings = {"calibration_samples": cfg.optimize.calibration_samples} if stage == "int8" else {}
    return replace(state, quantization=stage), settings, None


def run_stages(model, cfg: ExperimentConfig, data: tuple, workdir: Path,
               resolved: Resolved = Resolved()) -> State:
    """Apply the stages ``cfg.optimize`` names to ``model`` (``resolved``: the source's record),
    with its ``distill`` and pruning/QAT settings; returns the final state with one record per
    stage. The files each stage is measured on are written under ``workdir``."""
    train, val, test = data
    workdir = Path(workdir)
    calibrate = representative(train, cfg.optimize.calibration_samples, seed=cfg.train.seed)
    state = State(model, cfg, model, resolved=resolved)
    _record(state, "source", {"config": cfg.name}, 0.0, test, calibrate, workdir)
    for stage in parse_stages(cfg.optimize.stages):
        start = time.perf_counter()
        state, settings, history = apply_stage(state, stage, cfg, train, val)
        if settings is None:               # qat/pqat already measured this very file
            same = {k: v for k, v in state.records[-1].items() if k != "history"}
            state.records.append({**same, "stage": stage, "seconds": 0.0,
                                  "settings": {"ranges": "learned by quantization-aware training"}})
            continue
        _record(state, stage, settings, time.perf_counter() - start, test, calibrate, workdir, history)
    return state


def optimize(cfg: ExperimentConfig, *, source_dir: Path = None, model=None, data: tuple = None,
             force: bool = False, **publishing) -> Path:
    """Load (``source_dir``) or train the source model, run the stages ``cfg.optimize``
    names, publish the result (``force`` and ``publishing``, e.g. ``policies``: see
    ``training.publish.release.publish_version``)."""
    stages = parse_stages(cfg.optimize.stages)     # bad settings fail before any training
    if not stages:
        raise ConfigError(f"no optimize stage given: name at least one of {', '.join(STAGES)}, e.g. "
                          "--stages prune,int8 (without it, the default optimize.stages runs)")
    prune_settings(cfg)
    data = data or load_data(cfg.data)
    parent, source_record, resolved = None, None, Resolved()
    if source_dir is not None:
        model, meta = load_keras_model(source_dir)
        parent = {"name": meta["name"], "version": meta["version"], "path": str(source_dir)}
        resolved = Resolved(backbone_spec=recorded_backbone_spec(meta))
    elif model is None:
        result = train_model(cfg, data)
        model, resolved = result.model, result.resolved
        cfg = resolved.apply(cfg)      # the stages fine-tune with the batch size training ran with
        source_record = {"stage": "train", "seconds": round(result.wall_seconds, 1),
                         "test_accuracy": result.test_accuracy}
    with tempfile.TemporaryDirectory(prefix="optimize-") as workdir:
        state = run_stages(model, cfg, data, workdir, resolved)
    if source_record:
        state.records.insert(0, source_record)
    final_cfg = replace(state.cfg, name=cfg.optimize.name or cfg.name, models_dir=cfg.models_dir)
    calibrate = representative(data[0], cfg.optimize.calibration_samples, seed=cfg.train.seed)
    weights = float_twin(state.model, state.float_model) if state.model is not state.float_model else None
    extra = {"resolved": state.resolved.to_dict(),
             "techniques": {**techniques(final_cfg), "compression": stages},
             "stages": state.records,
             "dataset": dataset_record(cfg.data, *data)}
    return publish_version(final_cfg, state.model, data[2], extra=extra, quantization=state.quantization,
                           representative=calibrate if state.quantization == "int8" else None,
                           parent=parent, weights_model=weights, force=force, validation=data[1], **publishing)
