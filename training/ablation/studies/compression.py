"""Compression study: accuracy against gzip size for each ``optimize`` recipe, and distillation
over a grid of temperature and alpha against the same student trained from scratch.

The source ("teacher") is the committed ``models/fashion/1`` (the ``accurate`` preset's
428k-parameter CNN; ``models/fashion/2``, 3.4 times larger, would make every fine-tune
five times slower on 2 cores): the model ``python -m training optimize --from
models/fashion/1`` compresses, so the study measures the recipes the defaults choose
between. Every size variant runs its stages through
``training.compress.optimize.apply_stage`` (the code ``optimize`` runs), each fine-tune stage for
``budget.steps`` optimizer steps on the budget's training subset; the seed drives the
fine-tunes' shuffling and augmentation and the int8 calibration sample. Accuracy is that
of the TFLite file, the size its gzip bytes. Students train ``STUDENT_STEPS`` times the
fine-tune budget, scratch and distilled alike (without augmentation), so distillation
gets no extra training.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

from training.ablation.study import Budget, Claim, Study, Variant

ROOT = Path(__file__).resolve().parents[3]
TEACHER = ROOT / "models" / "fashion" / "1"
STUDENT_PRESET = "student"
STUDENT_STEPS = 3          # a student learns from scratch: 3x the fine-tune steps


def _teacher_id() -> str:
    """Which committed model the runs start from: part of every variant's settings, so the
    runner's fingerprint changes, and the study runs again, when that model is replaced."""
    try:
        meta = json.loads((TEACHER / "metadata.json").read_text())
    except FileNotFoundError:
        return "missing"
    return f"{meta['name']}/{meta['version']} created {meta['created']}"


TEACHER_ID = _teacher_id()


def _size(name, stages, **optimize):
    return Variant(name, {"teacher": TEACHER_ID, "stages": stages, "optimize": optimize}, group="size")


def _student(name, alpha=None, temperature=None):
    knobs = {} if alpha is None else {"alpha": alpha, "temperature": temperature}
    return Variant(name, {"teacher": TEACHER_ID, **knobs}, group="distill")


GRID = [(t, a) for t in (2, 4) for a in (0.1, 0.5)]
VARIANTS = (
    _size("float", []),
    _size("int8", ["int8"]),
    _size("qat", ["qat"]),
    _size("prune50+int8", ["prune", "int8"], sparsity=0.5),
    _size("prune75+int8", ["prune", "int8"], sparsity=0.75, dense_block=[1, 1]),
    _size("prune75-4x1+int8", ["prune", "int8"], sparsity=0.75, dense_block=[4, 1]),
    _size("prune75-4x1+pqat", ["prune", "pqat", "int8"], sparsity=0.75, dense_block=[4, 1]),
    _student("student"),
    *(_student(f"distill-T{t}-a{a}", a, t) for t, a in GRID),
)

CLAIMS = (
    # "keeps accuracy": equivalence within half a point (two one-sided tests), not "is better"
    Claim("Post-training int8 quantization keeps the float model's accuracy (within 0.5 points)", "int8",
          "float", "size", kind="equivalent", margin=0.005),
    Claim("Post-training int8 quantization makes the file smaller", "int8", "float", "size",
          metric="gzip_bytes", higher_is_better=False),
    Claim("Quantization-aware training is more accurate than post-training int8", "qat", "int8", "size"),
    Claim("75% pruning + int8 keeps the float model's accuracy (within 0.5 points)", "prune75+int8", "float",
          "size", kind="equivalent", margin=0.005),
    Claim("4x1 blocks in the Dense kernel make the pruned int8 file smaller", "prune75-4x1+int8",
          "prune75+int8", "size", metric="gzip_bytes", higher_is_better=False),
    Claim("Prune-preserving QAT is more accurate than post-training int8 on the pruned model",
          "prune75-4x1+pqat", "prune75-4x1+int8", "size"),
    Claim("Prune-preserving QAT makes a smaller pruned file than post-training int8", "prune75-4x1+pqat",
          "prune75-4x1+int8", "size", metric="gzip_bytes", higher_is_better=False),
    *(Claim(f"Distillation (T={t}, alpha={a}) trains a more accurate student than scratch",
            f"distill-T{t}-a{a}", "student", "distill") for t, a in GRID),
)


def _data(train_images, test_images):
    """(train, validation, test) of the teacher's data set, the training part cut to the budget."""
    from artifact import metadata as md
    from training.config import config_from_dict
    from training.data.datasets import load_data
    cfg = config_from_dict(md.read(TEACHER).config)
    train, val, test = load_data(replace(cfg.data, limit=train_images))
    return train, val, test.take(test_images)


def _config(teacher_config: dict, variant: Variant, seed: int, budget: Budget, workdir: Path, epochs: int):
    from training.config import load_config
    optimize = {"stages": variant.settings.get("stages", []), "prune_epochs": epochs, "qat_epochs": epochs,
                **variant.settings.get("optimize", {})}
    return load_config(None, base=teacher_config, flags={
        "output_dir": str(workdir / "runs"),
        "train": {"batch_size": budget.batch_size, "seed": seed, "verbose": 0},
        "optimize": optimize})


def run(variant: Variant, seed: int, budget: Budget, workdir: Path) -> dict:
    """One (variant, seed); its fine-tune checkpoints and files live in ``workdir`` until it ends."""
    workdir = Path(workdir)
    shutil.rmtree(workdir, ignore_errors=True)     # an interrupted run starts afresh
    try:
        return _run(variant, seed, budget, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run(variant: Variant, seed: int, budget: Budget, workdir: Path) -> dict:
    from training.data.pipeline import steps_per_epoch
    from training.models.published import load_keras_model
    start = time.perf_counter()
    data = _data(budget.train_images, budget.test_images)
    teacher, meta = load_keras_model(TEACHER)
    per_pass = steps_per_epoch(data[0], budget.batch_size)
    if variant.group == "size":
        cfg = _config(meta["config"], variant, seed, budget, workdir, max(1, round(budget.steps / per_pass)))
        record = _compress(teacher, cfg, data, workdir / "files", per_pass)
    else:
        passes = max(1, round(STUDENT_STEPS * budget.steps / per_pass))
        cfg = _config(meta["config"], variant, seed, budget, workdir, passes)
        record = _student_run(teacher, cfg, variant, data, passes, workdir / "files")
        record["steps"] = passes * per_pass
    record.update(seconds=round(time.perf_counter() - start, 1), train_images=len(data[0]),
                  test_images=len(data[2]))
    return record


def _compress(teacher, cfg, data, files: Path, per_pass: int) -> dict:
    from training.compress.optimize import State, apply_stage, parse_stages
    from training.compress.quantize import representative
    train, val, test = data
    state, steps = State(teacher, cfg, teacher), 0
    for stage in parse_stages(cfg.optimize.stages):
        state, _, history = apply_stage(state, stage, cfg, train, val)
        steps += per_pass * len(history["loss"]) if history else 0
    calibrate = representative(train, cfg.optimize.calibration_samples, seed=cfg.train.seed)
    return _measure(state.model, test, state.quantization, calibrate if state.quantization == "int8" else None,
                    files, steps)


def _student_run(teacher, cfg, variant: Variant, data, passes: int, files: Path) -> dict:
    from training.compress.distill import distill, student_config
    from training.fit.train import train
    student_cfg = student_config(cfg, STUDENT_PRESET)
    # Without augmentation the teacher's logits are computed once instead of on every batch
    # (distillation took 1.5x scratch's time with it); scratch goes without it too, so both
    # students see the same images.
    student_cfg = replace(student_cfg, augment=replace(student_cfg.augment, enabled=False),
                          train=replace(student_cfg.train, epochs=passes, seed=cfg.train.seed,
                                        batch_size=cfg.train.batch_size, verbose=0))
    if "alpha" in variant.settings:
        model, history, _ = distill(teacher, student_cfg, data[0], data[1], alpha=variant.settings["alpha"],
                                    temperature=variant.settings["temperature"])
    else:
        result = train(student_cfg, data)
        model, history = result.model, result.history
    return {**_measure(model, data[2], "none", None, files, 0), "final_train_loss": round(history["loss"][-1], 4)}


def _measure(model, test, quantization: str, calibrate, files: Path, steps: int) -> dict:
    """The TFLite file's accuracy, size and single-image LiteRT latency (1 thread; a loaded
    machine makes it noisy, so read it as a ratio between variants of one study run)."""
    from artifact.litert import LiteRTRunner
    from training.compress.measure import latency_ms, measure
    measured = measure(model, test, quantization, calibrate, files)
    latency = latency_ms(LiteRTRunner(measured["tflite_path"]), test.x[0], repeats=100)
    return {"test_accuracy": measured["tflite_accuracy"], "keras_accuracy": measured["keras_accuracy"],
            "litert_latency_ms": latency, "gzip_bytes": measured["tflite_gzip_bytes"],
            "tflite_bytes": measured["tflite_bytes"],
            "params": measured["params"], "nonzero_params": measured["nonzero_params"],
            "quantization": measured["quantization"], "steps": steps}


STUDY = Study(
    name="compression",
    description=(
        "What does each way of lightening the default model cost in accuracy and buy in size? "
        "Every optimize recipe (int8 post-training quantization, quantization-aware training, "
        "50% and 75% magnitude pruning with element-wise or 4x1-block Dense sparsity, followed by "
        "int8 or prune-preserving QAT) starts from the committed models/fashion/1, fine-tunes for "
        "the same steps per stage and is measured as its TFLite file. Distillation trains a "
        "~60k-parameter student toward it at temperatures 2 and 4 with hard-label weights "
        "(alpha) of 0.1 and 0.5, against the same student trained from scratch for the same steps."),
    variants=VARIANTS,
    claims=CLAIMS,
    run=run,
    # 6,000 images leave 5,400 for training after the validation split: 86 steps = 2 passes of 128.
    budget=Budget(train_images=6000, steps=86, batch_size=128, seeds=(0, 1, 2, 3, 4), test_images=5000),
    plots=("size_accuracy", "bars"),
)
