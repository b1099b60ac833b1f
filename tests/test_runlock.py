"""One writer per run folder (issue 23): real `mienet train` and `mienet search` processes, and
real processes racing for one lock file (O_EXCL, as on a shared file system)."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import make_synthetic_dataset
from mienet.errors import MienetError
from mienet.runlock import LOCK_NAME, holder_of, identity, run_lock

BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}
TINY = ["--variant", "tsn", "--arch", "resnet10", "--segments", "2", "--size", "32", "--batch-size", "4",
        "--lr", "0.002", "--workers", "0", "--no-progress", "--dataset", "tiny", "--amp", "off"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_synthetic_dataset(tmp_path_factory.mktemp("lock") / "ds", clips_per_class=4)


def train_cmd(dataset: Path, out: Path, seed: int, epochs: int) -> list[str]:
    return [str(BIN / "mienet"), "train", "--annotations", str(dataset / "annotations"), "--root", str(dataset),
            "--out", str(out), "--seed", str(seed), "--epochs", str(epochs), "--lr-steps", "100", *TINY]


def wait_for(predicate, proc: subprocess.Popen, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            pytest.fail(f"the first process ended ({proc.returncode}) before {what}: {proc.communicate()}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {timeout} s")
        time.sleep(0.05)


def last_line(stderr: str) -> str:
    return stderr.strip().splitlines()[-1]


def test_a_second_training_on_one_out_is_refused_and_the_first_is_intact(dataset, tmp_path):
    """The probe: seed 0 and seed 1 on one --out at once. The second exits 2 in one line naming
    the first (host, pid, start time); the folder then holds the seed-0 run, whole."""
    out = tmp_path / "runs" / "same"
    first = subprocess.Popen(train_cmd(dataset, out, 0, 3), env=ENV, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (out / LOCK_NAME).is_file() and holder_of(out) is not None, first, "lock")
        # The first holds the lock, and is held still (alive, as a busy process is) while the second
        # starts and tries: however long the second's start takes, the first is still running.
        first.send_signal(signal.SIGSTOP)
        second = subprocess.run(train_cmd(dataset, out, 1, 1), env=ENV, capture_output=True, text=True,
                                timeout=300)
        assert first.poll() is None, "the first training ended before the second was tried"
    finally:
        first.send_signal(signal.SIGCONT)
        stdout, stderr = first.communicate(timeout=600)
    assert second.returncode == 2, second.stderr  # a MienetError: 2
    assert "Traceback" not in second.stderr
    line = last_line(second.stderr)
    assert line.startswith(f"mienet train: error: run folder {out} is in use by pid {first.pid} on host "
                           f"{socket.gethostname()} since 20"), second.stderr
    assert "mienet train" in line and f"lock {out / LOCK_NAME}" in line
    assert len(second.stderr.strip().splitlines()) == 1, second.stderr
    assert first.returncode == 0, stderr
    assert "best val top-1" in stdout
    config = json.loads((out / "config.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert config["seed"] == 0 and summary["epochs"] == 3
    assert len((out / "log.csv").read_text().splitlines()) == 1 + 3
    assert (out / "checkpoints" / "best.pt").is_file()
    assert not (out / LOCK_NAME).exists()  # released at the end


def test_a_stale_lock_of_this_machine_is_taken_over_with_a_warning(dataset, tmp_path):
    """A training killed with SIGKILL leaves its lock; the next run (its resume) takes it over."""
    out = tmp_path / "run"
    first = subprocess.Popen(train_cmd(dataset, out, 0, 50), env=ENV, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    wait_for(lambda: holder_of(out) is not None, first, "lock")
    first.send_signal(signal.SIGKILL)
    first.communicate()
    assert holder_of(out)["pid"] == first.pid  # left behind
    proc = subprocess.run(train_cmd(dataset, out, 0, 1), env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"taking over the lock {out / LOCK_NAME} of pid {first.pid} on host" in proc.stderr
    assert f"process {first.pid} is gone" in proc.stderr
    assert not (out / LOCK_NAME).exists()


def test_sigterm_releases_the_lock(dataset, tmp_path):
    """SLURM's and Snakemake's SIGTERM: the process ends as a SIGTERM ends it, the lock goes."""
    out = tmp_path / "run"
    first = subprocess.Popen(train_cmd(dataset, out, 0, 50), env=ENV, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    wait_for(lambda: holder_of(out) is not None, first, "lock")
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=120)
    assert first.returncode == -signal.SIGTERM
    assert not (out / LOCK_NAME).exists()


# A SIGTERM right after each step of taking the lock, and of releasing it (exclusive: _release at
# the end): the step is wrapped so that the process signals itself there (CI once saw a SIGTERM
# land between the lock file's creation and the handler's installation, under load).
TERM_AT = """
import os, signal, sys
from mienet import runlock
step, folder, key = sys.argv[1], sys.argv[2], sys.argv[3] or None
real = getattr(runlock, step)
def step_then_term(*args, **kwargs):  # the first call only: release() may call the step too
    setattr(runlock, step, real)
    result = real(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGTERM)
    return result
setattr(runlock, step, step_then_term)
with runlock.run_lock(folder, key=key):
    pass
sys.exit("the lock was released: the SIGTERM was not delivered")
"""


@pytest.mark.parametrize("step,key", [("_acquire", ""), ("_check_holders", ""), ("_release", ""),
                                      ("_acquire", "study"), ("write_text_atomic", "study"),
                                      ("_release", "study")])
def test_a_sigterm_at_any_step_of_taking_the_lock_leaves_nothing(tmp_path, step, key):
    folder = tmp_path / "new" / "run"
    proc = subprocess.run([sys.executable, "-c", TERM_AT, step, str(folder), key], env=ENV,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGTERM, proc.stderr
    assert "was removed while" not in proc.stderr and "taken over" not in proc.stderr, proc.stderr
    assert not (tmp_path / "new").exists(), sorted(p.name for p in tmp_path.rglob("*"))


def write_lock(folder: Path, **changes) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    rec = {**identity(), "started": "2026-01-02T03:04:05Z", "command": "mienet train", "token": "t",
           "mode": "exclusive", **changes}
    (folder / LOCK_NAME).write_text(json.dumps(rec, sort_keys=True))
    return rec


def test_a_lock_of_another_machine_is_never_taken_over(tmp_path):
    write_lock(tmp_path / "run", host="gpu-node-17", boot_id="other", pid=4242)
    with pytest.raises(MienetError) as err:
        with run_lock(tmp_path / "run"):
            pass
    assert str(err.value).startswith(f"run folder {tmp_path / 'run'} is in use by pid 4242 on host "
                                     "gpu-node-17 since 2026-01-02T03:04:05Z (mienet train)")
    assert "another machine: it is not taken over automatically; remove it" in str(err.value)
    assert holder_of(tmp_path / "run")["host"] == "gpu-node-17"
    with run_lock(tmp_path / "run", take_over_foreign=True):  # a search's retry of a dead worker's trial
        assert holder_of(tmp_path / "run")["pid"] == os.getpid()


def test_a_live_pid_with_another_start_time_is_a_dead_holder(tmp_path):
    """A pid reused by a later process does not keep a stale lock alive."""
    write_lock(tmp_path / "run", pid=os.getpid(), start="1")
    with run_lock(tmp_path / "run"):
        assert holder_of(tmp_path / "run")["start"] == identity()["start"]


def test_a_corrupt_lock_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr("mienet.runlock.PARTIAL_READ_S", 0.1)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / LOCK_NAME).write_text("{half")
    with pytest.raises(MienetError, match=r"its lock file .*\.mienet-lock is corrupt \(not JSON"):
        with run_lock(tmp_path / "run"):
            pass


def _race(folder: str, barrier, results) -> None:
    import logging

    logging.basicConfig(level=logging.WARNING)
    barrier.wait()
    try:
        with run_lock(folder):
            results.put(("won", os.getpid()))
            time.sleep(0.5)
    except MienetError as exc:
        results.put(("refused", str(exc)))


def race(folder: Path, processes: int) -> list[tuple]:
    """``processes`` processes released at once for ``folder``; what each got."""
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(str(folder), barrier, results)) for _ in range(processes)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    return [results.get(timeout=10) for _ in procs]


def test_processes_racing_for_one_folder_get_one_winner(tmp_path):
    """Eight processes released at once, five times: exactly one holds the folder each time."""
    for attempt in range(5):
        folder = tmp_path / f"run{attempt}"
        outcomes = race(folder, 8)
        winners = [o for o in outcomes if o[0] == "won"]
        assert len(winners) == 1, outcomes
        assert all(f"is in use by pid {winners[0][1]} on host" in o[1] for o in outcomes if o[0] == "refused")
        assert not (folder / LOCK_NAME).exists()


def test_processes_racing_for_a_stale_lock_get_one_winner(tmp_path):
    for attempt in range(5):
        folder = tmp_path / f"run{attempt}"
        write_lock(folder, pid=2 ** 22 + 17)  # no such process
        outcomes = race(folder, 6)
        assert sum(o[0] == "won" for o in outcomes) == 1, outcomes
        assert not list(folder.glob(LOCK_NAME + "*")), list(folder.iterdir())


RECIPE = {"arch": "resnet10", "segments": 2, "size": 32, "epochs": 1, "batch_size": 4, "lr": 0.002,
          "lr_steps": [100], "pretrained": "none", "workers": 0, "amp": "off"}
SEARCH = {"data_root": "datasets", "datasets": {"tiny": {"format": "folder", "train": RECIPE}},
          "search": {"n_trials": 1, "sampler": {"seed": 0}, "pruner": {"type": "none"},
                     "space": {"lr": {"type": "float", "low": 1.0e-3, "high": 1.0e-2, "log": True}}}}


def search_cmd(dataset: Path, params: Path, out: Path, *extra: str) -> list[str]:
    return [str(BIN / "mienet"), "search", "--params", str(params), "--annotations", str(dataset / "annotations"),
            "--root", str(dataset), "--dataset", "tiny", "--variant", "tsn", "--out", str(out), "--no-progress",
            *extra]


def test_a_search_folder_is_shared_by_one_study_only(dataset, tmp_path):
    """Commands of one study (K workers) share OUT; another study, or a training, is refused;
    a storage URL's password is not written into the lock."""
    params = tmp_path / "search.yaml"
    params.write_text(yaml.safe_dump(SEARCH))
    out = tmp_path / "search"
    study_key = None
    with run_lock(out, "search folder", key="k", purpose="study elsewhere"):
        holder = next(out.glob(LOCK_NAME + ".holder-*"))
        study_key = json.loads(holder.read_text())["key"]
        proc = subprocess.run(search_cmd(dataset, params, out, "--study-name", "other"), env=ENV,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2, proc.stderr
        assert last_line(proc.stderr).startswith(
            f"mienet search: error: search folder {out} is in use for study elsewhere by pid {os.getpid()}")
        proc = subprocess.run(train_cmd(dataset, out, 0, 1), env=ENV, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2 and "is in use for study elsewhere" in proc.stderr, proc.stderr
    assert study_key == "k" and not (out / "annotations").exists() and not (out / "trials").exists()
    proc = subprocess.run(search_cmd(dataset, params, out), env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert not list(out.glob(LOCK_NAME + "*"))


def test_the_lock_records_no_password(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["mienet", "search", "--storage", "postgresql://user:secret@db:5432/x"])
    with run_lock(tmp_path / "s", key="k"):
        (holder,) = (tmp_path / "s").glob(LOCK_NAME + ".holder-*")
        text = holder.read_text()
    assert "secret" not in text and "postgresql://user:***@db:5432/x" in text
