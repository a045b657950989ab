"""Image folders unlike Fashion-MNIST, built offline, for the own-data benchmark and tests.

Each builder writes ``<root>/<class>/<file>`` and returns the root. They differ in
kind on purpose (size, colour, count, file format, transparency), because the
folder recipe must work on data nobody tuned it for:

- ``fashion64``: 500 per class of Fashion-MNIST, upscaled to 64x64 RGB JPEGs;
- ``fashion32``: 100 per class of it as 32x32 greyscale PNGs (little data);
- ``shapes``: generated colour shapes on varied backgrounds, mixed sizes
  (40-96 px, not square) and formats (transparent PNG, JPEG, BMP, GIF, WebP);
- ``digits``: scikit-learn's 1,797 handwritten 8x8 digits as 32x32 grey PNGs;
- ``glyphs``: the letters A-J rendered in the 22 text typefaces matplotlib ships, rotated, shifted, blurred and noised, light on dark or dark on light, as
  32x32 grey PNGs (notMNIST-like: classes told apart by shape across styles);
- ``textures``: six kinds of coloured procedural texture (stripes, checks, dots,
  waves, rings, speckle) at random scale, angle and palette, 32-56 px RGB JPEGs of
  varied quality (classes told apart by pattern, not by an object's outline);
- ``counts``: one to six small shapes of any kind and colour scattered on a noisy
  background, 48-80 px RGB PNGs and JPEGs (the class is how many: no single object
  or pattern tells it, and at the recipe's 32 px a shape is a few pixels wide).

The two Fashion-MNIST folders are Fashion-MNIST in another size and format; the others
are not (``NOT_FASHION``). Counts was added for the folder recipe's switches
(benchmarks/folder_switches.py) when digits and glyphs read 100% on validation with
the recipe alone; it has no hand-tuned reference in the own-data benchmark.
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


def fill_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, colour: tuple,
               rng: np.random.Generator) -> None:
    """``shape`` of radius ``r`` at (cx, cy), at a random rotation unless a circle."""
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    else:
        draw.polygon(_polygon(shape, cx, cy, r, rng.uniform(0, 2 * math.pi)), fill=colour)


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
    fill_shape(draw, shape, cx, cy, r, colour, rng)
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


GLYPHS = tuple("ABCDEFGHIJ")


def _draws_letters(path: Path) -> bool:
    """Whether a face draws every letter of GLYPHS (matplotlib's math-symbol, display and
    fallback faces draw nothing, or symbols, for some of them)."""
    from PIL import ImageFont
    try:
        font = ImageFont.truetype(str(path), 60)
    except OSError:
        return False
    for letter in GLYPHS:
        canvas = Image.new("L", (96, 96), 0)
        ImageDraw.Draw(canvas).text((10, 5), letter, fill=255, font=font)
        if np.asarray(canvas, np.float32).sum() < 255 * 50:
            return False
    return True


def glyph_fonts() -> list:
    """The TrueType text faces matplotlib ships (a dependency already): the same on every machine."""
    import matplotlib
    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return sorted(str(p) for p in folder.glob("*.ttf")
                  if not p.name.startswith(("STIXSiz", "STIXNonUni", "cmex", "cmsy", "LastResort"))
                  and _draws_letters(p))


def draw_glyph(letter: str, rng: np.random.Generator, fonts: list, side: int = 32) -> Image.Image:
    """One letter, in a random face and size, rotated up to 15 degrees, shifted, then blurred and noised."""
    from PIL import ImageFont
    ink, paper = (int(rng.integers(170, 256)), int(rng.integers(0, 90)))
    if rng.random() < 0.5:
        ink, paper = paper, ink
    big = side * 3                       # drawn large, then rotated and shrunk: smooth edges
    font = ImageFont.truetype(fonts[int(rng.integers(len(fonts)))], int(big * rng.uniform(0.55, 0.85)))
    canvas = Image.new("L", (big, big), paper)
    draw = ImageDraw.Draw(canvas)
    left, top, right, bottom = draw.textbbox((0, 0), letter, font=font)
    shift = rng.uniform(-0.08, 0.08, size=2) * big
    draw.text(((big - (right - left)) / 2 - left + shift[0], (big - (bottom - top)) / 2 - top + shift[1]),
              letter, fill=ink, font=font)
    canvas = canvas.rotate(rng.uniform(-15, 15), resample=Image.BICUBIC, fillcolor=paper)
    image = canvas.resize((side, side), Image.LANCZOS).filter(ImageFilter.GaussianBlur(rng.uniform(0, 0.8)))
    noisy = np.asarray(image, np.float32) + rng.normal(0, rng.uniform(0, 18), size=(side, side))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "L")


def glyphs(root: Path, per_class: int = 150, seed: int = 0) -> Path:
    rng, fonts = np.random.default_rng(seed), glyph_fonts()
    for letter in GLYPHS:
        out = _class_dir(root, letter)
        for i in range(per_class):
            draw_glyph(letter, rng, fonts).save(out / f"{i:04d}.png")
    return root


TEXTURES = ("stripes", "checks", "dots", "waves", "rings", "speckle")


def texture_pattern(kind: str, rng: np.random.Generator, side: int) -> np.ndarray:
    """A pattern in [0, 1] of shape (side, side): the class is the kind of pattern; its scale,
    angle, phase and position are random."""
    y, x = np.mgrid[0:side, 0:side] / side
    angle = rng.uniform(0, np.pi)
    u = x * np.cos(angle) + y * np.sin(angle)
    v = -x * np.sin(angle) + y * np.cos(angle)
    cycles = rng.uniform(2.5, 7.0)
    phase = rng.uniform(0, 2 * np.pi)
    if kind == "stripes":
        wave = np.sin(2 * np.pi * cycles * u + phase)
    elif kind == "checks":
        wave = np.sin(2 * np.pi * cycles * u + phase) * np.sin(2 * np.pi * cycles * v + phase)
    elif kind == "dots":
        cell_u, cell_v = (cycles * u + phase) % 1 - 0.5, (cycles * v) % 1 - 0.5
        wave = np.where(np.hypot(cell_u, cell_v) < rng.uniform(0.18, 0.32), 1.0, -1.0)
    elif kind == "waves":
        wave = np.sin(2 * np.pi * cycles * u + rng.uniform(0.6, 1.6) * np.sin(2 * np.pi * rng.uniform(1, 3) * v) + phase)
    elif kind == "rings":
        cx, cy = rng.uniform(-0.2, 1.2, size=2)
        wave = np.sin(2 * np.pi * cycles * np.hypot(x - cx, y - cy) + phase)
    else:   # speckle: smoothed noise, thresholded into blobs
        coarse = rng.normal(size=(int(cycles * 2) + 2,) * 2)
        blobs = np.asarray(Image.fromarray(coarse.astype(np.float32), "F").resize((side, side), Image.BICUBIC))
        wave = np.tanh(3 * blobs / (blobs.std() + 1e-6))
    return (wave - wave.min()) / (np.ptp(wave) + 1e-6)


def draw_texture(kind: str, rng: np.random.Generator) -> Image.Image:
    side = int(rng.integers(32, 57))
    pattern = texture_pattern(kind, rng, side)[..., None]
    first, second = rng.uniform(0, 255, size=(2, 3))
    pixels = pattern * first + (1 - pattern) * second + rng.normal(0, rng.uniform(4, 30), size=(side, side, 3))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    return image.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.0)))


def textures(root: Path, per_class: int = 150, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for kind in TEXTURES:
        out = _class_dir(root, kind)
        for i in range(per_class):
            draw_texture(kind, rng).save(out / f"{i:04d}.jpg", quality=int(rng.integers(60, 96)))
    return root


COUNTS = ("one", "two", "three", "four", "five", "six")


def draw_count(count: int, rng: np.random.Generator) -> Image.Image:
    """``count`` small shapes (any of SHAPES, each its own colour, size and rotation), apart
    from each other, on a noisy background of random colour: the class is how many there are."""
    side = int(rng.integers(48, 81))
    background = rng.integers(0, 256, 3)
    image = Image.new("RGB", (side, side), tuple(int(v) for v in background))
    draw = ImageDraw.Draw(image)
    placed = []
    while len(placed) < count:   # rejection sampling: six shapes of at most 0.1 * side fit easily
        r = side * rng.uniform(0.06, 0.1)
        cx, cy = rng.uniform(r, side - r, size=2)
        if any(math.hypot(cx - x, cy - y) < r + other + 2 for x, y, other in placed):
            continue
        placed.append((cx, cy, r))
        colour = rng.integers(0, 256, 3)
        while np.abs(colour - background).sum() < 150:   # a shape the background hides would mislabel
            colour = rng.integers(0, 256, 3)
        colour = tuple(int(v) for v in colour)
        fill_shape(draw, SHAPES[int(rng.integers(len(SHAPES)))], cx, cy, r, colour, rng)
    noisy = np.asarray(image, np.float32) + rng.normal(0, rng.uniform(4, 20), size=(side, side, 3))
    image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")
    return image.filter(ImageFilter.GaussianBlur(rng.uniform(0, 0.8)))


def counts(root: Path, per_class: int = 150, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for count, name in enumerate(COUNTS, 1):
        out = _class_dir(root, name)
        for i in range(per_class):
            image = draw_count(count, rng)
            image.save(out / f"{i:04d}.png") if i % 2 else image.save(out / f"{i:04d}.jpg", quality=90)
    return root


BUILDERS = {"fashion64": fashion64, "fashion32": fashion32, "shapes": shapes, "digits": digits,
            "glyphs": glyphs, "textures": textures, "counts": counts}
NOT_FASHION = ("shapes", "digits", "glyphs", "textures", "counts")

# Larger held-out folders of the same kind and format, never seen in training: a
# folder's own 10% test split is about 100 images (1 point per image), too few to
# tell a 2-point gap. Fashion-MNIST's official test images; shapes, glyphs and textures
# drawn with another seed.
# Digits has no more images (all 1,797 are in its folder).
HOLDOUTS = {
    "fashion64": lambda root: fashion_folder(root, per_class=200, size=64, mode="RGB", fmt="jpg", split="test"),
    "fashion32": lambda root: fashion_folder(root, per_class=200, size=32, mode="L", fmt="png", split="test"),
    "shapes": lambda root: shapes(root, per_class=500, seed=1),
    "glyphs": lambda root: glyphs(root, per_class=200, seed=1),
    "textures": lambda root: textures(root, per_class=300, seed=1),
    "counts": lambda root: counts(root, per_class=300, seed=1),
}


def build(name: str, root: Path, builders: dict = None) -> Path:
    """Build the named folder under ``root`` unless it is there already."""
    if root.is_dir() and any(root.iterdir()):
        return root
    return (builders or BUILDERS)[name](root)

