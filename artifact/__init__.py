"""The model artifact, ``<models_dir>/<name>/<version>/``: the one contract between
``training`` (which writes it) and ``service`` (which reads it).

- ``artifact.metadata``: the ``metadata.json`` schema (``Metadata``, ``InputSpec``)
- ``artifact.versions``: listing versions, staging and atomic publishing
- ``artifact.labels``: the ``stable`` and ``canary`` labels of a model's versions (``labels.json``)
- ``artifact.captures``: the service's capture folder (``index.jsonl``, the images, ``labels.jsonl``)
- ``artifact.imaging``: ``decode_image``, the one image decoder of training and serving
- ``artifact.litert``: running ``model.tflite`` (uint8 pixels in, probabilities out)
- ``artifact.saved_model``: running ``saved_model/`` the same way; it imports
  TensorFlow when a runner is created, so only callers that have TensorFlow use it

The package imports only the standard library, numpy and Pillow (``ai_edge_litert``
and TensorFlow only inside the runners' constructors), never ``training`` or
``service``; importing it is cheap enough for a gunicorn master.
"""
