"""Transfer study: does a backbone pretrained on one task help a new task with few labels?

Source task: Fashion-MNIST classes 0-4 (T-shirt, Trouser, Pullover, Dress, Coat), every
training image; the default CNN trained on it once and published under
``reports/transfer/source/`` (committed: its metadata and Keras weights, 1.7 MB), so every
run, a rerun and an added seed start from the same backbone and pair seed by seed. Target
task: classes 5-9 (Sandal, Shirt, Sneaker, Bag, Ankle boot) from k labelled images per class
(the seed draws them), with a validation set the seed draws from the rest of the target-class
training images (choices are made on it) and the target-class images of the official test
set (read only to report).

Every gradient-trained method gets the same ``budget.steps`` optimizer steps:
  scratch   the backbone's own architecture and recipe, random initialisation
  frozen    pretrained backbone frozen, the new head trained alone on plain images at a
            cosine-decayed rate; frozen-augmented, frozen-constant and frozen-former (augmented,
            constant: the recipe before) are the other three ways tried, to choose on validation
  finetune  frozen (the head as in ``frozen``) for the first half of the steps, then every
            backbone layer unfrozen at 1e-4 for the second half (BatchNorm stays frozen);
            finetune-1e-5 at the ImageNet rate: the rate ``transfer.fine_tune_learning_rate: auto``
            gives this project's own backbone is the one of the two best on validation
            (training.config.FINE_TUNE_RATES, read by tests/ablation/test_defaults_follow_evidence.py)
  probe     logistic regression on the frozen backbone's features: the reference a
            converged head should reach
"""
from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from training.ablation.study import Budget, Claim, Study, Variant

SOURCE, TARGET = [0, 1, 2, 3, 4], [5, 6, 7, 8, 9]
SOURCE_EPOCHS = 2           # pretraining passes over the 27,000 source training images
# the committed source model: trained here when missing, then reused by every run
SOURCE_DIR = Path(__file__).resolve().parents[3] / "reports" / "transfer" / "source"
VALIDATION_IMAGES = 2000    # drawn from the target-class training images the k-shot draw left
# How the head trains on the frozen backbone (the knobs of training.config.TransferConfig): the
# variant name -> its recipe. "frozen" is the one fine-tuning's head stage uses.
HEADS = {
    "frozen": {"head_augment": False, "head_schedule": "cosine"},
    "frozen-augmented": {"head_augment": True, "head_schedule": "cosine"},
    "frozen-constant": {"head_augment": False, "head_schedule": "constant"},
    "frozen-former": {"head_augment": True, "head_schedule": "constant"},
}
# The head as the linear probe sees the features: logits straight on ``pool``, without the source
# model's hidden layer (128 units and BatchNorm); the recipe as "frozen"'s.
LINEAR = {"head_dense_units": 0, **HEADS["frozen"]}
# Stage 2's rate for this project's small backbone; ImageNet backbones want about 1e-5 (the Keras
# transfer-learning guide), which cannot be measured here: their weights need a download.
RATES = {"finetune": 1e-4, "finetune-1e-5": 1e-5}
PROBE_C = 1.0               # inverse L2 strength of the logistic-regression probe
KS = (10, 50, 200)
METHODS = ("scratch", "frozen", "finetune", "probe")


def classes(data, wanted, limit=None):
    """The images of ``wanted`` classes, relabelled 0..len(wanted)-1."""
    from training.data.datasets import Dataset
    index = np.flatnonzero(np.isin(data.y, wanted))[:limit]
    return Dataset(data.x[index], np.searchsorted(wanted, data.y[index]), [data.class_names[c] for c in wanted])


def _k_shot_index(pool, k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    index = np.concatenate([rng.choice(np.flatnonzero(pool.y == c), k, replace=False)
                            for c in range(len(pool.class_names))])
    return rng.permutation(index)


def k_shot(pool, k: int, seed: int):
    return pool.subset(_k_shot_index(pool, k, seed))


def validation(pool, k: int, seed: int, images: int):
    """``images`` of ``pool`` that ``k_shot(pool, k, seed)`` did not draw, drawn by ``seed``."""
    rest = np.setdiff1d(np.arange(len(pool)), _k_shot_index(pool, k, seed))
    rng = np.random.default_rng([seed, 1])     # a stream of its own: k_shot's draw stays as it was
    return pool.subset(np.sort(rng.choice(rest, min(images, len(rest)), replace=False)))


def shared_dir(workdir: Path) -> Path:
    """Where runs of this study share files: the runner gives each run its own directory
    inside ``<workdir>/transfer/``, so the nearest ancestor of that name (else ``workdir``)."""
    return next((p for p in (workdir, *workdir.parents) if p.name == "transfer"), workdir)


def source_backbone(workdir: Path) -> Path:
    """The published source model in ``SOURCE_DIR``: trained (its run files in ``workdir``) and
    published there on the first call, reused by every later one."""
    from artifact import metadata as md
    from artifact.versions import latest_version
    from training.config import load_config
    from training.data.datasets import load_fashion_mnist, split
    from training.publish.release import publish_result
    from training.fit.train import train as fit
    try:
        return latest_version(SOURCE_DIR, "fashion-source")
    except FileNotFoundError:
        pass
    cfg = load_config("default", ["name=fashion-source", f"output_dir={workdir / 'source' / 'runs'}",
                                  f"models_dir={SOURCE_DIR}", f"train.epochs={SOURCE_EPOCHS}", "train.verbose=0"])
    train, test = load_fashion_mnist()
    s_train, s_val = split(classes(train, SOURCE), 0.1, seed=1)
    # forced: the source is the study's own, and its accuracy goes into every record
    version = publish_result(cfg, fit(cfg, data=(s_train, s_val, classes(test, SOURCE))), preset="default",
                             force=True)
    # a backbone needs only its metadata and Keras weights: the exported graphs stay out of the repository
    keep = {md.FILENAME, md.read(version).format_path(version, "keras").name}
    for path in version.iterdir():
        if path.name not in keep:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    return version


def target_config(backbone: Path, batch_size: int):
    """The backbone's own model and recipe, so scratch is the same CNN trained the same way
    and the transfer head is the one scratch has."""
    from artifact import metadata as md
    from training.config import config_from_dict
    cfg = config_from_dict(md.read(backbone).config)
    # warm-up: 0.1 of the one "epoch" that holds all the steps
    return replace(cfg, train=replace(cfg.train, verbose=0, batch_size=batch_size, warmup_epochs=0.1),
                   transfer=replace(cfg.transfer, backbone=str(backbone), weights="default", unfreeze="all"))


def run(variant: Variant, seed: int, budget: Budget, workdir: Path) -> dict:
    from training.keras2 import keras
    from artifact import metadata as md
    from training.data.datasets import load_fashion_mnist
    backbone = source_backbone(shared_dir(Path(workdir)))
    start = time.perf_counter()             # the method's cost, not the shared source's
    cfg = target_config(backbone, budget.batch_size)
    train, test = load_fashion_mnist()
    k, method = variant.settings["k"], variant.settings["method"]
    pool = classes(train, TARGET)
    data, val = k_shot(pool, k, seed), validation(pool, k, seed, VALIDATION_IMAGES)
    target_test = classes(test, TARGET, budget.test_images)
    keras.utils.set_random_seed(seed)
    knobs = {key: value for key, value in variant.settings.items() if key not in ("k", "method")}
    record = METHOD_RUNS[method](cfg, data, (val, target_test), budget.steps, seed, **knobs)
    keras.backend.clear_session()           # many models in one process: drop the old graphs
    return {**record, "k": k, "method": method, "train_images": len(data), "val_images": len(val),
            "test_images": len(target_test), "source_test_accuracy": md.read(backbone).metrics["tflite"]["accuracy"],
            "seconds": round(time.perf_counter() - start, 1)}


def _fit(model, cfg, data, steps: int, seed: int, augment: bool = True, **train) -> dict:
    """``steps`` optimizer steps as one "epoch" of repeated batches (augmented if ``augment``);
    no run files."""
    from training.data.pipeline import make_dataset
    from training.fit.trainer import fit
    ds = make_dataset(data, cfg.train.batch_size, len(data.class_names), training=True,
                      augment=cfg.augment if augment else None, seed=seed).repeat()
    return fit(model, ds, replace(cfg.train, epochs=1, **train), steps_per_epoch=steps).history


def _result(model, evaluate: tuple, steps: int, history: dict) -> dict:
    from training.fit.train import accuracy
    val, test = evaluate
    return {"val_accuracy": accuracy(model, val), "test_accuracy": accuracy(model, test), "steps": steps,
            "final_train_loss": round(history["loss"][-1], 4), "final_train_accuracy": history["accuracy"][-1]}


def _frozen_model(cfg, data, dense_units=None):
    from training.models.transfer import freeze_backbone
    from training.transfer.pipeline import transfer_config, transfer_model
    head_cfg = transfer_config(cfg)
    units = head_cfg.model.dense_units if dense_units is None else dense_units
    head_cfg = replace(head_cfg, model=replace(head_cfg.model, head_dropout=0.0, dense_units=units))
    tm = transfer_model(head_cfg, data.input_shape, len(data.class_names))
    freeze_backbone(tm)
    return tm


def _head(tm, cfg, data, steps: int, seed: int, head_augment: bool, head_schedule: str) -> dict:
    """Stage 1: the head alone, as ``training.transfer.pipeline`` trains it (at the recipe's rate)."""
    return _fit(tm.model, cfg, data, steps, seed, augment=head_augment, schedule=head_schedule)


def _scratch(cfg, data, evaluate, steps, seed):
    from training.models.registry import build_model
    model = build_model(cfg.model, data.input_shape, len(data.class_names))
    return _result(model, evaluate, steps, _fit(model, cfg, data, steps, seed))


def _frozen(cfg, data, evaluate, steps, seed, head_dense_units=None, **head):
    tm = _frozen_model(cfg, data, head_dense_units)
    return _result(tm.model, evaluate, steps, _head(tm, cfg, data, steps, seed, **head))


def _finetune(cfg, data, evaluate, steps, seed, fine_tune_learning_rate, **head):
    from training.models.transfer import unfreeze_top
    tm = _frozen_model(cfg, data)
    first = steps // 2
    _head(tm, cfg, data, first, seed, **head)
    unfreeze_top(tm, "all")
    history = _fit(tm.model, cfg, data, steps - first, seed, learning_rate=fine_tune_learning_rate)
    return _result(tm.model, evaluate, steps, history)


def _probe(cfg, data, evaluate, steps, seed):
    """Logistic regression on the features the frozen head sees (``pool``'s output)."""
    from training.keras2 import keras
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from training.fit.train import predict_probabilities
    tm = _frozen_model(cfg, data)
    features = keras.Model(tm.model.input, tm.model.get_layer("pool").output)
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=PROBE_C, max_iter=2000))
    probe.fit(predict_probabilities(features, data), data.y)
    val, test = evaluate
    accuracy = {f"{name}_accuracy": float(np.mean(probe.predict(predict_probabilities(features, images)) == images.y))
                for name, images in (("val", val), ("test", test))}
    return {**accuracy, "steps": 0, "probe_iterations": int(probe[-1].n_iter_[0])}


METHOD_RUNS = {"scratch": _scratch, "frozen": _frozen, "finetune": _finetune, "probe": _probe}

# One group per k (its number, the x axis of the k plot); the methods keep their names across groups.
# Every frozen and fine-tuned variant names its head recipe, so a changed recipe runs again.
VARIANTS = tuple(
    [Variant(method, {"k": k, "method": method, **({"fine_tune_learning_rate": RATES[method]}
                                                   if method == "finetune" else {}),
                      **(HEADS["frozen"] if method in ("frozen", "finetune") else {})}, group=str(k))
     for k in KS for method in METHODS]
    + [Variant(name, {"k": k, "method": "frozen", **head}, group=str(k))
       for k in KS for name, head in HEADS.items() if name != "frozen"]
    + [Variant(name, {"k": k, "method": "finetune", "fine_tune_learning_rate": rate, **HEADS["frozen"]}, group=str(k))
       for k in KS for name, rate in RATES.items() if name != "finetune"]
    + [Variant("frozen-linear", {"k": k, "method": "frozen", **LINEAR}, group=str(k)) for k in KS])
CLAIMS = tuple(claim for k in KS for claim in (
    Claim(f"Fine-tuning a pretrained backbone beats training from scratch with {k} images per class",
          "finetune", "scratch", str(k)),
    Claim(f"A frozen pretrained backbone with a new head beats training from scratch with {k} images per class",
          "frozen", "scratch", str(k)),
    Claim(f"The trained head reaches the linear probe's accuracy (within 0.5 points) with {k} images per class",
          "frozen", "probe", str(k), kind="equivalent", margin=0.005),
    Claim(f"The trained linear head (no hidden layer) reaches the linear probe's accuracy (within 0.5 points) "
          f"with {k} images per class", "frozen-linear", "probe", str(k), kind="equivalent", margin=0.005),
    Claim(f"The linear head beats the source model's hidden-layer head with {k} images per class (validation)",
          "frozen-linear", "frozen", str(k), metric="val_accuracy"),
    Claim(f"The head trained on plain images beats one trained on augmented images with {k} images per class "
          "(validation)", "frozen", "frozen-augmented", str(k), metric="val_accuracy"),
    Claim(f"The head trained at a cosine-decayed rate beats a constant rate with {k} images per class "
          "(validation)", "frozen", "frozen-constant", str(k), metric="val_accuracy"),
    Claim(f"The head recipe (plain images, cosine) beats the former one (augmented, constant) with {k} images "
          "per class", "frozen", "frozen-former", str(k)),
    Claim(f"Fine-tuning the project's own backbone at 1e-4 beats 1e-5 (the ImageNet rate) with {k} images per "
          "class (validation)", "finetune", "finetune-1e-5", str(k), metric="val_accuracy"),
))

STUDY = Study(
    name="transfer",
    description=(
        "Does a backbone pretrained on Fashion-MNIST classes 0-4 help classify classes 5-9 from "
        "k labelled images per class? Scratch, a frozen backbone with a new head, and "
        "frozen-then-fine-tuned each get the same optimizer steps; a logistic-regression probe "
        "on the frozen features shows what a converged head can reach. The head's recipe (plain or "
        "augmented images, cosine or constant rate) and the fine-tune rate of this project's own "
        "backbone (1e-4 or 1e-5) are chosen on a validation set drawn from the target-class "
        "training images; the test images only report. Every run starts from the one committed "
        "source model (reports/transfer/source/), so runs pair seed by seed."),
    variants=VARIANTS,
    claims=CLAIMS,
    run=run,
    budget=Budget(train_images=None, steps=200, batch_size=32, seeds=(0, 1, 2, 3, 4), test_images=2000),
    plots=("k", "bars"),
    # Records from before the source model was committed ran on two trainings of it: pairing on its
    # accuracy keeps a run from being compared with one on another backbone.
    paired_on=("source_test_accuracy",),
)
