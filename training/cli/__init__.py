"""``python -m training``: one module per command, listed in ``training.cli.main``.
"""
