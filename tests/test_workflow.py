"""The Snakemake workflow and the DVC pipeline, really run on a micro synthetic dataset."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from mienet.data.annotations import read_frame_list

BIN = Path(sys.executable).parent
MICRO = {"classes": 3, "clips_per_class": 3, "frames": 16, "size": 48, "fps": 25, "seed": 0}


def project_copy(tmp_path: Path) -> Path:
    """The workflow files in a scratch folder, with the synthetic dataset shrunk to micro size."""
    work = tmp_path / "project"
    work.mkdir()
    for name in ("Snakefile", "dvc.yaml", "params.yaml", "workflow", "src"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, work / name)
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["synth"].update(MICRO)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return work


def run(cmd, cwd, check=True):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def check_dataset(root: Path) -> None:
    ann = root / "annotations"
    assert (ann / "classes.txt").read_text().count("\n") == 3
    clips = read_frame_list(ann / "train.txt") + read_frame_list(ann / "val.txt")
    assert len(clips) == 9
    for clip in clips:
        assert len(list((root / clip.path).glob("img_*.jpg"))) == clip.frames == 16


def test_snakemake_reproduce_all_then_nothing_to_do(tmp_path):
    work = project_copy(tmp_path)
    run([BIN / "snakemake", "--cores", "2", "reproduce_all"], work)
    check_dataset(work / "datasets" / "synthetic")
    for rule in ("synth", "extract_frames", "make_annotations"):
        assert (work / "results" / "logs" / "synthetic" / f"{rule}.log").exists()
        assert (work / "results" / "benchmarks" / "synthetic" / f"{rule}.tsv").exists()
    again = run([BIN / "snakemake", "--cores", "2", "reproduce_all"], work)
    assert "Nothing to be done" in again.stdout + again.stderr


def test_mistyped_key_stops_before_any_job(tmp_path):
    work = project_copy(tmp_path)
    text = (work / "params.yaml").read_text().replace("clips_per_class:", "clips_per_clas:")
    (work / "params.yaml").write_text(text)
    proc = run([BIN / "snakemake", "--cores", "1", "reproduce_all"], work, check=False)
    assert proc.returncode != 0
    assert "'clips_per_clas' was unexpected" in proc.stderr + proc.stdout
    assert not (work / "datasets").exists()


def test_dvc_repro_runs_the_same_commands(tmp_path):
    work = project_copy(tmp_path)
    run(["git", "init", "-q"], work)
    run([BIN / "dvc", "init", "-q"], work)
    run([BIN / "dvc", "repro"], work)
    check_dataset(work / "datasets" / "synthetic")
    lock = yaml.safe_load((work / "dvc.lock").read_text())
    assert set(lock["stages"]) == {"synth", "extract_frames", "make_annotations"}
    status = run([BIN / "dvc", "status"], work)
    assert "up to date" in status.stdout
    # a parameter change re-runs the stage that reads it and what follows
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["annotations"]["seed"] = 7
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run([BIN / "dvc", "repro"], work).stdout
    assert "Running stage 'make_annotations'" in out and "Running stage 'synth'" not in out


def _subcommands(text: str) -> set[str]:
    return set(re.findall(r"mienet ([a-z][a-z-]+)", text))


def test_snakemake_and_dvc_call_the_same_commands():
    smk = "".join(p.read_text() for p in (REPO / "workflow" / "rules").glob("*.smk"))
    dvc = (REPO / "dvc.yaml").read_text()
    assert _subcommands(dvc) <= _subcommands(smk)
    stages = yaml.safe_load(dvc)["stages"]
    for name in stages:
        assert re.search(rf"^rule {name}:", smk, re.M), f"DVC stage {name} has no Snakemake rule"
