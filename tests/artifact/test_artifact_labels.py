"""artifact.labels: stable and canary labels written atomically, read as they apply now."""
import json

import pytest

from artifact import labels as L
from artifact.metadata import MetadataError
from support.service import publish_copy


@pytest.fixture
def repo(tmp_path, artifact):
    for version in (1, 2, 3):
        publish_copy(artifact, tmp_path / "fashion", version)
    return tmp_path


def test_no_file_means_the_newest_version_is_stable(repo):
    assert L.read(repo, "fashion") == L.Labels()
    assert L.effective(L.read(repo, "fashion"), [1, 2, 3]) == L.Labels(3, None)


def test_labels_round_trip_and_the_file_is_plain_json(repo):
    L.write(repo, "fashion", L.Labels(2, L.Canary(3, 30)))
    assert L.read(repo, "fashion") == L.Labels(2, L.Canary(3, 30, False))
    assert json.loads((repo / "fashion" / "labels.json").read_text()) == {
        "stable": 2, "canary": {"version": 3, "percent": 30, "shadow": False}}
    assert not list((repo / "fashion").glob(".labels-*"))          # no temporary file left


@pytest.mark.parametrize("labels,message", [
    (L.Labels(7), "not published"),
    (L.Labels(2, L.Canary(2, 10)), "both stable and canary"),
    (L.Labels(None, L.Canary(3, 10)), "both stable and canary"),      # unset stable is the newest, 3
])
def test_a_label_on_a_version_that_cannot_take_it_is_refused(repo, labels, message):
    with pytest.raises(MetadataError, match=message):
        L.write(repo, "fashion", labels)
    assert not (repo / "fashion" / "labels.json").exists()


@pytest.mark.parametrize("canary", [{"version": 0, "percent": 5}, {"version": 2, "percent": 120},
                                    {"version": 2, "percent": 5, "shadow": "yes"}, {"version": 2, "pct": 5}])
def test_bad_canary_values_are_refused(canary):
    with pytest.raises(MetadataError):
        L.Labels.from_dict({"stable": 1, "canary": canary})


def test_labels_on_retired_versions_fall_back():
    labels = L.Labels(2, L.Canary(3, 50))
    assert L.effective(labels, [1, 3]) == L.Labels(3, None)        # stable gone: newest; canary then stable
    assert L.effective(labels, [1, 2]) == L.Labels(2, None)        # canary gone
