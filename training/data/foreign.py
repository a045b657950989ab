"""Images that are not clothes, shaped like Fashion-MNIST (uint8 [N, 28, 28, 1]).

The out-of-distribution sets that the confidence and drift measurements share:
handwritten digits (scikit-learn's 1,797 8x8 digits, resized), grey patches cut from
the two photographs scikit-learn ships, uniform noise, and a brightness shift of real
images. scikit-learn ships these files, so nothing is downloaded. Every set is seeded:
the same call returns the same images.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

SIZE = 28


def digits(size: int = SIZE) -> np.ndarray:
    """scikit-learn's handwritten digits (ink 0-16 on a dark ground, as Fashion-MNIST's objects
    are bright on black), scaled to 0-255 and resized with bilinear interpolation."""
    from sklearn.datasets import load_digits
    raw = load_digits().images                      # float 0..16, [1797, 8, 8]
    small = np.clip(raw * (255.0 / 16.0), 0, 255).astype(np.uint8)
    big = [np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR)) for img in small]
    return np.stack(big)[..., None]


def photo_patches(n: int = 2000, seed: int = 0, size: int = SIZE) -> np.ndarray:
    """``n`` grey size x size patches cut at random places from scikit-learn's sample photographs
    (china.jpg and flower.jpg), alternating between the two."""
    from sklearn.datasets import load_sample_images
    photos = [np.asarray(Image.fromarray(img).convert("L")) for img in load_sample_images().images]
    rng = np.random.default_rng(seed)
    patches = []
    for i in range(n):
        photo = photos[i % len(photos)]
        top = int(rng.integers(0, photo.shape[0] - size + 1))
        left = int(rng.integers(0, photo.shape[1] - size + 1))
        patches.append(photo[top:top + size, left:left + size])
    return np.stack(patches)[..., None]


def noise(n: int = 2000, seed: int = 0, size: int = SIZE) -> np.ndarray:
    """Uniform noise over 0-255, one draw per pixel."""
    return np.random.default_rng(seed).integers(0, 256, size=(n, size, size, 1), dtype=np.uint8)


def brighter(x: np.ndarray, delta: int = 60) -> np.ndarray:
    """The same images with ``delta`` added to every pixel (clipped): a camera or lighting change."""
    return np.clip(x.astype(np.int16) + delta, 0, 255).astype(np.uint8)


# name -> images; the sets the OOD measurement reports, in its order
FOREIGN_SETS = {
    "digits": digits,
    "photo_patches": photo_patches,
    "noise": noise,
}


def foreign_sets() -> dict:
    """Every set of ``FOREIGN_SETS`` at its default size and seed."""
    return {name: make() for name, make in FOREIGN_SETS.items()}
