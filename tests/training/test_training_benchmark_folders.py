"""The own-data benchmark's folders and pass criterion (benchmarks/image_folders.py,
benchmarks/own_data.py): the new folders are real image folders the project reads, and the
criterion uses the confidence interval of the gap, not its mean alone."""
import sys

import numpy as np
import pytest

from support.builders import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import image_folders  # noqa: E402
import own_data  # noqa: E402


@pytest.mark.parametrize("name, classes, mode", [("glyphs", 10, "L"), ("textures", 6, "RGB")])
def test_the_new_folders_are_read_by_the_folder_loader(tmp_path, name, classes, mode):
    from training.data.folders import scan_folder
    builder = {"glyphs": image_folders.glyphs, "textures": image_folders.textures}[name]
    root = builder(tmp_path / name, per_class=12, seed=3)
    scanned = scan_folder(root)
    assert len(scanned.class_names) == classes
    assert len(scanned.files) == 12 * classes
    assert {f.label for f in scanned.files} == set(range(classes))
    assert name in image_folders.NOT_FASHION and name in image_folders.HOLDOUTS and name in own_data.REFERENCES


def test_every_glyph_font_draws_every_letter():
    fonts = image_folders.glyph_fonts()
    assert len(fonts) >= 10
    rng = np.random.default_rng(0)
    for font in fonts:
        pixels = np.asarray(image_folders.draw_glyph("E", rng, [font]), np.float32)
        assert pixels.std() > 10, f"{font} draws an empty E"


def test_the_criterion_reads_the_interval_not_the_mean():
    # the same mean gap (+0.2 points): tight seeds pass, scattered seeds show nothing
    assert own_data.summary("x", _lines([0.1, 0.2, 0.3]))["verdict"] == "passes"
    scattered = own_data.summary("x", _lines([-3.0, 0.6, 3.0]))
    assert scattered["verdict"] == "not shown" and scattered["gap_ci95_pp"][0] < -2
    assert own_data.summary("x", _lines([-5.0, -5.3, -4.8]))["verdict"] == "fails"
    # a mean below the margin with an interval that reaches above it decides nothing
    assert own_data.summary("x", _lines([-9.0, -3.0, 0.5]))["verdict"] == "not shown"


def _lines(gaps):
    return [{"seed": i, "majority_rate": 0.1, "recipe_accuracy": 0.9, "recipe_holdout_accuracy": None,
             "recipe_seconds": 1.0, "reference_accuracy": 0.9, "reference_seconds": 1.0,
             "recipe_minus_reference_pp": gap, "gap_measured_on": "test split"} for i, gap in enumerate(gaps)]
