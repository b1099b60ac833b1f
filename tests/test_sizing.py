"""`mienet sizing`: the cluster budget of a profile, checked against the formula and the real DAG."""

from __future__ import annotations

import json
import re

import pytest

from test_workflow import BIN, project_copy, run


def sizing(work, *args) -> dict:
    return json.loads(run([BIN / "mienet", "sizing", "--json", *args], work).stdout)


def test_paper_profile_from_the_published_sizes(tmp_path):
    work = project_copy(tmp_path)
    table = sizing(work, "--profile", "paper", "--clips-per-s", "100", "--bytes-per-frame", "10000")
    rows = {r["dataset"]: r for r in table["datasets"]}
    assert set(rows) == {"sljd", "diving48", "sthv2"}
    ss = rows["sthv2"]
    assert (ss["train_clips"], ss["val_clips"], ss["epochs"], ss["segments"]) == (168913, 24777, 60, 8)
    # MIE-Net is the reference model: 60 epochs of (train + val / 3) clips at 100 clips/s
    assert ss["longest_training_h"] == pytest.approx(60 * (168913 + 24777 / 3) / 100 / 3600, abs=0.1)
    # every variant x seed trains and is evaluated on a GPU, plus the search, its tuned run, bench
    runs = len(table["variants"]) * len(table["seeds"])
    assert ss["gpu_jobs"] == 2 * runs + 3 * len(table["searched"]) + 2
    assert ss["frames"] == (168913 + 24777 + 27157) * 45 and ss["frames_gb"] == pytest.approx(
        ss["frames"] * 1e4 / 1e9, abs=0.1)
    # half the rate, twice the hours
    slow = sizing(work, "--profile", "paper", "--clips-per-s", "50")
    assert slow["total"]["gpu_hours"] == pytest.approx(2 * table["total"]["gpu_hours"], rel=0.01)


def test_job_count_matches_the_snakemake_dag(tmp_path):
    work = project_copy(tmp_path)
    plan = run([BIN / "snakemake", "-n", "reproduce_all"], work).stdout  # every job, nothing run yet
    total = int(re.search(r"^total\s+(\d+)", plan, re.M).group(1))
    run([BIN / "snakemake", "--cores", "2", "data"], work)  # the synthetic lists: sizes counted from them
    table = sizing(work, "--profile", "default")
    assert table["datasets"][0]["source"].startswith("counted in")
    assert table["datasets"][0]["train_clips"] == 3
    assert table["total"]["jobs"] == total - 1  # the DAG's total counts the target rule itself


def test_unknown_profile_is_refused(tmp_path):
    work = project_copy(tmp_path)
    proc = run([BIN / "mienet", "sizing", "--profile", "nope"], work, check=False)
    assert proc.returncode == 2 and "profile 'nope' is not in params.yaml" in proc.stderr
