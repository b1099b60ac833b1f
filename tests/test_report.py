"""``mienet report``: golden tables from a fixture results tree, figures, the results page.

The fixture (tests/data/report/results, written by tests/data/report/make_fixture.py) has
synthetic with tsn and mienet over 3 seeds, afm with one seed and dptam absent, a search with a
tuned run, sljd with the two variants the paper reports, and benchmarks. Goldens live in
tests/data/report/golden; regenerate them after an intended change with

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

import pytest
from PIL import Image

from mienet.cli import main
from mienet.report import FIGURES, expected_outputs, write_report

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
    assert expected_outputs(["b", "a"])[:6] == [f"tables/{t}_b.{e}" for t in ("ablation", "comparison")
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
    assert list(rows) == ["tsn", "dptam", "pa", "naive_fusion", "fusion_dptam", "afm", "mienet"]
    assert rows["dptam"]["note"] == "not run" and rows["dptam"]["top1_mean"] == ""
    assert rows["afm"]["note"] == "one seed" and rows["afm"]["n_seeds"] == "1" and rows["afm"]["top1_std"] == ""
    assert rows["mienet"]["n_seeds"] == "3" and rows["mienet"]["seeds"] == "0 1 2"
    # sample std over the three seeds' top-1
    tops = [json.loads((RESULTS / f"synthetic/mienet/seed{k}/metrics.json").read_text())["top1"] for k in range(3)]
    mean = sum(tops) / 3
    std = (sum((t - mean) ** 2 for t in tops) / 2) ** 0.5
    assert rows["mienet"]["top1_mean"] == f"{mean:.4f}" and rows["mienet"]["top1_std"] == f"{std:.4f}"
    md = (out / "tables/ablation_synthetic.md").read_text()
    assert f"| {mean:.2f} ± {std:.2f} |" in md
    assert "| TSN+DPTAM (`dptam`)† " in md and "\n† not run" in md
    assert "81.25‡" in md and "\n‡ one seed" in md
    assert "| AFM (`afm`) | ✓ | ✓ | ✓ | ✗ |" in " ".join(md.split())
    tex = (out / "tables/ablation_synthetic.tex").read_text()
    assert "\\toprule" in tex and "\\bottomrule" in tex and "$\\checkmark$" in tex


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


def test_tables_are_byte_identical_on_a_second_run(report, tmp_path):
    out, _ = report
    write_report(RESULTS, tmp_path, datasets=DATASETS, figures=False)
    for rel in TABLES:
        assert (tmp_path / rel).read_bytes() == (out / rel).read_bytes(), rel


def test_figures_are_byte_identical_on_a_second_run(tmp_path):
    from mienet.report.collect import collect
    from mienet.report.figures import write_figures

    tree = collect(RESULTS)
    first = write_figures(tree, "sljd", tmp_path / "a")
    second = write_figures(tree, "sljd", tmp_path / "b")
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
    assert "No runs of Synthetic SLJ yet" in (out / "README.md").read_text()


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
    assert main(["report", "--results", str(RESULTS), "--out", str(out), "--datasets", "../x"]) == 2
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
