"""The README's little-data advice (``--preset folder_transfer``) on folders unlike Fashion-MNIST.

The ``folder_transfer`` preset puts a new head on the committed Fashion-MNIST model
(``models/fashion/1``) and fine-tunes it. Its head recipe (plain images, cosine rate) and
its fine-tune rate were chosen on Fashion-MNIST classes (reports/transfer). This runs,
per folder and seed, on a few dozen images per class (``--per-class``, the README's
"little data"):

- ``transfer``: the preset as shipped (stage 2 sized in optimizer steps, as many as the head's);
- ``transfer-5-epochs``: stage 2 as it was, 5 passes (80 steps on 243 training images at batch 16);
- ``transfer-former-head``: that, with the head recipe the preset had before (augmented images,
  constant rate), to see whether the new head default holds off Fashion-MNIST (not run by default);
- ``scratch``: ``--preset folder``, the README's recipe for the same folder from scratch:
  the alternative a user has.

Each run is published and read through its exported TFLite file (``python -m training
evaluate``) on the run's own validation split and on a larger held-out folder of the same
kind drawn with another seed (image_folders.HOLDOUTS); a few dozen images per class leave
only a handful of validation images, so the verdicts are read on the held-out folder, which
no run trains on or selects with. Per folder a summary line compares each variant with
``transfer`` paired by seed, on validation and on the held-out folder (mean difference in
points, 95% interval, two-sided p of the paired t-test; "higher"/"lower" only at p < 0.05,
else "not shown").

    python benchmarks/folder_transfer.py                        # glyphs and textures, 30 per class, seeds 42 7 1
    python benchmarks/folder_transfer.py --folders shapes --per-class 20 --seeds 42 7 1 3 4
    python benchmarks/folder_transfer.py --folders fashion32    # the in-domain control (see below)
    python benchmarks/folder_transfer.py --summarise reports/folder_transfer.jsonl   # summaries of recorded lines

``fashion32`` is a control, not a test of the advice: its images come from Fashion-MNIST's
training split, which the backbone learned from, so transfer has every advantage there.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import image_folders  # noqa: E402
from own_data import REPO, _cli, _mean_sd, majority, print_summaries  # noqa: E402

sys.path.insert(0, str(REPO))
from training.ablation.aggregate import ALPHA, compare  # noqa: E402  (scipy only, no TensorFlow)

VARIANTS = {
    "transfer": ["transfer", "--preset", "folder_transfer"],
    "transfer-5-epochs": ["transfer", "--preset", "folder_transfer", "--set", "transfer.fine_tune_steps=0"],
    "transfer-former-head": ["transfer", "--preset", "folder_transfer", "--set", "transfer.fine_tune_steps=0",
                             "--set", "transfer.head_augment=true", "--set", "transfer.head_schedule=constant"],
    "scratch": ["train", "--preset", "folder"],
}
DEFAULT_VARIANTS = ["transfer", "transfer-5-epochs", "scratch"]
BASELINE = "transfer"

# Builders with a per-class count (digits has a fixed 1,797 images and no held-out folder).
SIZED = {"glyphs": image_folders.glyphs, "textures": image_folders.textures, "shapes": image_folders.shapes,
         "fashion32": lambda root, per_class: image_folders.fashion_folder(root, per_class, 32, "L", "png")}


def _run(variant: str, name: str, folder: Path, holdout: Path, work: Path, seed: int) -> dict:
    tag = f"{name}_{variant}_{seed}"
    where = ["--set", f"name={name}", "--set", "data.source=folder", "--set", f"data.path={folder}",
             "--set", f"models_dir={work / 'models' / tag}", "--set", f"output_dir={work / 'runs' / tag}",
             "--set", f"train.seed={seed}"]
    log = work / f"{tag}.log"
    # every run starts afresh: an interrupted earlier one would be resumed or refused (exit 2)
    shutil.rmtree(work / "runs" / tag, ignore_errors=True)
    start = time.perf_counter()
    trained = _cli([*VARIANTS[variant], *where, "--publish", "--force"], log)
    seconds = time.perf_counter() - start
    published = trained["published"]

    def evaluate(extra: list, out: str) -> float:
        return _cli(["evaluate", "--model-dir", published, *extra, "--out", str(work / "eval" / f"{tag}_{out}")],
                    log)["tflite"]

    return {"variant": variant, "seconds": round(seconds, 1),
            "test_accuracy": evaluate([], "test"),
            "val_accuracy": evaluate(["--split", "validation"], "val"),
            # all but a sliver of the held-out folder is its test split (the loader wants a train part)
            "holdout_accuracy": evaluate(["--set", f"data.path={holdout}", "--set", "data.test_split=0.9",
                                          "--set", "data.validation_split=0.05"], "holdout")}


def summary(name: str, lines: list) -> dict:
    """Per variant: mean and sd of each accuracy; against ``transfer``, the paired difference on
    the runs' validation splits (what a choice may read) and on the held-out folder (what the
    verdict reads), in points, with its interval, p and the word it earns."""
    out = {"benchmark": "folder_transfer", "folder": name, "summary": True,
           "seeds": sorted({line["seed"] for line in lines}), "per_class": lines[0]["per_class"]}
    by_variant = {v: {line["seed"]: line for line in lines if line["variant"] == v} for v in VARIANTS}
    for variant, runs in by_variant.items():
        if not runs:
            continue
        out[variant] = {metric: _mean_sd([r[metric] for r in runs.values()])
                        for metric in ("val_accuracy", "holdout_accuracy", "test_accuracy")}
        out[variant]["seconds"] = round(sum(r["seconds"] for r in runs.values()) / len(runs), 1)
        if variant == BASELINE:
            continue
        for metric, key in (("val_accuracy", "minus_transfer_val_pp"), ("holdout_accuracy", "minus_transfer_holdout_pp")):
            c = compare({s: r[metric] for s, r in runs.items()},
                        {s: r[metric] for s, r in by_variant[BASELINE].items()})
            if c is not None:
                word = ("not shown" if c.p >= ALPHA else "higher" if c.diff > 0 else "lower")
                out[variant][key] = {"diff": round(100 * c.diff, 2), "ci95": [round(100 * c.low, 2), round(100 * c.high, 2)],
                                     "p": round(c.p, 4), "test": c.test, "verdict": word}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folders", nargs="+", default=["glyphs", "textures"], choices=list(SIZED))
    parser.add_argument("--per-class", type=int, default=30, help="training-folder images per class")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 7, 1])
    parser.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS, choices=list(VARIANTS))
    parser.add_argument("--work", default="/tmp/folder_transfer_bench", help="folders, runs and models go here")
    parser.add_argument("--summarise", metavar="JSONL",
                        help="print only the summary lines of the per-run lines recorded in JSONL (the last "
                             "line of each folder, variant and seed wins), for --folders")
    args = parser.parse_args()
    if args.summarise:
        print_summaries(Path(args.summarise), "folder_transfer", args.folders, ("variant", "seed"), summary, least=1)
        return
    if BASELINE not in args.variants:
        parser.error(f"--variants must include {BASELINE}: every comparison is against it")
    work = Path(args.work)
    (work / "eval").mkdir(parents=True, exist_ok=True)
    for name in args.folders:
        folder = work / "data" / f"{name}_{args.per_class}"
        if not (folder.is_dir() and any(folder.iterdir())):
            SIZED[name](folder, per_class=args.per_class)
        holdout = image_folders.build(name, work / "holdout" / name, image_folders.HOLDOUTS)
        lines = []
        for seed in args.seeds:
            for variant in args.variants:
                line = {"benchmark": "folder_transfer", "folder": name, "per_class": args.per_class, "seed": seed,
                        "majority_rate": majority(folder), **_run(variant, name, folder, holdout, work, seed)}
                print(json.dumps(line), flush=True)
                lines.append(line)
        print(json.dumps(summary(name, lines)), flush=True)


if __name__ == "__main__":
    main()
