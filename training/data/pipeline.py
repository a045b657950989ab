"""tf.data input pipelines: uint8 arrays in, float [0,1] batches and one-hot labels out."""
from __future__ import annotations

import math
from typing import Optional

from training.keras2 import tf

from training.data.augment import augment_batch
from training.data.datasets import Dataset


def to_float(images: tf.Tensor) -> tf.Tensor:
    """The one scaling rule; the export wrapper applies the same inside the graph."""
    return tf.cast(images, tf.float32) / 255.0


def make_dataset(data: Dataset, batch_size: int, num_classes: int, *, training: bool,
                 augment=None, seed: int = 0, cache: bool = True) -> tf.data.Dataset:
    """Shuffle (each epoch) -> batch -> augment per mini-batch -> prefetch."""
    ds = tf.data.Dataset.from_tensor_slices((data.x, data.y))
    if cache:
        ds = ds.cache()
    if training:
        ds = ds.shuffle(len(data), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)

    def prepare(images, labels):
        images = to_float(images)
        if training and augment is not None:
            images = augment_batch(images, augment)
        return images, tf.one_hot(labels, num_classes)

    return ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def steps_per_epoch(data: Dataset, batch_size: int) -> int:
    return math.ceil(len(data) / batch_size)


def training_batches(data: Dataset, cfg) -> tf.data.Dataset:
    """Shuffled, augmented batches for ``cfg`` (an ExperimentConfig)."""
    return make_dataset(data, cfg.train.batch_size, len(data.class_names), training=True,
                        augment=cfg.augment, seed=cfg.train.seed, cache=cfg.data.cache)


def validation_batches(data: Optional[Dataset], cfg) -> Optional[tf.data.Dataset]:
    """Plain batches, or None when there is no validation data."""
    if data is None or not len(data):
        return None
    return make_dataset(data, cfg.train.batch_size, len(data.class_names), training=False, cache=cfg.data.cache)
