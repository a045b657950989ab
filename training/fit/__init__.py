"""Fitting: the one training loop, plain training of a config, the budget sized from the
data, and tf.distribute set-ups.
"""
