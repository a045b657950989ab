"""The accuracy / coverage table behind the service's min_confidence
(``training/publish/evaluate.py``), on probabilities worked out by hand."""
import numpy as np

from training.publish.evaluate import COVERAGE_THRESHOLDS, coverage_table, plot_coverage


def test_coverage_table_by_hand(tmp_path):
    probs = np.array([[0.95, 0.05],    # sure, right
                      [0.20, 0.80],    # fairly sure, wrong
                      [0.55, 0.45],    # unsure, right
                      [0.40, 0.60]])   # unsure, wrong
    y = np.array([0, 0, 0, 0])
    rows = {r["threshold"]: r for r in coverage_table(probs, y, thresholds=(0.0, 0.6, 0.8, 0.9, 0.99))}
    assert rows[0.0] == {"threshold": 0.0, "answered": 4, "share_answered": 1.0, "accuracy_answered": 0.5}
    # at the threshold itself the answer is given (the service withholds only below it)
    assert (rows[0.6]["answered"], rows[0.6]["accuracy_answered"]) == (3, 1 / 3)
    assert (rows[0.8]["answered"], rows[0.8]["accuracy_answered"]) == (2, 0.5)
    assert (rows[0.9]["share_answered"], rows[0.9]["accuracy_answered"]) == (0.25, 1.0)
    assert rows[0.99] == {"threshold": 0.99, "answered": 0, "share_answered": 0.0, "accuracy_answered": None}
    # class indices mapped to the data's terms replace the argmax
    mapped = coverage_table(probs, y, thresholds=(0.0,), predicted=np.zeros(4, int))
    assert mapped[0]["accuracy_answered"] == 1.0
    table = coverage_table(probs, y)
    assert [r["threshold"] for r in table] == list(COVERAGE_THRESHOLDS)
    plot_coverage(probs, probs.argmax(1) == y, table, tmp_path / "coverage.png", "by hand")
    assert (tmp_path / "coverage.png").stat().st_size > 0
