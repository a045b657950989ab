"""Scoring, the publish policies and the retrain decision on hand-made answers (no TensorFlow)."""
import json

import numpy as np
import pytest

from training.data.datasets import Dataset
from training.jobs.promotion import Decision, decide
from training.publish.policies import (EXIT_CHECK, EXIT_PUBLISHED, EXIT_WORSE, NoClassDrops, NotWorseThanServed,
                                       PublishCheck, against_served, compare)
from training.publish.scoring import map_labels, score

LABELS = ["a", "b", "c"]
Y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
TEST = Dataset(np.zeros((12, 2, 2, 1), np.uint8), Y, LABELS)


def predictions(wrong: dict) -> np.ndarray:
    """The true labels with ``wrong`` = {index: predicted label} changed."""
    y = Y.copy()
    for i, label in wrong.items():
        y[i] = label
    return y


def test_score_gives_accuracy_recall_and_the_report_from_one_confusion_matrix():
    s = score(Y, predictions({0: 1, 4: 2, 5: 0}), LABELS)
    assert s.accuracy == pytest.approx(9 / 12, abs=1e-4) and s.examples == 12
    assert s.recalls() == {"a": 0.75, "b": 0.5, "c": 1.0}
    report = s.report()
    assert report["confusion"] == [[3, 1, 0], [1, 2, 1], [0, 0, 4]]
    assert report["per_class"]["c"] == {"precision": 0.8, "recall": 1.0, "f1": 0.8889, "support": 4}


def test_map_labels_by_name_counts_unknown_classes_wrong():
    # The current model knew classes in another order and lacked "c".
    current_labels = ["b", "a"]
    mapped = map_labels(np.array([0, 1, 1]), current_labels, LABELS)
    assert mapped.tolist() == [1, 0, 0]
    s = score(np.array([2, 2]), map_labels(np.array([0, 1]), current_labels, LABELS), LABELS)
    assert s.accuracy == 0.0 and s.examples == 2 and s.recalls() == {"c": 0.0}
    unknown = score(np.array([0, 1]), np.array([-1, 1]), LABELS)
    assert unknown.accuracy == 0.5 and unknown.per_class()["a"]["precision"] == 0.0


def test_accuracy_metric_allows_the_tolerance_and_no_more():
    current = score(Y, predictions({0: 1}), LABELS)                  # 11/12
    same = score(Y, predictions({4: 0}), LABELS)                     # 11/12, another error
    worse = score(Y, predictions({4: 0, 8: 0}), LABELS)              # 10/12
    assert compare("tflite", same, current, "accuracy", 0.0).passed
    assert not compare("tflite", worse, current, "accuracy", 0.05).passed
    assert compare("tflite", worse, current, "accuracy", 0.09).passed
    c = compare("tflite", worse, current, "accuracy", 0.05)
    assert c.accuracy_delta == pytest.approx(-1 / 12, abs=1e-4)
    assert c.per_class_delta == {"a": 0.25, "b": -0.25, "c": -0.25}
    assert "tflite accuracy" in c.reason


def test_class_floor_refuses_a_better_average_that_gives_up_a_class():
    current = score(Y, predictions({0: 1, 4: 0, 8: 0}), LABELS)      # 9/12, every class 0.75
    candidate = score(Y, predictions({8: 0, 9: 0}), LABELS)          # 10/12, but c drops to 0.5
    assert compare("saved_model", candidate, current, "accuracy", 0.0).passed
    floor = compare("saved_model", candidate, current, "class_floor", 0.1)
    assert not floor.passed and "worst class change c -0.25" in floor.reason
    assert compare("saved_model", candidate, current, "class_floor", 0.3).passed
    with pytest.raises(ValueError, match="unknown metric"):
        compare("tflite", candidate, current, "f1", 0.0)
    with pytest.raises(ValueError, match="unknown metric"):
        against_served("f1", {}, 0.0)


def scores(wrong):
    return {fmt: score(Y, predictions(wrong), LABELS) for fmt in ("saved_model", "tflite")}


def test_every_policy_judges_through_one_interface():
    served = scores({0: 1})
    for policy, candidate, passed, exit_code in [
            (PublishCheck(), scores({}), True, EXIT_CHECK),
            (PublishCheck(), scores({i: (y + 1) % 3 for i, y in enumerate(Y) if i % 3}), False, EXIT_CHECK),
            (NotWorseThanServed(served, 0.0), scores({4: 0}), True, EXIT_WORSE),
            (NotWorseThanServed(served, 0.0), scores({4: 0, 8: 0}), False, EXIT_WORSE),
            (NoClassDrops(served, 0.1), scores({8: 0, 9: 0}), False, EXIT_WORSE)]:
        verdict = policy.judge(candidate, TEST, None)
        assert (verdict.passed, verdict.exit_code) == (passed, exit_code), (policy, verdict.reason)
        assert verdict.reason and json.loads(json.dumps(verdict.record)) == verdict.record


def decision(candidate_wrong, current_wrong=None, **kw):
    metric, tolerance = kw.pop("metric", "accuracy"), kw.pop("tolerance", 0.0)
    candidate = scores(candidate_wrong)
    current = scores(current_wrong) if current_wrong is not None else None
    d = Decision(model="m", metric=metric, tolerance=tolerance, start={"from": "version", "version": 1},
                 candidate=candidate, current=current, current_version=1 if current else None, **kw)
    policies = [PublishCheck()] + ([against_served(metric, current, tolerance)] if current else [])
    return d, [p.judge(candidate, TEST, None) for p in policies]


def test_decide_checks_first_then_compares_every_format():
    better = decide(*decision({}, {0: 1}))
    assert (better.exit_code, better.decision) == (EXIT_PUBLISHED, "publish")
    assert [c["format"] for c in better.comparisons] == ["saved_model", "tflite"]
    worse = decide(*decision({0: 1, 4: 0}, {}))
    assert (worse.exit_code, worse.decision) == (EXIT_WORSE, "refused: worse than current")
    chance = {i: (y + 1) % 3 for i, y in enumerate(Y) if i % 3}
    unlearned = decide(*decision(chance, {0: 1}))
    assert unlearned.exit_code == EXIT_CHECK and unlearned.decision == "refused: publish check"
    first = decide(*decision({}))       # nothing served yet: the check alone decides
    assert first.exit_code == EXIT_PUBLISHED and first.comparisons == []


def test_one_format_worse_refuses_the_candidate():
    d, _ = decision({}, {0: 1})
    d.candidate["tflite"] = score(Y, predictions({0: 1, 4: 0}), LABELS)    # int8 lost accuracy
    verdicts = [PublishCheck().judge(d.candidate, TEST, None), NotWorseThanServed(d.current, 0.0).judge(d.candidate, TEST, None)]
    assert decide(d, verdicts).exit_code == EXIT_WORSE
    assert [c["passed"] for c in d.comparisons] == [True, False]


def test_the_report_is_plain_json():
    report = decide(*decision({}, {0: 1}, data={"test": {"examples": 12}})).to_dict()
    again = json.loads(json.dumps(report))
    assert again["candidate"]["tflite"]["accuracy"] == 1.0
    assert again["current"]["tflite"]["per_class"]["a"] == 0.75
    assert again["comparisons"][0]["per_class_delta"]["a"] == 0.25
    assert again["exit_code"] == 0 and again["start"] == {"from": "version", "version": 1}


def test_a_retrain_adds_the_calibration_check_and_reports_its_refusal():
    """Judge.policies compares ECE against the served version's as measured on the same images;
    a refusal by that check alone is reported as refused, exit 4."""
    from dataclasses import replace
    from training.config import ExperimentConfig
    from training.jobs.retrain import Judge
    from training.publish.policies import CalibrationNotWorse
    served = {fmt: replace(s, ece=0.02) for fmt, s in scores({0: 1}).items()}
    judge = Judge(job=None, cfg=ExperimentConfig(), test=TEST, data={}, current=None, current_scores=served)
    (check,) = [p for p in judge.policies() if isinstance(p, CalibrationNotWorse)]
    assert check == CalibrationNotWorse(0.02, ExperimentConfig().retrain.ece_tolerance)
    assert not [p for p in Judge(None, ExperimentConfig(), TEST, {}, None, scores({0: 1})).policies()
                if isinstance(p, CalibrationNotWorse)]          # no ECE measured: no calibration check
    d, verdicts = decision({}, {0: 1})
    worse = {fmt: replace(s, ece=0.05) for fmt, s in d.candidate.items()}
    refused = decide(d, verdicts + [check.judge(worse, TEST, None)])
    assert refused.exit_code == EXIT_WORSE and refused.decision.startswith("refused: calibration worse")
    d, verdicts = decision({}, {0: 1})
    same = {fmt: replace(s, ece=0.02) for fmt, s in d.candidate.items()}
    assert decide(d, verdicts + [check.judge(same, TEST, None)]).exit_code == EXIT_PUBLISHED
