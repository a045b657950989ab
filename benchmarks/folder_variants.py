"""Variants of a training command on an image folder, paired by seed against a baseline.

What ``folder_transfer.py`` and ``folder_switches.py`` share: one run publishes a model
and is read through its exported TFLite file (``python -m training evaluate``) on the
run's own test and validation splits and, where the folder has one, on a larger held-out
folder of the same kind that no run trains on or selects with; the summary compares each
variant with the baseline paired by seed, on validation (what a choice may read) and on
the held-out folder (what confirms it).
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from own_data import REPO, _cli, _mean_sd, majority  # noqa: E402

sys.path.insert(0, str(REPO))
from training.ablation.aggregate import ALPHA, compare  # noqa: E402  (scipy only, no TensorFlow)

METRICS = ("val_accuracy", "holdout_accuracy", "test_accuracy")


def add_summarise_argument(parser) -> None:
    parser.add_argument("--summarise", metavar="JSONL",
                        help="print only the summary lines of the per-run lines recorded in JSONL (the last "
                             "line of each folder, variant and seed wins), for --folders")


def run_variant(command: list, tag: str, name: str, folder: Path, holdout: Path | None, work: Path,
                seed: int, run_of: str | None = None) -> dict:
    """``python -m training <command>`` on ``folder`` with ``seed``, published under ``work``;
    its seconds and its TFLite accuracies (``holdout_accuracy`` None without a held-out folder).
    With ``run_of`` (the tag of a finished run under ``work``), ``command`` is a ``publish`` of
    that run's best weights: seconds are the publish's, not a training's."""
    runs = work / "runs" / (run_of or tag)
    where = ["--set", f"name={name}", "--set", "data.source=folder", "--set", f"data.path={folder}",
             "--set", f"models_dir={work / 'models' / tag}", "--set", f"output_dir={runs}",
             "--set", f"train.seed={seed}"]
    log = work / f"{tag}.log"
    if run_of is None:
        # every run starts afresh: an interrupted earlier one would be resumed or refused (exit 2)
        shutil.rmtree(runs, ignore_errors=True)
    elif not _finished(runs / name):
        raise SystemExit(f"no finished run {runs / name} to publish again: run its variant first with this --work")
    start = time.perf_counter()
    trained = _cli([*command, *where, *([] if run_of else ["--publish"]), "--force"], log)
    seconds = time.perf_counter() - start
    published = trained["published"]
    (work / "eval").mkdir(parents=True, exist_ok=True)

    def evaluate(extra: list, out: str) -> float:
        return _cli(["evaluate", "--model-dir", published, *extra, "--out", str(work / "eval" / f"{tag}_{out}")],
                    log)["tflite"]

    return {"seconds": round(seconds, 1),
            "test_accuracy": evaluate([], "test"),
            "val_accuracy": evaluate(["--split", "validation"], "val"),
            # all but a sliver of the held-out folder is its test split (the loader wants a train part)
            "holdout_accuracy": None if holdout is None else evaluate(
                ["--set", f"data.path={holdout}", "--set", "data.test_split=0.9",
                 "--set", "data.validation_split=0.05"], "holdout")}


def _finished(run_dir: Path) -> bool:
    """Whether the fit in ``run_dir`` ran to its end, as ``publish`` judges it (imported here:
    it brings TensorFlow, which only a republishing benchmark needs)."""
    from training.fit.trainer import run_progress
    return bool((run_progress(run_dir) or {}).get("finished"))


def run_tag(name: str, variant: str, seed: int) -> str:
    """A run's name under ``work`` (its runs/, models/ and log): a republished variant finds its run by it."""
    return f"{name}_{variant}_{seed}"


def run_folder(benchmark: str, name: str, folder: Path, holdout: Path | None, work: Path, seeds: list,
               commands: dict, variants: list, republish: dict = None, **fields) -> list:
    """Every variant of ``variants`` (each ``commands[variant]``) for every seed, seed by seed;
    each run's line printed as it ends (a long run loses nothing done before it) and returned.
    A variant in ``republish`` publishes the same seed's run of the variant it names again."""
    republish = republish or {}
    lines = []
    majority_rate = majority(folder)   # the folder's test split: the same for every run
    for seed in seeds:
        for variant in variants:
            line = {"benchmark": benchmark, "folder": name, **fields, "seed": seed,
                    "majority_rate": majority_rate, "variant": variant,
                    **run_variant(commands[variant], run_tag(name, variant, seed), name, folder, holdout, work, seed,
                                  run_of=run_tag(name, republish[variant], seed) if variant in republish else None)}
            print(json.dumps(line), flush=True)
            lines.append(line)
    return lines


def summary(benchmark: str, name: str, lines: list, variants, baseline: str, **fields) -> dict:
    """Per variant: mean and sd of each accuracy and mean seconds; against ``baseline``, the
    paired difference on validation and on the held-out folder, in points, with its 95%
    interval, two-sided p and the word it earns ("higher"/"lower" only at p < 0.05). ``lines``
    of several folders pool them: each folder and seed is one pair."""
    out = {"benchmark": benchmark, "folder": name, "summary": True,
           "seeds": sorted({line["seed"] for line in lines}), **fields}
    # paired on (folder, seed): within a folder the seed, across folders (name "all") each folder's seeds
    by_variant = {v: {(line["folder"], line["seed"]): line for line in lines if line["variant"] == v}
                  for v in variants}
    for variant, runs in by_variant.items():
        if not runs:
            continue
        out[variant] = {metric: _mean_sd([r[metric] for r in runs.values()])
                        for metric in METRICS if all(r.get(metric) is not None for r in runs.values())}
        out[variant]["seconds"] = round(sum(r["seconds"] for r in runs.values()) / len(runs), 1)
        if variant == baseline:
            continue
        for metric, where in (("val_accuracy", "val"), ("holdout_accuracy", "holdout")):
            if metric not in out[variant]:
                continue
            c = compare({s: r[metric] for s, r in runs.items()},
                        {s: r[metric] for s, r in by_variant[baseline].items()})
            if c is not None:
                word = ("not shown" if c.p >= ALPHA else "higher" if c.diff > 0 else "lower")
                out[variant][f"minus_{baseline}_{where}_pp"] = {
                    "diff": round(100 * c.diff, 2), "ci95": [round(100 * c.low, 2), round(100 * c.high, 2)],
                    "p": round(c.p, 4), "test": c.test, "verdict": word}
    return out
