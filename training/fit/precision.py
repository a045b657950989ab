"""``train.precision``: the Keras dtype policy a model is built and trained under.

``mixed_bfloat16`` computes convolutions and matrix multiplies in bfloat16 (on a CPU with
AMX or AVX512-BF16, oneDNN runs them natively) while every variable stays float32, so the
optimizer updates and the saved weights are float32 as before; the output softmax is
pinned to float32 in the builders (``training.models.cnn.classifier_head``). bfloat16 keeps
float32's exponent range, so unlike float16 no loss scaling is needed (Keras adds none).

The policy is global in Keras: ``policy`` sets it only while a model is built and hands the
previous one back, and ``float32_copy`` turns a trained mixed model into a float32 one with
the same weights, so evaluation, export, TF-MOT stages and later models in the same process
see float32 graphs exactly as before.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Optional

from training.keras2 import keras, tf

PRECISIONS = ("float32", "mixed_bfloat16")
# Where a bfloat16 training step beats float32 on a CPU: AMX (Sapphire Rapids and later Xeons) or
# AVX512-BF16. benchmarks/train_throughput.py, models/fashion/2's network at batch 256: 4.0x float32 on
# a Xeon with AMX; 2.2x on an AMD EPYC with AVX512-BF16 and no AMX (Zen 4); about 0.13x on an AMD EPYC
# with AVX2 only (Zen 3). (An emulation, a Xeon with oneDNN held to AVX512_CORE_BF16, gave 0.5x: the
# real CPU with the flag did not bear it out.)
FAST_BFLOAT16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_flags() -> set:
    """The flags of the first CPU in /proc/cpuinfo (empty where it cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return next((set(line.split(":", 1)[1].split()) for line in text.splitlines() if line.startswith("flags")),
                set())


def slow_bfloat16(precision: str, flags: Optional[set] = None, gpus: Optional[int] = None) -> Optional[str]:
    """Why ``precision`` would train slower than float32 here, or None (float32; a GPU, which runs
    bfloat16 natively; a CPU with AMX or AVX512-BF16)."""
    if precision != "mixed_bfloat16":
        return None
    flags = cpu_flags() if flags is None else flags
    gpus = len(tf.config.list_physical_devices("GPU")) if gpus is None else gpus
    if gpus or any(flag in flags for flag in FAST_BFLOAT16_FLAGS):
        return None
    return ("train.precision=mixed_bfloat16 on a CPU without bfloat16 instructions (no amx_bf16 or avx512_bf16 "
            "flag) and no GPU: a bfloat16 training step measured about 0.13x float32 with AVX2 only "
            "(benchmarks/train_throughput.py); --set train.precision=float32 trains faster here")


@contextlib.contextmanager
def policy(precision: str):
    """Layers created inside the block take ``precision``'s dtype policy; the global policy
    before the block is restored on the way out (an error included)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown train.precision '{precision}' ({', '.join(PRECISIONS)})")
    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(before)


def compute_dtypes(model: keras.Model) -> set:
    """The compute dtypes of ``model``'s layers (``{"float32"}`` for a plain float model)."""
    return {layer.compute_dtype for layer in model.layers if layer.compute_dtype is not None}


def is_float32(model: keras.Model) -> bool:
    return compute_dtypes(model) <= {"float32"}


def _float32_config(value):
    """A model config with every layer's mixed dtype policy replaced by plain float32."""
    if isinstance(value, dict):
        if value.get("class_name") == "Policy" and set(value) <= {"class_name", "config", "module",
                                                                  "registered_name"}:
            return "float32"
        return {k: _float32_config(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_float32_config(v) for v in value]
    return value


def float32_copy(model: keras.Model) -> keras.Model:
    """``model`` itself when it computes in float32; else the same architecture rebuilt with
    float32 layers and given its weights (float32 already: mixed policies keep float32
    variables). Functional models only (every builder's), which is all ``train`` makes."""
    if is_float32(model):
        return model
    with policy("float32"):
        copy = keras.Model.from_config(_float32_config(model.get_config()))
    copy.set_weights(model.get_weights())
    return copy
