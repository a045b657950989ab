"""The publish check on measured numbers (the publish path is in test_training_export)."""
import re

import numpy as np

from training.publish.gate import check, majority_rate, refusal, required_margin


def test_majority_rate_is_the_largest_class_share():
    assert majority_rate(np.array([0, 0, 0, 1])) == 0.75
    assert majority_rate(np.array([], int)) == 0.0


def test_margin_shrinks_with_more_test_images_but_never_below_two_points():
    assert required_margin(0.1, 20) > required_margin(0.1, 2000)
    assert required_margin(0.1, 10 ** 7) == 0.02


def test_model_at_chance_is_refused_with_what_was_measured():
    labels = np.repeat(np.arange(4), 25)            # 100 images, majority rate 0.25
    report = check(0.26, labels)
    assert not report.passed
    assert re.search(r"0\.260 on 100 images .* majority-class rate 0\.250", refusal(report))


def test_clearly_better_model_passes_and_overfitting_is_a_warning():
    labels = np.repeat(np.arange(4), 25)
    report = check(0.9, labels, train_accuracy=1.0, val_accuracy=0.6)
    assert report.passed and refusal(report) == ""
    assert "overfits" in report.warnings[0]
    assert check(0.9, labels, train_accuracy=0.95, val_accuracy=0.9).warnings == []


def test_no_test_images_is_refused():
    assert "no held-out test images" in refusal(check(1.0, np.array([], int)))


def test_thresholds_are_parameters():
    labels = np.repeat(np.arange(4), 2500)          # margin 2 points by default
    assert check(0.28, labels).passed and not check(0.28, labels, min_margin=0.05).passed
    assert check(0.9, labels, 1.0, 0.8, overfit_gap=0.3).warnings == []
