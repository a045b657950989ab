"""``reports/<study>/report.md`` and ``docs/evidence.md``, written from run records alone.

The study report states the question, the budget, the machine the runs ran on, the
command that regenerates it, the tables, one verdict per claim and the plots.
The evidence page gathers every study's verdicts and plots in one place.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from training.ablation.aggregate import SURE_SE, show, table, verdict
from training.ablation.plots import render
from training.ablation.study import Budget, Study

REPORT = "report.md"


def command(study: Study, budget: Budget) -> str:
    """The command that runs (or resumes) this study at this budget and rewrites its report."""
    sets = []
    for key, value in dataclasses.asdict(budget).items():
        if value != getattr(study.budget, key):
            text = ("all" if value is None else ",".join(map(str, value)) if key == "seeds" else value)
            sets.append(f" --set ablate.{key}={text}")
    return f"python -m training ablate --study {study.name}{''.join(sets)}"


def _budget_lines(budget: Budget, records: list) -> list:
    steps = sorted({r["steps"] for r in records})
    images = sorted({r.get("train_images") for r in records if r.get("train_images")})
    lines = [f"- optimizer steps per run: {budget.steps:,} (ran: {', '.join(f'{s:,}' for s in steps)}; the "
             "trainer rounds up to whole passes over the data)",
             f"- batch size: {budget.batch_size}",
             f"- training images: {', '.join(f'{n:,}' for n in images) or 'all'}",
             f"- test images: {'all 10,000' if budget.test_images is None else f'{budget.test_images:,}'}",
             f"- seeds: {', '.join(map(str, budget.seeds))} (one run per seed and variant)"]
    return lines


def _metric_table(records: list, metric: str, order: list, with_cost: bool) -> list:
    head = f"| group | variant | seeds | {metric} (mean ± std) | SE | difference from baseline (± SE) |"
    rule = "| --- | --- | --- | --- | --- | --- |"
    if with_cost:
        head, rule = head + " steps | seconds |", rule + " --- | --- |"
    lines = [head, rule]
    for row in table(records, metric, order):
        m = row.metric
        spread = f" ± {show(m.std, metric).rstrip('%')}" if m.std is not None else ""
        se = show(m.se, metric).rstrip("%") if m.se is not None else "-"
        if row.diff is None:
            diff = "baseline"
        else:
            diff = show(row.diff, metric, signed=True)
            if row.diff_se:
                diff += f" ± {show(row.diff_se, metric).rstrip('%')} ({abs(row.diff) / row.diff_se:.1f} SE)"
        line = f"| {row.group or '-'} | {row.variant} | {m.n} | {show(m.mean, metric)}{spread} | {se} | {diff} |"
        if with_cost:
            line += f" {row.steps:,.0f} | {row.seconds:,.0f} |"
        lines.append(line)
    return lines


def write_report(study: Study, budget: Budget, records: list, reports_dir: Path) -> list:
    """Render the plots and report.md under ``reports_dir/<study>``; returns the plots as
    [(caption, png path)]."""
    out = Path(reports_dir) / study.name
    out.mkdir(parents=True, exist_ok=True)
    order = [(v.group, v.name) for v in study.variants]
    metrics = ["test_accuracy"] + sorted({c.metric for c in study.claims} - {"test_accuracy"})
    machines = sorted({r.get("machine", "not recorded") for r in records})
    lines = [f"# Ablation study: {study.name}", "", study.description, "",
             "Regenerate (runs only what is missing from `runs.jsonl`, then rewrites this page and "
             "docs/evidence.md):", "", "```", command(study, budget), "```", "",
             "Only the report, from `runs.jsonl`: add `--report-only`.", "", "## Budget", "",
             *_budget_lines(budget, records), f"- machine: {'; '.join(machines)} (shared with other jobs, "
             "so the seconds are indicative)", "", "## Verdicts", "",
             f"Supported or contradicted when the difference spans at least {SURE_SE:g} standard errors "
             "of the difference (sqrt(SE_a² + SE_b²)).", ""]
    lines += [f"- {verdict(claim, records)}" for claim in study.claims]
    lines += ["", "## Results", "", "The first variant of each group is the baseline the differences are "
              "taken from. Accuracies in percent, differences in percentage points.", ""]
    for number, metric in enumerate(metrics):
        lines += [f"### {metric}", "", *_metric_table(records, metric, order, with_cost=number == 0), ""]
    lines += ["## Plots", ""]
    plots = render(study, records, out)
    for caption, path in plots:
        lines += [f"![{caption}]({path.name})", "", f"*{caption}.*", ""]
    (out / REPORT).write_text("\n".join(lines))
    return plots


def write_evidence(studies: list, path: Path, reports_dir: Path) -> Path:
    """``studies``: [(study, budget, records, plots)], ``plots`` as ``write_report`` returns them;
    one section each, links relative to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def link(target: Path) -> str:
        return os.path.relpath(target, path.parent)

    lines = ["# Evidence: what each technique buys, measured", "",
             "Each study trains every variant through the project's one trainer on a fixed budget (the same "
             "optimizer steps for every variant) over several seeds. A claim is supported or contradicted "
             f"when the difference spans at least {SURE_SE:g} standard errors; otherwise it is not shown at "
             "that budget. Every section links its full report (question, budget, machine, tables); "
             "`python -m training ablate --study all` reruns what is missing and rewrites this page.", ""]
    for study, budget, records, plots in studies:
        folder = Path(reports_dir) / study.name
        lines += [f"## {study.name}", "", study.description, "",
                  f"Full report: [{link(folder / REPORT)}]({link(folder / REPORT)}); command: "
                  f"`{command(study, budget)}`.", ""]
        lines += [f"- {verdict(claim, records)}" for claim in study.claims]
        lines.append("")
        for caption, png in plots:
            lines += [f"![{study.name}: {caption}]({link(png)})", ""]
    path.write_text("\n".join(lines))
    return path
