"""Compression: pruning, quantization (post-training and quantization-aware), knowledge
distillation, and the optimize pipeline that chains them into a published version.
"""
