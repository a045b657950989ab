"""Knowledge distillation (Hinton et al. 2015): a small student learns the teacher's soft labels.

    loss = alpha * CE(labels, softmax(s)) + (1 - alpha) * T^2 * KL(softmax(t/T) || softmax(s/T))

with t, s the logits (the layer named ``logits`` of both models). T^2 keeps the
soft term's gradients the same size whatever the temperature. ``Distiller`` is
only the training wrapper: the teacher is frozen and called with
training=False, only the student gets gradients, and what is saved and
published is the student alone, a plain flat functional model.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from training.keras2 import keras, tf

from training.config import DistillConfig, load_config
from training.data.datasets import Dataset
from training.models.registry import build_model
from training.data.pipeline import steps_per_epoch, to_float, training_batches, validation_batches
from training.fit.train import predict_probabilities
from training.fit.trainer import fit, run_dir_for


def logits_model(model: keras.Model) -> keras.Model:
    """The same layers up to ``logits``: a flat view that shares the weights."""
    try:
        layer = model.get_layer("logits")
    except ValueError as exc:
        raise ValueError(f"model '{model.name}' has no layer named 'logits'; distillation reads "
                         "the pre-softmax logits (build it with training.models.registry)") from exc
    return keras.Model(model.input, layer.output, name=f"{model.name}_logits")


def distillation_loss(labels, student_logits, teacher_logits, alpha: float, temperature: float):
    """(total, hard, soft) batch means; ``labels`` one-hot, may be None when alpha == 0."""
    t = float(temperature)
    teacher_log_p = tf.nn.log_softmax(teacher_logits / t)
    student_log_p = tf.nn.log_softmax(student_logits / t)
    kl = tf.reduce_sum(tf.exp(teacher_log_p) * (teacher_log_p - student_log_p), axis=-1)
    soft = tf.reduce_mean(kl) * t * t
    if labels is None:
        hard = tf.constant(0.0)
    else:
        hard = tf.reduce_mean(keras.losses.categorical_crossentropy(labels, student_logits, from_logits=True))
    return alpha * hard + (1.0 - alpha) * soft, hard, soft


class Distiller(keras.Model):
    """Training wrapper. Batches are dicts: ``image`` (float [0,1]), optional ``label``
    (one-hot) and optional ``teacher_logits`` (precomputed soft targets); when
    these are missing the teacher runs on the batch, so augmentation still works."""

    def __init__(self, student: keras.Model, teacher: keras.Model, alpha: float = DistillConfig.alpha,
                 temperature: float = DistillConfig.temperature):
        super().__init__(name="distiller")
        if not 0.0 <= alpha <= 1.0 or temperature <= 0:
            raise ValueError(f"need 0 <= alpha <= 1 and temperature > 0, got {alpha}, {temperature}")
        self.student, self.teacher = student, teacher
        self.student_logits = logits_model(student)
        self.teacher_logits = logits_model(teacher)
        self.teacher.trainable = False
        self.alpha, self.temperature = float(alpha), float(temperature)
        self.trackers = {name: keras.metrics.Mean(name) for name in ("loss", "hard_loss", "soft_loss")}
        self.student_accuracy = keras.metrics.CategoricalAccuracy("accuracy")

    @property
    def metrics(self):
        return [*self.trackers.values(), self.student_accuracy]

    def call(self, images, training=False):
        return self.student(images, training=training)

    def save_weights(self, filepath, *args, **kwargs):
        """Checkpoints hold the student alone: the teacher is fixed and the wrapper not kept."""
        return self.student.save_weights(filepath, *args, **kwargs)

    def load_weights(self, filepath, *args, **kwargs):
        return self.student.load_weights(filepath, *args, **kwargs)

    def _unpack(self, data):
        if not isinstance(data, dict):   # (images, one-hot) from make_dataset
            images, labels = data
            data = {"image": images, "label": labels}
        teacher = data.get("teacher_logits")
        if teacher is None:
            teacher = self.teacher_logits(data["image"], training=False)
        # Unlabelled transfer set: soft labels only, whatever alpha was asked for.
        alpha = self.alpha if "label" in data else 0.0
        return data["image"], data.get("label"), teacher, alpha

    def _record(self, total, hard, soft, labels, student_logits):
        for name, value in zip(("loss", "hard_loss", "soft_loss"), (total, hard, soft)):
            self.trackers[name].update_state(value)
        if labels is not None:
            self.student_accuracy.update_state(labels, student_logits)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        images, labels, teacher, alpha = self._unpack(data)
        with tf.GradientTape() as tape:
            student = self.student_logits(images, training=True)
            total, hard, soft = distillation_loss(labels, student, teacher, alpha, self.temperature)
            objective = total + tf.add_n(self.student.losses) if self.student.losses else total
        weights = self.student.trainable_weights
        self.optimizer.apply_gradients(zip(tape.gradient(objective, weights), weights))
        return self._record(total, hard, soft, labels, student)

    def test_step(self, data):
        images, labels, teacher, alpha = self._unpack(data)
        student = self.student_logits(images, training=False)
        total, hard, soft = distillation_loss(labels, student, teacher, alpha, self.temperature)
        return self._record(total, hard, soft, labels, student)


def teacher_logits(teacher: keras.Model, data: Dataset, batch_size: int = 256) -> np.ndarray:
    """Step (2) of the pipeline: the teacher's logits (soft labels) for the transfer set."""
    return predict_probabilities(logits_model(teacher), data, batch_size)   # any output: here logits


def transfer_dataset(data: Dataset, cfg, num_classes: int, teacher: keras.Model = None,
                     labelled: bool = True) -> tf.data.Dataset:
    """Dict batches for the Distiller. Without augmentation the teacher's logits are
    computed once here (one forward pass instead of one per epoch); with
    augmentation the teacher must see the augmented image, so it runs per batch."""
    if cfg.augment.enabled or teacher is None:
        return training_batches(data, cfg).map(lambda x, y: {"image": x, "label": y} if labelled else {"image": x})
    soft = teacher_logits(teacher, data)
    ds = tf.data.Dataset.from_tensor_slices((data.x, tf.one_hot(data.y, num_classes), soft))
    ds = ds.shuffle(len(data), seed=cfg.train.seed, reshuffle_each_iteration=True).batch(cfg.train.batch_size)

    def pack(x, y, t):
        batch = {"image": to_float(x), "teacher_logits": t}
        return {**batch, "label": y} if labelled else batch

    return ds.map(pack, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def distill(teacher: keras.Model, student_cfg, train: Dataset, validation: Dataset = None, *,
            alpha: float = DistillConfig.alpha, temperature: float = DistillConfig.temperature,
            labelled: bool = DistillConfig.labelled, student: keras.Model = None, run_dir=None, callbacks=()) -> tuple:
    """Steps (2)-(3): train a student (built from ``student_cfg`` unless given) toward the
    teacher. Returns (student, history dict, fit seconds). The fit keeps the student's
    checkpoint, history and resume backup in ``run_dir`` (default ``<output_dir>/<name>/distill``);
    ``callbacks`` are added to the standard ones."""
    keras.utils.set_random_seed(student_cfg.train.seed)
    num_classes = len(train.class_names)
    if student is None:
        student = build_model(student_cfg.model, train.input_shape, num_classes)
    alpha = alpha if labelled else 0.0
    distiller = Distiller(student, teacher, alpha, temperature)
    val = validation_batches(validation, student_cfg)
    run = fit(distiller, transfer_dataset(train, student_cfg, num_classes, teacher, labelled), student_cfg.train,
              steps_per_epoch=steps_per_epoch(train, student_cfg.train.batch_size), validation=val,
              run_dir=run_dir or run_dir_for(student_cfg) / "distill",
              record={**student_cfg.to_dict(),
                      "distill": {"alpha": alpha, "temperature": temperature, "labelled": labelled}},
              # Unlabelled and unvalidated, no epoch has an accuracy to be chosen by: keep the last.
              keep_best=labelled or val is not None, own_loss=True, callbacks=callbacks)
    return student, run.history, run.seconds


def student_config(base_cfg, preset: str = None, overrides: list = None):
    """The student's ExperimentConfig: a preset (or the base's own settings) plus overrides,
    keeping the base's name, data, output locations and distill/optimize settings."""
    cfg = load_config(preset, overrides) if preset else load_config(None, overrides, base=base_cfg.to_dict())
    return replace(cfg, name=base_cfg.name, data=base_cfg.data, output_dir=base_cfg.output_dir,
                   models_dir=base_cfg.models_dir, distill=base_cfg.distill, optimize=base_cfg.optimize)
