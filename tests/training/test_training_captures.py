"""Labelled captures -> a folder for retrain --data: only labelled captures, one folder per
class, and merged with the existing folder so that no old image changes split (no old
test image moves into training). The capture folders are written in the service's
format (artifact.captures) from the committed fixture's images."""
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from artifact import captures as fmt
from support.builders import ROOT, fixture_data
from training.cli.main import main
from training.config import DataConfig
from training.data.datasets import load_data
from training.data.folders import scan_folder
from training.jobs.captures import PREFIX, export

CLASSES = ["bag", "boot", "shirt"]
FASHION = {"bag": 8, "boot": 9, "shirt": 6}        # fixture label of each class here


def _images(label: int, n: int, start: int = 0):
    train, _, _ = fixture_data()
    return train.x[train.y == label][start:start + n, :, :, 0]


def existing_folder(root, per_class=30, presplit=False):
    for name, k in FASHION.items():
        for i, pixels in enumerate(_images(k, per_class)):
            split = ("test" if i % 5 == 0 else "train") if presplit else ""
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return root


def capture_folder(root, labels: dict, unlabelled=2, stray_labels=1):
    """Captures r0..rN as the service writes them; ``labels`` maps request id -> label."""
    (root / "fashion").mkdir(parents=True)
    entries = []
    for i, rid in enumerate([*labels, *[f"u{j}" for j in range(unlabelled)]]):
        label = labels.get(rid, "bag")
        Image.fromarray(_images(FASHION[label], 1, start=40 + i)[0]).save(root / "fashion" / f"{rid}.png")
        entries.append({"request_id": rid, "time": fmt.utc_now(), "model": "fashion", "version": 1,
                        "prediction": None, "confidence": 0.5, "probabilities": [0.5, 0.5], "file": f"fashion/{rid}.png"})
    fmt.append(root, fmt.INDEX, entries)
    fmt.append(root, fmt.LABELS, [{"request_id": rid, "label": label, "time": fmt.utc_now()}
                                  for rid, label in labels.items()])
    fmt.append(root, fmt.LABELS, [{"request_id": f"gone{j}", "label": "bag", "time": fmt.utc_now()}
                                  for j in range(stray_labels)])
    return root


def splits(root):
    return {f.path.relative_to(root).as_posix(): f.split for f in scan_folder(root).files}


def test_merged_folder_keeps_every_old_image_in_its_split_and_adds_only_labelled_captures(tmp_path):
    old = existing_folder(tmp_path / "data")
    labels = {f"r{i}": CLASSES[i % 3] for i in range(12)}
    cap = capture_folder(tmp_path / "cap", labels)
    report = export(cap, tmp_path / "out", merge_with=old)

    before, after = splits(old), splits(tmp_path / "out")
    assert {path: after[path] for path in before} == before            # every old image: same split
    assert sum(s == "test" for s in before.values()) > 0                # (there are test images to keep)
    for path in before:
        assert (tmp_path / "out" / path).read_bytes() == (old / path).read_bytes()
    new = {p: s for p, s in after.items() if p not in before}
    assert sorted(new) == sorted(f"{label}/{PREFIX}{rid}.png" for rid, label in labels.items())
    assert report["captures_added"] == 12 and report["skipped"] == {"label_without_capture": 1, "image_missing": 0}
    assert report["old_test_images_still_test"] == sum(s == "test" for s in before.values())
    assert report["classes"] == CLASSES and report["new_in_test"] == sum(s == "test" for s in new.values())

    # what retrain --data loads: the same classes, the old test images and the new ones in test
    train, val, test = load_data(DataConfig(source="folder", path=str(tmp_path / "out"), image_size=28))
    assert train.class_names == CLASSES
    assert len(test) == sum(s == "test" for s in after.values()) and len(train) + len(val) + len(test) == len(after)


def test_exporting_again_onto_the_last_export_adds_only_what_is_new(tmp_path):
    old = existing_folder(tmp_path / "data", per_class=10)
    cap = capture_folder(tmp_path / "cap", {"r0": "bag", "r1": "boot"}, unlabelled=0, stray_labels=0)
    export(cap, tmp_path / "out1", merge_with=old)
    fmt.append(cap, fmt.LABELS, [{"request_id": "r1", "label": "shirt", "time": fmt.utc_now()}])   # relabelled
    report = export(cap, tmp_path / "out2", merge_with=tmp_path / "out1")
    assert (report["captures_added"], report["captures_already_present"]) == (1, 1)
    assert (tmp_path / "out2" / "shirt" / f"{PREFIX}r1.png").is_file()


def test_a_pre_split_folder_stays_split_as_it_was(tmp_path):
    old = existing_folder(tmp_path / "data", per_class=20, presplit=True)
    cap = capture_folder(tmp_path / "cap", {f"r{i}": CLASSES[i % 3] for i in range(30)}, unlabelled=0)
    report = export(cap, tmp_path / "out", merge_with=old)
    before, after = splits(old), splits(tmp_path / "out")
    assert {path: after[path] for path in before} == before and report["layout"] == "pre-split"
    new = [p for p in after if p not in before]
    assert len(new) == 30 and {p.split("/")[0] for p in new} == {"train", "test"}   # by each capture's own hash
    # test/ is used as given; train/ has val carved out of it by the same hash as before
    assert all(after[p] == "test" if p.startswith("test/") else after[p] in ("train", "val") for p in new)


def test_without_a_folder_to_merge_with_the_captures_alone_are_the_folder(tmp_path, capsys):
    cap = capture_folder(tmp_path / "cap", {f"r{i}": CLASSES[i % 2] for i in range(6)})
    main(["captures", "--capture-dir", str(cap), "--out", str(tmp_path / "out")])
    report = json.loads(capsys.readouterr().out)
    assert report["classes"] == ["bag", "boot"] and report["captures_added"] == 6 and report["old_images"] == 0


@pytest.mark.parametrize("label,says", [("test", "split name"), ("a/b", "cannot be a class folder"),
                                        ("coat", "not a class of")])
def test_a_label_that_cannot_be_a_class_folder_writes_nothing(tmp_path, label, says):
    old = existing_folder(tmp_path / "data", per_class=5)
    cap = capture_folder(tmp_path / "cap", {"r0": "bag"}, unlabelled=0, stray_labels=0)
    fmt.append(cap, fmt.LABELS, [{"request_id": "r0", "label": label, "time": fmt.utc_now()}])
    with pytest.raises(fmt.CaptureError, match=says):
        export(cap, tmp_path / "out", merge_with=old)
    assert not (tmp_path / "out").exists()


def test_the_feedback_command_checks_the_id_and_the_class_and_the_last_label_wins(tmp_path, capsys):
    models = tmp_path / "models" / "fashion" / "1"
    models.mkdir(parents=True)
    shutil.copy(ROOT / "models" / "fashion-small" / "2" / "metadata.json", models)
    cap = capture_folder(tmp_path / "cap", {}, unlabelled=1, stray_labels=0)
    base = ["feedback", "--capture-dir", str(cap), "--models-dir", str(tmp_path / "models")]
    for label in ("Bag", "Coat"):
        main([*base, "--request-id", "u0", "--label", label])
        line = json.loads(capsys.readouterr().out)
        assert (line["request_id"], line["label"], line["model"], line["version"]) == ("u0", label, "fashion", 1)
    assert fmt.read_labels(cap) == {"u0": "Coat"}
    for rid, label, says in (("nosuch", "Bag", "'nosuch' was not captured"), ("u0", "Spaceship", "not a class")):
        with pytest.raises(SystemExit) as exit_:
            main([*base, "--request-id", rid, "--label", label])
        assert exit_.value.code == 2 and says in capsys.readouterr().err
    assert fmt.read_labels(cap) == {"u0": "Coat"}
    assert np.array_equal(np.asarray(Image.open(cap / "fashion" / "u0.png")), _images(8, 1, start=40)[0])
