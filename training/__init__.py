"""Training package: data, models, accuracy techniques, export and publishing.

TF-MOT 0.8.1 works only with Keras 2, and TensorFlow reads TF_USE_LEGACY_KERAS at
the first touch of ``tf.keras``: set it here, before any submodule imports TF.
"""
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
