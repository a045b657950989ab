"""Out-of-distribution scores and Monte Carlo dropout, measured on published versions.

    python benchmarks/ood.py [--models fashion/3 fashion/1] [--passes 20] [--seeds 0 1 2]
    python benchmarks/ood.py --models --small-seeds 0 1 2 --out reports/ood_small.jsonl

Per version: the Keras model rebuilt from its weights gives logits and penultimate
features; the served TFLite file gives the max-probability score as served (the line
``agreement`` says how far the two disagree). In-distribution = the Fashion-MNIST test
split, positive = a foreign set (``training.data.foreign``: 1,797 digits, 2,000 photo
patches, 2,000 noise images). One JSON line per version x score x set: AUROC, FPR at 95%
TPR, and the rejection rule whose threshold accepts 95% of the VALIDATION split (the test
split only reports what it then accepts and rejects). Mahalanobis is fitted on the
training split. Monte Carlo dropout (``--passes`` passes, batch norm in inference mode)
over ``--seeds``: ECE / NLL / accuracy of the mean against temperature scaling on the same
model, its AUROCs, and its cost per request through a SavedModel exported with the
``mc_dropout`` signature (median of interleaved calls, 1 and 32 images).

``--small-seeds``: the same comparison over training seeds, on small CNNs trained here
(``small_models``: the published versions are one training run each).

Writes ``reports/ood.jsonl`` and ROC plots ``reports/ood/roc_<model>_<version>.png``.
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from artifact import metadata as md  # noqa: E402

from training.config import config_from_dict  # noqa: E402
from training.data import foreign  # noqa: E402
from training.data.datasets import load_data  # noqa: E402
from training.models.published import load_keras_model  # noqa: E402
from training.publish import calibration, ood  # noqa: E402
from training.publish.export import mc_dropout_ready, save_saved_model  # noqa: E402
from training.publish.scoring import version_runner  # noqa: E402

SETS = list(foreign.FOREIGN_SETS)


def emit(line: dict, sink) -> None:
    text = json.dumps(line)
    print(text, flush=True)
    sink.write(text + "\n")


def median_ms(calls: dict, repeats: int) -> dict:
    """Name -> median milliseconds, the calls interleaved so machine noise hits all alike."""
    times = {name: [] for name in calls}
    for fn in calls.values():
        fn()                                        # warm-up (tracing, allocation)
    for _ in range(repeats):
        for name, fn in calls.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: round(1000 * float(np.median(t)), 2) for name, t in times.items()}


def plot(curves: dict, path: Path, title: str) -> None:
    """One panel per foreign set, one ROC curve per score (legend: AUROC)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(SETS), figsize=(5 * len(SETS), 4.5))
    for ax, name in zip(axes, SETS):
        for score, (fpr, tpr, auc) in curves[name].items():
            ax.plot(fpr, tpr, lw=1.4, label=f"{score} ({auc:.3f})")
        ax.plot([0, 1], [0, 1], "k:", lw=0.8)
        ax.set_title(f"{title}: Fashion-MNIST test vs {name}")
        ax.set_xlabel("false positive rate (clothes flagged foreign)")
        ax.set_ylabel("true positive rate (foreign flagged)")
        ax.legend(loc="lower right", fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def measure(version_dir: Path, args, sink) -> None:
    meta = md.read(version_dir)
    model_id = f"{meta.name}/{meta.version}"
    cfg = config_from_dict(meta.config)
    train, val, test = load_data(cfg.data)
    model, recorded = load_keras_model(version_dir)
    started = time.perf_counter()
    sets = foreign.foreign_sets()
    fit = train.take(args.train_images)      # Fashion-MNIST's training file is in random order: a fair sample
    out = {"train": ood.outputs(model, fit.x), "validation": ood.outputs(model, val.x),
           "test": ood.outputs(model, test.x), **{name: ood.outputs(model, x) for name, x in sets.items()}}
    # temperature scaling: the served temperature, or (a version published before calibration,
    # which serves T = 1) one fitted on validation, as publishing would now
    served_t = (recorded.get("calibration") or {}).get("temperature")
    temperature, source = served_t, "metadata"
    if temperature is None:
        temperature, source = calibration.fit_temperature(ood.softmax(out["validation"]["logits"]), val.y), "fitted"
    served = version_runner(version_dir, "tflite", meta)
    pixels = {"validation": val.x, "test": test.x, **sets}
    tflite = {split: served.predict(x) for split, x in pixels.items()}
    keras_probs = {split: ood.softmax(out[split]["logits"], served_t or 1.0) for split in pixels}
    tempered = ood.softmax(out["test"]["logits"], temperature)
    emit({"benchmark": "ood", "kind": "agreement", "model": model_id, "temperature": round(temperature, 4),
          "temperature_source": source, "served_temperature": served_t or 1.0,
          "max_abs_diff_tflite_vs_keras": float(round(max(np.abs(tflite[s] - keras_probs[s]).max() for s in pixels), 6)),
          "test_accuracy_tflite": round(float(np.mean(tflite["test"].argmax(1) == test.y)), 4)}, sink)

    maha = ood.Mahalanobis(out["train"]["features"], fit.y)
    scores = {
        "max_probability": {s: ood.max_probability(tflite[s]) for s in pixels},
        "energy": {s: ood.energy(out[s]["logits"]) for s in pixels},
        "mahalanobis": {s: maha(out[s]["features"]) for s in pixels},
    }

    # Monte Carlo dropout over seeds: the mean of the passes, against temperature scaling
    mc = {}
    if mc_dropout_ready(model):
        runs = [{} for _ in args.seeds]
        for s, x in pixels.items():          # every seed's passes over one set at a time
            for run, samples in zip(runs, ood.mc_passes(model, x, args.passes, args.seeds)):
                run[s] = ood.mc_scores(samples)
        for seed, run in zip(args.seeds, runs):
            mean = run["test"]["mean"]
            emit({"benchmark": "ood", "kind": "mc_dropout_calibration", "model": model_id, "seed": seed,
                  "passes": args.passes, "ece": round(calibration.ece(mean, test.y), 4),
                  "nll": round(calibration.nll(mean, test.y), 4),
                  "accuracy": round(float(np.mean(mean.argmax(1) == test.y)), 4),
                  "ece_mean_tempered": round(calibration.ece(calibration.temper(mean, temperature), test.y), 4)}, sink)
        for key in ("mc_max_probability", "mc_spread"):
            scores[key] = {s: np.mean([run[s][key] for run in runs], axis=0) for s in pixels}
            mc[key] = {name: [ood.auroc(run["test"][key], run[name][key]) for run in runs] for name in SETS}
        eces = [calibration.ece(run["test"]["mean"], test.y) for run in runs]
        nlls = [calibration.nll(run["test"]["mean"], test.y) for run in runs]
        raw = ood.softmax(out["test"]["logits"])
        emit({"benchmark": "ood", "kind": "mc_dropout_vs_temperature", "model": model_id, "passes": args.passes,
              "seeds": list(args.seeds),
              "ece_mc_mean": round(float(np.mean(eces)), 4), "ece_mc_std": round(float(np.std(eces)), 4),
              "nll_mc_mean": round(float(np.mean(nlls)), 4), "nll_mc_std": round(float(np.std(nlls)), 4),
              "ece_temperature": round(calibration.ece(tempered, test.y), 4),
              "nll_temperature": round(calibration.nll(tempered, test.y), 4),
              "ece_uncalibrated": round(calibration.ece(raw, test.y), 4),
              "nll_uncalibrated": round(calibration.nll(raw, test.y), 4),
              **{f"auroc_mc_{name}": round(float(np.mean(mc["mc_max_probability"][name])), 4) for name in SETS},
              **{f"auroc_mc_{name}_std": round(float(np.std(mc["mc_max_probability"][name])), 4) for name in SETS},
              **{f"auroc_temperature_{name}": round(ood.auroc(ood.max_probability(tempered),
                                                              ood.max_probability(ood.softmax(out[name]["logits"],
                                                                                              temperature))), 4)
                 for name in SETS}},
             sink)

    curves = {name: {} for name in SETS}
    for score, values in scores.items():
        limit = ood.accept_threshold(values["validation"], ood.TPR)
        for name in SETS:
            auc = ood.auroc(values["test"], values[name])
            line = {"benchmark": "ood", "kind": "score", "model": model_id, "score": score, "set": name,
                    "foreign_images": int(len(values[name])), "auroc": round(auc, 4),
                    "fpr_at_95_tpr": round(ood.fpr_at_tpr(values["test"], values[name]), 4),
                    "threshold_from_validation": round(limit, 4),
                    "test_accepted": round(float(np.mean(values["test"] <= limit)), 4),
                    "foreign_rejected": round(float(np.mean(values[name] > limit)), 4)}
            if score == "max_probability":
                line["min_confidence_equivalent"] = round(-limit, 4)
            if score in mc:
                line["auroc_over_seeds"] = [round(v, 4) for v in mc[score][name]]
                line["note"] = f"scores averaged over seeds {list(args.seeds)}, {args.passes} passes each"
            emit(line, sink)
            fpr, tpr = ood.roc_curve(values["test"], values[name])
            curves[name][score] = (fpr, tpr, auc)
    args.plots.mkdir(parents=True, exist_ok=True)
    plot(curves, args.plots / f"roc_{meta.name}_{meta.version}.png", model_id)

    if mc_dropout_ready(model):
        from artifact.saved_model import SavedModelRunner
        with tempfile.TemporaryDirectory() as tmp:
            # exported as publish exports it now: serving signature (temperature baked in) + mc_dropout
            save_saved_model(model, meta.input.shape, Path(tmp) / "saved_model", served_t or 1.0, mc_dropout=True)
            runner = SavedModelRunner(Path(tmp) / "saved_model")
            committed = version_runner(version_dir, "saved_model", meta)
            same = float(np.abs(runner(test.x[:256]) - committed(test.x[:256])).max())
            line = {"benchmark": "ood", "kind": "mc_dropout_cost", "model": model_id, "passes": args.passes,
                    "backend": "tf SavedModel, CPU", "serving_signature_max_abs_diff_vs_committed": round(same, 6)}
            for batch in (1, 32):
                x = test.x[:batch]
                times = median_ms({"one": lambda: runner(x), "mc": lambda: runner.mc_dropout(x, args.passes)},
                                  args.repeats)
                line[f"batch{batch}_ms_one_pass"] = times["one"]
                line[f"batch{batch}_ms_mc"] = times["mc"]
                line[f"batch{batch}_ratio"] = round(times["mc"] / times["one"], 2)
            emit(line, sink)
    emit({"benchmark": "ood", "kind": "wall", "model": model_id,
          "seconds": round(time.perf_counter() - started, 1)}, sink)


SMALL = ["model.widths=[16,32]", "model.convs_per_stage=1", "model.dense_units=64", "model.head_dropout=0.3",
         "data.limit=12000", "train.epochs=3", "train.verbose=0"]


def small_models(args, sink) -> None:
    """Monte Carlo dropout against temperature scaling over TRAINING seeds: a small CNN
    (``SMALL`` on the default preset: 12,000 training images, 3 epochs) per seed, T fitted
    on its validation split, MC seed 0; one line per seed and one summary (mean, std)."""
    from training.config import load_config
    from training.fit.train import train as fit
    sets = foreign.foreign_sets()
    rows = []
    for seed in args.small_seeds:
        cfg = load_config("default", [*SMALL, f"train.seed={seed}"])
        with tempfile.TemporaryDirectory() as tmp:
            result = fit(cfg, run_dir=Path(tmp))
        model, val, test = result.model, result.validation, result.test
        out = {"validation": ood.outputs(model, val.x), "test": ood.outputs(model, test.x),
               **{name: ood.outputs(model, x) for name, x in sets.items()}}
        temperature = calibration.fit_temperature(ood.softmax(out["validation"]["logits"]), val.y)
        pixels = {"test": test.x, **sets}
        mc = {s: ood.mc_scores(ood.mc_passes(model, x, args.passes, [0])[0]) for s, x in pixels.items()}
        tempered = {s: ood.softmax(out[s]["logits"], temperature) for s in pixels}
        row = {"train_seed": seed, "test_accuracy": round(float(np.mean(tempered["test"].argmax(1) == test.y)), 4),
               "temperature": round(temperature, 4),
               "ece_uncalibrated": round(calibration.ece(ood.softmax(out["test"]["logits"]), test.y), 4),
               "ece_temperature": round(calibration.ece(tempered["test"], test.y), 4),
               "ece_mc": round(calibration.ece(mc["test"]["mean"], test.y), 4),
               "nll_temperature": round(calibration.nll(tempered["test"], test.y), 4),
               "nll_mc": round(calibration.nll(mc["test"]["mean"], test.y), 4)}
        for name in SETS:
            row[f"auroc_temperature_{name}"] = round(ood.auroc(ood.max_probability(tempered["test"]),
                                                               ood.max_probability(tempered[name])), 4)
            row[f"auroc_mc_{name}"] = round(ood.auroc(mc["test"]["mc_max_probability"], mc[name]["mc_max_probability"]), 4)
            row[f"auroc_mc_spread_{name}"] = round(ood.auroc(mc["test"]["mc_spread"], mc[name]["mc_spread"]), 4)
            row[f"auroc_energy_{name}"] = round(ood.auroc(ood.energy(out["test"]["logits"]),
                                                          ood.energy(out[name]["logits"])), 4)
        rows.append(row)
        emit({"benchmark": "ood", "kind": "small_model", "passes": args.passes, "recipe": SMALL, **row}, sink)
    keys = [k for k in rows[0] if k not in ("train_seed",)]
    emit({"benchmark": "ood", "kind": "small_model_summary", "train_seeds": list(args.small_seeds),
          "passes": args.passes,
          **{k: [round(float(np.mean([r[k] for r in rows])), 4), round(float(np.std([r[k] for r in rows])), 4)]
             for k in keys}}, sink)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=["fashion/3", "fashion/1"], help="name/version under --models-dir")
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--passes", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--train-images", type=int, default=None,
                        help="fit Mahalanobis on the first N training images (default: all)")
    parser.add_argument("--small-seeds", type=int, nargs="*", default=[],
                        help="also train a small CNN per training seed and compare MC dropout with "
                             "temperature scaling on each (minutes per seed)")
    parser.add_argument("--repeats", type=int, default=15, help="timed calls per variant")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "ood.jsonl")
    parser.add_argument("--plots", type=Path, default=ROOT / "reports" / "ood")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w") as sink:
        for model in args.models:
            measure(args.models_dir / model, args, sink)
        if args.small_seeds:
            small_models(args, sink)


if __name__ == "__main__":
    main()
