"""One module per study, each exposing a module-level ``STUDY`` (a ``training.ablation.study.Study``).

The runner finds them by file name (``training.ablation.runner.load_study``), so adding a study is
adding a file here.
"""
