"""Issue 16, training, evaluation and search side: every bad setting and bad input gets one clear
line, and nothing is recorded falsely. Real PyTorch runs on a tiny synthetic dataset, real files,
a real full disk (a tmpfs mounted by the test)."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch
import yaml

from conftest import fill, make_synthetic_dataset, mounted_tmpfs
from mienet.cli import main
from mienet.search.storage import open_storage

BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}
TINY = ["--variant", "mienet", "--arch", "resnet10", "--segments", "2", "--size", "32", "--epochs", "1",
        "--batch-size", "4", "--lr", "0.002", "--lr-steps", "10", "--workers", "0", "--no-progress",
        "--dropout", "0.0", "--seed", "1", "--dataset", "tiny"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest: one torch thread


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_synthetic_dataset(tmp_path_factory.mktemp("hardening") / "ds", clips_per_class=4)


def train(ann: Path, out: Path, *extra: str, root: Path | None = None) -> int:
    return main(["train", "--annotations", str(ann), "--root", str(root or ann.parent), "--out", str(out),
                 *TINY, *extra])


@pytest.fixture(scope="module")
def run(dataset, tmp_path_factory) -> Path:
    """One finished epoch of a ResNet-10 MIE-Net."""
    out = tmp_path_factory.mktemp("runs") / "run"
    assert train(dataset / "annotations", out) == 0
    return out


def copy_run(run: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(run, dst)
    return dst


def annotations_copy(dataset: Path, tmp_path: Path, name: str = "ann") -> Path:
    ann = tmp_path / name
    shutil.copytree(dataset / "annotations", ann)
    return ann


# --------------------------------------------------------------------------- item 1: --resume


def test_resume_refuses_every_changed_setting_and_another_dataset(dataset, run, tmp_path, capsys, caplog):
    out = copy_run(run, tmp_path)
    last = (out / "checkpoints" / "last.pt").read_bytes()
    config = (out / "config.json").read_text()
    ann = dataset / "annotations"
    assert train(ann, out, "--resume", "--epochs", "5", "--weight-decay", "0.5", "--momentum", "0.1",
                 "--dropout", "0.9") == 2
    err = capsys.readouterr().err
    assert "dropout: 0.0 -> 0.9; momentum: 0.9 -> 0.1; weight_decay: 0.0001 -> 0.5)" in err, err
    assert "epochs" not in err and "--restart-if-changed" in err  # epochs may grow: a run can be extended
    # Another dataset (one clip less in train.txt) is refused, naming both folders.
    other = annotations_copy(dataset, tmp_path, "other")
    lines = (other / "train.txt").read_text().splitlines()
    (other / "train.txt").write_text("\n".join(lines[1:]) + "\n")
    assert train(other, out, "--resume", root=dataset) == 2
    err = capsys.readouterr().err
    assert f"dataset (train.txt, val.txt, classes.txt): {ann} (sha256 " in err and f"-> {other} (sha256" in err
    # Nothing was recorded by the refused runs.
    assert (out / "checkpoints" / "last.pt").read_bytes() == last
    assert (out / "config.json").read_text() == config
    # The same lists in another folder are the same dataset; where the run is (--out) may change too.
    moved = annotations_copy(dataset, tmp_path, "moved")
    assert train(moved, out, "--resume", root=dataset) == 0
    # --restart-if-changed starts over, and then every record holds the new settings.
    caplog.set_level(logging.INFO)
    assert train(ann, out, "--resume", "--restart-if-changed", "--weight-decay", "0.5") == 0
    assert "starting over" in caplog.text and "weight_decay: 0.0001 -> 0.5" in caplog.text
    assert "top-5 100.0000 (not informative: 3 classes)" in caplog.text  # item 15, the epoch line
    state = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert state["config"]["weight_decay"] == 0.5
    assert json.loads((out / "config.json").read_text())["weight_decay"] == 0.5
    decays = {g["weight_decay"] for g in state["optimizer"]["param_groups"]}
    assert decays == {0.0, 0.5}  # the optimiser that ran: decay 0.5 (x0 for biases and norms)


def test_a_checkpoint_without_dataset_hash_resumes_with_a_warning(dataset, run, tmp_path, caplog):
    out = copy_run(run, tmp_path)
    state = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    del state["dataset_hash"]  # as written before runs recorded their dataset
    torch.save(state, out / "checkpoints" / "last.pt")
    assert train(dataset / "annotations", out, "--resume") == 0
    assert "cannot check that" in caplog.text and "(unknown); resuming" in caplog.text


# --------------------------------------------------------------------------- item 4: ranges


@pytest.mark.parametrize("option, message", [
    (["--lr", "-1"], "--lr -1.0: -1.0 is less than or equal to the minimum of 0"),
    (["--size", "0"], "--size 0: 0 is less than the minimum of 16"),
    (["--epochs", "0"], "--epochs 0: 0 is less than the minimum of 1"),
    (["--batch-size", "0"], "--batch-size 0: 0 is less than the minimum of 1"),
    (["--dropout", "1.5"], "--dropout 1.5: 1.5 is greater than or equal to the maximum of 1"),
    (["--lr-steps", "0", "5"], "--lr-steps 0 5: item 0: 0 is less than the minimum of 1"),
    (["--seed", "-1"], "--seed -1: must be an integer >= 0"),
])
def test_out_of_range_options_are_refused_before_any_work(dataset, tmp_path, capsys, option, message):
    assert train(dataset / "annotations", tmp_path / "run", *option) == 2
    err = capsys.readouterr().err
    assert err == f"mienet train: error: invalid setting(s): {message}\n"
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- items 5 and 7: lists


def test_an_empty_val_list_and_an_epoch_without_clips_are_errors(dataset, tmp_path, capsys):
    ann = annotations_copy(dataset, tmp_path)
    (ann / "val.txt").write_text("")
    assert train(ann, tmp_path / "run", root=dataset) == 2
    assert f"{ann / 'val.txt'} lists no clips" in capsys.readouterr().err
    assert not (tmp_path / "run" / "checkpoints").exists()
    # Every training clip's frames gone, skipped with --skip-missing: no batch, no fake epoch.
    copy = tmp_path / "ds"
    shutil.copytree(dataset, copy)
    for line in (copy / "annotations" / "train.txt").read_text().splitlines():
        (copy / f"{line.rsplit(maxsplit=2)[0]}.frames").unlink()  # the clip's frame pack (extract.layout: packed)
    assert train(copy / "annotations", tmp_path / "run2", "--skip-missing") == 2
    err = capsys.readouterr().err
    assert "epoch 1 trained on no clip" in err and "train.txt were skipped" in err
    assert not (tmp_path / "run2" / "checkpoints" / "last.pt").exists()


def test_a_clip_in_both_lists_is_refused(dataset, tmp_path, capsys):
    ann = annotations_copy(dataset, tmp_path)
    first = (ann / "train.txt").read_text().splitlines()[0]
    with (ann / "val.txt").open("a") as fh:
        fh.write(first + "\n")
    assert train(ann, tmp_path / "run", root=dataset) == 2
    err = capsys.readouterr().err
    assert "share 1 clip(s)" in err and first.rsplit(maxsplit=2)[0] in err


# --------------------------------------------------------------------------- item 2: a full disk


def last_line(stderr: str) -> str:
    return stderr.strip().splitlines()[-1]


def test_training_on_a_full_disk_is_one_line(dataset, small_tmpfs):
    out = small_tmpfs / "run"  # 4 MiB: config.json and log.csv fit, the first checkpoint does not
    cmd = [str(BIN / "mienet"), "train", "--annotations", str(dataset / "annotations"), "--out", str(out), *TINY]
    proc = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert last_line(proc.stderr).startswith(
        f"mienet train: error: {out / 'checkpoints' / 'last.pt'}: No space left on device"), proc.stderr
    assert not list((out / "checkpoints").iterdir())  # no checkpoint, not even a partial one
    summary = out / "dvclive" / "metrics.json"  # dvclive's summary: whole, or not there (was 0 bytes)
    assert not summary.exists() or json.loads(summary.read_text()), summary
    assert not [p for p in out.rglob("*") if p.is_file() and p.stat().st_size == 0 and p.suffix == ".json"]


@pytest.fixture
def tmpfs_128m(tmp_path):
    """A tmpfs that holds one ResNet-10 run (90 MB of checkpoints) and then fills up."""
    with mounted_tmpfs(tmp_path / "disk", "128m") as mount:
        yield mount


def test_a_full_disk_keeps_the_previous_last_checkpoint(dataset, run, tmpfs_128m, capsys):
    out = tmpfs_128m / "run"
    shutil.copytree(run, out)
    before = (out / "checkpoints" / "last.pt").read_bytes()
    fill(tmpfs_128m, leave=1 << 20)
    assert train(dataset / "annotations", out, "--resume", "--epochs", "2") == 1
    err = capsys.readouterr().err
    assert err.endswith("\n") and last_line(err).startswith(
        f"mienet train: error: {out / 'checkpoints' / 'last.pt'}: No space left on device")
    assert (out / "checkpoints" / "last.pt").read_bytes() == before  # intact: epoch 1
    assert not list(out.rglob("*.tmp"))


def test_save_checkpoint_turns_torchs_error_into_enospc(small_tmpfs, tmp_path, monkeypatch):
    from mienet.models.checkpoint import save_checkpoint

    with pytest.raises(OSError) as info:
        save_checkpoint(torch.nn.Linear(1100, 1000), small_tmpfs / "x.pt")  # 4.4 MB of weights
    assert (info.value.errno, info.value.strerror, info.value.filename) == (
        errno.ENOSPC, "No space left on device", str(small_tmpfs / "x.pt"))
    assert not list(small_tmpfs.iterdir())  # no partial file left
    # Any other RuntimeError of torch.save, on a disk with room, is not disguised.
    def broken(*args, **kwargs):
        raise RuntimeError("not a space problem")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(RuntimeError, match="not a space problem"):
        save_checkpoint(torch.nn.Linear(2, 2), tmp_path / "y.pt")


def test_evaluate_on_a_full_disk_is_one_line(dataset, run, small_tmpfs):
    fill(small_tmpfs)
    out = small_tmpfs / "eval"
    cmd = [str(BIN / "mienet"), "evaluate", "--checkpoint", str(run / "checkpoints" / "best.pt"),
           "--annotations", str(dataset / "annotations"), "--out", str(out), "--workers", "0", "--no-progress"]
    proc = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    line = last_line(proc.stderr)
    assert line.startswith(f"mienet evaluate: error: {out}/") and ": No space left on device" in line, line
    assert not (out / "metrics.json").exists()  # no metrics.json: unmistakably incomplete


# --------------------------------------------------------------------------- items 14 and 15: evaluate


def test_evaluate_names_a_directory_and_warns_about_other_class_names(dataset, run, tmp_path, capsys, caplog):
    ann = dataset / "annotations"
    assert main(["evaluate", "--checkpoint", str(run), "--annotations", str(ann), "--no-progress"]) == 2
    assert (f"checkpoint {run} is a directory, not a checkpoint file; did you mean "
            f"{run / 'checkpoints' / 'best.pt'}?") in capsys.readouterr().err
    other = annotations_copy(dataset, tmp_path)
    names = (other / "classes.txt").read_text().split()
    (other / "classes.txt").write_text("\n".join([names[0], "walk", "jump"]) + "\n")
    out = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(run / "checkpoints" / "best.pt"), "--annotations", str(other),
                 "--root", str(dataset), "--out", str(out), "--workers", "0", "--no-progress"]) == 0
    assert f"name 2 of 3 classes differently (label 1: {names[1]!r} in the checkpoint, 'walk' in the list; " \
           f"label 2: {names[2]!r} in the checkpoint, 'jump' in the list)" in caplog.text
    assert json.loads((out / "metrics.json").read_text())["class_names_match"] is False
    assert "top-5 100.00 (not informative: 3 classes)" in capsys.readouterr().out


# --------------------------------------------------------------------------- item 16: checkpoints


def test_best_checkpoints_hold_weights_only_and_still_restore(dataset, run, tmp_path):
    ckpt = run / "checkpoints"
    last, best = (torch.load(ckpt / n, weights_only=True) for n in ("last.pt", "best.pt"))
    assert "optimizer" in last and "optimizer" not in best and best["format"] == "mienet-weights-1"
    assert {k: best[k] for k in ("epoch", "config", "classes")} == {k: last[k] for k in ("epoch", "config", "classes")}
    assert (ckpt / ".best.pt").read_bytes() == (ckpt / "best.pt").read_bytes()
    sizes = {n: (ckpt / n).stat().st_size for n in ("last.pt", "best.pt", ".best.pt")}
    assert sizes["best.pt"] < 0.55 * sizes["last.pt"], sizes  # no momentum buffers
    # The best epoch is the last one: with both copies of best.pt gone, last.pt restores it.
    out = copy_run(run, tmp_path)
    (out / "checkpoints" / "best.pt").unlink()
    (out / "checkpoints" / ".best.pt").unlink()
    mtime = (out / "checkpoints" / "last.pt").stat().st_mtime_ns
    assert train(dataset / "annotations", out, "--resume", "--restart-if-changed") == 0
    assert (out / "checkpoints" / "last.pt").stat().st_mtime_ns == mtime  # not trained again
    restored = torch.load(out / "checkpoints" / "best.pt", weights_only=True)
    assert restored["epoch"] == 1 and all(torch.equal(restored["model"][k], v) for k, v in best["model"].items())


# --------------------------------------------------------------------------- item 17: frozen w


def test_frozen_fusion_weights_count_in_the_clip_norm_as_released(dataset):
    """One real step in float64: the clip norm over model.parameters() includes w's gradient,
    while w is in none of the optimiser's groups."""
    from mienet.engine.dataset import ClipDataset
    from mienet.engine.recipe import parameter_groups
    from mienet.models import build_model

    torch.manual_seed(0)
    model = build_model("mienet", "resnet10", 3, 2, freeze_fusion_weights=True, dropout=0.0).double().train()
    groups = parameter_groups(model, 0.01, 1e-4)
    optimised = [p for g in groups for p in g["params"]]
    assert all(p is not model.w for p in optimised) and model.w.requires_grad
    data = ClipDataset(dataset / "annotations" / "train.txt", dataset, 2, 4, 32, train=False, num_classes=3)
    clips = torch.stack([data[i][0][0] for i in range(4)]).double()
    labels = torch.tensor([data[i][1] for i in range(4)])
    torch.nn.functional.cross_entropy(model(clips), labels).backward()
    with_w = float(torch.nn.utils.clip_grad_norm_(model.parameters(), 1e9))  # what the loop clips
    without_w = float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in optimised])))
    assert float(model.w.grad.norm()) > 0
    assert with_w > without_w
    assert with_w ** 2 - without_w ** 2 == pytest.approx(float(model.w.grad.norm()) ** 2, rel=1e-6)


def test_frozen_fusion_weights_in_the_training_loop(dataset, tmp_path, monkeypatch):
    """In a real run w's gradient is clipped with the others and kept over the steps; last.pt
    carries it, so a resumed run continues the same sum; w itself never moves."""
    clip = torch.nn.utils.clip_grad_norm_
    seen = []

    def spy(parameters, max_norm, *args, **kwargs):
        parameters = list(parameters)
        w = [p for p in parameters if p.shape == (2,)]
        before = [p.grad.clone() for p in w]
        norm = clip(parameters, max_norm, *args, **kwargs)
        seen.append((float(max_norm / (norm + 1e-6)), before, [p.grad.clone() for p in w]))
        return norm

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    frozen = ["--freeze-fusion-weights", "--amp", "off"]
    assert train(dataset / "annotations", tmp_path / "clipped", *frozen, "--clip-grad", "0.001") == 0
    assert len(seen) >= 2
    for coef, before, after in seen:
        assert len(before) == 1 and before[0].abs().sum() > 0 and coef < 0.01
        assert torch.allclose(after[0], before[0] * coef, rtol=1e-5, atol=0)  # clipped with the rest
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip)
    assert train(dataset / "annotations", tmp_path / "whole", *frozen, "--epochs", "2") == 0
    assert train(dataset / "annotations", tmp_path / "parts", *frozen, "--epochs", "1") == 0
    # With float16-style loss scaling (an enabled GradScaler, on the CPU here) w's gradient is
    # unscaled like the optimiser's: the same numbers as without scaling.
    import mienet.engine.loop as loop

    one = torch.load(tmp_path / "parts" / "checkpoints" / "last.pt", weights_only=True)
    with monkeypatch.context() as m:
        m.setattr(loop, "make_grad_scaler",
                  lambda device, speed: torch.amp.GradScaler("cpu", init_scale=2.0 ** 12))
        assert train(dataset / "annotations", tmp_path / "scaled", *frozen, "--epochs", "1") == 0
    scaled = torch.load(tmp_path / "scaled" / "checkpoints" / "last.pt", weights_only=True)
    assert scaled["scaler"]["scale"] == 2.0 ** 12
    assert torch.allclose(scaled["outside_grads"]["w"], one["outside_grads"]["w"], rtol=1e-5, atol=1e-9)
    assert all(torch.allclose(scaled["model"][k].float(), one["model"][k].float(), rtol=1e-4, atol=1e-6)
               for k in one["model"])
    assert train(dataset / "annotations", tmp_path / "parts", *frozen, "--epochs", "2", "--resume") == 0
    whole, parts = (torch.load(tmp_path / d / "checkpoints" / "last.pt", weights_only=True)
                    for d in ("whole", "parts"))
    assert all(torch.equal(whole["model"][k], parts["model"][k]) for k in whole["model"])
    assert torch.equal(whole["model"]["w"], torch.ones(2))  # never updated
    assert whole["outside_grads"]["w"].abs().sum() > 0
    assert torch.equal(whole["outside_grads"]["w"], parts["outside_grads"]["w"])  # the sum of every step


def test_outside_gradients_drop_the_contribution_of_a_skipped_step():
    from mienet.engine.loop import OutsideGrads

    w = torch.nn.Parameter(torch.ones(2))
    w.grad = torch.tensor([1.0, 2.0])
    outside = OutsideGrads([w], torch.amp.GradScaler("cpu", init_scale=4.0))
    outside.before_backward()
    assert w.grad is None
    w.grad = torch.tensor([4.0, 4.0])  # this step's scaled gradient
    outside.after_unscale(4.0)
    assert torch.equal(w.grad, torch.tensor([2.0, 3.0]))  # kept + unscaled new
    w.grad.mul_(0.5)  # what a clip does in place
    outside.after_step(skipped=True)  # the scaler found inf/nan: the step did not happen
    assert torch.equal(w.grad, torch.tensor([1.0, 2.0]))


# --------------------------------------------------------------------------- item 13: search


def test_a_trial_that_reached_its_last_epoch_is_never_pruned(dataset, tmp_path):
    """A median pruner that looks only from epoch 2 on, against a finished trial scoring 101 at
    every epoch: it would prune every new trial at epoch 2. With 2 epochs that is the last one,
    so the trial completes and counts; with 3 epochs it is pruned at epoch 2."""
    search = {"n_trials": 2, "enqueue_default": False, "sampler": {"seed": 0, "n_startup_trials": 5},
              "pruner": {"type": "median", "n_startup_trials": 1, "n_warmup_steps": 2},
              "heartbeat": {"interval": 1, "grace_period": 5, "max_retry": 0},
              "train": {"segments": 2, "size": 32, "amp": "off"},
              "space": {"lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-3, "log": True}}}
    recipe = {"arch": "resnet10", "batch_size": 4, "lr_steps": [10], "dropout": 0.0, "workers": 0}
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"data_root": "datasets", "search": search,
                                      "datasets": {"tiny": {"format": "folder", "train": recipe}}}))
    states = {}
    for epochs in (2, 3):
        out = tmp_path / f"e{epochs}"
        out.mkdir()
        storage = open_storage(str(out / "journal.log"), search["heartbeat"])
        study = optuna.create_study(study_name="tiny-mienet", storage=storage, direction="maximize")
        study.add_trial(optuna.trial.create_trial(value=101.0, intermediate_values={1: 101.0, 2: 101.0, 3: 101.0},
                                                  params={"lr": 1e-3},
                                                  distributions={"lr": optuna.distributions.FloatDistribution(
                                                      1e-4, 1e-3, log=True)}))
        assert main(["search", "--annotations", str(dataset / "annotations"), "--dataset", "tiny", "--out", str(out),
                     "--params", str(params), "--no-progress", "--epochs", str(epochs)]) == 0
        trial = optuna.load_study(study_name="tiny-mienet", storage=storage).trials[1]
        states[epochs] = (trial.state.name, trial.user_attrs["epochs_trained"], trial.value)
        assert max(trial.intermediate_values.values()) < 101.0  # the pruner's verdict: prune
    assert states[2][:2] == ("COMPLETE", 2) and states[2][2] is not None  # the last epoch: completed
    assert states[3][:2] == ("PRUNED", 2)  # before the last epoch the pruner still acts
