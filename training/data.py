"""Data sets as uint8 arrays: Fashion-MNIST, image folders and .npz files.

Every loader returns a ``Dataset``: uint8 images [N,H,W,C], int labels and the
class names. Scaling to floats happens in the tf.data pipeline (training) and
inside the exported graph (serving), never here.
"""
from __future__ import annotations

import gzip
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from artifact.imaging import ImageError, decode_image
from artifact.metadata import InputSpec, MetadataError

log = logging.getLogger(__name__)

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
FASHION_SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


class DataError(ValueError):
    """The data cannot be used as given; the message names the path and the fix."""


@dataclass
class Dataset:
    x: np.ndarray          # uint8 [N, H, W, C]
    y: np.ndarray          # int64 [N]
    class_names: list

    def __len__(self) -> int:
        return len(self.y)

    @property
    def input_shape(self) -> tuple:
        return tuple(self.x.shape[1:])

    def subset(self, index) -> "Dataset":
        return Dataset(self.x[index], self.y[index], self.class_names)

    def take(self, n: Optional[int]) -> "Dataset":
        return self if n is None else self.subset(slice(0, n))

    def fingerprint(self) -> dict:
        digest = hashlib.sha256(self.x.tobytes())
        digest.update(self.y.astype(np.int64).tobytes())
        return {"sha256": digest.hexdigest(), "examples": len(self),
                "shape": list(self.input_shape), "classes": len(self.class_names)}


# ---------------------------------------------------------------- Fashion-MNIST

def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _find_idx(directory: Path, stem: str) -> Optional[Path]:
    for name in (f"{stem}.gz", stem):
        if (directory / name).exists():
            return directory / name
    return None


def fashion_mnist_dir() -> Optional[Path]:
    """First directory holding the idx files: $FASHION_MNIST_DIR, then the Debian package."""
    for candidate in (os.environ.get("FASHION_MNIST_DIR"), FASHION_SYSTEM_DIR):
        if candidate and _find_idx(Path(candidate), "train-images-idx3-ubyte"):
            return Path(candidate)
    return None


def load_fashion_mnist() -> tuple:
    """(train, test) Datasets; falls back to keras.datasets (needs internet)."""
    directory = fashion_mnist_dir()
    if directory is not None:
        parts = {}
        for split, prefix in (("train", "train"), ("test", "t10k")):
            x = _read_idx(_find_idx(directory, f"{prefix}-images-idx3-ubyte"))
            y = _read_idx(_find_idx(directory, f"{prefix}-labels-idx1-ubyte"))
            parts[split] = Dataset(x[..., None].copy(), y.astype(np.int64), list(FASHION_CLASSES))
        return parts["train"], parts["test"]
    log.warning("Fashion-MNIST idx files not found in $FASHION_MNIST_DIR or %s; "
                "trying keras.datasets (needs internet)", FASHION_SYSTEM_DIR)
    import tf_keras as keras
    try:
        (xtr, ytr), (xte, yte) = keras.datasets.fashion_mnist.load_data()
    except Exception as exc:  # no network: say how to provide the files
        raise DataError("Fashion-MNIST not available: install the Debian package "
                        "'dataset-fashion-mnist' or set FASHION_MNIST_DIR to a folder "
                        f"with the idx files ({exc})") from exc
    return (Dataset(xtr[..., None], ytr.astype(np.int64), list(FASHION_CLASSES)),
            Dataset(xte[..., None], yte.astype(np.int64), list(FASHION_CLASSES)))


# ---------------------------------------------------------------- .npz files

def load_npz(path: str) -> tuple:
    """An .npz with x_train, y_train, x_test, y_test (and optional class_names)."""
    with np.load(path) as f:
        names = [str(c) for c in f["class_names"]] if "class_names" in f else list(FASHION_CLASSES)
        def part(x, y):
            x = f[x]
            return Dataset((x[..., None] if x.ndim == 3 else x).astype(np.uint8), f[y].astype(np.int64), names)
        return part("x_train", "y_train"), part("x_test", "y_test")


# ---------------------------------------------------------------- image folders

def load_image_folder(root: str, size: int, color_mode: str = "RGB") -> Dataset:
    """One sub-folder per class; unreadable files are skipped and counted in a warning.

    Each file goes through the service's decoder with the input spec the artifact
    will record, so training sees exactly the pixels serving will feed the model.
    """
    base = Path(root)
    if not base.is_dir():
        raise DataError(f"image folder '{base}' does not exist or is not a directory")
    try:
        spec = InputSpec.of(size, size, color_mode)
    except MetadataError as exc:
        raise DataError(f"data.image_size / data.color_mode for '{base}': {exc}") from None
    class_dirs = sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(class_dirs) < 2:
        raise DataError(f"image folder '{base}' needs at least two class sub-folders, "
                        f"found {len(class_dirs)}")
    images, labels, skipped = [], [], []
    for label, class_dir in enumerate(class_dirs):
        for path in sorted(class_dir.rglob("*")):
            if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
                continue
            try:
                images.append(decode_image(path, spec))
                labels.append(label)
            except ImageError:
                skipped.append(path)
    if skipped:
        log.warning("skipped %d unreadable image(s) under %s, e.g. %s",
                    len(skipped), base, skipped[0])
    if not images:
        raise DataError(f"image folder '{base}' holds no readable images "
                        f"(looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    found = sorted(set(labels))
    if len(found) < 2:
        raise DataError(f"image folder '{base}' has images for only one class "
                        f"('{class_dirs[found[0]].name}'); need at least two")
    return Dataset(np.stack(images), np.asarray(labels, np.int64), [d.name for d in class_dirs])


# ---------------------------------------------------------------- splits

def split(data: Dataset, fraction: float, seed: int) -> tuple:
    """Stratified (train, validation) split; fraction 0 gives an empty validation set."""
    rng = np.random.default_rng(seed)
    val_index = []
    for label in np.unique(data.y):
        members = np.flatnonzero(data.y == label)
        n_val = int(round(len(members) * fraction))
        val_index.extend(rng.permutation(members)[:n_val])
    val_mask = np.zeros(len(data), bool)
    val_mask[val_index] = True
    return data.subset(~val_mask), data.subset(val_mask)


def load_data(cfg) -> tuple:
    """(train, validation, test) for a DataConfig; folders use the validation split as test."""
    if cfg.source == "fashion_mnist":
        train, test = load_fashion_mnist()
    elif cfg.source == "npz":
        if not cfg.path:
            raise DataError("data.source=npz needs data.path")
        train, test = load_npz(cfg.path)
    elif cfg.source == "folder":
        if not cfg.path:
            raise DataError("data.source=folder needs data.path")
        full = load_image_folder(cfg.path, cfg.image_size, cfg.color_mode)
        train, test = split(full, max(cfg.validation_split, 0.1), seed=0)
    else:
        raise DataError(f"unknown data.source '{cfg.source}' (fashion_mnist, folder, npz)")
    train = train.take(cfg.limit)
    train, val = split(train, cfg.validation_split, seed=1)
    return train, val, test
