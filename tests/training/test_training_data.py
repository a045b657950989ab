import logging

import numpy as np
import pytest
from PIL import Image

from training.data.datasets import (FASHION_CLASSES, DataError, load_fashion_mnist, load_image_folder, split)
from support.builders import fashion_dir


def write_image(path, color=(200, 30, 30), size=(40, 30), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color if mode == "RGB" else color[0]).save(path)


def test_image_folder_colour_and_grey_resized(tmp_path):
    write_image(tmp_path / "cats" / "a.png")
    write_image(tmp_path / "cats" / "b.jpg", mode="L")
    write_image(tmp_path / "dogs" / "c.jpeg", color=(10, 200, 10))
    write_image(tmp_path / "dogs" / "d.bmp")
    data = load_image_folder(str(tmp_path), size=16, color_mode="RGB")
    assert data.x.shape == (4, 16, 16, 3) and data.x.dtype == np.uint8
    assert data.class_names == ["cats", "dogs"]
    assert data.y.tolist() == [0, 0, 1, 1]
    grey = load_image_folder(str(tmp_path), size=8, color_mode="L")
    assert grey.x.shape == (4, 8, 8, 1)


def test_folder_images_are_decoded_exactly_as_the_service_decodes_uploads(tmp_path):
    """Transparency and 16-bit files were where training and serving used to differ."""
    from artifact.imaging import decode_image
    from artifact.metadata import InputSpec
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    Image.new("RGBA", (10, 10), (250, 250, 250, 0)).save(tmp_path / "a" / "clear.png")
    Image.fromarray(np.full((10, 10), 40000, np.uint16)).save(tmp_path / "b" / "wide.png")
    data = load_image_folder(str(tmp_path), size=8, color_mode="RGB")
    for path, pixels in zip([tmp_path / "a" / "clear.png", tmp_path / "b" / "wide.png"], data.x):
        np.testing.assert_array_equal(pixels, decode_image(path.read_bytes(), InputSpec.of(8, 8, "RGB")))
    assert data.x[0].max() == 0 and (data.x[1] == 40000 // 256).all()
    with pytest.raises(DataError, match="input.color_mode"):
        load_image_folder(str(tmp_path), size=8, color_mode="CMYK")


def test_corrupt_files_are_skipped_and_counted(tmp_path, caplog):
    write_image(tmp_path / "a" / "ok.png")
    write_image(tmp_path / "b" / "ok.png")
    (tmp_path / "a" / "broken.png").write_bytes(b"\x89PNG not really")
    (tmp_path / "b" / "empty.jpg").write_bytes(b"")
    (tmp_path / "b" / "notes.txt").write_text("ignored: not an image suffix")
    with caplog.at_level(logging.WARNING):
        data = load_image_folder(str(tmp_path), size=8)
    assert len(data) == 2
    assert "skipped 2 unreadable image(s)" in caplog.text


@pytest.mark.parametrize("layout, message", [
    ({}, "at least two class sub-folders"),
    ({"only": ["x.png"]}, "at least two class sub-folders"),
    ({"a": [], "b": []}, "no readable images"),
    ({"a": ["x.png"], "b": []}, "only one class"),
])
def test_bad_folders_give_clear_errors_naming_the_path(tmp_path, layout, message):
    for cls, files in layout.items():
        (tmp_path / cls).mkdir()
        for name in files:
            write_image(tmp_path / cls / name)
    with pytest.raises(DataError, match=message) as err:
        load_image_folder(str(tmp_path), size=8)
    assert str(tmp_path) in str(err.value)


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_image_folder(str(tmp_path / "nope"), size=8)


def test_fashion_loader_reads_idx_from_env_dir_first(tmp_path, monkeypatch, fixture_data):
    train, _, test = fixture_data
    fashion_dir(tmp_path, train.subset(slice(0, 50)), test.subset(slice(0, 20)))
    monkeypatch.setenv("FASHION_MNIST_DIR", str(tmp_path))
    loaded_train, loaded_test = load_fashion_mnist()
    np.testing.assert_array_equal(loaded_train.x, train.x[:50])
    np.testing.assert_array_equal(loaded_test.y, test.y[:20])
    assert loaded_train.class_names == FASHION_CLASSES


def test_split_is_stratified_and_disjoint(fixture_data):
    train = fixture_data[0]
    a, b = split(train, 0.25, seed=0)
    assert len(a) + len(b) == len(train)
    for label in range(10):
        total = np.sum(train.y == label)
        assert abs(np.sum(b.y == label) - round(total * 0.25)) <= 1
    assert a.fingerprint()["sha256"] != b.fingerprint()["sha256"]


def test_presplit_folder_loads_its_own_test_split_and_auto_input(tmp_path):
    from training.config import load_config
    from training.data.datasets import load_data, resolve_data
    for split, n in (("train", 20), ("test", 4)):
        for cls, colour in (("red", (200, 0, 0)), ("green", (0, 200, 0))):
            for i in range(n):
                write_image(tmp_path / split / cls / f"{i}.png", color=colour, size=(40, 24))
    cfg = load_config("folder", [f"data.path={tmp_path}"])
    train, val, test = load_data(cfg.data)
    assert len(test) == 8 and len(train) + len(val) == 40 and len(val) > 0
    assert resolve_data(cfg.data, train) == {"image_size": 24, "color_mode": "RGB"}   # median short side, colour seen
    assert (cfg.data.image_size, cfg.data.color_mode) == ("auto", "auto")              # the config is left as it is
    assert train.x.shape[1:] == (24, 24, 3) and train.summary["layout"] == "pre-split"
