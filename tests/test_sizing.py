"""`mienet sizing`: the cluster budget of a profile, checked against the formula and the real DAG."""

from __future__ import annotations

import contextlib
import io
import json
import math
import re

import pytest

import yaml

from test_workflow import BIN, project_copy, run, write_params


def cli(work, *args) -> str:
    """`mienet sizing ARGS` in ``work``, in this process: the models' FLOPs are counted once for
    the whole file instead of once a command (importing torch and counting: ~5 s a command).
    The command line as a separate process runs in tests/test_readme.py."""
    from mienet.cli import main

    out = io.StringIO()
    with contextlib.chdir(work), contextlib.redirect_stdout(out):
        assert main(["sizing", *map(str, args)]) == 0
    return out.getvalue()


def sizing(work, *args) -> dict:
    return json.loads(cli(work, "--json", *args))


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
    # (the SSv2 study over search.jobs = 5 worker jobs and a final step)
    assert ss["gpu_jobs"] == 2 * runs + (2 + 5 + 1) * len(table["searched"]) + 2
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
    # a study spread over 3 worker jobs: 3 jobs more in the DAG and in the count
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["search"]["jobs"] = 3
    write_params(work, params)
    plan = run([BIN / "snakemake", "-n", "--forceall", "reproduce_all"], work).stdout
    assert int(re.search(r"^search_worker\s+(\d+)", plan, re.M).group(1)) == 3
    assert sizing(work, "--profile", "default")["total"]["jobs"] == int(
        re.search(r"^total\s+(\d+)", plan, re.M).group(1)) - 1 == table["total"]["jobs"] + 3


def test_unknown_profile_is_refused(tmp_path):
    work = project_copy(tmp_path)
    proc = run([BIN / "mienet", "sizing", "--profile", "nope"], work, check=False)
    assert proc.returncode == 2 and "profile 'nope' is not in params.yaml" in proc.stderr


def test_the_loader_check_counts_the_workers_a_gpu_needs_and_warns(tmp_path, monkeypatch):
    """At --loader-clips-per-worker W (32 frames a clip, scaled by the recipe's frames per clip),
    a GPU training at R clips/s needs ceil(R / W') workers; more than the node's cores per GPU
    (one kept for training) or the recipe's workers is a warning naming the fix."""
    from conftest import REPO
    from mienet.sizing import build_table

    monkeypatch.chdir(tmp_path)  # no annotation lists here: the published sizes

    def table(per_worker: float, cores: int = 16) -> dict:  # in-process: the models' FLOPs counted once
        return build_table(REPO / "params.yaml", "paper", 100, None, per_worker, cores)

    rows = {r["dataset"]: r for r in table(30)["datasets"]}
    ss = rows["sthv2"]
    assert ss["frames_per_clip"] == 32 and ss["gpu_clips_per_s"] == pytest.approx(100, abs=1)
    assert ss["loader"]["workers_needed"] == 4 and ss["loader"]["recipe_workers"] == 8
    sljd = rows["sljd"]  # T = 3: 12 frames a clip, so 80 clips/s a worker; a lighter model, so more clips/s
    assert sljd["loader"]["loader_clips_per_s_per_worker"] == pytest.approx(30 * 32 / 12, abs=0.01)
    assert sljd["loader"]["workers_needed"] == math.ceil(sljd["gpu_clips_per_s"] / (30 * 32 / 12) - 1e-9)
    assert table(30)["warnings"] == []
    assert any(w.startswith("sthv2: feeding 100 clips/s takes 20 loader workers at 5.0 clips/s each, more than "
                            "the 15 cores") for w in table(5)["warnings"])
    assert any("set datasets.sthv2.train.workers to 10" in w for w in table(10)["warnings"])
    text = cli(tmp_path, "--params", REPO / "params.yaml", "--profile", "paper", "--loader-clips-per-worker", "5")
    assert "- warning: sthv2: feeding" in text and "loader workers one GPU needs" in text
