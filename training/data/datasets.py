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
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import numpy as np

from artifact.imaging import ImageError, decode_image
from artifact.metadata import InputSpec, MetadataError

from training.config import AUTO, DataConfig
from training.data.folders import IMAGE_SUFFIXES, FolderError, describe, scan_folder

log = logging.getLogger(__name__)

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
FASHION_SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"
# The stated root a relative data.path is also tried against: presets name files in the
# repository (configs/tiny.yaml: tests/data/fashion_fixture.npz), and versions published
# before paths were recorded absolute hold paths relative to where they were trained.
REPOSITORY_ROOT = Path(__file__).resolve().parents[2]


class DataError(ValueError):
    """The data cannot be used as given; the message names the path and the fix."""


@dataclass
class Dataset:
    x: np.ndarray          # uint8 [N, H, W, C]
    y: np.ndarray          # int64 [N]
    class_names: list
    summary: Optional[dict] = None   # what an image folder held (training.data.folders.describe)

    def __len__(self) -> int:
        return len(self.y)

    @property
    def input_shape(self) -> tuple:
        return tuple(self.x.shape[1:])

    def subset(self, index) -> "Dataset":
        return Dataset(self.x[index], self.y[index], self.class_names, self.summary)

    def take(self, n: Optional[int]) -> "Dataset":
        return self if n is None else self.subset(slice(0, n))

    def fingerprint(self) -> dict:
        digest = hashlib.sha256(self.x.tobytes())
        digest.update(self.y.astype(np.int64).tobytes())
        return {"sha256": digest.hexdigest(), "examples": len(self),
                "shape": list(self.input_shape), "classes": len(self.class_names)}


# ---------------------------------------------------------------- data.path

def data_path(path: str) -> Path:
    """Where ``path`` (a data.path) is, as an absolute path: as given (absolute, or relative
    to the working directory), else relative to REPOSITORY_ROOT. DataError names every
    place tried."""
    given = Path(path).expanduser()
    candidates = [given] if given.is_absolute() else [given, REPOSITORY_ROOT / given]
    for candidate in candidates:
        if candidate.exists():
            return Path(os.path.abspath(candidate))   # abspath, not resolve: a symlinked folder keeps its name
    tried = ", ".join(dict.fromkeys(os.path.abspath(c) for c in candidates))   # once each (cwd may be the root)
    raise DataError(f"data.path '{path}' does not exist (tried {tried}); "
                    "pass --set data.path=<where the data is>")


def with_data_path(cfg: DataConfig) -> DataConfig:
    """``cfg`` with its data.path absolute (``data_path``), so a run's config.json and a
    published version record a path that opens from any directory; unchanged where there
    is no path or it is not found (``load_data`` then says where it looked)."""
    if not cfg.path:
        return cfg
    try:
        return replace(cfg, path=str(data_path(cfg.path)))
    except DataError:
        return cfg


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


def fashion_mnist_dir(configured: Optional[str] = None) -> Optional[Path]:
    """First directory holding the idx files: ``configured`` (default: data.fashion_mnist_dir,
    which defaults to $FASHION_MNIST_DIR), then the Debian package."""
    for candidate in (configured or DataConfig().fashion_mnist_dir, FASHION_SYSTEM_DIR):
        if candidate and _find_idx(Path(candidate), "train-images-idx3-ubyte"):
            return Path(candidate)
    return None


def load_fashion_mnist(directory: Optional[str] = None) -> tuple:
    """(train, test) Datasets from ``directory`` (see ``fashion_mnist_dir``); falls back to
    keras.datasets (needs internet)."""
    directory = fashion_mnist_dir(directory)
    if directory is not None:
        parts = {}
        for split, prefix in (("train", "train"), ("test", "t10k")):
            x = _read_idx(_find_idx(directory, f"{prefix}-images-idx3-ubyte"))
            y = _read_idx(_find_idx(directory, f"{prefix}-labels-idx1-ubyte"))
            parts[split] = Dataset(x[..., None].copy(), y.astype(np.int64), list(FASHION_CLASSES))
        return parts["train"], parts["test"]
    log.warning("Fashion-MNIST idx files not found in $FASHION_MNIST_DIR or %s; "
                "trying keras.datasets (needs internet)", FASHION_SYSTEM_DIR)
    from training.keras2 import keras
    try:
        (xtr, ytr), (xte, yte) = keras.datasets.fashion_mnist.load_data()
    except Exception as exc:  # no network: say how to provide the files
        raise DataError("Fashion-MNIST not available: install the Debian package "
                        "'dataset-fashion-mnist' or set FASHION_MNIST_DIR to a folder "
                        f"with the idx files ({exc})") from exc
    return (Dataset(xtr[..., None], ytr.astype(np.int64), list(FASHION_CLASSES)),
            Dataset(xte[..., None], yte.astype(np.int64), list(FASHION_CLASSES)))


# ---------------------------------------------------------------- .npz files

NPZ_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


def load_npz(path: str) -> tuple:
    """An .npz with x_train, y_train, x_test, y_test (and optional class_names)."""
    try:
        f = np.load(path)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:     # not a zip of arrays, or cut short
        raise DataError(f"cannot read '{path}' as an .npz file: {' '.join(str(exc).split())[:200]}") from None
    if isinstance(f, np.ndarray):           # a .npy file: np.load gives the array itself
        raise DataError(f"'{path}' holds one array, not an .npz of {', '.join(NPZ_ARRAYS)}")
    with f:
        missing = [name for name in NPZ_ARRAYS if name not in f]
        if missing:
            raise DataError(f"'{path}' lacks {', '.join(missing)} (an .npz needs {', '.join(NPZ_ARRAYS)})")
        names = [str(c) for c in f["class_names"]] if "class_names" in f else list(FASHION_CLASSES)
        def part(x, y):
            x = f[x]
            return Dataset((x[..., None] if x.ndim == 3 else x).astype(np.uint8), f[y].astype(np.int64), names)
        return part("x_train", "y_train"), part("x_test", "y_test")


# ---------------------------------------------------------------- image folders

COLOUR_MODES = {"RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV", "P", "PA"}
AUTO_SIZE_RANGE = (16, 32)   # px; larger inputs cost quadratically more CPU per step


def _decode(files: list, spec: InputSpec, base: Path) -> tuple:
    """Decode ``files`` (folders.ImageFile) with the serving decoder; unreadable ones are skipped."""
    images, labels, skipped = [], [], []
    for f in files:
        try:
            images.append(decode_image(f.path, spec))
            labels.append(f.label)
        except ImageError:
            skipped.append(f.path)
    if skipped:
        log.warning("skipped %d unreadable image(s) under %s, e.g. %s", len(skipped), base, skipped[0])
    return images, labels


def _scan(base: Path, test_fraction: float, val_fraction: float):
    try:
        return scan_folder(base, test_fraction=test_fraction, val_fraction=val_fraction)
    except FolderError as exc:
        raise DataError(str(exc)) from None


def _require_two_classes(labels, index, base: Path, what: str) -> None:
    if not len(labels):
        raise DataError(f"image folder '{base}' holds no readable {what} "
                        f"(looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    found = np.unique(labels)
    if len(found) < 2:
        raise DataError(f"image folder '{base}' has {what} for only one class "
                        f"('{index.class_names[found[0]]}'); need at least two")


def _spec(cfg_size, cfg_mode, base: Path) -> InputSpec:
    try:
        return InputSpec.of(cfg_size, cfg_size, cfg_mode)
    except MetadataError as exc:
        raise DataError(f"data.image_size / data.color_mode for '{base}': {exc}") from None


def resolve_auto_input(cfg: DataConfig, summary: dict) -> tuple:
    """(image_size, color_mode) for ``cfg``, those given as "auto" worked out from what the folder
    holds: the median short side (within AUTO_SIZE_RANGE, a multiple of 4), RGB when any colour
    file is seen. ``cfg`` is left as it is."""
    size, mode = cfg.image_size, cfg.color_mode
    if size == AUTO:
        median = summary["median_short_side"] or AUTO_SIZE_RANGE[1]
        size = int(min(AUTO_SIZE_RANGE[1], max(AUTO_SIZE_RANGE[0], median // 4 * 4)))
    if mode == AUTO:
        mode = "RGB" if COLOUR_MODES & set(summary["modes_seen"]) else "L"
    return size, mode


def input_format(train: "Dataset") -> tuple:
    """(image_size, color_mode) the images of ``train`` were decoded at: the data config's
    values as they ran, "auto" resolved."""
    height, _, channels = train.input_shape
    return int(height), "RGB" if channels == 3 else "L"


def resolve_data(cfg: DataConfig, train: "Dataset") -> dict:
    """The resolve step for the data section: {"image_size", "color_mode"} a folder's images were
    decoded at ("auto" worked out), for the ``Resolved`` record; nothing for Fashion-MNIST and
    .npz files, whose images come as they are."""
    if cfg.source != "folder":
        return {}
    size, mode = input_format(train)
    return {"image_size": size, "color_mode": mode}


def load_folder(cfg: DataConfig) -> tuple:
    """(train, validation, test) from an image folder, split as ``training.data.folders`` says."""
    base = Path(cfg.path)
    index = _scan(base, cfg.test_split, cfg.validation_split)
    summary = describe(index)
    size, mode = resolve_auto_input(cfg, summary)
    cfg = replace(cfg, image_size=size, color_mode=mode)
    log.info("image folder %s (%s): %d classes %s; split sizes %s; sizes seen %s; modes seen %s; "
             "input %dx%d %s", base, summary["layout"], len(index.class_names), index.class_names,
             summary["split_sizes"], summary["sizes_seen"], summary["modes_seen"],
             cfg.image_size, cfg.image_size, cfg.color_mode)
    for warning in summary["warnings"]:
        log.warning("%s: %s", base, warning)
    spec = _spec(cfg.image_size, cfg.color_mode, base)
    parts = {}
    for split_name in ("train", "val", "test"):
        images, labels = _decode(index.split_files(split_name), spec, base)
        shape = (0, cfg.image_size, cfg.image_size, spec.channels)
        x = np.stack(images) if images else np.zeros(shape, np.uint8)
        parts[split_name] = Dataset(x, np.asarray(labels, np.int64), list(index.class_names))
    train = parts["train"]
    _require_two_classes(train.y, index, base, "training images")
    train.summary = summary
    return train, parts["val"], parts["test"]


def load_image_folder(root: str, size: int, color_mode: str = "RGB") -> Dataset:
    """Every image of a folder as one Dataset, decoded exactly as the service decodes uploads."""
    base = Path(root)
    index = _scan(base, 0.0, 0.0)
    images, labels = _decode(index.files, _spec(size, color_mode, base), base)
    _require_two_classes(labels, index, base, "images")
    return Dataset(np.stack(images), np.asarray(labels, np.int64), list(index.class_names))


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
    """(train, validation, test) for a DataConfig; folders are split by ``training.data.folders``."""
    if cfg.source == "fashion_mnist":
        train, test = load_fashion_mnist(cfg.fashion_mnist_dir)
    elif cfg.source == "npz":
        if not cfg.path:
            raise DataError("data.source=npz needs data.path")
        train, test = load_npz(data_path(cfg.path))
    elif cfg.source == "folder":
        if not cfg.path:
            raise DataError("data.source=folder needs data.path (the folder of class sub-folders)")
        train, val, test = load_folder(replace(cfg, path=str(data_path(cfg.path))))
        return train.take(cfg.limit), val, test
    else:
        raise DataError(f"unknown data.source '{cfg.source}' (fashion_mnist, folder, npz)")
    train = train.take(cfg.limit)
    train, val = split(train, cfg.validation_split, seed=1)
    return train, val, test


def dataset_record(cfg, train: Dataset, validation: Dataset, test: Dataset) -> dict:
    """The ``dataset`` block of a published version's metadata: a fingerprint of each
    split of ``cfg`` (a DataConfig), and where the data came from."""
    record = {"train": train.fingerprint(), "validation": validation.fingerprint(),
              "test": test.fingerprint(), "source": cfg.source, "path": with_data_path(cfg).path}
    if train.summary:
        record["folder"] = {k: train.summary[k] for k in ("layout", "split_sizes", "per_class", "warnings")}
    return record
