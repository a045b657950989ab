"""The report's PNG plots, drawn with matplotlib (Agg: no display) from run records alone.

Each plot kind is a function ``(study, records, out_dir) -> [(caption, png path)]``;
a study names the kinds it wants in ``Study.plots``:

- ``curves``: validation accuracy against optimizer steps, mean over seeds, a panel per group;
- ``train_val``: train (inference mode) and validation accuracy side by side, so overfitting shows;
- ``bars``: mean test accuracy per variant with standard-error bars, a cluster per group;
- ``data_size`` / ``k``: test accuracy against the group read as a number (images, or images per class);
- ``size_accuracy``: test accuracy against each variant's mean ``gzip_bytes``;
- ``readings``: the same runs read several ways (the metrics the claims compare), one line per seed.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

from training.ablation.aggregate import summarize, table  # noqa: E402


def _groups(records: list) -> dict:
    """group -> variant -> records, in the records' order."""
    out: dict = {}
    for r in records:
        out.setdefault(r["group"], {}).setdefault(r["variant"], []).append(r)
    return out


def _mean_curve(runs: list, key: str) -> tuple:
    """(steps, mean over seeds) of curve ``key``, cut to the shortest seed's length."""
    length = min(len(r["curves"][key]) for r in runs)
    steps = runs[0]["curves"]["step"][:length]
    return steps, [sum(r["curves"][key][i] for r in runs) / len(runs) for i in range(length)]


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def curves(study, records: list, out_dir: Path) -> list:
    groups = _groups(records)
    fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 4), squeeze=False)
    for ax, (group, variants) in zip(axes[0], groups.items()):
        for variant, runs in variants.items():
            ax.plot(*_mean_curve(runs, "val_accuracy"), label=variant)
        ax.set(title=group or study.name, xlabel="optimizer steps", ylabel="validation accuracy")
        ax.grid(alpha=0.3)
        ax.legend()
    return [("Validation accuracy during training, mean over seeds",
             _save(fig, out_dir / "curves.png"))]


def train_val(study, records: list, out_dir: Path) -> list:
    fig, (train_ax, val_ax) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for number, (variant, runs) in enumerate(next(iter(_groups(records).values())).items()):
        colour = f"C{number}"
        train_ax.plot(*_mean_curve(runs, "train_accuracy"), color=colour, label=variant)
        val_ax.plot(*_mean_curve(runs, "val_accuracy"), color=colour, label=variant)
    for ax, title in ((train_ax, "train accuracy (inference mode)"), (val_ax, "validation accuracy")):
        ax.set(title=title, xlabel="optimizer steps")
        ax.grid(alpha=0.3)
    train_ax.set_ylabel("accuracy")
    val_ax.legend()
    return [("Train and validation accuracy side by side, mean over seeds: the distance between a "
             "variant's two curves is its overfitting", _save(fig, out_dir / "train_val.png"))]


def bars(study, records: list, out_dir: Path) -> list:
    rows = table(records)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.7 * len(rows) + 2), 4))
    labels = [f"{r.group}\n{r.variant}" if r.group else r.variant for r in rows]
    colours = [f"C{sorted({r.group for r in rows}).index(r.group)}" for r in rows]
    ax.bar(range(len(rows)), [r.metric.mean for r in rows], yerr=[r.metric.se or 0 for r in rows],
           capsize=4, color=colours)
    ax.set_xticks(range(len(rows)), labels, fontsize=8)
    low = min(r.metric.mean for r in rows)
    ax.set_ylim(max(0.0, low - 0.1), min(1.0, max(r.metric.mean for r in rows) + 0.05))
    ax.set(ylabel="test accuracy", title="test accuracy: mean over seeds, bars show one standard error")
    ax.grid(axis="y", alpha=0.3)
    return [("Test accuracy per variant (mean, one standard error)", _save(fig, out_dir / "bars.png"))]


def _by_group(study, records: list, out_dir: Path, xlabel: str, name: str) -> list:
    fig, ax = plt.subplots(figsize=(6, 4))
    lines: dict = {}
    for group, variants in _groups(records).items():
        for variant, runs in variants.items():
            lines.setdefault(variant, []).append((float(group), summarize([r["test_accuracy"] for r in runs])))
    for variant, points in lines.items():
        points.sort()
        ax.errorbar([x for x, _ in points], [s.mean for _, s in points], yerr=[s.se or 0 for _, s in points],
                    marker="o", capsize=4, label=variant)
    ax.set_xscale("log")
    ax.set(xlabel=xlabel, ylabel="test accuracy", title="test accuracy (mean, one standard error)")
    ax.grid(alpha=0.3)
    ax.legend()
    return [(f"Test accuracy against {xlabel}", _save(fig, out_dir / f"{name}.png"))]


def data_size(study, records: list, out_dir: Path) -> list:
    return _by_group(study, records, out_dir, "training images", "data_size")


def k(study, records: list, out_dir: Path) -> list:
    return _by_group(study, records, out_dir, "labelled images per class (k)", "k")


def size_accuracy(study, records: list, out_dir: Path) -> list:
    fig, ax = plt.subplots(figsize=(6, 4))
    for group, variants in _groups(records).items():
        for variant, runs in variants.items():
            acc = summarize([r["test_accuracy"] for r in runs])
            size = sum(r["gzip_bytes"] for r in runs) / len(runs) / 1024
            ax.errorbar([size], [acc.mean], yerr=[acc.se or 0], marker="o", capsize=4)
            ax.annotate(f"{group} {variant}".strip(), (size, acc.mean), fontsize=8,
                        xytext=(4, 4), textcoords="offset points")
    ax.set(xlabel="gzip size (KiB)", ylabel="test accuracy", title="accuracy against size")
    ax.grid(alpha=0.3)
    return [("Test accuracy against gzip size", _save(fig, out_dir / "size_accuracy.png"))]


def readings(study, records: list, out_dir: Path) -> list:
    """Each seed's run as a line through the metrics the claims name (baseline side first), and
    their mean with one standard error: the per-seed pairing the claims test."""
    names = list(dict.fromkeys(m for c in study.claims for m in (c.against, c.metric)))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(names) + 2), 4))
    xs = range(len(names))
    for r in sorted(records, key=lambda r: r["seed"]):
        if all(n in r for n in names):
            ax.plot(xs, [r[n] for n in names], color="0.6", lw=1, marker=".")
            ax.annotate(f"seed {r['seed']}", (len(names) - 1, r[names[-1]]), fontsize=7, xytext=(4, 0),
                        textcoords="offset points")
    means = [summarize([r[n] for r in records if n in r]) for n in names]
    ax.errorbar(xs, [m.mean for m in means], yerr=[m.se or 0 for m in means], color="C0", lw=2, marker="o",
                capsize=4, label="mean, one standard error")
    ax.set_xticks(xs, [n.replace("_", " ") for n in names], fontsize=8)
    ax.set(ylabel="accuracy", title="the same runs read each way, one line per seed")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return [("Each seed's run read each way (grey lines), with the mean and one standard error",
             _save(fig, out_dir / "readings.png"))]


PLOTS = {"curves": curves, "train_val": train_val, "bars": bars, "data_size": data_size, "k": k,
         "size_accuracy": size_accuracy, "readings": readings}


def render(study, records: list, out_dir: Path) -> list:
    """Every plot the study asks for: [(caption, png path)]."""
    unknown = [kind for kind in study.plots if kind not in PLOTS]
    if unknown:
        raise ValueError(f"study {study.name}: unknown plot kind(s) {unknown} (known: {', '.join(PLOTS)})")
    return [item for kind in study.plots for item in PLOTS[kind](study, records, out_dir)]
