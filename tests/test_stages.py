"""The stage specs (mienet.stages) are what both workflows run: Snakemake's rules, dvc.yaml's
stages and the SLURM profile's rule families all come from them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from mienet.config import load_params
from mienet.stages import (SLURM_PROFILE, STAGES, Workflow, dvc_stages, profile_family_problems,
                           resource_families)

REPO = Path(__file__).resolve().parent.parent
BIN = REPO / ".venv" / "bin"
WORKFLOW_RULES = {"reproduce_all", "data", "ablation", "search_all", "dataset_not_in_profile"}


def test_snakemake_has_one_rule_a_stage():
    proc = subprocess.run([BIN / "snakemake", "--list-rules"], cwd=REPO, capture_output=True, text=True, check=True)
    rules = {line.split()[0] for line in proc.stdout.splitlines() if line.strip()}
    params = load_params(REPO / "params.yaml")
    per_dataset = {f"dataset_{d}" for d in Workflow(params).enabled}
    assert rules == set(STAGES) | WORKFLOW_RULES | per_dataset


def test_every_dvc_stage_comes_from_a_spec_and_runs_its_command():
    params = load_params(REPO / "params.yaml")
    stages = dvc_stages(params)
    owners = {name: s for s in STAGES.values() if s.dvc for name in s.dvc(Workflow(params, templated=True))}
    assert set(stages) == set(owners)
    committed = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert committed == stages  # `mienet generate` wrote it from the specs
    for name, stage in stages.items():
        body = stage.get("do", stage)
        assert body["cmd"].startswith("mienet "), name


def test_the_slurm_profile_names_the_stages_families():
    assert profile_family_problems(REPO / SLURM_PROFILE) == []
    profile = yaml.safe_load((REPO / SLURM_PROFILE).read_text())
    # today every stage that runs on the cluster has its entry (a new one would get default-resources)
    assert set(profile["set-resources"]) == {s.resource_family for s in STAGES.values() if not s.local}
    assert set(profile["set-threads"]) <= set(resource_families())


def test_a_family_that_names_no_stage_is_an_error(tmp_path):
    profile = yaml.safe_load((REPO / SLURM_PROFILE).read_text())
    profile["set-resources"]["train_fast"] = {"runtime": 10}
    profile["set-threads"]["make_annotations"] = 4
    (tmp_path / "profile.yaml").write_text(yaml.safe_dump(profile))
    problems = profile_family_problems(tmp_path / "profile.yaml")
    assert any("set-resources.train_fast is not a stage's family" in p for p in problems)
    assert any("set-threads.make_annotations: stage 'make_annotations' runs one thread" in p for p in problems)
    assert len(problems) == 2


def test_logs_and_benchmarks_of_every_stage_are_distinct_and_under_the_results():
    logs = [s.log_file("results") for s in STAGES.values()]
    assert len(set(logs)) == len(logs)
    assert all(p.startswith("results/logs/") for p in logs)
    assert all(s.benchmark_file("results").startswith("results/benchmarks/") for s in STAGES.values())
