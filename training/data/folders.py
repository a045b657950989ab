"""An image folder's layout, split and summary, read before any image is decoded.

Two layouts are accepted:

- flat: ``root/<class>/<image>``; each file goes to train, validation or test
  by a hash of its relative path, so a folder that grows keeps every old test
  image in the test split (a seed-based shuffle would reshuffle them into
  training, and a later test score would count images the model saw);
- pre-split: ``root/{train,val,test}/<class>/<image>``; the splits are used
  as given (``validation``/``valid`` and ``testing`` are accepted spellings).

Anything else (a class folder holding sub-folders, a split folder holding
images directly) is a ``FolderError`` naming the path, not a silent
"train versus test" two-class problem.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val",
               "validation": "val", "test": "test", "testing": "test"}
SPLITS = ("train", "val", "test")
FEW_IMAGES = 10          # a class with fewer images than this cannot be learned or measured
IMBALANCE_RATIO = 5.0    # largest / smallest class size above which accuracy misleads


class FolderError(ValueError):
    """The folder's layout cannot be read as classes; the message names the path."""


@dataclass
class ImageFile:
    path: Path
    key: str             # "<class>/<relative path>": what the hash split hashes
    label: int
    split: str


@dataclass
class FolderIndex:
    root: Path
    class_names: list
    files: list = field(default_factory=list)
    presplit: bool = False

    def split_files(self, split: str) -> list:
        return [f for f in self.files if f.split == split]

    def counts(self) -> dict:
        """{split: {class name: count}} for every split and class."""
        tally = Counter((f.split, f.label) for f in self.files)
        return {s: {name: tally[(s, k)] for k, name in enumerate(self.class_names)} for s in SPLITS}


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def _subdirs(path: Path) -> list:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def hash_split(key: str, test_fraction: float, val_fraction: float) -> str:
    """'test', 'val' or 'train' from a stable hash of ``key`` (not Python's salted hash())."""
    unit = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2 ** 64
    if unit < test_fraction:
        return "test"
    return "val" if unit < test_fraction + val_fraction else "train"


def _class_files(class_dir: Path) -> list:
    nested = _subdirs(class_dir)
    if nested:
        raise FolderError(f"'{nested[0]}' is a folder inside the class folder '{class_dir}'; put images directly "
                          "in one folder per class (root/<class>/<image>), or split folders "
                          "(root/train/<class>/<image>, root/val/..., root/test/...)")
    return sorted(p for p in class_dir.iterdir() if _is_image(p))


def scan_folder(root, test_fraction: float = 0.1, val_fraction: float = 0.1) -> FolderIndex:
    """Index ``root``: its classes, and each image file's split."""
    base = Path(root)
    if not base.is_dir():
        raise FolderError(f"image folder '{base}' does not exist or is not a directory")
    top = _subdirs(base)
    split_dirs = [d for d in top if d.name.lower() in SPLIT_NAMES]
    if split_dirs and len(split_dirs) == len(top):
        return _scan_presplit(base, split_dirs, test_fraction, val_fraction)
    if split_dirs:
        raise FolderError(f"'{base}' mixes split folders ({', '.join(d.name for d in split_dirs)}) with other "
                          f"folders ({', '.join(d.name for d in top if d not in split_dirs)}); use either "
                          "root/<class>/ or root/{train,val,test}/<class>/")
    if len(top) < 2:
        raise FolderError(f"image folder '{base}' needs at least two class sub-folders, found {len(top)}")
    index = FolderIndex(base, [d.name for d in top])
    for label, class_dir in enumerate(top):
        for path in _class_files(class_dir):
            key = f"{class_dir.name}/{path.name}"
            index.files.append(ImageFile(path, key, label, hash_split(key, test_fraction, val_fraction)))
    return index


def _scan_presplit(base: Path, split_dirs: list, test_fraction: float, val_fraction: float) -> FolderIndex:
    by_split = {}
    for d in split_dirs:
        loose = [p for p in d.iterdir() if _is_image(p)]
        if loose:
            raise FolderError(f"'{d}' holds images directly ({loose[0].name}); in a pre-split folder each split "
                              "holds one sub-folder per class")
        by_split[SPLIT_NAMES[d.name.lower()]] = d
    if "train" not in by_split:
        raise FolderError(f"pre-split folder '{base}' has no train/ folder (found {', '.join(sorted(by_split))})")
    class_names = [d.name for d in _subdirs(by_split["train"])]
    if len(class_names) < 2:
        raise FolderError(f"'{by_split['train']}' needs at least two class sub-folders, found {len(class_names)}")
    index = FolderIndex(base, class_names, presplit=True)
    # a split that is not given is carved out of train by the same stable hash
    carve_test = 0.0 if "test" in by_split else test_fraction
    carve_val = 0.0 if "val" in by_split else val_fraction
    for split, split_dir in sorted(by_split.items()):
        for class_dir in _subdirs(split_dir):
            if class_dir.name not in class_names:
                raise FolderError(f"class folder '{class_dir}' has no counterpart in '{by_split['train']}'")
            label = class_names.index(class_dir.name)
            for path in _class_files(class_dir):
                key = f"{class_dir.name}/{path.name}"
                chosen = hash_split(key, carve_test, carve_val) if split == "train" else split
                index.files.append(ImageFile(path, key, label, chosen))
    return index


def describe(index: FolderIndex, sample: int = 200) -> dict:
    """What was found: classes, counts per split and class, sizes and modes seen, warnings."""
    counts = index.counts()
    per_class = Counter(f.label for f in index.files)
    sizes, modes, short_sides = Counter(), Counter(), []
    for f in index.files[:: max(1, len(index.files) // sample)]:
        try:
            with Image.open(f.path) as image:      # reads the header only
                sizes[f"{image.width}x{image.height}"] += 1
                short_sides.append(min(image.size))
                modes[image.mode] += 1
        except OSError:
            modes["unreadable"] += 1
    warnings = []
    few = [name for k, name in enumerate(index.class_names) if per_class[k] < FEW_IMAGES]
    if few:
        warnings.append(f"classes with fewer than {FEW_IMAGES} images: {', '.join(few)}; "
                        "they can be neither learned nor measured reliably")
    present = [per_class[k] for k in range(len(index.class_names))]
    if min(present) and max(present) / min(present) > IMBALANCE_RATIO:
        warnings.append(f"class imbalance: largest class has {max(present)} images, smallest {min(present)}; "
                        "accuracy alone will flatter a model that favours the large classes")
    empty_test = [name for name, n in counts["test"].items() if n == 0]
    if empty_test and len(index.files) >= FEW_IMAGES * len(index.class_names):
        warnings.append(f"no test images for: {', '.join(empty_test)}")
    return {"root": str(index.root), "layout": "pre-split" if index.presplit else "hash split",
            "classes": index.class_names, "images": len(index.files),
            "split_sizes": {s: sum(c.values()) for s, c in counts.items()}, "per_class": counts,
            "sizes_seen": dict(sizes.most_common(5)), "modes_seen": dict(modes.most_common()),
            "median_short_side": sorted(short_sides)[len(short_sides) // 2] if short_sides else None,
            "warnings": warnings}
