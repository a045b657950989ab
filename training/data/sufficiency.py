"""Enough images to train on, checked before any training: a folder too small for its
splits is refused with what is missing, instead of training a step and failing later.

Every class needs images in the training split (a class never seen cannot be learned),
and a held-out split that the config asks for must hold images: validation picks the
epoch that is kept, test is what the publish check reads.
"""
from __future__ import annotations

import numpy as np

from training.data.datasets import DataError, Dataset

MIN_TRAIN_PER_CLASS = 2     # one image per class gives the model nothing to generalise from


def _counts(data: Dataset) -> dict:
    per_class = np.bincount(np.asarray(data.y, np.int64), minlength=len(data.class_names))
    return dict(zip(data.class_names, (int(n) for n in per_class)))


def check_enough(train: Dataset, validation: Dataset, test: Dataset, *, need_validation: bool = True,
                 need_test: bool = True) -> None:
    """Raise DataError naming each split and class that lacks images."""
    missing = []
    if len(train.class_names) < 2:
        missing.append(f"at least 2 classes (found {len(train.class_names)}: {train.class_names})")
    short = {name: n for name, n in _counts(train).items() if n < MIN_TRAIN_PER_CLASS}
    if short:
        missing.append(f"at least {MIN_TRAIN_PER_CLASS} training images per class (training split: "
                       + ", ".join(f"{name} {n}" for name, n in short.items()) + ")")
    if need_validation and len(validation) == 0:
        missing.append("images in the validation split (it is empty)")
    if need_test and len(test) == 0:
        missing.append("images in the test split (it is empty)")
    if missing:
        sizes = {"train": len(train), "val": len(validation), "test": len(test)}
        raise DataError(f"too few images to train: need {'; '.join(missing)}; split sizes {sizes}. "
                        "Add images (about 10% of each class goes to validation and to test), or "
                        "lower data.validation_split / data.test_split")
