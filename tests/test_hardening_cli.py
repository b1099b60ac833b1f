"""Bad settings and bad places: one clear line each (issue: hardening), from the real commands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import REPO, make_synthetic_dataset
from test_workflow import project_copy, run

BIN = Path(sys.executable).parent


def mienet(*args, cwd=None):
    return subprocess.run([str(BIN / "mienet"), *map(str, args)], capture_output=True, text=True, cwd=cwd)


def test_train_checks_its_params_file_against_the_schema(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text((REPO / "params.yaml").read_text().replace("      lr: 0.003", "      lr: 3e-3"))
    proc = mienet("train", "--params", params, "--dataset", "synthetic", "--out", tmp_path / "run")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "datasets.synthetic.train.lr: '3e-3' is not of type 'number'" in proc.stderr
    assert "write it with a dot and a signed exponent, e.g. 3.0e-3" in proc.stderr
    params.write_text("profile: default\ndatasets: {synthetic: {format: synth\n")
    proc = mienet("train", "--params", params, "--dataset", "synthetic", "--out", tmp_path / "run")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{params}, line 3, column 1: not valid YAML" in proc.stderr
    assert not (tmp_path / "run").exists()


def test_snakemake_reports_a_bad_setting_in_one_line_per_problem(tmp_path):
    work = project_copy(tmp_path)
    text = (work / "params.yaml").read_text()
    (work / "params.yaml").write_text(text.replace("lr: 0.001\n", "lr: 1e-3\n").replace("  jobs: 2", "  jobs: -1"))
    proc = run([BIN / "snakemake", "-n", "reproduce_all"], work, check=False)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("  params.yaml: ")]
    assert proc.returncode == 1 and len(lines) == 2, proc.stderr
    assert "extract.jobs: -1 is less than the minimum of 1" in proc.stderr and "1.0e-3" in proc.stderr
    assert "$schema" not in proc.stderr and "Traceback" not in proc.stderr


def test_a_dataset_outside_the_profile_is_named(tmp_path):
    work = project_copy(tmp_path)
    proc = run([BIN / "snakemake", "-n", "datasets/sljd/annotations/train.txt"], work, check=False)
    assert proc.returncode != 0
    assert ("dataset 'sljd' is not in profile 'default' (it runs: synthetic); run it with "
            "`--config profile=paper` after the targets") in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr + proc.stdout and "InputFunctionException" not in proc.stderr


def test_an_os_error_is_one_line_naming_the_path_and_the_cause(tmp_path, small_tmpfs):
    """A read-only file system (a tmpfs remounted read-only) under the output folder."""
    data = make_synthetic_dataset(tmp_path / "ds", clips_per_class=1, frames=16, size=32)
    assert subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)]).returncode == 0
    out = small_tmpfs / "annotations"
    proc = mienet("make-annotations", "--format", "folder", "--videos", data / "videos", "--frames",
                  data / "frames", "-o", out)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("mienet make-annotations: error: ") and str(small_tmpfs) in proc.stderr
    assert "Read-only file system (the file system is read-only; write the outputs elsewhere)" in proc.stderr
