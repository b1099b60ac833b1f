"""`mienet bench scale` at tiny sizes: every figure is measured, fitted and projected (real
synth, extraction, loader, DVC and Snakemake; the numbers themselves are not judged)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import REPO
from mienet.cli import main
from mienet.bench.scale_report import SSV2_CLIPS, fit_line

TINY = ["--frames", "16", "--size", "32", "--classes", "2", "--segments", "2", "--crop", "32", "--batch", "2",
        "--batches", "1"]


def run_scale(tmp_path: Path, *extra: str) -> dict:
    work = tmp_path / "work"
    out = tmp_path / "bench" / "scale"
    assert main(["bench", "scale", *TINY, "--work-dir", str(work), "--out", str(out), "--repo", str(REPO),
                 *extra]) == 0
    assert list(work.iterdir()) == []  # the generated data is deleted (no --keep)
    result = json.loads(out.with_suffix(".json").read_text())
    assert "## Projection to Something-Something V2" in out.with_suffix(".md").read_text()
    return result


def test_fit_line_is_least_squares():
    f = fit_line([1, 2, 3], [3, 5, 7])
    assert f["a"] == pytest.approx(1) and f["b"] == pytest.approx(2) and f["r2"] == pytest.approx(1)
    assert fit_line([1, 2, 3], [1, 3, 2])["r2"] < 1


def test_scale_bench_measures_fits_and_projects_both_layouts(tmp_path, capsys):
    result = run_scale(tmp_path, "--sizes", "4,8,12", "--no-dvc", "--no-snakemake", "--workers", "0")
    assert "| extraction | packed |" in capsys.readouterr().out  # the tables are printed
    rows = result["rows"]
    assert [(r["clips"], r["layout"]) for r in rows] == [(n, lay) for n in (4, 8, 12) for lay in ("packed", "folders")]
    for r in rows:
        assert r["frames"] == 16 * r["clips"] and r["extract_frames_per_s"] > 0 and r["extract_clips_per_s"] > 0
        # packed: one file per clip (+ manifest and lock); folders: one per frame and a stamp per clip
        files = r["clips"] + 2 if r["layout"] == "packed" else r["clips"] * 17 + 2
        assert r["files"] == files and r["disk_bytes"] >= r["bytes"] > 0
        assert r["loader"]["0"]["clips_per_s"] > 0
    for layout in ("packed", "folders"):
        fit = result["fit"][layout]
        assert set(fit) == {"extract_s", "files", "bytes", "disk_bytes"}
        assert fit["files"]["b_per_clip"] == pytest.approx(1 if layout == "packed" else 17)
        projection = result["projection"][layout]
        assert projection["files"] == pytest.approx(SSV2_CLIPS * (1 if layout == "packed" else 17) + 2)
        assert projection["loader_clips_per_s_on_target_cores"] == pytest.approx(
            16 * projection["loader_per_worker_clips_per_s"], rel=1e-3)
    assert result["projection"]["clips"] == SSV2_CLIPS
    assert set(result["containers"]["clips_per_s"]) == {"folder (one file per frame)", "pack (mienet.data.pack)",
                                                        "tar (tarfile, no index)"}
    assert result["settings"]["sizes"] == [4, 8, 12] and result["synth"]["clips"] == 12
    big = {r["layout"]: r for r in rows if r["clips"] == 12}
    assert result["bytes_per_frame"] == {lay: round(r["disk_bytes"] / r["frames"], 1) for lay, r in big.items()}


def test_scale_bench_times_dvc_and_snakemake(tmp_path):
    result = run_scale(tmp_path, "--sizes", "2,4", "--layouts", "packed", "--workers", "", "--no-containers")
    for r in result["rows"]:
        for key in ("dvc_add_s", "dvc_status_first_s", "dvc_status_s", "dvc_push_s", "dvc_commit_stage_s",
                    "dvc_status_pipeline_s", "snakemake_n_first_s", "snakemake_n_s"):
            assert r[key] > 0, key
        assert "loader" not in r
    fit = result["fit"]["packed"]
    assert {"dvc_add_s", "dvc_status_s", "dvc_push_s", "dvc_commit_stage_s", "dvc_status_pipeline_s",
            "snakemake_n_s"} <= set(fit)
    assert {"dvc_status_s", "dvc_status_pipeline_s"} <= set(result["projection"]["packed"])
    verdicts = result["targets"]["layouts"]["packed"]
    assert verdicts[0].startswith("dvc status (frames) on SSv2") and verdicts[1].startswith("dvc status (pipeline)")
