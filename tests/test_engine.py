"""mienet train / evaluate / predict on a tiny synthetic dataset (real PyTorch, real files)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXTURE_VIDEOS, make_synthetic_dataset
from mienet.cli import main

BIN = Path(sys.executable).parent
TINY = ["--variant", "mienet", "--arch", "resnet18", "--segments", "2", "--size", "32", "--epochs", "2",
        "--batch-size", "4", "--lr", "0.002", "--lr-steps", "10", "--workers", "0", "--no-progress",
        "--dropout", "0.0"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_synthetic_dataset(tmp_path_factory.mktemp("engine") / "ds", clips_per_class=6)


def train(dataset: Path, out: Path, *extra: str) -> int:
    return main(["train", "--annotations", str(dataset / "annotations"), "--out", str(out),
                 "--dataset", "tiny", *TINY, *extra])


def log_rows(run: Path) -> list[dict]:
    with (run / "log.csv").open() as fh:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(fh)]


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "a"
    assert train(dataset, run, "--seed", "1") == 0
    return run


def test_the_loss_falls(dataset, tmp_path):
    # Four clips of two classes, one batch an epoch: the model must learn to tell them apart.
    ann = tmp_path / "ann"
    ann.mkdir()
    lines = (dataset / "annotations" / "train.txt").read_text().splitlines()
    subset = [l for l in lines if l.endswith(" 0")][:2] + [l for l in lines if l.endswith(" 2")][:2]
    (ann / "train.txt").write_text("\n".join(subset) + "\n")
    shutil.copy(dataset / "annotations" / "val.txt", ann / "val.txt")
    shutil.copy(dataset / "annotations" / "classes.txt", ann / "classes.txt")
    assert main(["train", "--annotations", str(ann), "--root", str(dataset), "--out", str(tmp_path / "run"),
                 *TINY, "--epochs", "6", "--seed", "1"]) == 0
    losses = [float(r["train_loss"]) for r in log_rows(tmp_path / "run")]
    assert len(losses) == 6 and losses[-1] < 0.5 * losses[0], losses


def test_training_writes_logs_and_checkpoints(trained):
    rows = log_rows(trained)
    assert [r["epoch"] for r in rows] == ["1", "2"]
    for key in ("lr", "train_top1", "val_loss", "val_top1", "val_top5"):
        assert rows[-1][key] != ""
    assert (trained / "checkpoints" / "last.pt").is_file() and (trained / "checkpoints" / "best.pt").is_file()
    config = json.loads((trained / "config.json").read_text())
    assert config["variant"] == "mienet" and config["seed"] == 1
    summary = json.loads((trained / "summary.json").read_text())
    assert summary["best"]["epoch"] in (1, 2)
    assert (trained / "dvclive" / "metrics.json").is_file()


def test_two_seeded_runs_are_identical(dataset, trained, tmp_path):
    assert train(dataset, tmp_path / "b", "--seed", "1") == 0
    assert log_rows(tmp_path / "b") == log_rows(trained)


def killed_at_step_4(dataset: Path, run: Path) -> subprocess.CompletedProcess:
    """Seed 1 training that dies (like a kill) at step 4: in epoch 2 of 3 steps each."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    cmd = [str(BIN / "mienet"), "train", "--annotations", str(dataset / "annotations"), "--out", str(run),
           "--dataset", "tiny", *TINY, "--seed", "1", "--debug-exit-at-step", "4"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True)


def test_killed_mid_epoch_and_resumed_equals_uninterrupted(dataset, trained, tmp_path):
    run = tmp_path / "killed"
    proc = killed_at_step_4(dataset, run)
    assert proc.returncode == 137, proc.stderr
    assert len(log_rows(run)) == 1  # epoch 1 finished, epoch 2 interrupted
    assert train(dataset, run, "--seed", "1", "--resume") == 0
    assert log_rows(run) == log_rows(trained)


def test_existing_run_needs_resume_and_resume_checks_the_settings(dataset, trained, capsys):
    assert train(dataset, trained, "--seed", "1") == 2
    assert "pass --resume" in capsys.readouterr().err
    assert train(dataset, trained, "--seed", "2", "--resume") == 2
    assert "seed: 1 -> 2" in capsys.readouterr().err


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(dataset, tmp_path, capsys):
    run = tmp_path / "nan"
    assert train(dataset, run, "--epochs", "1") == 0
    good = (run / "checkpoints" / "last.pt").read_bytes()
    assert train(dataset, run, "--epochs", "2", "--resume", "--debug-nan-at-step", "4") == 2
    err = capsys.readouterr().err
    assert "the loss became nan at epoch 2, step 5" in err and "is intact" in err
    assert (run / "checkpoints" / "last.pt").read_bytes() == good


def test_a_missing_frame_is_named(dataset, tmp_path, capsys):
    from mienet.data.pack import read_all

    copy = tmp_path / "ds"
    shutil.copytree(dataset, copy)
    line = (copy / "annotations" / "train.txt").read_text().splitlines()[0]
    clip = line.rsplit(maxsplit=2)[0]
    # this clip in the folders layout (the same JPEG bytes), with one frame missing
    (copy / clip).mkdir()
    for i, data in enumerate(read_all(copy / f"{clip}.frames"), start=1):
        (copy / clip / f"img_{i:05d}.jpg").write_bytes(data)
    (copy / f"{clip}.frames").unlink()
    (copy / clip / "img_00003.jpg").unlink()
    assert train(copy, tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert "img_00003.jpg" in err and clip in err


def test_a_damaged_frame_pack_is_named(dataset, tmp_path, capsys):
    copy = tmp_path / "ds"
    shutil.copytree(dataset, copy)
    line = (copy / "annotations" / "train.txt").read_text().splitlines()[0]
    clip = line.rsplit(maxsplit=2)[0]
    packed = copy / f"{clip}.frames"
    packed.write_bytes(packed.read_bytes()[:-10])  # cut short
    assert train(copy, tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert f"cannot read frame {packed} (no end marker: the file is cut short" in err and f"clip {clip}" in err


def test_evaluate_writes_complete_metrics(dataset, trained, tmp_path):
    out = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(trained / "checkpoints" / "best.pt"),
                 "--annotations", str(dataset / "annotations"), "--out", str(out), "--workers", "0",
                 "--crops", "3", "--clips", "2", "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("dataset", "variant", "arch", "seed", "top1", "top5", "mean_class_acc", "params_m",
                "gflops", "epochs"):
        assert key in metrics, key
    assert metrics["dataset"] == "tiny" and metrics["views"] == 6 and metrics["seed"] == 1
    assert 0 <= metrics["top1"] <= metrics["top5"] == 100.0  # 3 classes: always in the top 5
    assert metrics["gflops"] > 0 and metrics["params_m"] > 10
    with (out / "predictions.csv").open() as fh:
        predictions = list(csv.DictReader(fh))
    assert len(predictions) == metrics["clips"] == 6
    per_class = list(csv.DictReader((out / "per_class.csv").open()))
    assert [r["class"] for r in per_class] == (dataset / "annotations" / "classes.txt").read_text().split()
    confusion = list(csv.reader((out / "confusion.csv").open()))
    assert sum(int(x) for row in confusion[1:] for x in row[1:]) == 6


def test_a_checkpoint_for_another_class_count_is_refused(dataset, trained, tmp_path, capsys):
    ann = tmp_path / "ann"
    shutil.copytree(dataset / "annotations", ann)
    (ann / "classes.txt").write_text("a\nb\nc\nd\n")
    assert main(["evaluate", "--checkpoint", str(trained / "checkpoints" / "best.pt"), "--annotations",
                 str(ann), "--root", str(dataset), "--workers", "0", "--no-progress"]) == 2
    assert "trained on 3 classes" in capsys.readouterr().err


def test_the_loader_gives_a_trained_model_its_config_and_classes(dataset, trained):
    from mienet.engine.loading import load_model

    loaded = load_model(trained / "checkpoints" / "best.pt")
    assert not loaded.model.training and loaded.meta["source"] == "trained"
    assert loaded.classes == (dataset / "annotations" / "classes.txt").read_text().split()
    for key, value in (("dataset", "tiny"), ("variant", "mienet"), ("arch", "resnet18"), ("segments", 2),
                       ("frames_per_segment", 4), ("size", 32), ("num_classes", 3), ("seed", 1), ("epochs", 2)):
        assert loaded.config[key] == value, key
    assert loaded.meta["epoch"] == loaded.meta["best"]["epoch"] in (1, 2)  # best.pt: the best epoch


def test_evaluation_and_prediction_import_neither_training_nor_the_zoo_command():
    """engine/ never imports mienet.zoo; evaluation, prediction and the loader never import training;
    training's rooms import downwards only: the command line the loop, the loop the run state."""
    training = {"mienet.engine.train", "mienet.engine.loop", "mienet.engine.run_state"}
    below = {"train": set(), "loop": {"mienet.engine.train"},
             "run_state": {"mienet.engine.train", "mienet.engine.loop"}}
    import ast

    engine = Path(__file__).resolve().parents[1] / "src" / "mienet" / "engine"
    for path in sorted(engine.glob("*.py")):
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(a.name for a in node.names)
        assert not any(m == "mienet.zoo" or m.startswith("mienet.zoo.") for m in imported), path.name
        if path.stem in ("evaluate", "predict", "loading", "runtime", "sampling", "transforms", "decoding",
                         "jpeg", "dataset"):
            assert not imported & training, path.name
        assert not imported & below.get(path.stem, set()), path.name


def test_predict_on_a_real_clip(trained, capsys):
    assert main(["predict", str(FIXTURE_VIDEOS / "test.mp4"), "--checkpoint",
                 str(trained / "checkpoints" / "best.pt"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["frames"] == 300
    names = [p["class"] for p in result["predictions"]]
    assert len(names) == 3 and names[0].startswith("0")
    assert abs(sum(p["probability"] for p in result["predictions"]) - 1) < 1e-4


def test_a_finished_run_without_best_checkpoint_restores_it_or_is_trained_again(dataset, trained, tmp_path):
    # What a workflow re-running the job does: its declared output best.pt is removed first.
    run = tmp_path / "rerun"
    shutil.copytree(trained, run)
    keep = run / "checkpoints" / ".best.pt"
    assert keep.read_bytes() == (run / "checkpoints" / "best.pt").read_bytes()
    (run / "checkpoints" / "best.pt").unlink()
    before = (run / "checkpoints" / "last.pt").stat().st_mtime_ns
    assert train(dataset, run, "--seed", "1", "--resume", "--restart-if-changed") == 0
    assert (run / "checkpoints" / "best.pt").read_bytes() == keep.read_bytes()  # restored
    assert (run / "checkpoints" / "last.pt").stat().st_mtime_ns == before  # not trained again
    # Without its second name the best epoch is lost: the run starts over, identically.
    (run / "checkpoints" / "best.pt").unlink()
    keep.unlink()
    assert train(dataset, run, "--seed", "1", "--resume", "--restart-if-changed") == 0
    assert (run / "checkpoints" / "best.pt").is_file()
    assert (run / "checkpoints" / "last.pt").stat().st_mtime_ns != before
    assert log_rows(run) == log_rows(trained)


def test_killed_run_whose_outputs_a_workflow_removed_resumes_to_the_same_result(dataset, trained, tmp_path):
    """Snakemake deletes an incomplete job's outputs (best.pt, log.csv) before running it again."""
    run = tmp_path / "killed"
    assert killed_at_step_4(dataset, run).returncode == 137
    (run / "checkpoints" / "best.pt").unlink()
    (run / "log.csv").unlink()
    assert train(dataset, run, "--seed", "1", "--resume", "--restart-if-changed") == 0
    assert log_rows(run) == log_rows(trained)  # epoch 1 from last.pt, epoch 2 trained now
    best = json.loads((run / "summary.json").read_text())["best"]
    expected = json.loads((trained / "summary.json").read_text())["best"]
    assert best == expected
    import torch

    assert torch.load(run / "checkpoints" / "best.pt", weights_only=True)["epoch"] == expected["epoch"]


def test_two_processes_never_hold_one_gpu_at_once(tmp_path):
    """The per-GPU lock files (real flock, two real processes; the GPU count is given, so
    this runs without a GPU): the second waits until the first lets its GPU go."""
    script = (
        "import sys, time, logging; logging.basicConfig(level=logging.INFO)\n"
        "from mienet.engine.runtime import claim_gpu\n"
        "index = claim_gpu(poll_s=0.1, count=1)\n"
        "assert claim_gpu(poll_s=0.1, count=1) == index  # the same process: the same GPU\n"
        "print('claimed', index, time.time(), flush=True)\n"
        "sys.stdin.readline()  # hold the GPU until told to let it go\n"
        "print('released', time.time(), flush=True)\n"
    )
    env = {**os.environ, "MIENET_GPU_LOCK_DIR": str(tmp_path), "CUDA_VISIBLE_DEVICES": ""}
    pipes = dict(env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = subprocess.Popen([sys.executable, "-c", script], **pipes)
    assert first.stdout.readline().startswith("claimed 0")
    second = subprocess.Popen([sys.executable, "-c", script], **pipes)
    waiting = next((line for line in second.stderr if "waiting" in line), "")  # blocks until it waits
    assert "in use by other mienet processes; waiting" in waiting
    out_first = first.communicate("\n", timeout=60)[0]
    out_second, err_second = second.communicate("\n", timeout=60)
    released = float(out_first.split()[-1])
    claimed = float(out_second.split()[2])
    assert claimed >= released, (out_first, out_second)
    assert "GPU 0 is free now" in err_second


def test_the_recipes_gpus_start_torchrun_and_a_resume_on_another_count_is_refused(dataset, tmp_path):
    """`mienet train --gpus 2` (a recipe's gpus: 2) starts 2 processes itself; resuming the run on
    one process would change the global batch and BatchNorm's statistics: refused, naming both.
    (torchrun started by hand, as docs/models-and-training.md shows it: tests/test_readme.py.)"""
    run = tmp_path / "two"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}
    cmd = [str(BIN / "mienet"), "train", "--annotations", str(dataset / "annotations"), "--out", str(run),
           "--dataset", "tiny", *TINY, "--epochs", "1", "--batch-size", "2"]
    proc = subprocess.run([*cmd, "--gpus", "2"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "starting 2 processes with torchrun" in proc.stderr and "world size 2" in proc.stderr
    import torch

    assert torch.load(run / "checkpoints" / "last.pt", weights_only=False)["world_size"] == 2
    again = subprocess.run([*cmd, "--epochs", "2", "--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2
    assert "cannot resume" in again.stderr and "processes (gpus): 2 -> 1 (global batch 4 -> 2)" in again.stderr


def test_a_training_without_its_imagenet_weights_fails_at_once(dataset, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert train(dataset, tmp_path / "run", "--pretrained", "imagenet") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "resnet18-f37072fd.pth" in err and "fetch_weights" in err, err
    assert not (tmp_path / "run").exists()  # nothing started


def test_a_two_gpu_training_without_its_weights_fails_before_starting_processes(dataset, tmp_path, monkeypatch,
                                                                               capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert train(dataset, tmp_path / "run", "--pretrained", "imagenet", "--gpus", "2") == 2
    err = capsys.readouterr().err
    assert "torchrun" not in err and "fetch_weights" in err and len(err.strip().splitlines()) == 1, err
