"""Models: the registry of builders (the project's CNNs and the transfer-learning model),
pretrained backbones, and rebuilding a published version's Keras model.
"""
