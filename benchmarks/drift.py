"""How often the service's drift alarm fires on clean traffic, and how fast it fires when a
fifth of the traffic is images the model was not trained on.

The model is ``models/fashion/3`` (the served default when this was measured; ``fashion/4``,
the default since, answers exactly as it does) run as the service runs it (its TFLite
file through ``artifact.litert``); the test is the service's (``artifact.drift``: chi-squared
on predicted classes and KS on the top-1 probability, Bonferroni, alarm at p < 0.01).

Two phases, each printing one JSON line per window size:

* ``choose``: the window is chosen here, without the test split. The reference is one half
  of the validation split (3,000 images), clean traffic the other half, and the
  brightness-shifted images come from that half too.
* ``report``: the committed reference (``metadata.json`` ``drift_reference``, all 6,000
  validation images) against the Fashion-MNIST test split, the numbers docs/service.md quotes.

Per window size: the false-alarm rate over windows of clean traffic drawn at random, and in
streams of clean traffic tested every window/20 images the alarm episodes per 10,000 images; per
foreign set (``training.data.foreign``: digits, photo patches, uniform noise, and the clean
images 60 grey levels brighter), the share of windows holding 20% foreign images that alarm
(and the share each of the two tests alone would catch at p < 0.01), and, in a simulated
stream where a full clean window is followed by a 20% mix tested every window/20 images as
the service does, the images after the onset until the first alarm (median, 90th percentile;
capped at 5 windows) and the share of streams alarmed within one window of images. A last
line names the chosen window: the smallest whose alarm caught every foreign set in at least
90% of the ``choose`` streams within one window of images, with a false-alarm rate at most
twice alpha.

    python benchmarks/drift.py > reports/drift.jsonl      # ~6 minutes on 2 busy cores
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from artifact import drift  # noqa: E402
from artifact import metadata as md  # noqa: E402
from artifact.litert import LiteRTRunner  # noqa: E402
from training.data import foreign  # noqa: E402
from training.data.datasets import load_fashion_mnist, split  # noqa: E402

SHARE = 0.2                  # foreign share of a drifted window
WINDOWS = (100, 200, 500, 1000)
BRIGHTER = 60


def probabilities(runner, x: np.ndarray) -> np.ndarray:
    return runner.predict(x, batch_size=500)


ALPHAS = (drift.ALPHA, 0.001)   # the alarm threshold docs/service.md uses, and a stricter one


def answered(probs: np.ndarray, labels: list) -> dict:
    """How a set is answered: its three most predicted classes (share) and its median top-1
    probability: what the chi-squared and the KS part of the test look at."""
    shares = np.bincount(probs.argmax(1), minlength=len(labels)) / len(probs)
    return {"images": len(probs), "top_classes": {labels[i]: round(float(shares[i]), 3) for i in np.argsort(-shares)[:3]},
            "median_top1": round(float(np.median(probs.max(1))), 4)}


def _tests(reference, windows) -> np.ndarray:
    """[n, 3]: combined, chi-squared and KS p-value of each window."""
    out = [drift.compare_probabilities(reference, w) for w in windows]
    return np.array([[r.p_value, r.chi2_p, r.ks_p] for r in out]).reshape(-1, 3)


def _rates(p: np.ndarray, alpha: float, name: str) -> dict:
    n, hits = len(p), int(np.sum(p[:, 0] < alpha))
    return {f"{name}_rate": round(hits / n, 4),
            f"{name}_se": round(float(np.sqrt(max(hits, 1) / n * (1 - hits / n) / n)), 4),
            "chi2_alone_rate": round(float(np.mean(p[:, 1] < alpha)), 4),
            "ks_alone_rate": round(float(np.mean(p[:, 2] < alpha)), 4)}


def false_alarms(reference, clean: np.ndarray, size: int, draws: int, rng) -> dict:
    """Windows of clean answers drawn at random (each without repeats)."""
    p = _tests(reference, (clean[rng.choice(len(clean), size, replace=False)] for _ in range(draws)))
    return {"windows": draws, **{str(a): _rates(p, a, "false_alarm") for a in ALPHAS}}


def clean_stream(reference, clean: np.ndarray, size: int, streams: int, rng, length: int = 20) -> dict:
    """Clean answers only, tested every size//20 images as the service does: the share of tests
    that alarm, and alarm episodes (runs of consecutive alarmed tests: what a pager sees) per
    10,000 images. Consecutive tests share most of their window, so episodes are rarer than
    alarmed tests."""
    every = max(1, size // 20)
    runs = []
    for _ in range(streams):
        passes = -(-(length + 1) * size // len(clean))
        stream = np.concatenate([clean[rng.permutation(len(clean))] for _ in range(passes)])
        runs.append(_tests(reference, (stream[n:size + n] for n in range(every, length * size + 1, every)))[:, 0])
    images = streams * length * size
    out = {"stream_images": images, "stream_tests": sum(len(r) for r in runs)}
    for a in ALPHAS:
        alarmed = [r < a for r in runs]
        episodes = sum(int(np.sum(x[1:] & ~x[:-1]) + x[0]) for x in alarmed)
        out[str(a)] = {"stream_alarmed_tests": round(float(np.mean(np.concatenate(alarmed))), 4),
                       "stream_episodes_per_10k_images": round(episodes / images * 10_000, 3),
                       "longest_episode_images": max(_longest(x) for x in alarmed) * every}
    return out


def _longest(flags: np.ndarray) -> int:
    """The longest run of True."""
    best = run = 0
    for flag in flags:
        run = run + 1 if flag else 0
        best = max(best, run)
    return best


def mixed(clean: np.ndarray, other: np.ndarray, size: int, rng) -> np.ndarray:
    k = int(round(size * SHARE))
    rows = np.concatenate([clean[rng.choice(len(clean), size - k, replace=False)],
                           other[rng.choice(len(other), k, replace=len(other) < k)]])
    return rows[rng.permutation(size)]


def detection(reference, clean: np.ndarray, other: np.ndarray, size: int, draws: int, rng) -> dict:
    p = _tests(reference, (mixed(clean, other, size, rng) for _ in range(draws)))
    return {str(a): _rates(p, a, "detection") for a in ALPHAS}


def images_to_alarm(reference, clean: np.ndarray, other: np.ndarray, size: int, streams: int, rng) -> dict:
    """A full window of clean answers, then a 20% mix; the test every size//20 images, as
    service/drift.py runs it; images after the onset until the first alarm (cap: 5 windows), and
    the share of the tests after it, until two windows after the onset, that alarm too."""
    every, cap = max(1, size // 20), 5 * size
    delays = {a: [] for a in ALPHAS}
    held = {a: [] for a in ALPHAS}      # tests after the first alarm (up to 2 windows in): still alarmed?
    for _ in range(streams):
        after = np.concatenate([mixed(clean, other, size, rng) for _ in range(5)])
        stream = np.concatenate([clean[rng.choice(len(clean), size, replace=False)], after])
        first, after = {}, {a: [] for a in ALPHAS}
        for n in range(every, cap + 1, every):
            p = drift.compare_probabilities(reference, stream[n:size + n]).p_value
            for a in ALPHAS:
                if a in first:
                    after[a].append(p < a)
                elif p < a:
                    first[a] = n
            if n >= 2 * size and len(first) == len(ALPHAS):
                break
        for a in ALPHAS:
            delays[a].append(first.get(a, np.inf))
            held[a].extend(after[a])
    out = {}
    for a in ALPHAS:
        d = np.asarray(delays[a], np.float64)
        finite = lambda v: None if not np.isfinite(v) else int(v)  # noqa: E731
        out[str(a)] = {"median_images_to_alarm": finite(np.median(d)),
                       "p90_images_to_alarm": finite(np.quantile(d, 0.9, method="higher")),
                       "alarmed_within_window": round(float(np.mean(d <= size)), 4),
                       "never_within_5_windows": round(float(np.mean(~np.isfinite(d))), 4),
                       "alarmed_tests_after_first": round(float(np.mean(held[a])), 4) if held[a] else None}
    return out


def costs(reference, clean: np.ndarray, sizes: list) -> dict:
    """What the service pays: one answered image into the window (service/drift.py
    Window.add, the request path), and one test on a full window (every size/20 images)."""
    from service.drift import Window
    out = {}
    for size in sizes:
        window = Window(reference, size)
        rows = clean[:1].astype(np.float32)
        start = time.perf_counter()
        for _ in range(20_000):
            window.add(rows)
        add_us = (time.perf_counter() - start) / 20_000 * 1e6
        start = time.perf_counter()
        for _ in range(200):
            window.result()
        test_ms = (time.perf_counter() - start) / 200 * 1e3
        out[str(size)] = {"add_one_image_us": round(add_us, 2), "test_ms": round(test_ms, 3),
                          "test_us_per_image": round(test_ms * 1e3 / max(1, size // 20), 2)}
    return out


def phase(name: str, reference, clean: np.ndarray, others: dict, args, rng) -> list:
    lines = []
    for size in args.windows:
        line = {"benchmark": "drift", "phase": name, "window": size, "alphas": list(ALPHAS), "foreign_share": SHARE,
                "reference_examples": reference.examples, "clean_images": len(clean),
                "clean": _merge(false_alarms(reference, clean, size, args.clean_windows, rng),
                                clean_stream(reference, clean, size, args.clean_streams, rng)), "foreign": {}}
        for kind, rows in others.items():
            line["foreign"][kind] = {"images": len(rows), **_merge(
                detection(reference, clean, rows, size, args.mixed_windows, rng),
                images_to_alarm(reference, clean, rows, size, args.streams, rng))}
        print(json.dumps(line), flush=True)
        lines.append(line)
    return lines


def _merge(a: dict, b: dict) -> dict:
    """Two result dicts, their per-alpha parts merged."""
    out = {**a, **b}
    for key in set(a) & set(b):
        out[key] = {**a[key], **b[key]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", default=str(REPO / "models" / "fashion" / "3"))
    parser.add_argument("--windows", type=int, nargs="+", default=list(WINDOWS))
    parser.add_argument("--clean-windows", type=int, default=1000)
    parser.add_argument("--clean-streams", type=int, default=20)
    parser.add_argument("--mixed-windows", type=int, default=200)
    parser.add_argument("--streams", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.time()
    rng = np.random.default_rng(args.seed)
    directory = Path(args.model_dir)
    meta = md.read(directory)
    committed = meta.drift_reference
    if committed is None:
        raise SystemExit(f"{directory} has no drift_reference")
    runner = LiteRTRunner(directory / meta.formats.tflite.path)
    train, test = load_fashion_mnist(None)
    validation = split(train, meta.config["data"]["validation_split"], seed=1)[1]
    assert validation.fingerprint()["sha256"] == meta.dataset["validation"]["sha256"], "not the version's split"
    sets = {"digits": foreign.digits(), "photo_patches": foreign.photo_patches(), "noise": foreign.noise()}
    foreign_probs = {kind: probabilities(runner, x) for kind, x in sets.items()}

    test_probs = probabilities(runner, test.x)
    test_bright = probabilities(runner, foreign.brighter(test.x, BRIGHTER))
    print(json.dumps({"benchmark": "drift", "how_answered": {
        kind: answered(p, meta.labels) for kind, p in
        {"test": test_probs, **foreign_probs, f"brighter_{BRIGHTER}": test_bright}.items()}}), flush=True)

    # choose: validation halves (reference / traffic); no test image involved
    order = np.random.default_rng(1).permutation(len(validation))
    half_a, half_b = order[: len(order) // 2], order[len(order) // 2:]
    val_probs = probabilities(runner, validation.x)
    val_b_bright = probabilities(runner, foreign.brighter(validation.x[half_b], BRIGHTER))
    reference_a = drift.Reference.from_dict(drift.reference_block(val_probs[half_a], meta.labels), meta.labels)
    chosen_lines = phase("choose", reference_a, val_probs[half_b],
                         {**foreign_probs, f"brighter_{BRIGHTER}": val_b_bright}, args, rng)

    # report: the committed reference against the test split
    phase("report", committed, test_probs, {**foreign_probs, f"brighter_{BRIGHTER}": test_bright}, args, rng)

    print(json.dumps({"benchmark": "drift", "costs": costs(committed, test_probs, args.windows),
                      "note": "wall time on this machine, shared with other jobs"}), flush=True)
    rule = "smallest window with every foreign set alarmed within one window in >= 90% of streams " \
           "and a false-alarm rate <= 2 alpha (choose phase)"
    alpha = str(drift.ALPHA)
    fits = [line["window"] for line in chosen_lines
            if line["clean"][alpha]["false_alarm_rate"] <= 2 * drift.ALPHA
            and all(f[alpha]["alarmed_within_window"] >= 0.9 for f in line["foreign"].values())]
    print(json.dumps({"benchmark": "drift", "summary": True, "chosen_window": min(fits) if fits else None,
                      "alpha": drift.ALPHA, "rule": rule, "model": str(directory.relative_to(REPO)) if directory.is_relative_to(REPO)
                      else str(directory), "seconds": round(time.time() - started, 1)}), flush=True)


if __name__ == "__main__":
    main()
