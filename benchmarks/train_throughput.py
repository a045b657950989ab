"""Training throughput: what share of this CPU's arithmetic a training step uses, float32 and bfloat16.

    python benchmarks/train_throughput.py [--preset accurate] [--set k=v ...] [--steps 12] [--rounds 2]

One run prints JSON lines:

* ``matmul_peak``: a 2048x2048 matrix multiply in float32 and in bfloat16 (GFLOP/s, the best of
  several timed repeats per round), the reference the steps are compared with;
* ``flops``: the network's FLOPs per image, summed analytically over its Conv2D and Dense layers
  (2 x output positions x kernel size x input channels x filters; batch norm, activations, pooling
  and the optimizer update are left out: they are memory-bound and a few percent of the count),
  and tf.profiler's float-op count of the forward graph as a cross-check; a training step is
  taken as 3x the forward pass (forward, gradient w.r.t. activations, gradient w.r.t. weights);
* ``step``: images/s of ``model.fit`` for each precision and each input: ``cached`` (one batch held
  in memory, repeated: compute only), ``pipeline`` (the real tf.data pipeline with augmentation),
  ``callbacks`` (the pipeline plus the fit loop's standard callbacks, writing into a temporary run
  directory); with the achieved GFLOP/s and its share of each peak;
  the ``callbacks`` lines also give the callbacks' cost per pass (they act at a pass's end) as a
  share of a whole pass at the pipeline's speed;
* ``pipeline``: images/s the tf.data pipeline alone delivers (no model);
* ``summary``: the per-precision medians and the bfloat16 / float32 ratios.

``ONEDNN_MAX_CPU_ISA=AVX512_CORE python benchmarks/train_throughput.py`` runs the same on this CPU with
oneDNN held to AVX-512 without its bfloat16 instructions and AMX (a Skylake-class Xeon), and
``AVX512_CORE_BF16`` to AVX512-BF16 without AMX (Cooper Lake): what an older CPU gets, as far as
oneDNN's kernels decide it (clock and memory stay this machine's). An emulation, not the CPU: held to
AVX512_CORE_BF16 a Xeon ran the bfloat16 step at 0.5x float32, where a real AVX512-BF16 CPU without
AMX (an AMD EPYC, Zen 4) ran it at 2.2x (reports/train_throughput.jsonl has both).

Measurements alternate between float32 and bfloat16 within each round, so load from other
processes on the machine hits both alike: compare ratios, not absolute speeds, across runs.
The default network is the one that trained models/fashion/2 (its metadata's command).
"""
import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training.config import load_config  # noqa: E402

# models/fashion/2: python -m training train --preset accurate with these (metadata.json "command")
FASHION2 = ["model.widths=[64,128,256]", "model.convs_per_stage=[2,2,2]", "train.epochs=40"]
MATMUL_N = 2048


def emit(line: dict) -> None:
    print(json.dumps(line), flush=True)


def cpu_flags() -> dict:
    from training.ablation.records import machine
    from training.fit.precision import cpu_flags as flags
    present = flags()
    return {"cpu": machine(), **{f: f in present for f in ("amx_bf16", "amx_tile", "avx512_bf16", "avx512f")}}


def matmul_gflops(tf, dtype, repeats: int = 10) -> float:
    """Best of ``repeats`` timed 2048^3 multiplies (each 2 n^3 FLOPs), after a warm-up."""
    a = tf.random.normal([MATMUL_N, MATMUL_N], dtype=tf.float32)
    a, b = tf.cast(a, dtype), tf.cast(tf.transpose(a), dtype)
    matmul = tf.function(lambda x, y: tf.reduce_sum(tf.cast(tf.matmul(x, y)[:1, :1], tf.float32)))
    matmul(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * MATMUL_N ** 3 / best / 1e9


def analytic_flops(model) -> dict:
    """Forward FLOPs per image of the Conv2D and Dense layers (a multiply-add counts 2)."""
    from training.keras2 import keras
    conv = dense = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output_shape
            kh, kw = layer.kernel_size
            conv += 2 * h * w * kh * kw * int(layer.input_shape[-1]) * c_out
        elif isinstance(layer, keras.layers.Dense):
            dense += 2 * int(layer.input_shape[-1]) * layer.units
    return {"conv": conv, "dense": dense, "forward": conv + dense}


def profiler_flops(tf, model, input_shape) -> int:
    """tf.profiler's float-op count of one image's forward graph (every op it has a rule for)."""
    concrete = tf.function(lambda x: model(x, training=False)).get_concrete_function(
        tf.TensorSpec([1, *input_shape], tf.float32))
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    info = tf.compat.v1.profiler.profile(graph=concrete.graph, options=options)
    return int(info.total_float_ops)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="accurate")
    parser.add_argument("--set", dest="overrides", action="append", default=None, metavar="KEY=VALUE",
                        help="config overrides (default: the models/fashion/2 network)")
    parser.add_argument("--steps", type=int, default=12, help="timed optimizer steps per measurement")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before each measurement")
    parser.add_argument("--rounds", type=int, default=2, help="float32/bfloat16 alternations")
    parser.add_argument("--inputs", default="cached,pipeline,callbacks")
    args = parser.parse_args()
    overrides = FASHION2 if args.overrides is None else args.overrides

    from training.keras2 import keras, tf
    from training.data.datasets import load_data
    from training.data.pipeline import training_batches
    from training.fit import precision
    from training.fit.trainer import compile_model, make_callbacks
    from training.models.registry import build_model

    cfg = load_config(args.preset, [*overrides, "train.verbose=0"])
    batch = int(cfg.train.batch_size)
    train_set, _, _ = load_data(cfg.data)
    shape, classes = train_set.input_shape, len(train_set.class_names)
    emit({"benchmark": "train_throughput", "event": "setup", "preset": args.preset, "overrides": overrides,
          "batch_size": batch, "steps": args.steps, "warmup": args.warmup, "rounds": args.rounds,
          "tensorflow": tf.__version__, "python": platform.python_version(),
          # oneDNN's instruction-set cap (ONEDNN_MAX_CPU_ISA, e.g. AVX512_CORE: no bfloat16 instructions
          # nor AMX) stands in for an older CPU; unset: everything this one has
          "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
          "threads": {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                      "inter_op": tf.config.threading.get_inter_op_parallelism_threads()},
          **cpu_flags()})

    def compiled(name):
        with precision.policy(name):
            model = build_model(cfg.model, shape, classes)
        compile_model(model, cfg.train, steps_per_epoch=len(train_set) // batch)
        return model

    keras.utils.set_random_seed(cfg.train.seed)
    models = {name: compiled(name) for name in precision.PRECISIONS}
    flops = analytic_flops(models["float32"])
    train_flops = 3 * flops["forward"]
    emit({"benchmark": "train_throughput", "event": "flops", "method": "analytic Conv2D+Dense; train = 3x forward",
          "params": int(models["float32"].count_params()), **{f"{k}_per_image": v for k, v in flops.items()},
          "train_per_image": train_flops,
          "profiler_forward_per_image": profiler_flops(tf, models["float32"], shape)})

    # one real augmented batch, held in memory: the compute-only input
    pipeline = training_batches(train_set, cfg)
    cached_batch = next(iter(pipeline))
    cached = tf.data.Dataset.from_tensors(cached_batch).repeat()

    def timed_fit(model, data, callbacks=()) -> float:
        model.fit(data, epochs=1, steps_per_epoch=args.warmup, verbose=0)
        start = time.perf_counter()
        model.fit(data, epochs=1, steps_per_epoch=args.steps, callbacks=list(callbacks), verbose=0)
        return time.perf_counter() - start

    peaks = {"float32": [], "bfloat16": []}
    rates, seconds_of = {}, {}
    full_pass_steps = -(-len(train_set) // batch)
    inputs = [i for i in args.inputs.split(",") if i]
    for round_ in range(args.rounds):
        for name in peaks:
            peaks[name].append(matmul_gflops(tf, tf.as_dtype(name)))
        emit({"benchmark": "train_throughput", "event": "matmul_peak", "round": round_, "n": MATMUL_N,
              **{f"{k}_gflops": round(v[-1], 1) for k, v in peaks.items()}})
        start = time.perf_counter()
        seen = 0
        for images, _ in pipeline.take(args.steps):
            seen += int(images.shape[0])
        emit({"benchmark": "train_throughput", "event": "pipeline", "round": round_,
              "images_per_second": round(seen / (time.perf_counter() - start), 1)})
        for source in inputs:
            for name in precision.PRECISIONS:
                model = models[name]
                if source == "cached":
                    seconds = timed_fit(model, cached)
                elif source == "pipeline":
                    seconds = timed_fit(model, pipeline)
                else:
                    # BackupAndRestore removes its state from the model at the end of a fit, and Keras
                    # then refuses a second fit of that model: the callbacks get a model of their own
                    model = compiled(name)
                    with tempfile.TemporaryDirectory() as run_dir:
                        seconds = timed_fit(model, pipeline,
                                            make_callbacks(cfg.train, Path(run_dir), "accuracy", keep_best=True))
                per_second = args.steps * batch / seconds
                rates.setdefault((source, name), []).append(per_second)
                achieved = per_second * train_flops / 1e9
                line = {"benchmark": "train_throughput", "event": "step", "round": round_, "input": source,
                        "precision": name, "images_per_second": round(per_second, 1),
                        "step_ms": round(1000 * seconds / args.steps, 1), "achieved_gflops": round(achieved, 1),
                        "share_of_float32_peak": round(achieved / peaks["float32"][-1], 3),
                        "share_of_bfloat16_peak": round(achieved / peaks["bfloat16"][-1], 3)}
                seconds_of[(source, name)] = seconds
                if source == "callbacks" and ("pipeline", name) in seconds_of:
                    # the callbacks act once per pass (checkpoint, backup, CSV, TensorBoard): their
                    # cost is this fit's time over the same fit without them, against a whole pass
                    extra = seconds - seconds_of[("pipeline", name)]
                    full_pass = full_pass_steps * seconds_of[("pipeline", name)] / args.steps
                    line.update(extra_seconds_per_pass=round(extra, 2), pass_seconds=round(full_pass, 1),
                                callbacks_share_of_pass=round(extra / full_pass, 4))
                emit(line)

    peak = {k: max(v) for k, v in peaks.items()}
    summary = {"benchmark": "train_throughput", "event": "summary",
               "float32_peak_gflops": round(peak["float32"], 1), "bfloat16_peak_gflops": round(peak["bfloat16"], 1),
               "peak_ratio": round(peak["bfloat16"] / peak["float32"], 2), "train_flops_per_image": train_flops}
    for source in inputs:
        med = {name: statistics.median(rates[(source, name)]) for name in precision.PRECISIONS}
        summary[source] = {
            "float32_images_per_second": round(med["float32"], 1),
            "bfloat16_images_per_second": round(med["mixed_bfloat16"], 1),
            "bfloat16_speedup": round(med["mixed_bfloat16"] / med["float32"], 2),
            "bfloat16_share_of_bfloat16_peak": round(med["mixed_bfloat16"] * train_flops / 1e9 / peak["bfloat16"], 3),
            "float32_share_of_float32_peak": round(med["float32"] * train_flops / 1e9 / peak["float32"], 3)}
    emit(summary)


if __name__ == "__main__":
    main()
