"""Data: Fashion-MNIST, image folders and .npz files as uint8 arrays, the per-mini-batch
augmentation and the tf.data pipelines that feed a fit.
"""
