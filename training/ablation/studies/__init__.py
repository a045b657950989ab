"""One module per study, each exposing a module-level ``STUDY`` (a ``training.ablation.study.Study``).

``training.ablation.runner.STUDIES`` lists them explicitly: adding a study is adding a file
here and naming it there.
"""
