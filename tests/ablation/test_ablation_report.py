"""The study report and the evidence page render from records alone: tables, verdicts, valid PNGs."""
import pytest

from training.ablation.plots import PLOTS
from training.ablation.report import command, write_evidence, write_report
from training.ablation.study import Budget, Claim, Study, Variant

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def synthetic_records():
    """Two groups (data sizes) of two variants over three seeds, with curves and sizes."""
    records = []
    for group, boost in (("1000", 0.0), ("5000", 0.05)):
        for variant, gain in (("baseline", 0.0), ("augment", 0.03)):
            for seed in (1, 2, 3):
                # augment's gain varies by seed (+2.7, +3.3, +2.7 points), so the paired test has a spread
                accuracy = 0.75 + boost + gain + 0.005 * seed + ({1: -0.003, 2: 0.003, 3: -0.003}[seed] if gain else 0)
                curve = [accuracy * f for f in (0.5, 0.8, 0.95, 1.0)]
                records.append({"variant": variant, "group": group, "seed": seed, "test_accuracy": accuracy,
                                "gap": 0.1 - gain - 0.001 * seed * (gain > 0), "steps": 400, "seconds": 12.0, "gzip_bytes": 20000 + 1000 * seed,
                                "train_images": int(group), "machine": "Test CPU, 2 cores",
                                "curves": {"step": [100, 200, 300, 400], "val_accuracy": curve,
                                           "train_accuracy": [min(1.0, a + 0.05) for a in curve]}})
    return records


STUDY = Study(
    name="toy", description="Does augmentation help a toy?",
    variants=tuple(Variant(v, {}, g) for g in ("1000", "5000") for v in ("baseline", "augment")),
    claims=(Claim("Augmentation helps with 1,000 images", "augment", "baseline", "1000"),
            Claim("Augmentation shrinks the gap", "augment", "baseline", "5000", "gap", False)),
    run=None, budget=Budget(train_images=None, steps=400, batch_size=50, seeds=(1, 2, 3)),
    plots=("curves", "bars", "data_size", "k", "size_accuracy"))


def test_report_holds_budget_table_verdicts_and_plots(tmp_path):
    plots = write_report(STUDY, STUDY.budget, synthetic_records(), tmp_path)
    text = (tmp_path / "toy" / "report.md").read_text()
    assert "Does augmentation help a toy?" in text
    assert "python -m training ablate --study toy\n" in text
    assert "- machine: Test CPU, 2 cores" in text and "- optimizer steps per run: 400" in text
    assert ("| group | variant | seeds | test_accuracy (mean ± std) | difference from baseline [95% CI] | "
            "p (test) | steps | seconds |") in text
    # differences +2.7, +3.3, +2.7: mean 2.9, std 0.346, SE 0.2, t(0.975, 2) = 4.303 -> ±0.86; p = 0.0053
    assert "| 1000 | augment | 3 | 78.9% ± 0.6 | +2.9 points [+2.0, +3.8] | 0.005 (paired t, n=3 pairs) | 400 | 12 |" \
        in text
    assert ("- Augmentation helps with 1,000 images: supported (+2.9 points [+2.0, +3.8], p 0.005; paired t, "
            "n=3 pairs; augment 78.9% vs baseline 76.0%, test_accuracy).") in text
    assert "two one-sided tests" in text and "p < 0.05" in text       # the tests are stated
    assert "### gap" in text
    assert len(plots) == len(STUDY.plots)
    for caption, png in plots:
        assert f"]({png.name})" in text
        data = png.read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 5000, png


def test_train_val_plot_for_a_single_group(tmp_path):
    study = Study("one", "one group", (Variant("baseline"), Variant("augment")), (), None, STUDY.budget,
                  plots=("train_val",))
    records = [dict(r, group="") for r in synthetic_records() if r["group"] == "1000"]
    [(caption, png)] = write_report(study, study.budget, records, tmp_path)
    assert "side by side" in caption and png.read_bytes().startswith(PNG_SIGNATURE)


def test_evidence_page_links_reports_and_plots_relative_to_itself(tmp_path):
    records = synthetic_records()
    reports = tmp_path / "reports"
    plots = write_report(STUDY, STUDY.budget, records, reports)
    page = write_evidence([(STUDY, STUDY.budget, records, plots)], tmp_path / "docs" / "evidence.md", reports)
    text = page.read_text()
    assert "## toy" in text and "](../reports/toy/report.md)" in text
    assert "| claim | measured | effect [95% CI] | p (test) | verdict | plot |" in text
    # the gap's plot (train_val) is not among toy's: the first plot stands in
    assert ("| Augmentation shrinks the gap | gap: augment 6.8% vs baseline 10.0% (5000); 3 seeds; 400 steps | "
            "-3.2 points [-3.4, -3.0] | < 0.001 (paired t, n=3 pairs) | supported | "
            "[curves](../reports/toy/curves.png) |") in text
    assert "| Augmentation helps with 1,000 images |" in text and "| supported | [k](../reports/toy/k.png) |" in text


def test_evidence_page_keeps_what_other_writers_put_below_the_marker(tmp_path):
    """Benchmarks append their own sections after the marker; rewriting the page keeps them byte for byte."""
    from training.ablation.report import MARKER
    records = synthetic_records()
    page = tmp_path / "docs" / "evidence.md"
    page.parent.mkdir()
    theirs = f"{MARKER}\n\n## Serving load\n\n| clients | p99 ms |\n| --- | --- |\n| 8 | 41 |\n"
    page.write_text("# an old page\n\n- an old verdict\n\n" + theirs)
    write_evidence([(STUDY, STUDY.budget, records, [])], page, tmp_path / "reports")
    text = page.read_text()
    assert text.endswith(theirs) and text.count(MARKER) == 1
    assert "an old verdict" not in text and "| Augmentation helps with 1,000 images |" in text
    write_evidence([(STUDY, STUDY.budget, records, [])], page, tmp_path / "reports")
    assert page.read_text() == text                             # rewriting twice changes nothing
    fresh = tmp_path / "fresh.md"                               # a page without the marker gets one
    write_evidence([(STUDY, STUDY.budget, records, [])], fresh, tmp_path / "reports")
    assert fresh.read_text().endswith(MARKER + "\n")


def test_the_command_names_only_what_differs_from_the_default_budget():
    changed = Budget(train_images=1000, steps=400, batch_size=50, seeds=(1, 2), test_images=None)
    assert command(STUDY, changed) == ("python -m training ablate --study toy --set ablate.train_images=1000 "
                                       "--set ablate.seeds=1,2")


def test_an_unknown_plot_kind_is_named(tmp_path):
    study = Study("bad", "", STUDY.variants, (), None, STUDY.budget, plots=("pie",))
    with pytest.raises(ValueError, match="unknown plot kind"):
        write_report(study, study.budget, synthetic_records(), tmp_path)
    assert "pie" not in PLOTS


def test_more_seeds_are_the_first_ones_not_recorded():
    """Two of the budget's three seeds recorded, a close verdict wanting five: the sentence asks
    for the budget's missing seed 3 and then 4 and 5, not for seeds past the budget's last."""
    from training.ablation.report import seeds_needed
    two = [r for r in synthetic_records() if r["seed"] in (1, 2) and r["group"] == "1000"]
    for r in two:     # augment ahead by 0.2 points +- 0.2: close to nothing, so more seeds are wanted
        r["test_accuracy"] = 0.80 + (0.002 + 0.002 * (r["seed"] - 1) if r["variant"] == "augment" else 0.0)
    study = Study("toy", "", tuple(Variant(v, {}, "1000") for v in ("baseline", "augment")), STUDY.claims[:1], None,
                  STUDY.budget)
    sentence = seeds_needed(study, study.budget, two)
    assert sentence.startswith("Needs 3 more seeds (3, 4, 5) of every variant"), sentence
    assert "--set ablate.seeds=1,2,3,4,5`" in sentence
