"""``mienet report``: golden tables from a fixture results tree, figures, the results page.

The fixture (tests/data/report/results, written by tests/data/report/make_fixture.py) has
synthetic with a factor design (appearance, motion, order; ceilings; scored on test, selected
on val): tsn, naive_fusion and mienet over 3 seeds, pa over 2 seeds without predictions.csv,
afm with one seed, dptam and fusion_dptam absent, a search with a tuned run; sljd without a
factor design (old-style metrics) with the two variants the paper reports; and benchmarks.
The confidence intervals and effects are also checked on hand-made predictions with known
answers. Goldens live in tests/data/report/golden; regenerate them after an intended change with

    MIENET_UPDATE_GOLDEN=1 pytest tests/test_report.py

and review the diff before committing.
"""

from __future__ import annotations

import csv
import difflib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mienet.cli import main
from mienet.registry.variants import VARIANTS
from mienet.report import expected_outputs, write_report
from mienet.report.analysis import EFFECTS, accuracy_interval, effect, module_effects
from mienet.report.collect import collect
from mienet.report.figures import OUTPUTS as FIGURES
from mienet.report.figures import write_figures
from mienet.report.outputs import OUTPUTS
from mienet.report.spec import Inputs
from mienet.report.tables import split_text
from mienet.report.stats import (
    BOOTSTRAP,
    CLIPS,
    NONE,
    T,
    align,
    bootstrap_replicates,
    hierarchical_bootstrap,
    t_interval,
)

DATA = Path(__file__).resolve().parent / "data" / "report"
RESULTS = DATA / "results"
GOLDEN = DATA / "golden"
UPDATE = os.environ.get("MIENET_UPDATE_GOLDEN") == "1"
DATASETS = ["synthetic", "sljd"]
PIXELS = (960, 720)  # 6.4 x 4.8 in at 150 dpi
TABLES = [f for f in expected_outputs(DATASETS) if f.startswith("tables/")]
PNGS = [f for f in expected_outputs(DATASETS) if f.endswith(".png")]
PDFS = [f for f in expected_outputs(DATASETS) if f.endswith(".pdf")]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    result = write_report(RESULTS, out, datasets=DATASETS)
    return out, result


def golden_name(rel: str) -> str:
    # Not README.md: GitHub would show it as the golden folder's own page.
    return "results_README.md" if rel == "README.md" else Path(rel).name


def check_golden(got: bytes, rel: str) -> None:
    golden = GOLDEN / golden_name(rel)
    if UPDATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_bytes(got)
    assert golden.is_file(), f"no golden {golden}: run MIENET_UPDATE_GOLDEN=1 pytest {__file__}"
    want = golden.read_bytes()
    if got != want:
        diff = "\n".join(difflib.unified_diff(want.decode().splitlines(), got.decode().splitlines(),
                                              f"golden/{golden.name}", f"generated {rel}", lineterm=""))
        pytest.fail(f"{rel} differs from its golden (MIENET_UPDATE_GOLDEN=1 regenerates):\n{diff}")


@pytest.mark.parametrize("rel", TABLES)
def test_table_matches_golden(report, rel):
    out, _ = report
    check_golden((out / rel).read_bytes(), rel)


def test_results_page_matches_golden(report):
    out, _ = report
    check_golden((out / "README.md").read_bytes(), "README.md")


def test_outputs_are_the_expected_set(report):
    out, result = report
    assert result["files"] == expected_outputs(DATASETS)
    assert len(set(result["files"])) == len(result["files"])
    for rel in result["files"]:
        assert (out / rel).is_file() and (out / rel).stat().st_size > 0, rel
    assert sorted(result["search_plots"]) == [
        "plots/search_synthetic_mienet_optimization_history.png",
        "plots/search_synthetic_mienet_param_importances.png",
    ]
    # expected_outputs depends on the names only, in their order
    assert expected_outputs(["b", "a"])[:12] == [f"tables/{t}_b.{e}"
                                                  for t in ("ablation", "comparison", "effects", "factors")
                                                  for e in ("md", "tex", "csv")]
    assert expected_outputs([]) == [f"tables/{t}.{e}" for t in ("search", "efficiency")
                                    for e in ("md", "tex", "csv")] + ["README.md"]
    assert not any(f.startswith("plots/") for f in expected_outputs(DATASETS, figures=False))


@pytest.mark.parametrize("rel", PNGS)
def test_figure_png_has_the_fixed_size(report, rel):
    out, _ = report
    with Image.open(out / rel) as im:
        assert im.format == "PNG"
        assert im.size == PIXELS
        assert len(im.getcolors(maxcolors=1 << 20) or range(2)) > 1, "blank image"
    assert "Software" not in Image.open(out / rel).info  # no version stamp


@pytest.mark.parametrize("rel", PDFS)
def test_figure_pdf_is_written_without_dates(report, rel):
    out, _ = report
    data = (out / rel).read_bytes()
    assert data.startswith(b"%PDF") and len(data) > 2000
    assert b"/CreationDate" not in data and b"/Producer" not in data


def test_ablation_rows_dashes_and_footnotes(report):
    out, _ = report
    rows = {r["variant"]: r for r in csv.DictReader((out / "tables/ablation_synthetic.csv").open())}
    assert list(rows) == list(VARIANTS)
    assert rows["dptam"]["note"] == "not run" and rows["dptam"]["top1_mean"] == ""
    assert rows["dptam"]["top1_ci95_low"] == "" and rows["dptam"]["ceiling_top1"] == ""
    assert rows["afm"]["note"] == "one seed" and rows["afm"]["n_seeds"] == "1" and rows["afm"]["top1_std"] == ""
    assert rows["afm"]["ci_method"] == "bootstrap over test clips (one seed)"
    assert rows["pa"]["note"] == "no predictions" and rows["pa"]["ci_method"].startswith("t-interval")
    assert rows["mienet"]["n_seeds"] == "3" and rows["mienet"]["seeds"] == "0 1 2"
    assert rows["mienet"]["ci_method"] == "hierarchical bootstrap over seeds and test clips"
    assert rows["mienet"]["split"] == "test" and rows["mienet"]["selection_split"] == "val"
    assert rows["tsn"]["ceiling_top1"] == "25.0000" and rows["mienet"]["ceiling_top1"] == "100.0000"
    # sample std over the three seeds' top-1, and the mean inside its CI
    tops = [json.loads((RESULTS / f"synthetic/mienet/seed{k}/metrics.json").read_text())["top1"] for k in range(3)]
    mean = sum(tops) / 3
    std = (sum((t - mean) ** 2 for t in tops) / 2) ** 0.5
    assert rows["mienet"]["top1_mean"] == f"{mean:.4f}" and rows["mienet"]["top1_std"] == f"{std:.4f}"
    for v in ("tsn", "pa", "naive_fusion", "afm", "mienet"):
        low, high = float(rows[v]["top1_ci95_low"]), float(rows[v]["top1_ci95_high"])
        assert 0 <= low < float(rows[v]["top1_mean"]) < high <= 100, v
    # factor columns in the order of factor_design, after the fixed ones
    header = next(csv.reader((out / "tables/ablation_synthetic.csv").open()))
    assert header[:13] == ["dataset", "variant", "model", "rgb", "pa", "afm", "dptam", "seeds", "n_seeds",
                           "top1_mean", "top1_std", "top1_ci95_low", "top1_ci95_high"]
    assert header[-13:] == [f"{f}_{c}" for f in ("appearance", "motion", "order")
                            for c in ("top1", "ci95_low", "ci95_high", "ceiling")] + ["note"]
    assert rows["tsn"]["motion_ceiling"] == "50.0000" and rows["mienet"]["order_ceiling"] == "100.0000"
    md = (out / "tables/ablation_synthetic.md").read_text()
    low, high = float(rows["mienet"]["top1_ci95_low"]), float(rows["mienet"]["top1_ci95_high"])
    assert f"| {mean:.2f} [{low:.2f}, {high:.2f}] | 100 " in " ".join(md.split())
    assert "| TSN+DPTAM (`dptam`)† " in md and "\n† not run" in md
    assert "ceiling (%)" in md and "hierarchical bootstrap over seeds and test clips (2000 replicates)" in md
    assert "Checkpoint selected on `val`; scored on `test`." in md
    assert "one seed: the 95 % CI is a bootstrap over test clips only" in md
    assert "t-interval over the seeds' accuracies" in md
    assert "| AFM (`afm`) | ✓ | ✓ | ✓ | ✗ |" in " ".join(md.split())
    tex = (out / "tables/ablation_synthetic.tex").read_text()
    assert "\\toprule" in tex and "\\bottomrule" in tex and "$\\checkmark$" in tex
    sljd = (out / "tables/ablation_sljd.md").read_text()
    assert "ceiling (%)" not in sljd and "the checkpoint's selection split is not recorded" in sljd
    assert "bootstrap over test clips (2000 replicates; one seed" in sljd


def test_effects_table(report):
    out, _ = report
    rows = list(csv.DictReader((out / "tables/effects_synthetic.csv").open()))
    header = next(csv.reader((out / "tables/effects_synthetic.csv").open()))
    assert header[:11] == ["effect", "variant_a", "variant_b", "delta_top1", "ci95_low", "ci95_high", "resolved",
                           "machine_sensitive", "n_seeds", "split", "delta_ceiling"]
    assert [(r["effect"], r["variant_a"], r["variant_b"]) for r in rows] == [e[:3] for e in EFFECTS]
    by = {(r["variant_a"], r["variant_b"]): r for r in rows}
    ablation = {r["variant"]: r for r in csv.DictReader((out / "tables/ablation_synthetic.csv").open())}
    nf = by[("naive_fusion", "tsn")]  # same seeds on both sides: the difference of the means
    assert float(nf["delta_top1"]) == pytest.approx(
        float(ablation["naive_fusion"]["top1_mean"]) - float(ablation["tsn"]["top1_mean"]), abs=1e-3)
    assert nf["resolved"] == "yes" and nf["n_seeds"] == "3" and nf["split"] == "test"
    assert float(nf["ci95_low"]) > 0 and nf["delta_ceiling"] == "25.0000" and nf["motion_delta_ceiling"] == "50.0000"
    assert by[("afm", "naive_fusion")]["resolved"] == "no" and by[("afm", "naive_fusion")]["n_seeds"] == "1"
    assert by[("pa", "tsn")]["ci_method"].startswith("t-interval") and by[("pa", "tsn")]["n_seeds"] == "2"
    for missing in (("dptam", "tsn"), ("fusion_dptam", "naive_fusion")):
        r = by[missing]
        assert r["delta_top1"] == r["ci95_low"] == r["resolved"] == "" and r["note"] == f"not run: {missing[0]}"
    md = (out / "tables/effects_synthetic.md").read_text()
    assert "**resolved**" in md and "unresolved" in md and "a variant of the pair has no seed runs" in md
    assert "Δ ceiling" in md and "| +25 " in " ".join(md.split())
    sljd = (out / "tables/effects_sljd.md").read_text()
    assert "Δ ceiling" not in sljd and "No effect can be computed on SLJD yet" in sljd
    assert next(csv.reader((out / "tables/effects_sljd.csv").open()))[-6:] == [
        "split", "seeds", "n_clips", "ci_method", "explanation", "note"]


def test_verdicts_within_the_machine_margin_are_marked_machine_sensitive(tmp_path):
    """params.yaml's machine_margin: a verdict an end of whose CI lies within it of 0 may flip on
    another machine (issue 23's probe: `pa` - `tsn` and `afm` - `naive_fusion` did) and says so."""
    out = tmp_path / "out"
    # fixture CIs: naive_fusion - tsn [5.63, 27.08] (resolved), afm - naive_fusion [-9.38, 12.50],
    # pa - tsn [-72.19, 62.81] (both unresolved)
    write_report(RESULTS, out, datasets=["synthetic"], figures=False,
                 params={"datasets": {"synthetic": {"format": "synth", "machine_margin": 6}}})
    by = {(r["variant_a"], r["variant_b"]): r for r in csv.DictReader((out / "tables/effects_synthetic.csv").open())}
    assert by[("naive_fusion", "tsn")]["machine_sensitive"] == "yes"
    assert by[("afm", "naive_fusion")]["machine_sensitive"] == "no" and by[("pa", "tsn")]["machine_sensitive"] == "no"
    assert by[("dptam", "tsn")]["machine_sensitive"] == ""  # not run: no verdict
    md = (out / "tables/effects_synthetic.md").read_text()
    nf = next(line for line in md.splitlines() if "`naive_fusion` − `tsn`" in line)
    mark = nf.split("**resolved**")[1].split("|")[0].strip()
    assert mark and f"{mark} machine-sensitive: an end of the CI lies within 6 points of 0" in md
    assert "machine-sensitive" in (out / "tables/effects_synthetic.tex").read_text()
    assert "machine-sensitive: may flip on another machine" in (out / "README.md").read_text()
    # without a margin (no params.yaml, or none set) nothing is marked
    write_report(RESULTS, out, datasets=["synthetic"], figures=False, params={"datasets": {"synthetic": {}}})
    assert "machine-sensitive" not in (out / "tables/effects_synthetic.md").read_text()
    assert {r["machine_sensitive"] for r in csv.DictReader((out / "tables/effects_synthetic.csv").open())} == {""}


def test_factors_table(report):
    out, _ = report
    rows = {r["variant"]: r for r in csv.DictReader((out / "tables/factors_synthetic.csv").open())}
    assert list(rows) == list(VARIANTS)
    tsn = rows["tsn"]
    metrics = [json.loads((RESULTS / f"synthetic/tsn/seed{k}/metrics.json").read_text()) for k in range(3)]
    assert float(tsn["order_top1"]) == pytest.approx(sum(m["factors"]["order"] for m in metrics) / 3, abs=1e-3)
    assert tsn["order_ceiling"] == "50.0000" and tsn["appearance_ceiling"] == "100.0000"
    md = (out / "tables/factors_synthetic.md").read_text()
    assert "| appearance (%) [95 % CI] / ceiling | motion (%) [95 % CI] / ceiling | order (%)" in " ".join(md.split())
    assert f"[{float(tsn['order_ci95_low']):.2f}, {float(tsn['order_ci95_high']):.2f}] / 50" in md
    assert "at the ceiling: the 95 % CI reaches" in md and "`order`: the movement played" in md
    sljd = (out / "tables/factors_sljd.md").read_text()
    assert "no factor design for this dataset" in sljd and "| —" in sljd
    assert list(csv.DictReader((out / "tables/factors_sljd.csv").open())) == []


def test_comparison_labels_reported_and_measured(report):
    out, _ = report
    sljd = (out / "tables/comparison_sljd.md").read_text()
    assert sljd.count("reported (paper/README)") == 2 and sljd.count("measured (this project)") == 2
    assert "94.48" in sljd and "90.69" in sljd and "most likely `fusion_dptam`" in sljd
    synthetic = (out / "tables/comparison_synthetic.md").read_text()
    assert "reported (" not in synthetic and "No published numbers exist" in synthetic
    rows = list(csv.DictReader((out / "tables/comparison_sljd.csv").open()))
    mienet = next(r for r in rows if r["source"].startswith("measured") and r["variant"] == "mienet")
    assert float(mienet["delta_top1_vs_reported"]) == pytest.approx(float(mienet["top1"]) - 94.48, abs=1e-3)


def test_search_and_efficiency_tables(report):
    out, _ = report
    search = {r["variant"]: r for r in csv.DictReader((out / "tables/search.csv").open())}
    assert search["mienet"]["complete"] == "5" and search["mienet"]["pruned"] == "6"
    assert search["mienet"]["tuned_top1"] != "" and search["tsn"]["tuned_top1"] == ""
    assert json.loads(search["mienet"]["best_params"])["batch_size"] == 8
    eff = list(csv.DictReader((out / "tables/efficiency.csv").open()))
    matched = [r for r in eff if r["dataset"] == "synthetic" and r["variant"] == "mienet"]
    assert [r["clips_per_s"] for r in matched] == ["412.37"]
    assert any(r["dataset"] == "" and r["variant"] == "tsn" and r["bench_file"] == "tsn_224.json" for r in eff)
    assert "loader.json" in (out / "tables/efficiency.md").read_text()  # left out, but named


def test_results_page_shows_every_table_and_figure(report):
    out, result = report
    page = (out / "README.md").read_text()
    for rel in result["files"]:
        if rel.startswith("tables/") and rel.endswith(".md"):
            body = (out / rel).read_text().rstrip("\n")
            assert body in page, f"{rel} not embedded"
        if rel.startswith("tables/"):
            assert f"]({rel})" in page, f"no link to {rel}"
        if rel.startswith("plots/"):
            assert (f"]({rel})" in page), f"no link to {rel}"
    for rel in result["search_plots"]:
        assert f"]({rel})" in page
    assert "MIE-Net reaches" in page and "points above the TSN baseline" in page and "over 3 seeds" in page
    assert "### Module effects" in page and "Resolved (95 % CI excludes 0):" in page
    assert "At their top-1 ceiling" in page and "No factor design for SLJD" in page
    assert "(checkpoint selected on `val`; scored on `test`)" in page


def test_tables_are_byte_identical_on_a_second_run(report, tmp_path):
    out, _ = report
    write_report(RESULTS, tmp_path, datasets=DATASETS, figures=False)
    for rel in TABLES:
        assert (tmp_path / rel).read_bytes() == (out / rel).read_bytes(), rel


def test_figures_are_byte_identical_on_a_second_run(tmp_path):
    inputs = Inputs(collect(RESULTS), dataset="sljd")
    first = write_figures(inputs, tmp_path / "a")
    second = write_figures(inputs, tmp_path / "b")
    assert len(first) == 2 * len(FIGURES)
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes(), a.name


@pytest.mark.parametrize("kind", ["empty", "absent"])
def test_no_results_still_give_every_output(tmp_path, kind):
    results = tmp_path / "results"
    if kind == "empty":
        results.mkdir()
    out = tmp_path / "out"
    result = write_report(results, out, datasets=["synthetic", "diving48"])
    assert result["files"] == expected_outputs(["synthetic", "diving48"])
    for rel in result["files"]:
        assert (out / rel).is_file() and (out / rel).stat().st_size > 0, rel
        if rel.endswith(".png"):
            with Image.open(out / rel) as im:
                assert im.size == PIXELS
    rows = list(csv.DictReader((out / "tables/ablation_synthetic.csv").open()))
    assert len(rows) == 7 and all(r["note"] == "not run" for r in rows)
    md = (out / "tables/ablation_synthetic.md").read_text()
    assert md.count("—") >= 7 * 5 and "† not run" in md
    diving = (out / "tables/comparison_diving48.md").read_text()
    assert "80.2" in diving and "77.61" in diving and "`mienet`‡" in diving
    assert "No runs of Synthetic factors yet" in (out / "README.md").read_text()


def test_unreadable_inputs_are_skipped_and_named(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(RESULTS / "sljd", results / "sljd")
    (results / "sljd/mienet/seed0/metrics.json").write_text("{not json")
    (results / "sljd/fusion_dptam/seed0/confusion.csv").write_text("true \\ predicted,a,b\na,1\n")
    result = write_report(results, tmp_path / "out", figures=False)
    assert result["datasets"] == ["sljd"]
    assert any("sljd/mienet/seed0/metrics.json" in p for p in result["problems"])
    page = (tmp_path / "out/README.md").read_text()
    assert "## Skipped inputs" in page and "`sljd/mienet/seed0/metrics.json`" in page
    rows = {r["variant"]: r for r in csv.DictReader((tmp_path / "out/tables/ablation_sljd.csv").open())}
    assert rows["mienet"]["note"] == "not run" and rows["fusion_dptam"]["n_seeds"] == "1"


def test_command_line(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["report", "--results", str(RESULTS), "--out", str(out), "--datasets", "sljd",
                 "--published", "none", "--no-figures"]) == 0
    assert not (out / "plots").exists() or not any((out / "plots").glob("*_sljd.png"))
    comparison = (out / "tables/comparison_sljd.md").read_text()
    assert "94.48" not in comparison and "No published numbers exist for SLJD" in comparison
    page = (out / "README.md").read_text()
    assert "`synthetic`" in page and "Not in this report" in page  # found but not asked for: said so
    capsys.readouterr()
    assert main(["report", "--datasets", "synthetic", "--list-outputs"]) == 0
    assert capsys.readouterr().out.split() == expected_outputs(["synthetic"])
    with pytest.raises(SystemExit) as exit_:  # not a name: argparse refuses it
        main(["report", "--results", str(RESULTS), "--out", str(out), "--datasets", "../x"])
    assert exit_.value.code == 2
    assert main(["report", "--results", str(RESULTS), "--out", str(out), "--published", "nope.csv"]) == 2


def test_published_numbers_from_a_csv(tmp_path):
    table = tmp_path / "published.csv"
    table.write_text("dataset,model,counterpart,frames,top1,top5,source\n"
                     "synthetic,MIE-Net (ours),mienet,3+3*4,90.0,99.0,a colleague\n")
    out = tmp_path / "out"
    write_report(RESULTS, out, datasets=["synthetic"], published=str(table), figures=False)
    md = (out / "tables/comparison_synthetic.md").read_text()
    assert "reported (a colleague)" in md and "90.0" in md
    mienet = next(r for r in csv.DictReader((out / "tables/comparison_synthetic.csv").open())
                  if r["source"].startswith("measured") and r["variant"] == "mienet")
    assert float(mienet["delta_top1_vs_reported"]) == pytest.approx(float(mienet["top1"]) - 90.0, abs=1e-3)


# --------------------------------------------------------------------------- intervals and effects

def test_bootstrap_of_identical_all_correct_seeds_is_a_point():
    iv = hierarchical_bootstrap(np.ones((3, 50)))
    assert (iv.estimate, iv.low, iv.high, iv.method, iv.n_seeds, iv.n_clips) == (1.0, 1.0, 1.0, BOOTSTRAP, 3, 50)
    one = hierarchical_bootstrap(np.ones((1, 5)))  # one seed: a bootstrap over clips only
    assert (one.low, one.high, one.method) == (1.0, 1.0, CLIPS)


def test_bootstrap_of_a_constant_difference_has_zero_width():
    a = np.array([[1, 1, 0, 1, 0, 1], [1, 0, 1, 1, 1, 1]], dtype=float)
    iv = hierarchical_bootstrap(a - (a - 0.25))  # 0.25 on every seed and clip
    assert iv.estimate == pytest.approx(0.25) and iv.low == pytest.approx(0.25) and iv.high == pytest.approx(0.25)
    assert iv.excludes(0.0) is True
    zero = hierarchical_bootstrap(a - a)
    assert (zero.estimate, zero.low, zero.high) == (0.0, 0.0, 0.0) and zero.excludes(0.0) is False


def test_bootstrap_matches_a_loop_over_the_same_draws():
    """The vectorised replicates equal the definition: draw seeds, draw clips (shared by the
    seeds), mean over drawn seeds of each one's mean on the drawn clips."""
    rng = np.random.default_rng(3)
    x = (rng.uniform(size=(3, 7)) < 0.6).astype(float)
    reps = bootstrap_replicates(x, replicates=50, seed=5)
    draw = np.random.default_rng(5)
    seeds, clips = draw.integers(0, 3, size=(50, 3)), draw.integers(0, 7, size=(50, 7))
    by_hand = [np.mean([x[s, clips[b]].mean() for s in seeds[b]]) for b in range(50)]
    assert reps == pytest.approx(by_hand, abs=1e-12)
    assert (bootstrap_replicates(x, 50, 5) == reps).all()  # deterministic


def test_bootstrap_percentiles_match_the_exact_resampling_distribution():
    """Two seeds x three clips: all 2**2 * 3**3 = 108 equally likely resamples, enumerated."""
    import itertools

    x = np.array([[1, 0, 1], [1, 1, 0]], dtype=float)
    exact = sorted(np.mean([x[s, list(c)].mean() for s in ss])
                   for ss in itertools.product(range(2), repeat=2) for c in itertools.product(range(3), repeat=3))
    values, counts = np.unique(np.round(exact, 12), return_counts=True)
    cdf = np.cumsum(counts) / len(exact)
    q_low, q_high = values[np.searchsorted(cdf, 0.025)], values[np.searchsorted(cdf, 0.975)]
    assert min(abs(cdf - 0.025).min(), abs(cdf - 0.975).min()) > 0.005  # no jump next to the quantiles
    iv = hierarchical_bootstrap(x, replicates=40000)
    assert iv.estimate == pytest.approx(np.mean(exact))  # the plain mean is the resampling mean here
    assert (iv.low, iv.high) == pytest.approx((q_low, q_high), abs=1e-9)


def test_t_interval_and_alignment():
    iv = t_interval([1.0, 3.0])  # mean 2, sd sqrt(2), t(1) = 12.7062
    assert (iv.estimate, iv.method) == (2.0, T) and iv.low == pytest.approx(2 - 12.7062) and \
        iv.high == pytest.approx(2 + 12.7062)
    assert t_interval([5.0]).method == NONE and t_interval([5.0]).excludes(0) is None and t_interval([]) is None
    keys, m = align([(["a", "b", "c"], [1, 0, 1]), (["c", "a", "d"], [0, 1, 1])])
    assert keys == ["a", "c"] and m.tolist() == [[1, 1], [1, 0]]


def write_runs(root: Path, variant: str, outcomes: dict[int, list[int] | None], dataset: str = "toy",
               factors: dict | None = None) -> None:
    """Seed runs of ``variant`` with the given per-clip outcomes (None: no predictions.csv)."""
    for seed, correct in outcomes.items():
        out = root / dataset / variant / f"seed{seed}"
        out.mkdir(parents=True)
        clips = correct if correct is not None else [1, 0]
        metrics = {"top1": 100 * sum(clips) / len(clips), "split": "test", "selection_split": "val"}
        if factors:
            metrics |= {"factor_design": {f: f"{f} of the class" for f in factors},
                        "factors": {f: 100 * sum(v) / len(v) for f, v in factors.items()},
                        "ceiling": {"top1": 50.0, "factors": {f: 100.0 for f in factors}}}
        (out / "metrics.json").write_text(json.dumps(metrics))
        if correct is None:
            continue
        lines = ["path,label,prediction,correct" + "".join(f",{f}_correct" for f in factors or {})]
        for i, c in reversed(list(enumerate(correct))):  # another order than the clips': matched by path
            lines.append(f"clip{i},0,{0 if c else 1},{c}" + "".join(f",{v[i]}" for v in (factors or {}).values()))
        (out / "predictions.csv").write_text("\n".join(lines) + "\n")


def test_intervals_and_effects_on_hand_made_predictions(tmp_path):
    write_runs(tmp_path, "mienet", {0: [1] * 8, 1: [1] * 8}, factors={"order": [1, 0] * 4})
    write_runs(tmp_path, "afm", {0: [0] * 8, 1: [0] * 8, 2: [1] * 8})
    write_runs(tmp_path, "tsn", {0: [1] * 8, 1: [1] * 8})
    write_runs(tmp_path, "pa", {0: None, 1: None})
    write_runs(tmp_path, "dptam", {0: None})
    tree = collect(tmp_path)
    assert tree.factor_design("toy") == {"order": "order of the class"}
    assert tree.runs[("toy", "mienet")][0].ceiling_top1 == 50.0
    assert tree.runs[("toy", "mienet")][0].selection_split == "val"

    iv = accuracy_interval(tree, "toy", "mienet")
    assert (iv.estimate, iv.low, iv.high, iv.method, iv.n_clips) == (100.0, 100.0, 100.0, BOOTSTRAP, 8)
    order = accuracy_interval(tree, "toy", "mienet", "order")
    assert order.estimate == pytest.approx(50.0) and order.low < 50 < order.high
    assert accuracy_interval(tree, "toy", "pa").method == T  # no predictions: t over seeds
    assert accuracy_interval(tree, "toy", "dptam").method == NONE
    assert accuracy_interval(tree, "toy", "naive_fusion") is None

    e = effect(tree, "toy", "mienet", "afm")  # paired on seeds 0 and 1 only: 100 - 0 everywhere
    assert e.seeds == (0, 1) and (e.delta, e.interval.low, e.interval.high) == (100.0, 100.0, 100.0)
    assert e.resolved is True
    same = effect(tree, "toy", "mienet", "tsn")
    assert (same.delta, same.interval.low, same.interval.high, same.resolved) == (0.0, 0.0, 0.0, False)
    one = effect(tree, "toy", "afm", "dptam")  # one shared seed, dptam without predictions: no interval
    assert one.seeds == (0,) and one.interval.method == NONE and one.resolved is None
    assert effect(tree, "toy", "afm", "naive_fusion").missing == ("naive_fusion",)
    effects = module_effects(tree, "toy")
    assert [(e.effect, e.variant_a, e.variant_b) for e in effects] == [x[:3] for x in EFFECTS]
    mienet_afm = next(e for e in effects if (e.variant_a, e.variant_b) == ("mienet", "afm"))
    assert mienet_afm.resolved is True and mienet_afm.explanation

    write_report(tmp_path, tmp_path / "out", figures=False)
    rows = {(r["variant_a"], r["variant_b"]): r for r in csv.DictReader((tmp_path / "out/tables/effects_toy.csv")
                                                                       .open())}
    assert rows[("mienet", "afm")]["delta_top1"] == "100.0000" and rows[("mienet", "afm")]["resolved"] == "yes"
    assert rows[("mienet", "afm")]["ci95_low"] == rows[("mienet", "afm")]["ci95_high"] == "100.0000"
    assert rows[("pa", "tsn")]["ci_method"].startswith("t-interval")  # tsn has predictions, pa none
    factors = {r["variant"]: r for r in csv.DictReader((tmp_path / "out/tables/factors_toy.csv").open())}
    assert factors["mienet"]["order_top1"] == "50.0000" and factors["mienet"]["order_ceiling"] == "100.0000"
    md = (tmp_path / "out/tables/ablation_toy.md").read_text()
    assert "| 100.00 [100.00, 100.00] |" in md


def test_split_text_names_selection_and_scored_splits(tmp_path):
    def text_of(*metrics):
        for seed, m in enumerate(metrics):
            (tmp_path / f"r{len(metrics)}/d/tsn/seed{seed}").mkdir(parents=True)
            (tmp_path / f"r{len(metrics)}/d/tsn/seed{seed}/metrics.json").write_text(json.dumps(m))
        return split_text(collect(tmp_path / f"r{len(metrics)}"), "d")

    assert text_of({"split": "test", "selection_split": "val"}) == "checkpoint selected on `val`; scored on `test`"
    assert text_of({"split": "val", "selection_split": "none (last epoch)"}, {"split": "val"}) == (
        "the last epoch's checkpoint (no selection) (not recorded for every run); scored on `val`")
    assert "optimistically biased" in text_of({"split": "val", "selection_split": "val"}, {"split": "val"},
                                              {"split": "val"})


# --------------------------------------------------------------------------- the registry and the table

def test_the_registry_names_each_output_once_and_gives_its_files():
    from mienet.report.spec import DATASET

    names = [o.name for o in OUTPUTS]
    assert len(set(names)) == len(names)
    for o in OUTPUTS:
        assert o.heading and o.caption.strip() and callable(o.build) and callable(o.sentence), o.name
    files = [f for o in OUTPUTS for f in o.files("d" if o.scope == DATASET else "")]
    assert sorted(expected_outputs(["d"])) == sorted(files + ["README.md"])
    assert [o.name for o in FIGURES] == [o.name for o in OUTPUTS if o.kind == "figure"]


def test_the_results_page_has_a_section_per_output(report):
    out, _ = report
    page = (out / "README.md").read_text()
    for o in OUTPUTS:
        assert f"## {o.heading}\n" in page, o.name


def test_a_table_row_is_one_record_and_its_latex_comes_from_its_markdown():
    from mienet.report.table import Table, latex

    t = Table("t", "A `code` caption, 95 % CI", ["variant", "Δ top-1"], "lr", ["variant", "delta"])
    t.add([f"TSN (`tsn`){t.notes.mark('k', 'a note')}", "-4.69 [-72.19, 1.00]"], {"delta": "-4.6900", "variant": "tsn"})
    with pytest.raises(ValueError, match="delta"):
        t.add(["x", "y"], {"variant": "x"})
    assert t.frame.shape == (1, 4) and t.frame[("csv", "variant")].tolist() == ["tsn"]
    assert t.csv() == "variant,delta\ntsn,-4.6900\n"
    assert "| TSN (`tsn`)† | -4.69 [-72.19, 1.00] |" in t.markdown() and "\n† a note\n" in t.markdown()
    assert latex("`naive_fusion` − `tsn`†") == r"\texttt{naive\_fusion} $-$ \texttt{tsn}\textsuperscript{\textdagger}"
    assert latex("+1.88 [-9.38, 12.50] / ±0") == r"+1.88 [$-$9.38, 12.50] / $\pm$0"
    assert latex("**resolved** top-1 (%) ✓ ✗ 1e-05") == r"\textbf{resolved} top-1 (\%) $\checkmark$ $\times$ 1e-05"
    assert r"\toprule" in t.latex() and r"TSN (\texttt{tsn})\textsuperscript{\textdagger} & $-$4.69" in t.latex()
