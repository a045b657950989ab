"""The README's "your own images" recipe on folders nobody tuned it for, next to tuned runs.

For each folder of ``benchmarks/image_folders.py`` (built offline), this runs
exactly the README recipe (``--preset folder``, no tuning flag: only where to
read and where to write), then a reference run whose settings were tuned by
hand for that folder, and prints one JSON line per folder: held-out accuracy
of both (from ``python -m training evaluate`` on the published files, the
ones the service would load), the majority-class rate, and wall seconds.

    python benchmarks/own_data.py                       # all folders
    python benchmarks/own_data.py --folders digits shapes --work /tmp/own

Target (issue): the recipe within 2 points of the tuned reference everywhere.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import image_folders  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

# Reference runs: settings found by hand for each folder (more steps, native
# resolution, the Fashion-MNIST preset where the data is Fashion-MNIST).
REFERENCES = {
    "fashion64": ["--preset", "default", "--set", "data.image_size=28", "--set", "data.color_mode=L",
                  "--set", "train.epochs=40", "--set", "train.batch_size=64"],
    "fashion32": ["--preset", "default", "--set", "data.image_size=28", "--set", "data.color_mode=L",
                  "--set", "train.epochs=60", "--set", "train.batch_size=32", "--set", "augment.flip=true"],
    "shapes": ["--preset", "folder", "--set", "data.image_size=48", "--set", "train.steps=4000",
               "--set", "train.batch_size=32"],
    "digits": ["--preset", "default", "--set", "data.image_size=32", "--set", "train.batch_size=32",
               "--set", "augment.flip=false", "--set", "train.epochs=30"],
}


def _cli(args: list, log_path: Path) -> dict:
    """Run ``python -m training ...``; return the JSON its last stdout line holds."""
    with open(log_path, "a") as log:
        done = subprocess.run([sys.executable, "-m", "training", *args], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=log, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"python -m training {' '.join(args)} exited {done.returncode}; see {log_path}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _run(name: str, folder: Path, work: Path, tag: str, tuning: list, seed: int) -> dict:
    models, runs = work / f"models_{tag}_{seed}", work / f"runs_{tag}_{seed}"
    where = ["--set", f"name={name}", "--set", "data.source=folder", "--set", f"data.path={folder}",
             "--set", f"models_dir={models}", "--set", f"output_dir={runs}", "--set", f"train.seed={seed}"]
    log = work / f"{name}_{tag}_{seed}.log"
    start = time.perf_counter()
    trained = _cli(["train", *tuning, *where, "--publish", "--force"], log)
    seconds = time.perf_counter() - start
    evaluated = _cli(["evaluate", "--model-dir", trained["published"], "--out", str(work / f"eval_{name}_{tag}_{seed}")],
                     log)
    return {"accuracy": evaluated["tflite"], "saved_model_accuracy": evaluated["saved_model"],
            "seconds": round(seconds, 1), "budget": trained.get("budget")}


def majority(folder: Path) -> float:
    sys.path.insert(0, str(REPO))
    from training.folders import scan_folder
    from training.gate import majority_rate
    return round(majority_rate(np.array([f.label for f in scan_folder(folder).split_files("test")])), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folders", nargs="+", default=list(image_folders.BUILDERS))
    parser.add_argument("--work", default="/tmp/own_data_bench", help="folders, runs and models go here")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--seed", type=int, default=42, help="train.seed of both runs (the split does not depend on it)")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    for name in args.folders:
        folder = image_folders.build(name, work / "data" / name)
        recipe = _run(name, folder, work, "recipe", ["--preset", "folder"], args.seed)
        line = {"benchmark": "own_data", "folder": name, "seed": args.seed,
                "images": sum(1 for p in folder.rglob("*") if p.is_file()),
                "majority_rate": majority(folder), "recipe_accuracy": recipe["accuracy"],
                "recipe_seconds": recipe["seconds"], "recipe_budget": recipe["budget"]}
        if not args.skip_reference:
            reference = _run(name, folder, work, "reference", REFERENCES[name], args.seed)
            line |= {"reference_accuracy": reference["accuracy"], "reference_seconds": reference["seconds"],
                     "recipe_minus_reference_pp": round(100 * (recipe["accuracy"] - reference["accuracy"]), 2)}
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
