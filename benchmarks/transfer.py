"""Transfer learning, offline, on Fashion-MNIST: does a backbone pretrained on one task help
a new task with few labels?

    python benchmarks/transfer.py [--ks 10,50,200] [--seeds 3] [--source-epochs 3] [--steps 200]

Source task: classes 0-4 (T-shirt, Trouser, Pullover, Dress, Coat), all their training
images; the project's own CNN (configs/default.yaml) is trained on it and published, so
the backbone goes through the same artifact path as any `--backbone models/<name>/<v>`.
Target task: classes 5-9 (Sandal, Shirt, Sneaker, Bag, Ankle boot) from k labelled
training images per class, evaluated on all target-class images of the official test set.

Methods, with the same augmentation and the same number of optimizer steps per stage:
  scratch   the backbone's own architecture and recipe (its metadata config), random init
  frozen    pretrained backbone frozen, new head trained (stage 1)
  finetune  frozen, then every backbone layer unfrozen at a low rate (stage 2; BN frozen)
One JSON line per (k, method) with the mean and sample std (ddof=1) over seeds and the
mean wall seconds (build + fit; finetune includes its stage 1); a final PNG plots
accuracy against k. --source-from reuses a published source version.
"""
import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training.config import load_config  # noqa: E402  (sets TF_USE_LEGACY_KERAS first)

SOURCE, TARGET = [0, 1, 2, 3, 4], [5, 6, 7, 8, 9]
METHODS = ("scratch", "frozen", "finetune")


def classes(data, wanted, limit=None):
    """The images of ``wanted`` classes, relabelled 0..len(wanted)-1."""
    import numpy as np
    from training.data import Dataset
    index = np.flatnonzero(np.isin(data.y, wanted))[:limit]
    return Dataset(data.x[index], np.searchsorted(wanted, data.y[index]), [data.class_names[c] for c in wanted])


def k_shot(pool, k, seed):
    import numpy as np
    rng = np.random.default_rng(seed)
    index = np.concatenate([rng.choice(np.flatnonzero(pool.y == c), k, replace=False)
                            for c in range(len(pool.class_names))])
    return pool.subset(rng.permutation(index))


def pretrain(args, train, test, work):
    from training.cli_train import publish_result
    from training.data import split
    from training.train import train as fit
    cfg = load_config("default", ["name=fashion-source", f"output_dir={work / 'runs'}",
                                  f"models_dir={work / 'models'}", f"train.epochs={args.source_epochs}",
                                  "train.verbose=0"])
    source = classes(train, SOURCE, args.source_limit)
    s_train, s_val = split(source, 0.1, seed=1)
    result = fit(cfg, data=(s_train, s_val, classes(test, SOURCE, args.test_limit)))
    published = publish_result(cfg, result, preset="default")
    emit(args, {"benchmark": "transfer", "phase": "source", "classes": SOURCE, "train_examples": len(s_train),
                "epochs": args.source_epochs, "fit_seconds": round(result.wall_seconds, 1),
                "source_test_accuracy": round(result.test_accuracy, 4), "published": str(published)})
    return published


def target_config(args, backbone):
    """The backbone's own model and training recipe, so scratch is the same CNN trained the same way
    and the transfer head is the one scratch has; only batch size and warm-up fit k-shot runs."""
    from training.config import config_from_dict
    from artifact import metadata as md
    meta = md.read(backbone)
    cfg = config_from_dict(meta.config)
    cfg.train.verbose, cfg.train.batch_size = 0, args.batch_size
    cfg.train.warmup_epochs = 0.1           # of one "epoch" that holds all the steps
    cfg.transfer.backbone, cfg.transfer.weights, cfg.transfer.unfreeze = backbone, "default", "all"
    cfg.transfer.backbone_spec = None
    return cfg, meta


def run_seed(args, base_cfg, pool, test, k, seed):
    """Accuracy and seconds of every method for one (k, seed)."""
    import copy
    import tf_keras as keras
    from training.models import build_model
    from training.pipeline import make_dataset
    from training.train import accuracy
    from training.transfer import build_transfer_model, fit_stage, freeze_backbone, resolved_config, unfreeze_top
    cfg = copy.deepcopy(base_cfg)
    data = k_shot(pool, k, seed)
    ds = make_dataset(data, args.batch_size, 5, training=True, augment=cfg.augment, seed=seed).repeat()
    fit = dict(epochs=1, steps_per_epoch=args.steps)
    out = {}

    start = time.perf_counter()
    keras.utils.set_random_seed(seed)
    model = build_model(cfg.model, data.input_shape, 5)
    fit_stage(model, cfg.train, ds, learning_rate=cfg.train.learning_rate, **fit)
    out["scratch"] = (accuracy(model, test), time.perf_counter() - start)

    start = time.perf_counter()
    keras.utils.set_random_seed(seed)
    tm = build_transfer_model(resolved_config(cfg), data.input_shape, 5)
    freeze_backbone(tm)
    fit_stage(tm.model, cfg.train, ds, learning_rate=args.head_lr, **fit)
    frozen_seconds = time.perf_counter() - start
    out["frozen"] = (accuracy(tm.model, test), frozen_seconds)

    start = time.perf_counter()
    unfreeze_top(tm, "all")
    fit_stage(tm.model, cfg.train, ds, learning_rate=args.fine_tune_lr, **fit)
    out["finetune"] = (accuracy(tm.model, test), frozen_seconds + time.perf_counter() - start)
    keras.backend.clear_session()       # 27 models in one process: drop the old graphs
    print(json.dumps({"k": k, "seed": seed, **{m: round(a, 4) for m, (a, _) in out.items()}}),
          file=sys.stderr, flush=True)
    return out


def emit(args, line):
    print(json.dumps(line), flush=True)
    with open(args.out, "a") as f:
        f.write(json.dumps(line) + "\n")


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for method in METHODS:
        mine = [r for r in rows if r["method"] == method]
        ax.errorbar([r["k"] for r in mine], [r["accuracy_mean"] for r in mine],
                    yerr=[r["accuracy_std"] for r in mine], marker="o", capsize=3, label=method)
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks([r["k"] for r in rows if r["method"] == METHODS[0]],
                  [str(r["k"]) for r in rows if r["method"] == METHODS[0]])
    ax.set_xlabel("labelled training images per target class (k)")
    ax.set_ylabel("target test accuracy (5 classes)")
    ax.set_title("Fashion-MNIST 0-4 -> 5-9: transfer vs scratch")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ks", default="10,50,200", help="images per target class (default: %(default)s)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--source-epochs", type=int, default=3, help="pretraining epochs on classes 0-4")
    parser.add_argument("--source-limit", type=int, help="use only N source images (scale down)")
    parser.add_argument("--source-from", help="a published source version to reuse (skips pretraining)")
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps per stage and method")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--head-lr", type=float, default=3e-3, help="stage 1 (frozen) learning rate")
    parser.add_argument("--fine-tune-lr", type=float, default=1e-4,
                        help="stage 2 rate; 1e-4 suits this small own backbone, ~1e-5 ImageNet ones")
    parser.add_argument("--test-limit", type=int, help="evaluate on only N target test images")
    parser.add_argument("--out", default="reports/transfer.jsonl")
    parser.add_argument("--plot", default="reports/transfer.png")
    parser.add_argument("--work", default="reports/tmp/transfer", help="runs and the source model repository")
    parser.add_argument("--replot", action="store_true", help="only redraw --plot from the lines in --out")
    args = parser.parse_args()
    if args.replot:
        lines = [json.loads(line) for line in Path(args.out).read_text().splitlines() if line.strip()]
        plot([row for row in lines if "method" in row], args.plot)
        return

    import numpy as np
    from training.data import load_fashion_mnist
    started = time.perf_counter()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("")
    train, test = load_fashion_mnist()
    backbone = args.source_from or str(pretrain(args, train, test, Path(args.work)))
    cfg, meta = target_config(args, backbone)
    if args.source_from:
        emit(args, {"benchmark": "transfer", "phase": "source", "reused": backbone, "classes": SOURCE,
                    "train_examples": meta.dataset["train"]["examples"],
                    "epochs": len(meta.extra["training"]["history"]["loss"]),
                    "fit_seconds": meta.extra["training"]["fit_seconds"],
                    "source_test_accuracy": round(meta.metrics["keras"]["accuracy"], 4)})
    pool, target_test = classes(train, TARGET), classes(test, TARGET, args.test_limit)
    rows = []
    for k in [int(v) for v in args.ks.split(",")]:
        runs = [run_seed(args, cfg, pool, target_test, k, seed) for seed in range(args.seeds)]
        scratch = np.mean([r["scratch"][0] for r in runs])
        for method in METHODS:
            acc = np.array([r[method][0] for r in runs])
            row = {"benchmark": "transfer", "k": k, "method": method, "seeds": args.seeds,
                   "train_examples": 5 * k, "test_examples": len(target_test), "steps": args.steps,
                   "accuracy_mean": round(float(acc.mean()), 4),
                   "accuracy_std": round(float(acc.std(ddof=1)) if len(acc) > 1 else 0.0, 4),
                   "accuracies": [round(float(a), 4) for a in acc],
                   "vs_scratch": round(float(acc.mean() - scratch), 4),
                   "wall_seconds": round(float(np.mean([r[method][1] for r in runs])), 1)}
            rows.append(row)
            emit(args, row)
    plot(rows, args.plot)
    emit(args, {"benchmark": "transfer", "phase": "done", "plot": args.plot, "backbone": backbone,
                "head_lr": args.head_lr, "fine_tune_lr": args.fine_tune_lr, "batch_size": args.batch_size,
                "wall_seconds": round(time.perf_counter() - started, 1)})


if __name__ == "__main__":
    main()
