"""Ablation studies: variants of a recipe run over seeds on one budget, aggregated into
verdicts, tables and plots (``python -m training ablate``; reports under ``reports/``)."""
