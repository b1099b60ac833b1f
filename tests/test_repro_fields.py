"""What a number was made with: the training's machine, threads and precision (environment.json),
the evaluation's, and the evaluate settings, in every metrics.json; the report refuses results
evaluated with other settings than params.yaml's and shows the machines on the results page."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from conftest import make_synthetic_dataset
from mienet.cli import main
from mienet.engine.evaluate import eval_speed
from mienet.engine.performance import SpeedConfig, default_speed_config
from mienet.engine.provenance import ENVIRONMENT_FILE, NOT_RECORDED, read_training, record_training, summary

REPO = Path(__file__).resolve().parents[1]
TINY = ["--variant", "tsn", "--arch", "resnet10_half", "--segments", "2", "--size", "32", "--epochs", "1",
        "--batch-size", "4", "--lr", "0.002", "--workers", "0", "--no-progress", "--seed", "0"]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, one_torch_thread) -> tuple[Path, dict]:
    """A tiny fp32 training on one thread, evaluated on val: (run folder, metrics.json)."""
    root = tmp_path_factory.mktemp("repro")
    ds = make_synthetic_dataset(root / "ds", clips_per_class=4)
    run = root / "run"
    assert main(["train", "--annotations", str(ds / "annotations"), "--out", str(run), "--dataset", "tiny",
                 *TINY, "--amp", "off", "--threads", "1"]) == 0
    assert main(["evaluate", "--checkpoint", str(run / "checkpoints"), "--annotations", str(ds / "annotations"),
                 "--split", "val", "--out", str(root / "eval"), "--workers", "0", "--threads", "1",
                 "--no-progress"]) == 0
    return run, json.loads((root / "eval" / "metrics.json").read_text())


def test_training_records_precision_threads_and_machine(evaluated):
    run, _ = evaluated
    (segment,) = json.loads((run / ENVIRONMENT_FILE).read_text())
    assert segment["from_epoch"] == 1 and segment["device"] == "cpu"
    assert segment["precision"] == "fp32" and segment["threads"] == 1
    machine = segment["machine"]
    assert machine["cpu"] and machine["torch"] == torch.__version__ and isinstance(machine["isa"], list)
    assert machine["gpu"] is None


def test_metrics_carry_the_training_evaluation_and_settings(evaluated):
    _, m = evaluated
    assert m["evaluate_settings"] == {"split": "val", "list": None, "clips": 1, "crops": 1, "dense": False}
    (trained,) = m["train_environment"]
    assert (trained["precision"], trained["threads"]) == ("fp32", 1)
    # --amp auto: a float32 training is scored in float32, whatever this CPU's default is
    assert m["evaluate_environment"]["precision"] == "fp32" and m["evaluate_environment"]["threads"] == 1
    assert m["evaluate_environment"]["machine"] == trained["machine"]


def test_evaluation_precision_follows_the_training():
    fp32 = [{"device": "cpu", "precision": "fp32"}]
    bf16 = [{"device": "cpu", "precision": "bf16"}]
    assert eval_speed("cpu", "auto", fp32).amp is None
    assert eval_speed("cpu", "auto", bf16).amp == "bf16"
    assert eval_speed("cpu", "auto", None) == default_speed_config("cpu")  # older runs: as before
    assert eval_speed("cpu", "auto", [{"device": "cuda", "precision": "fp16"}]) == default_speed_config("cpu")
    assert eval_speed("cpu", "off", bf16).amp is None


def test_a_resumed_run_keeps_its_segments(tmp_path):
    fp32, bf16 = SpeedConfig(amp=None), SpeedConfig(amp="bf16")
    assert len(record_training(tmp_path, 0, "cpu", fp32)) == 1
    assert len(record_training(tmp_path, 3, "cpu", fp32)) == 1  # resumed the same way: one segment
    segments = record_training(tmp_path, 5, "cpu", bf16)
    assert [(s["from_epoch"], s["precision"]) for s in segments] == [(1, "fp32"), (6, "bf16")]
    assert "from epoch 6: bf16" in summary(segments)
    # resumed from an epoch before the second segment: that segment's epochs are gone
    assert [s["from_epoch"] for s in record_training(tmp_path, 4, "cpu", fp32)] == [1]
    assert len(record_training(tmp_path, 0, "cpu", bf16)) == 1  # a fresh start
    assert read_training(tmp_path / ENVIRONMENT_FILE)[0]["precision"] == "bf16"
    assert summary(None) == NOT_RECORDED


def results_tree(tmp_path: Path, metrics: dict, crops: int) -> Path:
    results = tmp_path / "results"
    run = results / "synthetic" / "mienet" / "seed0"
    run.mkdir(parents=True)
    m = {**metrics, "dataset": "synthetic", "variant": "mienet", "seed": 0, "split": "test", "test_crops": crops}
    m["evaluate_settings"] = {**m["evaluate_settings"], "split": "standard", "crops": crops}
    (run / "metrics.json").write_text(json.dumps(m))
    return results


def test_the_report_refuses_other_evaluate_settings_than_params(evaluated, tmp_path, capsys):
    _, metrics = evaluated
    params = REPO / "params.yaml"
    results = results_tree(tmp_path, metrics, crops=3)
    assert main(["report", "--results", str(results), "--datasets", "synthetic", "--no-figures",
                 "--params", str(params)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "synthetic/mienet/seed0/metrics.json was evaluated with crops 3" in err
    assert "crops 1" in err and "dvc repro evaluate@synthetic-mienet-0" in err
    assert not (results / "README.md").exists()  # nothing written
    # an older metrics.json (no evaluate_settings) is checked by its test_crops
    old = json.loads((results / "synthetic/mienet/seed0/metrics.json").read_text())
    del old["evaluate_settings"]
    (results / "synthetic/mienet/seed0/metrics.json").write_text(json.dumps(old))
    assert main(["report", "--results", str(results), "--no-figures", "--params", str(params)]) == 2
    assert "crops 3" in capsys.readouterr().err
    assert main(["report", "--results", str(results), "--no-figures", "--params", "none"]) == 0


def test_the_results_page_shows_how_the_runs_were_computed(evaluated, tmp_path):
    _, metrics = evaluated
    results = results_tree(tmp_path, metrics, crops=1)
    assert main(["report", "--results", str(results), "--datasets", "synthetic", "--no-figures",
                 "--params", str(REPO / "params.yaml")]) == 0
    page = (results / "README.md").read_text()
    section = page.split("### How the runs were computed", 1)[1].split("###", 1)[0]
    assert "Training (precision, PyTorch threads, machine) of the run: fp32, 1 thread, " in section
    assert "Evaluation of the run: fp32, 1 thread" in section
    assert "`test`, 1 clip x 1 crop" in section
    shutil.rmtree(results)
