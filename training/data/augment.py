"""Per-mini-batch data augmentation as plain TensorFlow ops on float images in [0, 1].

It runs inside the tf.data pipeline (not as Keras layers: Random* layers cannot be
quantized), draws fresh random parameters for every image of every batch, and
never touches labels or the number of examples.
"""
from __future__ import annotations

import math

from training.keras2 import tf


def _affine(images: tf.Tensor, cfg) -> tf.Tensor:
    """Random rotation, zoom and translation in one projective transform per image."""
    batch = tf.shape(images)[0]
    height = tf.cast(tf.shape(images)[1], tf.float32)
    width = tf.cast(tf.shape(images)[2], tf.float32)

    def uniform(limit):
        return tf.random.uniform([batch], -limit, limit)

    angle = uniform(cfg.rotate * math.pi / 180.0)
    scale = 1.0 + uniform(cfg.zoom)                 # >1 zooms out, <1 zooms in
    dx = uniform(cfg.translate) * width
    dy = uniform(cfg.translate) * height
    cos, sin = tf.cos(angle) * scale, tf.sin(angle) * scale
    cx, cy = (width - 1) / 2, (height - 1) / 2
    # Maps output pixel (x, y) to input (a0 x + a1 y + a2, b0 x + b1 y + b2):
    # rotate and scale about the centre, then shift.
    a2 = cx - cos * cx + sin * cy - dx
    b2 = cy - sin * cx - cos * cy - dy
    zeros = tf.zeros([batch])
    transforms = tf.stack([cos, -sin, a2, sin, cos, b2, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=tf.shape(images)[1:3],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT")


def _erase(images: tf.Tensor, cfg) -> tf.Tensor:
    """Random erasing: with probability ``cfg.erase`` blank a random rectangle with noise."""
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    hf, wf = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    eh = tf.random.uniform([batch], 0.1, cfg.erase_size) * hf
    ew = tf.random.uniform([batch], 0.1, cfg.erase_size) * wf
    y0 = tf.random.uniform([batch]) * (hf - eh)
    x0 = tf.random.uniform([batch]) * (wf - ew)
    rows = tf.cast(tf.range(height), tf.float32)[None, :, None]
    cols = tf.cast(tf.range(width), tf.float32)[None, None, :]
    inside = ((rows >= y0[:, None, None]) & (rows < (y0 + eh)[:, None, None]) &
              (cols >= x0[:, None, None]) & (cols < (x0 + ew)[:, None, None]))
    chosen = tf.random.uniform([batch]) < cfg.erase
    mask = tf.logical_and(inside, chosen[:, None, None])[..., None]
    noise = tf.random.uniform(tf.shape(images))
    return tf.where(mask, noise, images)


def augment_batch(images: tf.Tensor, cfg) -> tf.Tensor:
    """Apply the switched-on augmentations of an AugmentConfig to a float batch [B,H,W,C]."""
    if not cfg.enabled:
        return images
    if cfg.flip:
        images = tf.image.random_flip_left_right(images)
    if cfg.rotate or cfg.zoom or cfg.translate:
        images = _affine(images, cfg)
    batch = tf.shape(images)[0]
    if cfg.contrast:
        factor = 1.0 + tf.random.uniform([batch, 1, 1, 1], -cfg.contrast, cfg.contrast)
        mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
        images = (images - mean) * factor + mean
    if cfg.brightness:
        images = images + tf.random.uniform([batch, 1, 1, 1], -cfg.brightness, cfg.brightness)
    if cfg.erase:
        images = _erase(images, cfg)
    return tf.clip_by_value(images, 0.0, 1.0)
