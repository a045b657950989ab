"""Transfer learning: a pretrained backbone with a new head, trained in two stages.
"""
