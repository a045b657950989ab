"""Distillation: the loss by hand, the wrapper trains only the student, soft labels."""
from dataclasses import replace

import numpy as np
import pytest
from training.keras2 import keras, tf

from support.builders import fixture_data, tiny_config
from training.compress.distill import (Distiller, distill, distillation_loss, logits_model,
                              teacher_logits, transfer_dataset)
from training.config import ModelConfig
from training.models.registry import build_model


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_distillation_loss_matches_hand_computation():
    s = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]], np.float32)
    t = np.array([[3.0, 1.0, -2.0], [-1.0, 0.0, 2.5]], np.float32)
    y = np.array([[1, 0, 0], [0, 0, 1]], np.float32)
    alpha, temp = 0.3, 2.0
    hard = np.mean(-np.sum(y * np.log(_softmax(s)), -1))
    pt, ps = _softmax(t / temp), _softmax(s / temp)
    soft = np.mean(np.sum(pt * np.log(pt / ps), -1)) * temp ** 2
    total, got_hard, got_soft = distillation_loss(tf.constant(y), tf.constant(s), tf.constant(t), alpha, temp)
    np.testing.assert_allclose(got_hard.numpy(), hard, rtol=1e-5)
    np.testing.assert_allclose(got_soft.numpy(), soft, rtol=1e-5)
    np.testing.assert_allclose(total.numpy(), alpha * hard + (1 - alpha) * soft, rtol=1e-5)
    # Identical logits: nothing left to learn from the teacher.
    _, _, zero = distillation_loss(None, tf.constant(t), tf.constant(t), 0.0, temp)
    assert abs(float(zero)) < 1e-6


def _models(tmp_path=None):
    cfg = tiny_config(tmp_path)
    keras.utils.set_random_seed(0)
    teacher = build_model(cfg.model, (28, 28, 1), 10)
    student = build_model(ModelConfig(widths=[4, 8], convs_per_stage=1), (28, 28, 1), 10)
    return cfg, teacher, student


def test_logits_model_shares_weights_and_is_flat():
    _, teacher, _ = _models()
    view = logits_model(teacher)
    x = np.random.default_rng(0).random((3, 28, 28, 1), np.float32)
    np.testing.assert_allclose(tf.nn.softmax(view(x)).numpy(), teacher(x).numpy(), rtol=1e-5, atol=1e-6)
    assert not any(isinstance(l, keras.Model) for l in view.layers)


def test_distiller_trains_only_the_student_and_saves_it_alone(tmp_path):
    cfg, teacher, student = _models(tmp_path)
    train, _, _ = fixture_data(cfg)
    train = train.take(256)
    before_teacher = [w.copy() for w in teacher.get_weights()]
    before_student = [w.copy() for w in student.get_weights()]
    cfg = replace(cfg, train=replace(cfg.train, epochs=1, batch_size=64))
    out, history, _ = distill(teacher, cfg, train, alpha=0.5, temperature=3.0, student=student)
    assert out is student and isinstance(out, keras.Model)
    assert "layers" in out.get_config()        # functional, not subclassed
    assert out.get_layer("probabilities") is not None
    assert {"loss", "hard_loss", "soft_loss", "accuracy"} <= set(history)
    for a, b in zip(before_teacher, teacher.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(before_student, student.get_weights()))


def test_unlabelled_transfer_set_uses_soft_labels_only():
    cfg, teacher, student = _models()
    x = np.random.default_rng(1).random((8, 28, 28, 1), np.float32)
    distiller = Distiller(student, teacher, alpha=0.7, temperature=2.0)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-3))
    logs = distiller.test_step({"image": tf.constant(x)})
    assert float(logs["hard_loss"]) == 0.0
    np.testing.assert_allclose(float(logs["loss"]), float(logs["soft_loss"]), rtol=1e-6)


def test_precomputed_soft_labels_are_the_teachers_logits():
    cfg, teacher, _ = _models()
    # no augmentation: the teacher runs once, up front
    cfg = replace(cfg, augment=replace(cfg.augment, enabled=False), train=replace(cfg.train, batch_size=64))
    train, _, _ = fixture_data(cfg)
    train = train.take(64)
    batch = next(iter(transfer_dataset(train, cfg, 10, teacher, labelled=False)))
    assert set(batch) == {"image", "teacher_logits"}
    expected = logits_model(teacher)(batch["image"], training=False).numpy()
    np.testing.assert_allclose(batch["teacher_logits"].numpy(), expected, rtol=1e-4, atol=1e-5)
    assert teacher_logits(teacher, train).shape == (64, 10)


def test_bad_settings_are_refused():
    _, teacher, student = _models()
    with pytest.raises(ValueError, match="alpha"):
        Distiller(student, teacher, alpha=1.5)
