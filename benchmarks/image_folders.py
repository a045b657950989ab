"""Image folders unlike Fashion-MNIST, built offline, for the own-data benchmark and tests.

Each builder writes ``<root>/<class>/<file>`` and returns the root. They differ in
kind on purpose (size, colour, count, file format, transparency), because the
folder recipe must work on data nobody tuned it for:

- ``fashion64``: 500 per class of Fashion-MNIST, upscaled to 64x64 RGB JPEGs;
- ``fashion32``: 100 per class of it as 32x32 greyscale PNGs (little data);
- ``shapes``: generated colour shapes on varied backgrounds, mixed sizes
  (40-96 px, not square) and formats (transparent PNG, JPEG, BMP, GIF, WebP);
- ``digits``: scikit-learn's 1,797 handwritten 8x8 digits as 32x32 grey PNGs.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "data" / "fashion_fixture.npz"


def _fashion(split: str = "train"):
    """Fashion-MNIST images of ``split`` (train or test): the Debian idx files, else the committed fixture."""
    sys.path.insert(0, str(REPO))
    from training.data.datasets import FASHION_CLASSES, fashion_mnist_dir, load_fashion_mnist
    if fashion_mnist_dir() is not None:
        data = load_fashion_mnist()[0 if split == "train" else 1]
        return data.x[..., 0], data.y, FASHION_CLASSES
    with np.load(FIXTURE) as f:
        return f[f"x_{split}"].reshape(-1, 28, 28), f[f"y_{split}"], FASHION_CLASSES


def _class_dir(root: Path, name: str) -> Path:
    path = root / name.replace("/", "-").replace(" ", "_")
    path.mkdir(parents=True, exist_ok=True)
    return path


def fashion_folder(root: Path, per_class: int, size: int, mode: str, fmt: str, seed: int = 0,
                   split: str = "train") -> Path:
    """``per_class`` random Fashion-MNIST images of ``split`` per class, resized and saved as ``fmt``."""
    x, y, names = _fashion(split)
    rng = np.random.default_rng(seed)
    for label, name in enumerate(names):
        members = rng.permutation(np.flatnonzero(y == label))[:per_class]
        out = _class_dir(root, name)
        for i in members:
            image = Image.fromarray(x[i], "L").resize((size, size), Image.BICUBIC).convert(mode)
            image.save(out / f"{i:05d}.{fmt}", quality=90) if fmt == "jpg" else image.save(out / f"{i:05d}.{fmt}")
    return root


def fashion64(root: Path) -> Path:
    return fashion_folder(root, per_class=500, size=64, mode="RGB", fmt="jpg")


def fashion32(root: Path) -> Path:
    return fashion_folder(root, per_class=100, size=32, mode="L", fmt="png")


SHAPES = ("circle", "square", "triangle", "cross")
SHAPE_FORMATS = ("png_alpha", "jpg", "bmp", "gif", "webp")


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> list:
    if shape == "triangle":
        corners = [angle + k * 2 * math.pi / 3 for k in range(3)]
        return [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in corners]
    if shape == "square":
        corners = [angle + math.pi / 4 + k * math.pi / 2 for k in range(4)]
        return [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in corners]
    # cross: a plus sign of two bars, as one 12-corner polygon
    w = r / 3
    points = [(w, r), (w, w), (r, w), (r, -w), (w, -w), (w, -r),
              (-w, -r), (-w, -w), (-r, -w), (-r, w), (-w, w), (-w, r)]
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + px * c - py * s, cy + px * s + py * c) for px, py in points]


def draw_shape(shape: str, rng: np.random.Generator, transparent: bool) -> Image.Image:
    """One shape of random colour, size, position and rotation on a random background."""
    width, height = (int(v) for v in rng.integers(40, 97, size=2))
    side = min(width, height)
    background = (0, 0, 0, 0) if transparent else tuple(int(v) for v in rng.integers(0, 256, 3)) + (255,)
    image = Image.new("RGBA", (width, height), background)
    draw = ImageDraw.Draw(image)
    colour = tuple(int(v) for v in rng.integers(0, 256, 3)) + (255,)
    r = side * rng.uniform(0.25, 0.45)
    cx = rng.uniform(r, width - r)
    cy = rng.uniform(r, height - r)
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    else:
        draw.polygon(_polygon(shape, cx, cy, r, rng.uniform(0, 2 * math.pi)), fill=colour)
    if not transparent:   # sensor-like noise, so colour alone never tells the class
        noise = rng.normal(0, 12, (height, width, 3))
        rgb = np.clip(np.asarray(image)[..., :3] + noise, 0, 255).astype(np.uint8)
        image = Image.fromarray(rgb, "RGB").filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.0)))
    return image


def shapes(root: Path, per_class: int = 250, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for shape in SHAPES:
        out = _class_dir(root, shape)
        for i in range(per_class):
            fmt = SHAPE_FORMATS[i % len(SHAPE_FORMATS)]
            image = draw_shape(shape, rng, transparent=(fmt == "png_alpha"))
            if fmt == "png_alpha":
                image.save(out / f"{i:04d}.png")
            elif fmt == "gif":
                image.convert("RGB").convert("P", palette=Image.ADAPTIVE).save(out / f"{i:04d}.gif")
            else:
                image.convert("RGB").save(out / f"{i:04d}.{fmt}")
    return root


def digits(root: Path) -> Path:
    from sklearn.datasets import load_digits   # ships its data: no download
    data = load_digits()
    for i, (pixels, label) in enumerate(zip(data.images, data.target)):
        grey = (pixels * (255.0 / 16.0)).astype(np.uint8)
        image = Image.fromarray(grey, "L").resize((32, 32), Image.BICUBIC)
        image.save(_class_dir(root, str(label)) / f"{i:04d}.png")
    return root


BUILDERS = {"fashion64": fashion64, "fashion32": fashion32, "shapes": shapes, "digits": digits}

# Larger held-out folders of the same kind and format, never seen in training: a
# folder's own 10% test split is about 100 images (1 point per image), too few to
# tell a 2-point gap. Fashion-MNIST's official test images; shapes from another seed.
# Digits has no more images (all 1,797 are in its folder).
HOLDOUTS = {
    "fashion64": lambda root: fashion_folder(root, per_class=200, size=64, mode="RGB", fmt="jpg", split="test"),
    "fashion32": lambda root: fashion_folder(root, per_class=200, size=32, mode="L", fmt="png", split="test"),
    "shapes": lambda root: shapes(root, per_class=500, seed=1),
}


def build(name: str, root: Path, builders: dict = None) -> Path:
    """Build the named folder under ``root`` unless it is there already."""
    if root.is_dir() and any(root.iterdir()):
        return root
    return (builders or BUILDERS)[name](root)

