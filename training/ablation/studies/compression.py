"""Compression study: accuracy against gzip size for each ``optimize`` recipe.

The source ("teacher") is the committed ``models/fashion/1`` (the ``accurate`` preset's
428k-parameter CNN; ``models/fashion/2``, 3.4 times larger, would make every fine-tune
five times slower on 2 cores): the model ``python -m training optimize --from
models/fashion/1`` compresses, so the study measures the recipes the defaults choose
between. Every size variant runs its stages through
``training.compress.optimize.apply_stage`` (the code ``optimize`` runs), each fine-tune stage for
``budget.steps`` optimizer steps on the budget's training subset; the seed drives the
fine-tunes' shuffling and augmentation and the int8 calibration sample. Accuracy is that
of the TFLite file, the size its gzip bytes.

Prune-preserving QAT fine-tunes twice (a pruning stage, then a QAT stage), so its comparison
with post-training int8 is also made against ``prune75-4x1-long+int8``: the same pruning with
its stage given both budgets (the same fine-tune steps, no QAT).

Distillation has a study of its own (``training.ablation.studies.distillation``): a student
needs far more steps than a fine-tune, and its budget would change every size variant's
fingerprint here. Older runs.jsonl lines of a ``distill`` group are kept but no longer read.
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


def _teacher_id() -> str:
    """Which committed model the runs start from: part of every variant's settings, so the
    runner's fingerprint changes, and the study runs again, when that model is replaced."""
    try:
        meta = json.loads((TEACHER / "metadata.json").read_text())
    except FileNotFoundError:
        return "missing"
    return f"{meta['name']}/{meta['version']} created {meta['created']}"


TEACHER_ID = _teacher_id()


def _size(name, stages, prune_budgets=1, **optimize):
    """``prune_budgets``: fine-tune budgets the pruning stage gets (a setting only when not 1,
    so the variants measured before it existed keep their fingerprints)."""
    extra = {} if prune_budgets == 1 else {"prune_budgets": prune_budgets}
    return Variant(name, {"teacher": TEACHER_ID, "stages": stages, "optimize": optimize, **extra}, group="size")


VARIANTS = (
    _size("float", []),
    _size("int8", ["int8"]),
    _size("qat", ["qat"]),
    _size("prune50+int8", ["prune", "int8"], sparsity=0.5),
    _size("prune75+int8", ["prune", "int8"], sparsity=0.75, dense_block=[1, 1]),
    _size("prune75-4x1+int8", ["prune", "int8"], sparsity=0.75, dense_block=[4, 1]),
    _size("prune75-4x1+pqat", ["prune", "pqat", "int8"], sparsity=0.75, dense_block=[4, 1]),
    # pqat's control at equal steps: its prune and pqat budgets, spent on pruning alone
    _size("prune75-4x1-long+int8", ["prune", "int8"], prune_budgets=2, sparsity=0.75, dense_block=[4, 1]),
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
    # against the pruned int8 model fine-tuned as many steps (prune 2 budgets), not half as many
    Claim("Prune-preserving QAT is more accurate than post-training int8 on the pruned model (equal steps)",
          "prune75-4x1+pqat", "prune75-4x1-long+int8", "size"),
    Claim("Prune-preserving QAT makes a smaller pruned file than post-training int8 (equal steps)",
          "prune75-4x1+pqat", "prune75-4x1-long+int8", "size", metric="gzip_bytes", higher_is_better=False),
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
    optimize = {"stages": variant.settings.get("stages", []),
                "prune_epochs": epochs * variant.settings.get("prune_budgets", 1), "qat_epochs": epochs,
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
    cfg = _config(meta["config"], variant, seed, budget, workdir, max(1, round(budget.steps / per_pass)))
    record = _compress(teacher, cfg, data, workdir / "files", per_pass)
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
        "the same steps per stage and is measured as its TFLite file. Prune-preserving QAT (two "
        "fine-tune stages) is judged against the same pruning given both stages' steps "
        "(prune75-4x1-long+int8), so both have 172 steps. Distillation is the distillation study."),
    variants=VARIANTS,
    claims=CLAIMS,
    run=run,
    # 6,000 images leave 5,400 for training after the validation split: 86 steps = 2 passes of 128.
    budget=Budget(train_images=6000, steps=86, batch_size=128, seeds=(0, 1, 2, 3, 4), test_images=5000),
    plots=("size_accuracy", "bars"),
)
