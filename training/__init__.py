"""Training: data, models, accuracy techniques, compression, transfer learning and publishing.

Sub-packages, each owning one concern (see docs/layout.md for the map):

- ``data``: data sets as uint8 arrays, augmentation and tf.data pipelines
- ``models``: the builder registry, backbones, rebuilding a published version
- ``fit``: the training loop, plain training, the budget, tf.distribute
- ``compress``: pruning, quantization, distillation and the optimize pipeline
- ``transfer``: two-stage transfer learning
- ``publish``: export, scoring, publish policies and the one publish path
- ``jobs``: retraining a served model and its promotion rule
- ``ablation``: studies that measure what each technique buys
- ``cli``: ``python -m training``, one module per command

Importing this package has no side effect; ``training.keras2`` is where
TensorFlow and Keras 2 are loaded.
"""
