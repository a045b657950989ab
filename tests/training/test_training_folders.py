"""Image folder layouts, the stable hash split and the summary (no TensorFlow needed)."""
import pytest
from PIL import Image

from training.data.folders import FolderError, describe, hash_split, scan_folder


def _write(path, value=0, size=(8, 8), mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value).save(path)


def _flat(root, classes=("a", "b"), per_class=20, start=0):
    for name in classes:
        for i in range(start, start + per_class):
            _write(root / name / f"{i:04d}.png", value=i % 255)
    return root


def test_flat_folder_is_hash_split_into_three_parts(tmp_path):
    index = scan_folder(_flat(tmp_path, per_class=200), test_fraction=0.1, val_fraction=0.2)
    sizes = {s: len(index.split_files(s)) for s in ("train", "val", "test")}
    assert index.class_names == ["a", "b"] and not index.presplit
    assert sum(sizes.values()) == 400
    assert 20 <= sizes["test"] <= 60 and 50 <= sizes["val"] <= 110, sizes


def test_hash_split_keeps_old_test_images_in_test_when_files_are_added(tmp_path):
    before = scan_folder(_flat(tmp_path, per_class=50))
    old = {f.key: f.split for f in before.files}
    after = scan_folder(_flat(tmp_path, per_class=80, start=50))
    assert len(after.files) == len(before.files) + 160
    assert {f.key: f.split for f in after.files if f.key in old} == old
    assert any(split == "test" for split in old.values())


def test_hash_split_is_deterministic_and_honours_fractions():
    keys = [f"class/{i}.png" for i in range(5000)]
    splits = [hash_split(k, 0.1, 0.1) for k in keys]
    assert splits == [hash_split(k, 0.1, 0.1) for k in keys]
    assert abs(splits.count("test") / 5000 - 0.1) < 0.02
    assert all(hash_split(k, 0.0, 0.0) == "train" for k in keys[:100])


def test_presplit_folder_uses_its_splits_as_given(tmp_path):
    for split, n in (("train", 12), ("val", 3), ("test", 5)):
        _flat(tmp_path / split, classes=("cat", "dog"), per_class=n)
    index = scan_folder(tmp_path)
    assert index.presplit and index.class_names == ["cat", "dog"]
    assert [len(index.split_files(s)) for s in ("train", "val", "test")] == [24, 6, 10]
    assert all(f.path.parent.parent.name == f.split for f in index.files)


def test_presplit_without_val_carves_validation_out_of_train_only(tmp_path):
    _flat(tmp_path / "train", per_class=100)
    _flat(tmp_path / "test", per_class=7)
    index = scan_folder(tmp_path, val_fraction=0.2)
    assert len(index.split_files("test")) == 14
    assert all(f.path.parent.parent.name == "train" for f in index.split_files("val"))
    assert index.split_files("val")


@pytest.mark.parametrize("layout, message", [
    ({"a/deeper/x.png", "b/y.png"}, "inside the class folder"),
    ({"train/a/x.png", "train/b/y.png", "other/a/z.png"}, "mixes split folders"),
    ({"train/x.png", "test/a/y.png"}, "holds images directly"),
    ({"val/a/x.png", "val/b/x.png"}, "no train/ folder"),
    ({"only/x.png"}, "at least two class"),
])
def test_bad_nesting_is_a_clear_error(tmp_path, layout, message):
    for rel in layout:
        _write(tmp_path / rel)
    with pytest.raises(FolderError, match=message):
        scan_folder(tmp_path)


def test_describe_reports_counts_sizes_modes_and_warnings(tmp_path):
    _flat(tmp_path, classes=("big",), per_class=60)
    for i in range(4):
        _write(tmp_path / "tiny" / f"{i}.png", size=(16, 12), mode="RGB")
    report = describe(scan_folder(tmp_path))
    assert report["classes"] == ["big", "tiny"] and report["images"] == 64
    assert sum(report["split_sizes"].values()) == 64
    assert set(report["modes_seen"]) == {"L", "RGB"} and "8x8" in report["sizes_seen"]
    text = " ".join(report["warnings"])
    assert "fewer than 10 images: tiny" in text and "imbalance" in text


def test_balanced_folder_has_no_warnings(tmp_path):
    assert describe(scan_folder(_flat(tmp_path, per_class=30)))["warnings"] == []
