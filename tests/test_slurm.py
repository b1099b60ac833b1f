"""profiles/slurm against a real one-node SLURM cluster (slurm-wlm + munge, started by
workflow/scripts/slurm_cluster.sh): the micro pipeline through sbatch to its report, what
reaches sbatch, a cancelled job and the re-run, and the GPU claim inside SLURM jobs.

Needs root (the cluster's daemons and /etc/slurm); `make test` installs the packages
(workflow/scripts/setup_test_services.sh). Run alone with `pytest -m slurm`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from test_workflow import BIN, project_copy, write_params

pytestmark = pytest.mark.slurm

CLUSTER = REPO / "workflow" / "scripts" / "slurm_cluster.sh"
PROFILE = yaml.safe_load((REPO / "profiles" / "slurm" / "profile.yaml").read_text())
SUBMITTED = re.compile(r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: ([^)]+)\)")
# Only for the tests' speed: the first status check after 2 s instead of 40; keep every job's
# SLURM log (the plugin deletes those of successful jobs).
TEST_FLAGS = ["--slurm-init-seconds-before-status-checks", "2", "--slurm-keep-successful-logs"]


@pytest.fixture(scope="module")
def cluster():
    """A running one-node cluster; stopped afterwards unless it was already up."""
    if os.geteuid() != 0:
        pytest.skip("the SLURM tests start a real cluster: they need root (see docs/testing.md)")
    if not all(shutil.which(b) for b in ("slurmctld", "slurmd", "munged", "sbatch")):
        pytest.fail("slurm-wlm/munge are not installed: run workflow/scripts/setup_test_services.sh (make test does)")
    proc = subprocess.run(["bash", CLUSTER, "start"], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        pytest.fail(f"the test cluster did not start:\n{proc.stderr}")
    yield
    if "already running" not in proc.stderr:
        subprocess.run(["bash", CLUSTER, "stop"], capture_output=True, text=True, timeout=60)


ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


def slurm_command(*args: str, timeout: int = 600) -> list[str]:
    """`snakemake --workflow-profile profiles/slurm ARGS` with the tests' flags, under `timeout`."""
    return ["timeout", "-k", "10", str(timeout), str(BIN / "snakemake"), "--workflow-profile",
            "profiles/slurm", *args, *TEST_FLAGS]


def snakemake_slurm(work: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(slurm_command(*args, timeout=timeout), cwd=work, env=ENV, capture_output=True, text=True)


def submitted(output: str) -> dict[str, str]:
    """SLURM job id -> its log file, from Snakemake's output."""
    return {job: log for job, log in SUBMITTED.findall(output)}


def rule_of(work: Path, log: str) -> str:
    """The rule of a job, from its SLURM log's place (.snakemake/slurm_logs/rule_<rule>/...)."""
    return Path(log).relative_to(work / ".snakemake" / "slurm_logs").parts[0].removeprefix("rule_")


def scontrol(job: str) -> dict[str, str]:
    out = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True, check=True).stdout
    return dict(kv.split("=", 1) for kv in out.split() if "=" in kv)


def minutes(limit: str) -> int:
    """SLURM's [D-]HH:MM:SS as minutes."""
    days, _, clock = limit.rpartition("-")
    h, m, s = (int(x) for x in clock.split(":"))
    return int(days or 0) * 1440 + h * 60 + m + (s > 0)


def megabytes(mem: str) -> float:
    value, unit = float(mem[:-1]), mem[-1]
    return value * {"M": 1, "G": 1024, "T": 1024 * 1024}[unit]


def expected(rule: str) -> dict:
    """What profiles/slurm asks for a rule: its set-resources over the default-resources."""
    return {**PROFILE["default-resources"], **PROFILE["set-resources"].get(rule, {})}


def fail_with(proc: subprocess.CompletedProcess, what: str):
    pytest.fail(f"{what} ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")


SEARCH_DIR = Path("results/synthetic/search/mienet")
TWO_GPUS = {"gpus": 2, "batch_size": 1}  # global batch 2: 2 of the 3 training clips, one a process


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory):
    """`snakemake --workflow-profile profiles/slurm reproduce_all` on the micro configuration, with
    the study spread over 2 worker jobs and every training on 2 GPUs (2 processes, gloo on CPU).
    One variant (MIE-Net): a second would add a training and an evaluation of the same rules.
    The search's final step is asked for first, so that its 2 worker jobs are the only jobs
    ready at once: both start together (8 CPUs and 1 GPU each of the node's 16 and 2)."""
    work = project_copy(tmp_path_factory.mktemp("slurm"), variants=("mienet",))
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["search"].update(jobs=2, n_trials=4)
    params["datasets"]["synthetic"]["train"].update(TWO_GPUS)
    write_params(work, params)
    started = time.monotonic()
    output = ""
    for target in (str(SEARCH_DIR / "summary.json"), "reproduce_all"):
        proc = snakemake_slurm(work, target)
        output += proc.stdout + proc.stderr
        if proc.returncode != 0:
            fail_with(proc, f"snakemake {target} through SLURM failed")
    return work, output, time.monotonic() - started


def test_pipeline_runs_through_sbatch_to_its_report(slurm_run):
    work, output, wall = slurm_run
    jobs = submitted(output)
    assert (work / "results" / "README.md").is_file()
    assert (work / "results" / "tables" / "ablation_synthetic.md").is_file()
    rules = {}
    for job, log in jobs.items():
        log = Path(log)
        assert log.name == f"{job}.log" and log.is_file(), log  # each SLURM log is named by its job id
        rules.setdefault(rule_of(work, log), []).append(job)
    assert set(rules) == {"synth", "extract_frames", "make_annotations", "search_worker", "search", "train",
                          "train_tuned", "evaluate", "bench_train", "zoo", "report"}, rules
    # the training of seed 0 and the tuned one are evaluated; the benchmark times both ends (TSN, MIE-Net)
    assert len(rules["train"]) == 1 and len(rules["evaluate"]) == 2 and len(rules["search_worker"]) == 2
    assert len(rules["bench_train"]) == 2
    # every rule's own log names the SLURM job that ran it
    logs = "\n".join(p.read_text() for p in (work / "results" / "logs").rglob("*.log"))
    for job in jobs:
        assert re.search(rf"SLURM job {job} on node \S+, partition (cpu|gpu)", logs), job
    print(f"SLURM run: {len(jobs)} jobs (ids {min(map(int, jobs))}-{max(map(int, jobs))}) in {wall:.0f} s")


def test_partitions_gpus_memory_and_time_reach_sbatch(slurm_run):
    work, output, _ = slurm_run
    for job, log in submitted(output).items():
        rule = rule_of(work, log)
        want, got = expected(rule), scontrol(job)
        assert got["JobState"] == "COMPLETED", (rule, got["JobState"])
        assert got["Partition"] == want["slurm_partition"], (rule, got["Partition"])
        assert minutes(got["TimeLimit"]) == want["runtime"], (rule, got["TimeLimit"])
        assert megabytes(got["MinMemoryNode"]) >= want["mem_mb"], (rule, got["MinMemoryNode"])
        assert int(got["NumCPUs"]) == want["cpus_per_task"], (rule, got["NumCPUs"])
        gpu = {"train": 2, "train_tuned": 2, "search": 1, "search_worker": 1}.get(rule, want.get("gpu"))
        assert (f"gpu:{gpu}" in got.get("TresPerJob", "")) if gpu else "gpu" not in got.get("TresPerJob", ""), \
            (rule, got.get("TresPerJob"))
        if gpu:
            assert got["Partition"] == "gpu"
        print(f"SLURM job {job}: {rule}, partition {got['Partition']}, {got['NumCPUs']} CPUs, "
              f"{got['MinMemoryNode']}, limit {got['TimeLimit']}, {got.get('TresPerJob') or 'no GPU'}, "
              f"ran {got['RunTime']}")
    # inside a training job: the GPU SLURM gave it
    for log in (work / "results" / "logs" / "synthetic").glob("train_*.log"):
        # SLURM's GPU ids; the recipe's gpus: 2 take both of the node's
        assert re.search(r"partition gpu, GPUs 0,1, CUDA_VISIBLE_DEVICES=0,1\b", log.read_text()), log


def test_the_study_ran_as_two_worker_jobs_and_the_final_step_saw_them_all(slurm_run):
    work, output, _ = slurm_run
    records = [json.loads((work / SEARCH_DIR / "workers" / f"worker{k}.json").read_text()) for k in range(2)]
    ran = [[t["number"] for t in r["trials"]] for r in records]
    assert all(ran), ran  # both took trials
    assert sorted(ran[0] + ran[1]) == [0, 1, 2, 3]  # none twice, none left out
    summary = json.loads((work / SEARCH_DIR / "summary.json").read_text())
    assert summary["jobs"] == {f"worker{k}": sorted(ran[k]) for k in range(2)}
    assert (summary["finished"], summary["running"], summary["n_trials"]) == (4, 0, 4)
    assert (work / SEARCH_DIR / "best_params.yaml").is_file()
    logs = [(work / "results" / "logs" / "synthetic" / f"search_mienet_worker{k}.log").read_text() for k in range(2)]
    for k, log in enumerate(logs):  # each in its own SLURM job
        assert re.search(r"SLURM job \d+ on node \S+, partition gpu", log) and f"worker job worker{k}" in log
    print(f"search worker jobs: trials {ran[0]} and {ran[1]}")


def test_a_two_gpu_training_equals_one_process_of_the_same_global_batch(slurm_run, tmp_path):
    """The recipe's gpus: 2 with batch_size 1: 2 processes in one SLURM job (torchrun, gloo on
    the CPU, BatchNorm over both) against one local process with batch_size 2."""
    import torch

    work, _, _ = slurm_run
    run = work / "runs" / "synthetic" / "mienet" / "seed0"
    log = (work / "results" / "logs" / "synthetic" / "train_mienet_seed0.log").read_text()
    assert "world size 2" in log and "CUDA_VISIBLE_DEVICES=0,1" in log, log[-2000:]
    ref = tmp_path / "one"
    proc = subprocess.run([BIN / "mienet", "train", "--params", work / "params.yaml", "--dataset", "synthetic",
                           "--variant", "mienet", "--seed", "0", "--gpus", "1", "--batch-size", "2", "--out", ref,
                           "--no-progress"], cwd=work, env=ENV, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = torch.load(run / "checkpoints" / "last.pt", weights_only=False)
    one = torch.load(ref / "checkpoints" / "last.pt", weights_only=False)
    assert (two["world_size"], one["world_size"]) == (2, 1)
    diff = max((two["model"][k].float() - one["model"][k].float()).abs().max().item() for k in one["model"])
    assert diff < 1e-4, diff  # every parameter and buffer; float rounding only (measured: about 1e-6)
    print(f"2 processes x batch 1 against 1 x batch 2: max abs difference {diff:.2e}")


def test_the_weights_are_fetched_on_the_submitting_node_not_in_a_job(cluster, tmp_path):
    """The rule fetch_weights is local: under the SLURM profile it runs in Snakemake's own process
    tree, never through sbatch. Offline (this machine) it fails there, with the download's error."""
    from mienet.registry.variants import IMAGENET_FILES

    work = project_copy(tmp_path)
    env = {**ENV, "TORCH_HOME": str(tmp_path / "torch")}
    target = str(tmp_path / "torch" / "hub" / "checkpoints" / IMAGENET_FILES["resnet18"])
    proc = subprocess.run(slurm_command(target, timeout=120), cwd=work, env=env, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert "localrule fetch_weights:" in out, out[-3000:]
    assert not submitted(out) and not (work / ".snakemake" / "slurm_logs" / "rule_fetch_weights").exists()
    log = (work / "results" / "logs" / "fetch_weights_resnet18-f37072fd.pth.log").read_text()
    assert "SLURM job" not in log  # every mienet command inside a SLURM job says so first
    if proc.returncode != 0:  # no internet here: the error names the file to place
        assert "could not download the ImageNet weights" in log and "resnet18-f37072fd.pth" in log, log
    else:
        assert Path(target).is_file()


def test_cancelled_job_is_reported_and_the_rerun_resumes(slurm_run):
    work, first, _ = slurm_run
    # one training, its evaluation and the report to redo (Snakemake does not remake a
    # deleted file whose consumers are up to date, so the report goes too)
    for area in ("runs", "results"):
        shutil.rmtree(work / area / "synthetic" / "mienet" / "seed0")
    (work / "results" / "README.md").unlink()
    proc = subprocess.Popen(slurm_command("reproduce_all", "--retries", "0"), cwd=work, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # Snakemake's output line by line until it submits the training: each read waits for its next
    # line, and the output ends when it exits (slurm_command's `timeout` bounds that).
    output, cancelled = "", None
    for line in proc.stdout:
        output += line
        job = next((j for j, log in SUBMITTED.findall(line) if rule_of(work, log) == "train"), None)
        if job is not None and running(job, proc):
            subprocess.run(["scancel", job], check=True)
            cancelled = job
            break
    output += proc.stdout.read()  # to the end of Snakemake's run
    proc.wait(timeout=60)
    assert cancelled, f"no training job was seen running:\n{output[-3000:]}"
    assert proc.returncode != 0, output[-3000:]
    assert f"SLURM-job '{cancelled}' failed, SLURM status is: 'CANCELLED'" in output, output[-3000:]
    assert scontrol(cancelled)["JobState"] == "CANCELLED"
    assert not (work / "runs" / "synthetic" / "mienet" / "seed0" / "checkpoints" / "best.pt").exists()
    again = snakemake_slurm(work, "reproduce_all")
    if again.returncode != 0:
        fail_with(again, "the re-run after scancel failed")
    out = again.stdout + again.stderr
    rerun = sorted({rule_of(work, log) for log in submitted(out).values()})
    # only the cancelled training and what depends on it; everything finished is kept
    assert rerun == ["evaluate", "report", "train"], rerun
    assert (work / "runs" / "synthetic" / "mienet" / "seed0" / "checkpoints" / "best.pt").is_file()
    assert "Nothing to be done" in (snakemake_slurm(work, "reproduce_all").stderr)


def running(job: str, snakemake: subprocess.Popen) -> bool:
    """Wait until SLURM runs ``job``; False when it ended first, or Snakemake did. SLURM tells no
    one when a job starts, so its state is polled; the deadline only guards against a scheduler
    that never starts it (on this one-node cluster a job starts within seconds, busy or not)."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and snakemake.poll() is None:
        state = scontrol(job)["JobState"]
        if state != "PENDING":
            return state == "RUNNING"
        time.sleep(0.3)
    return False


def sbatch_claims(tmp: Path, count: int, prelude: str = "") -> list[dict]:
    """``count`` jobs at once, one GPU each, each claiming a GPU as a training does and holding it 3 s.
    ``sbatch --wait`` returns once its job has ended: each job is waited for by its own sbatch."""
    submits = []
    for i in range(count):
        out = tmp / f"claim{i}.json"
        script = (f"{prelude}echo $(date +%s.%N) > {out}.start; "
                  f"{BIN / 'mienet'} devices --claim --hold 3 --json > {out}; echo $(date +%s.%N) > {out}.end")
        submits.append(subprocess.Popen(["sbatch", "--wait", "--parsable", "-p", "gpu", "--gpus=1", "--mem", "1000",
                                         "-t", "5", "-o", str(tmp / f"claim{i}.log"), "--wrap", script],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    jobs = []
    for sbatch in submits:
        stdout, stderr = sbatch.communicate(timeout=600)  # a guard against a hung scheduler only
        assert stdout.strip(), f"sbatch failed ({sbatch.returncode}): {stderr}"
        jobs.append(stdout.strip().splitlines()[0])
    results = []
    for i, job in enumerate(jobs):
        assert scontrol(job)["JobState"] == "COMPLETED", (tmp / f"claim{i}.log").read_text()
        info = json.loads((tmp / f"claim{i}.json").read_text())
        info["span"] = (float((tmp / f"claim{i}.json.start").read_text()),
                        float((tmp / f"claim{i}.json.end").read_text()))
        results.append(info)
    return results


def test_gpu_claim_uses_the_gpus_slurm_assigned(cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("MIENET_GPU_LOCK_DIR", str(tmp_path / "locks"))  # reaches the jobs (--export=ALL)
    a, b = sbatch_claims(tmp_path, 2)
    assert a["span"][0] < b["span"][1] and b["span"][0] < a["span"][1]  # they ran at the same time
    for info in (a, b):
        # the device SLURM set, as cuda:0 of the job; no waiting for the other job
        assert info["slurm"]["cuda_visible_devices"] in ("0", "1")
        assert info["claim"]["physical"] == info["slurm"]["cuda_visible_devices"]
        assert info["claim"]["index"] == 0 and info["claim"]["waited_s"] < 1.0
    assert {a["claim"]["physical"], b["claim"]["physical"]} == {"0", "1"}
    # clusters with device cgroups show each job its GPU as CUDA_VISIBLE_DEVICES=0: the jobs
    # still own their GPUs, and neither waits for the other's "GPU 0"
    c, d = sbatch_claims(tmp_path, 2, prelude="export CUDA_VISIBLE_DEVICES=0; ")
    assert c["span"][0] < d["span"][1] and d["span"][0] < c["span"][1]
    for info in (c, d):
        assert info["claim"]["physical"] == "0" and info["claim"]["waited_s"] < 1.0
