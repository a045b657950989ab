"""The own-data benchmark's folders and pass criterion (benchmarks/image_folders.py,
benchmarks/own_data.py): the new folders are real image folders the project reads, and the
criterion uses the confidence interval of the gap, not its mean alone; the folder-transfer
benchmark's summary (benchmarks/folder_transfer.py) pairs its variants by seed, and the
folder recipe's switches follow benchmarks/folder_switches.py's rule."""
import json
import sys

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from support.builders import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import folder_switches  # noqa: E402
import folder_transfer  # noqa: E402
import folder_variants  # noqa: E402
import image_folders  # noqa: E402
import own_data  # noqa: E402


@pytest.mark.parametrize("name, classes, mode", [("glyphs", 10, "L"), ("textures", 6, "RGB"), ("counts", 6, "RGB")])
def test_the_new_folders_are_read_by_the_folder_loader(tmp_path, name, classes, mode):
    from training.data.folders import scan_folder
    root = image_folders.BUILDERS[name](tmp_path / name, per_class=12, seed=3)
    scanned = scan_folder(root)
    assert len(scanned.class_names) == classes
    assert len(scanned.files) == 12 * classes
    assert {f.label for f in scanned.files} == set(range(classes))
    assert {Image.open(f.path).mode for f in scanned.files} == {mode}
    assert name in image_folders.NOT_FASHION and name in image_folders.HOLDOUTS
    # own_data runs the folders it has a hand-tuned reference for; counts has none
    assert (name in own_data.REFERENCES) == (name != "counts")


def test_a_count_image_holds_as_many_shapes_as_its_class_says():
    rng = np.random.default_rng(5)
    for count in range(1, 7):
        pixels = np.asarray(image_folders.draw_count(count, rng), np.float32)
        background = np.median(pixels.reshape(-1, 3), axis=0)
        # shapes differ from the background by at least 150 (summed over channels); noise by far less
        ink = np.abs(pixels - background).sum(axis=-1) > 90
        _, blobs = ndimage.label(ndimage.binary_opening(ink))
        assert blobs == count, f"{count} shapes drawn, {blobs} seen"


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


def test_folder_transfer_pairs_each_variant_with_transfer_by_seed():
    # scratch is 10 points ahead on every seed, give or take 0.5: paired, that is decided,
    # though the seeds' spread (20 points) would hide it from an unpaired test
    transfer = {1: 0.40, 2: 0.60, 3: 0.80}
    scratch = {1: 0.505, 2: 0.70, 3: 0.895}
    former = {1: 0.45, 2: 0.55, 3: 0.81}
    lines = [_transfer_line(v, s, acc) for v, runs in
             (("transfer", transfer), ("scratch", scratch), ("transfer-former-head", former)) for s, acc in runs.items()]
    out = folder_transfer.summary("glyphs", lines)
    assert out["seeds"] == [1, 2, 3] and out["transfer"]["holdout_accuracy"]["mean"] == 0.6
    ahead = out["scratch"]["minus_transfer_holdout_pp"]
    assert ahead["test"] == "paired t" and ahead["verdict"] == "higher" and ahead["p"] < 0.05
    assert ahead["diff"] == 10.0 and ahead["ci95"][0] > 0
    assert out["transfer-former-head"]["minus_transfer_holdout_pp"]["verdict"] == "not shown"
    assert out["scratch"]["minus_transfer_val_pp"] == ahead          # the lines read the same on both here
    assert "minus_transfer_holdout_pp" not in out["transfer"]


def _transfer_line(variant, seed, holdout):
    return {"benchmark": "folder_transfer", "folder": "glyphs", "per_class": 30, "seed": seed, "variant": variant,
            "seconds": 1.0, "val_accuracy": holdout, "test_accuracy": holdout, "holdout_accuracy": holdout}


def test_folder_transfer_sizes_stage_2_as_its_benchmark_chose_on_validation():
    """The committed benchmark lines (reports/folder_transfer.jsonl) against the preset: its stage 2
    in optimizer steps must not read lower on validation than the former 5 passes on any folder."""
    from training.config import load_config
    report = ROOT / "reports" / "folder_transfer.jsonl"
    assert load_config("folder_transfer").transfer.fine_tune_steps == "auto"
    folders = sorted({line["folder"] for line in map(json.loads, report.read_text().splitlines())})
    assert len(folders) >= 2, folders
    for folder in folders:
        lines = own_data.recorded_runs(report, "folder_transfer", folder, ("variant", "seed"))
        summary = folder_transfer.summary(folder, lines)
        if "transfer-5-epochs" not in summary:
            continue
        former = summary["transfer-5-epochs"]
        assert len(summary["seeds"]) >= 2, folder
        assert former["val_accuracy"]["mean"] <= summary["transfer"]["val_accuracy"]["mean"], (folder, former)
        assert former["minus_transfer_val_pp"]["verdict"] != "higher", (folder, former)


def test_folder_switches_pools_folders_pairing_each_folder_and_seed():
    lines = [_switch_line(folder, seed, variant, 0.70 + 0.01 * seed + (0.03 if variant == "dirac" else 0.0))
             for folder in ("textures", "shapes") for seed in (1, 2) for variant in ("recipe", "dirac")]
    out = folder_switches.pooled(lines)
    assert out["folder"] == "all" and out["folders"] == ["shapes", "textures"]
    # four (folder, seed) pairs, each +3 points: an exact shift, not two seeds averaged over folders
    assert out["dirac"]["minus_recipe_val_pp"]["diff"] == pytest.approx(3.0)
    assert out["dirac"]["minus_recipe_val_pp"]["test"] == "exact"
    assert folder_switches.chosen(out, [], "dirac")
    lower = {"dirac": {"minus_recipe_val_pp": {"verdict": "lower"}}}
    assert not folder_switches.chosen(out, [lower], "dirac")


def _switch_line(folder, seed, variant, accuracy):
    return {"benchmark": "folder_switches", "folder": folder, "seed": seed, "variant": variant, "seconds": 1.0,
            "val_accuracy": accuracy, "holdout_accuracy": accuracy, "test_accuracy": accuracy}


def test_a_switch_of_what_is_published_publishes_the_recipe_run_again(tmp_path):
    """Test-time augmentation changes the exported graphs, not training: its variant is a
    ``publish`` of the recipe's run with the same seed, and without that run it says so."""
    assert folder_switches.VARIANTS["tta"][0] == "publish"
    assert folder_switches.REPUBLISH == {"tta": folder_switches.BASELINE}
    assert all(command[0] == "train" for v, command in folder_switches.VARIANTS.items() if v != "tta")
    with pytest.raises(SystemExit, match="no finished run .*counts_recipe_42/counts.*run its variant first"):
        folder_variants.run_variant(folder_switches.VARIANTS["tta"], "counts_tta_42", "counts", tmp_path, None,
                                    tmp_path, 42, run_of="counts_recipe_42")
    assert not (tmp_path / "models").exists()


def test_the_folder_recipe_takes_the_switches_its_benchmark_chose_on_validation():
    """The committed lines (reports/folder_switches.jsonl) against ``--preset folder``: a switch is on
    exactly where the benchmark's rule chose it (pooled over its folders, higher on validation at
    p < 0.05, lower on no folder); a switch not measured yet is not judged."""
    from training.config import load_config
    per_folder = folder_switches.recorded(ROOT / "reports" / "folder_switches.jsonl", folder_switches.DEFAULT_FOLDERS)
    assert sorted(per_folder) == sorted(folder_switches.DEFAULT_FOLDERS)
    assert all(len({line["seed"] for line in lines}) >= 2 for lines in per_folder.values()), per_folder.keys()
    pooled = folder_switches.pooled([line for lines in per_folder.values() for line in lines])
    summaries = [folder_switches.summary(f, lines) for f, lines in per_folder.items()]
    recipe = load_config("folder")
    judged = [v for v in folder_switches.VARIANTS if v != folder_switches.BASELINE and v in pooled]
    assert "dirac" in judged
    for variant in judged:
        # the switch is on where setting it changes nothing (the project's own --set parsing)
        on = load_config("folder", folder_switches.overrides(folder_switches.SETTINGS[variant])[1::2]) == recipe
        assert on == folder_switches.chosen(pooled, summaries, variant), (variant, pooled[variant])
