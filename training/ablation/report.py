"""``reports/<study>/report.md`` and ``docs/evidence.md``, written from run records alone.

The study report states the question, the budget, the machine the runs ran on, the
command that regenerates it, the tables, one verdict per claim and the plots.
The evidence page gathers every study's verdicts and plots in one place.
"""
from __future__ import annotations

import dataclasses
from dataclasses import replace
import os
from pathlib import Path

from training.ablation.aggregate import (ALPHA, CLOSE_SE, ENOUGH_SEEDS, machine_clause, sentence, show, show_effect,
                                        show_p, sides, table, test_name, verdict)
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


def _metric_table(records: list, metric: str, order: list, with_cost: bool, paired_on: tuple = ()) -> list:
    head = (f"| group | variant | seeds | {metric} (mean ± std) | difference from baseline [95% CI] | "
            "p (test) |")
    rule = "| --- | --- | --- | --- | --- | --- |"
    if with_cost:
        head, rule = head + " steps | seconds |", rule + " --- | --- |"
    lines = [head, rule]
    for row in table(records, metric, order, paired_on):
        m = row.metric
        spread = f" ± {show(m.std, metric).rstrip('%')}" if m.std is not None else ""
        c = row.comparison
        if row.variant == row.baseline:
            diff, p = "baseline", ""
        elif c is None:
            diff, p = "-", "no spread to judge by"
        else:
            diff = show_effect(c, metric)
            p = f"{show_p(c.p)} ({c.test}, {c.sample()})" if c.test != "exact" else "exact"
        line = f"| {row.group or '-'} | {row.variant} | {m.n} | {show(m.mean, metric)}{spread} | {diff} | {p} |"
        if with_cost:
            line += f" {row.steps:,.0f} | {row.seconds:,.0f} |"
        lines.append(line)
    return lines


TESTS = (f"Each claim is a t-test of the variant against the baseline: paired on the seeds both ran, where they "
         f"share at least two (a seed fixes the training subset, data order and initial weights; the transfer "
         f"study also pairs only runs on the same source model), Welch's otherwise; "
         f"\"exact\" where neither varies over seeds. A \"better\" claim is supported or contradicted when the "
         f"two-sided p < {ALPHA:g}; a \"keeps accuracy\" claim is an equivalence test (two one-sided tests "
         f"against the stated margin): supported when both one-sided p < {ALPHA:g} (the larger is shown), "
         f"contradicted when the whole 95% interval lies outside the margin. Anything else is not shown. A "
         f"verdict not shown, or an effect within {CLOSE_SE:g} standard errors of its decision line, needs at "
         f"least {ENOUGH_SEEDS} seeds before it is read. A claim on wall time reads the runs of one machine "
         f"only (the one with the most runs of both variants) and says how many runs of other machines it "
         f"left out; accuracy claims read every machine's runs.")


def seeds_needed(study: Study, budget: Budget, records: list) -> str:
    """One sentence: how many more seeds the study's close verdicts need and what they would cost
    (the runner runs every variant of a seed, at the recorded mean seconds)."""
    more = max((verdict(c, records, study.paired_on).more_seeds for c in study.claims), default=0)
    if not more:
        return ""
    per_seed = sum(sum(r["seconds"] for r in runs) / len(runs) for runs in
                   ([r for r in records if (r["group"], r["variant"]) == (v.group, v.name)] for v in study.variants)
                   if runs)
    # the first seeds not recorded yet: the budget's own, then new ones past every seed in sight
    recorded = {r["seed"] for r in records}
    extra = [s for s in budget.seeds if s not in recorded][:more]
    while len(extra) < more:
        extra.append(max([*budget.seeds, *recorded, *extra]) + 1)
    wanted = replace(budget, seeds=tuple(sorted(recorded | set(extra))))
    return (f"Needs {more} more seed{'s' if more > 1 else ''} ({', '.join(map(str, extra))}) of every variant "
            f"before its close verdicts can be read: about {more * per_seed / 60:.0f} CPU minutes at the recorded "
            f"seconds (`{command(study, wanted)}`).")


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
             "so the seconds are indicative)", "", "## Verdicts", "", TESTS, ""]
    lines += [f"- {sentence(verdict(claim, records, study.paired_on))}" for claim in study.claims]
    needed = seeds_needed(study, budget, records)
    lines += ["", needed, ""] if needed else [""]
    lines += ["## Results", "", "The first variant of each group is the baseline the differences are "
              "taken from. Accuracies in percent, differences in percentage points; the p of each row is "
              "the two-sided test of no difference.", ""]
    for number, metric in enumerate(metrics):
        lines += [f"### {metric}", "", *_metric_table(records, metric, order, number == 0, study.paired_on), ""]
    lines += ["## Plots", ""]
    plots = render(study, records, out)
    for caption, path in plots:
        lines += [f"![{caption}]({path.name})", "", f"*{caption}.*", ""]
    (out / REPORT).write_text("\n".join(lines))
    return plots


MARKER = "<!-- Sections below are written by benchmarks, not by ablate: keep them when rewriting this page. -->"
# which plot shows a claim's metric (by file stem, first found); the rest: the group plot, then the bars
PLOT_FOR = {"gap": ("train_val",), "early_val_accuracy": ("train_val", "curves"), "gzip_bytes": ("size_accuracy",),
            "test_accuracy": ("k", "data_size", "bars"), "mc_test_accuracy": (),
            "tta_test_accuracy": ("readings",), "tta_flip_test_accuracy": ("readings",)}


def _plot_for(metric: str, plots: list):
    """The plot that shows ``metric``: PLOT_FOR's first drawn, else the study's first; a
    metric no plot draws (PLOT_FOR gives none) gets no link."""
    stems = {png.stem: png for _, png in plots}
    if PLOT_FOR.get(metric) == ():
        return None
    return next((stems[s] for s in PLOT_FOR.get(metric, ()) if s in stems), plots[0][1] if plots else None)


def _steps(v, records: list) -> str:
    steps = []
    for name in (v.claim.variant, v.claim.baseline):
        runs = [r["steps"] for r in records if r["variant"] == name and r["group"] == v.claim.group]
        steps.append(f"{sum(runs) / len(runs):,.0f}" if runs else "-")
    return f"{steps[0]} steps" if steps[0] == steps[1] else f"{steps[0]} / {steps[1]} steps"


def evidence_row(v, records: list, plot_link: str) -> str:
    """claim | measured | effect [95% CI] | p (test) | verdict | plot."""
    claim = v.claim
    where = f" ({claim.group})" if claim.group else ""
    if v.ours is None or v.theirs is None:
        measured, effect, p = f"{claim.metric}; {claim.variant} vs {claim.baseline}{where}", "-", "-"
    else:
        seeds = f"{v.ours.n}" if v.ours.n == v.theirs.n else f"{v.ours.n} / {v.theirs.n}"
        head = f"{claim.metric}: {sides(v)}" if claim.against == claim.metric else sides(v)
        plural = "" if seeds == "1" else "s"
        measured = f"{head}{where}; {seeds} seed{plural}; {_steps(v, records)}"
        effect = show_effect(v.comparison, claim.metric) if v.comparison else "-"
        p = f"{show_p(v.p)} ({test_name(v)})" if v.p is not None else test_name(v)
    word = v.word + (f"; needs {v.more_seeds} more seed{'s' if v.more_seeds > 1 else ''}" if v.more_seeds else "")
    word += machine_clause(v)
    return f"| {claim.text} | {measured} | {effect} | {p} | {word} | {plot_link} |"


def _kept_tail(path: Path) -> str:
    """The page from the marker to the end (sections other writers own), or the marker alone."""
    if path.exists():
        text = path.read_text()
        if MARKER in text:
            return text[text.index(MARKER):]
    return MARKER + "\n"


def write_evidence(studies: list, path: Path, reports_dir: Path) -> Path:
    """``studies``: [(study, budget, records, plots)], ``plots`` as ``write_report`` returns them;
    one table each, links relative to ``path``. Everything from ``MARKER`` on is kept as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tail = _kept_tail(path)

    def link(target: Path) -> str:
        return os.path.relpath(target, path.parent)

    lines = ["# Evidence: what each technique buys, measured", "",
             "Each study trains every variant through the project's one trainer on a fixed budget (the same "
             "optimizer steps for every variant) over several seeds, and measures on the test split only to "
             "report. One row per claim: what was measured (means, seeds, steps), the effect with its 95% "
             "confidence interval, the p-value and the test it comes from, and the verdict.", "", TESTS, "",
             "Every section links its full report (question, budget, machine, tables with standard deviations); "
             "`python -m training ablate --study all` reruns what is missing and rewrites this page "
             "(`--report-only`: only rewrites it). `tests/ablation/test_defaults_follow_evidence.py` reads the "
             "same runs and fails when a study beats one of the project's defaults at p < 0.05.", ""]
    for study, budget, records, plots in studies:
        folder = Path(reports_dir) / study.name
        question = study.description.split("? ")[0] + "?" if "? " in study.description else study.description
        lines += [f"## {study.name}", "", question, "",
                  f"Full report: [{link(folder / REPORT)}]({link(folder / REPORT)}); command: "
                  f"`{command(study, budget)}`.", "",
                  "| claim | measured | effect [95% CI] | p (test) | verdict | plot |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for claim in study.claims:
            png = _plot_for(claim.metric, plots)
            lines.append(evidence_row(verdict(claim, records, study.paired_on), records,
                                      f"[{png.stem}]({link(png)})" if png else "-"))
        needed = seeds_needed(study, budget, records)
        lines += ["", needed, ""] if needed else [""]
    path.write_text("\n".join(lines) + "\n" + tail)
    return path
