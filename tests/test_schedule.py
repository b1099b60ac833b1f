"""Wall-clock sizing: the critical path and the list schedule on hand-computed cases, and
`mienet sizing --gpus` on the paper profile against its own GPU-hour rows."""

from __future__ import annotations

import json

import pytest

from mienet.errors import MienetError
from mienet.schedule import Job, chains, critical_path, list_schedule
from mienet.sizing import WallClock, dataset_jobs


def test_a_chain_and_an_independent_job_on_one_and_two_gpus():
    jobs = [Job("a", 2), Job("b", 3, after=("a",)), Job("c", 4)]
    assert chains(jobs) == {"a": 5, "b": 3, "c": 4}
    assert critical_path(jobs) == 5
    one = list_schedule(jobs, 1)  # a (chain 5) first, then c (4) before b (3): 2 + 4 + 3
    assert one["makespan_h"] == 9 and one["start"] == {"a": 0, "c": 2, "b": 6}
    two = list_schedule(jobs, 2)  # a and c at once, b after a: the critical path
    assert two["makespan_h"] == 5 and two["start"] == {"a": 0, "c": 0, "b": 2}


def test_a_job_waits_until_enough_gpus_are_free():
    jobs = [Job("wide", 1, gpus=2), Job("long", 3)]
    s = list_schedule(jobs, 2)  # long (chain 3) starts first; wide needs both GPUs: after it
    assert s["start"] == {"long": 0, "wide": 3} and s["makespan_h"] == 4
    assert list_schedule([Job(f"j{i}", 1) for i in range(5)], 2)["makespan_h"] == 3  # ceil(5 / 2)
    assert list_schedule([], 4)["makespan_h"] == 0 and critical_path([]) == 0


def test_bad_job_lists_are_named():
    with pytest.raises(MienetError, match="cycle"):
        critical_path([Job("a", 1, after=("b",)), Job("b", 1, after=("a",))])
    with pytest.raises(MienetError, match="waits for unknown job"):
        critical_path([Job("a", 1, after=("z",))])
    with pytest.raises(MienetError, match="need more than 2 GPU"):
        list_schedule([Job("a", 1, gpus=4)], 2)
    with pytest.raises(MienetError, match="listed twice"):
        critical_path([Job("a", 1), Job("a", 2)])


def test_a_search_spread_over_worker_jobs_and_trainings_over_gpus():
    wall = WallClock(gpus=8, search_jobs=3, gpus_per_training=2, pruned_share=0.5)
    jobs = {j.name: j for j in dataset_jobs("d", {"tsn": 10.0}, {"tsn": 0.5, "mienet": 0.5}, [0, 1],
                                            {"mienet": (10, 2.0, 12.0)}, wall)}
    # 10 trials over 3 workers: 4, 3, 3 trials of 2 GPU-h, half of them pruned away
    assert [jobs[f"d/search/mienet/worker{i}"].hours for i in range(3)] == [4.0, 3.0, 3.0]
    tuned = jobs["d/train_tuned/mienet"]
    assert (tuned.hours, tuned.gpus, set(tuned.after)) == (6.0, 2, {f"d/search/mienet/worker{i}" for i in range(3)})
    assert (jobs["d/train/tsn/seed1"].hours, jobs["d/train/tsn/seed1"].gpus) == (5.0, 2)
    assert jobs["d/evaluate/tsn/seed0"].after == ("d/train/tsn/seed0",)
    assert critical_path(list(jobs.values())) == 4.0 + 6.0 + 0.5  # longest worker, tuned, its evaluation
    for bad in (WallClock(gpus=2, gpus_per_training=4), WallClock(gpus=2, pruned_share=1.0),
                WallClock(gpus=0), WallClock(gpus=2, job_limit=0)):
        with pytest.raises(MienetError):
            bad.check()


def test_sizing_gpus_on_the_paper_profile(tmp_path, monkeypatch):
    """params.yaml's paper profile (published sizes, 10 trials a search): the critical path and
    the longest job follow from the GPU-hour rows by hand."""
    from conftest import REPO
    from mienet.sizing import build_table
    from test_sizing import cli
    from test_workflow import BIN, run

    def sizing(gpus=None, *args, job_limit=None) -> dict:  # in-process: the models' FLOPs counted once
        wall = WallClock(gpus, *args, job_limit=job_limit) if gpus else None
        return build_table(REPO / "params.yaml", "paper", 100, None, wall=wall)

    monkeypatch.chdir(tmp_path)  # no annotation lists here: the published sizes
    one_job = sizing(32, 1, 1, job_limit=24)  # one job a search, one GPU a training (issue 21's "before")
    ss = {r["dataset"]: r for r in one_job["datasets"]}["sthv2"]
    wc = one_job["wall_clock"]
    tuned_train = ss["longest_training_h"]  # MIE-Net, the searched variant, is the longest training
    tuned_eval = ss["gpu_hours_tuned"] - tuned_train
    # one search job: the critical path is the whole search, the tuned training, its evaluation
    assert wc["critical_path_h"] == pytest.approx(ss["gpu_hours_search"] + tuned_train + tuned_eval, abs=0.2)
    assert one_job["makespan_h"] == wc["makespan_h"] >= wc["critical_path_h"]
    assert one_job["longest_job_h"] == pytest.approx(ss["gpu_hours_search"], abs=0.1)
    assert wc["gpu_hours"] == pytest.approx(one_job["total"]["gpu_hours"], abs=0.5)  # the same work, scheduled
    assert any(o["job"] == "sthv2/search/mienet/worker0" for o in wc["over_limit"])
    spread = sizing(32, 10, 4, 0.3)
    # 10 trials over 10 jobs, 30 % of each pruned away; the tuned training on 4 GPUs
    assert spread["wall_clock"]["critical_path_h"] == pytest.approx(
        ss["gpu_hours_search"] / 10 * 0.7 + tuned_train / 4 + tuned_eval, abs=0.2)
    assert spread["wall_clock"]["gpu_hours"] / 32 <= spread["makespan_h"] < one_job["makespan_h"] / 2
    # the settings committed in params.yaml (search.jobs, the recipes' gpus): under 48 h on 32
    # GPUs, no job over a day
    committed = sizing(32, job_limit=24)
    wc = committed["wall_clock"]
    assert committed["makespan_h"] <= 48 and wc["over_limit"] == [] and committed["longest_job_h"] <= 24
    assert (wc["datasets"]["sthv2"]["search_worker_jobs"], wc["datasets"]["sthv2"]["training_gpus"]) == (5, 2)
    assert wc["gpu_hours"] == pytest.approx(committed["total"]["gpu_hours"], abs=0.5)
    eight = sizing(8, 10, 4, 0.3)
    assert eight["makespan_h"] >= max(eight["wall_clock"]["critical_path_h"], eight["wall_clock"]["gpu_hours"] / 8)
    # the command line, in this process (the FLOPs counted above; as a separate process it runs in
    # tests/test_readme.py)
    text = cli(tmp_path, "--params", REPO / "params.yaml", "--profile", "paper", "--gpus", "32", "--job-limit", "24")
    assert "Wall-clock on 32 GPUs" in text and "| **all together** |" in text and "Jobs over the 24 h limit:" in text
    as_json = json.loads(cli(tmp_path, "--params", REPO / "params.yaml", "--profile", "paper", "--gpus", "32",
                             "--job-limit", "24", "--json"))
    assert (as_json["makespan_h"], as_json["longest_job_h"]) == (committed["makespan_h"], committed["longest_job_h"])
    assert "Jobs over the 24 h limit: none." in text
    proc = run([BIN / "mienet", "sizing", "--params", REPO / "params.yaml", "--gpus", "2", "--gpus-per-training", "4"],
               tmp_path, check=False)
    assert proc.returncode == 2 and "--gpus-per-training 4 is more than --gpus 2" in proc.stderr
    assert "wall_clock" not in sizing()  # without --gpus: the GPU-hour table only
