"""``python -m training ablate``: run ablation studies and write their reports.

    python -m training ablate --study initialisation
    python -m training ablate --study all --set ablate.seeds=1,2,3,4,5
    python -m training ablate --study scarcity --report-only

Runs every (variant, seed) missing from ``reports/<study>/runs.jsonl``, then rewrites
the report of every study that has runs, and ``docs/evidence.md``. Interrupted, it
resumes at the next call: finished runs are never repeated.
"""
from __future__ import annotations

import sys
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("ablate", help="run an ablation study (variants x seeds on a fixed budget) and "
                                      "write its report with plots")
    p.add_argument("--study", required=True, metavar="NAME|all",
                   help="a study under training/ablation/studies, or all")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override the budget, e.g. --set ablate.seeds=1,2,3 --set ablate.steps=400 (repeatable)")
    p.add_argument("--report-only", action="store_true",
                   help="run nothing: rewrite the reports from runs.jsonl")
    p.set_defaults(func=cmd_ablate)


def _report_all(cfg, chosen: list) -> None:
    """Rewrite the report of every study with runs (``chosen`` at the configured budget, the
    others at their own), then the evidence page."""
    from training.ablation.report import write_evidence, write_report
    from training.ablation.runner import available, budget_for, current_records, load_study, read_records, runs_path
    reports_dir = Path(cfg.ablate.reports_dir)
    sections = []
    for name in available():
        study = load_study(name)
        budget = budget_for(study, cfg.ablate) if name in chosen else study.budget
        records = current_records(study, budget, read_records(runs_path(reports_dir, study)))
        if not records:
            if name in chosen and len(chosen) == 1:
                raise FileNotFoundError(f"no finished runs of study '{name}' at this budget in "
                                        f"{runs_path(reports_dir, study)}; run it without --report-only")
            continue
        plots = write_report(study, budget, records, reports_dir)
        print(f"{name}: {reports_dir / name / 'report.md'}")
        sections.append((study, budget, records, plots))
    if sections:
        print(f"evidence: {write_evidence(sections, Path(cfg.ablate.evidence), reports_dir)}")


def cmd_ablate(args) -> None:
    from training.config import load_config
    from training.ablation.runner import available, budget_for, load_study, run_study
    cfg = load_config(None, args.overrides)          # config errors surface before TensorFlow loads
    chosen = available() if args.study == "all" else [args.study]
    studies = [load_study(name) for name in chosen]
    if not args.report_only:
        current = None
        try:
            for current in studies:
                run_study(current, budget_for(current, cfg.ablate), Path(cfg.ablate.reports_dir),
                          Path(cfg.ablate.workdir))
        except KeyboardInterrupt:
            print(f"interrupted: the finished runs of study '{current.name}' are kept in "
                  f"{Path(cfg.ablate.reports_dir) / current.name / 'runs.jsonl'}; run the same command again "
                  "to resume the study", file=sys.stderr)
            sys.exit(130)
    _report_all(cfg, chosen)
