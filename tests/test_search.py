"""mienet search: real Optuna studies with real (tiny) trainings, journal files and PostgreSQL."""

from __future__ import annotations

import csv
import fcntl
import glob
import json
import os
import pwd
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
import yaml

from conftest import make_synthetic_dataset
from mienet.cli import main
from mienet.errors import MienetError
from mienet.search.space import parse_search_settings
from mienet.search.storage import open_storage, reap_stale_trials
from mienet.search.study import tally

BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}
SEARCH = {
    "n_trials": 3,
    "sampler": {"seed": 0, "n_startup_trials": 2},
    "pruner": {"type": "median", "n_startup_trials": 1},
    "heartbeat": {"interval": 1, "grace_period": 5, "max_retry": 2},
    "train": {"segments": 2, "size": 32, "epochs": 2, "amp": "off"},  # over the dataset's recipe
    "space": {
        "lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-1, "log": True},
        "dropout": {"type": "float", "low": 0.0, "high": 0.8},
        "batch_size": {"type": "categorical", "choices": [2, 4]},
    },
}


RECIPE = {"arch": "resnet18", "segments": 3, "size": 48, "epochs": 4, "batch_size": 4, "lr": 0.001,
          "lr_steps": [10], "dropout": 0.3, "pretrained": "none", "workers": 0}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest: one torch thread


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_synthetic_dataset(tmp_path_factory.mktemp("search") / "ds", clips_per_class=4)


@pytest.fixture(scope="module")
def params(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("params") / "params.yaml"
    path.write_text(yaml.safe_dump({"data_root": "datasets", "datasets": {"tiny": {"format": "folder", "train": RECIPE}},
                                    "search": SEARCH}))
    return path


def search_args(dataset: Path, params: Path, out: Path, *extra: str) -> list[str]:
    return ["search", "--annotations", str(dataset / "annotations"), "--dataset", "tiny", "--out", str(out),
            "--params", str(params), "--no-progress", *extra]


def read_until(proc: subprocess.Popen, pattern: str, silence: float = 900.0) -> str:
    """Read ``proc``'s stderr (a pipe) until a line matches ``pattern``; returns what was read.
    Each read waits for the process's next output (select), not on a clock: the wait ends with the
    line, or with the pipe's end when the process dies first (a failure showing its stderr).
    ``silence`` only guards against a process that hangs without a word."""
    fd, seen = proc.stderr.fileno(), b""
    while True:
        ready, _, _ = select.select([fd], [], [], silence)
        assert ready, f"no output for {silence:.0f} s:\n{seen.decode(errors='replace')[-2000:]}"
        chunk = os.read(fd, 1 << 16)
        text = (seen + chunk).decode(errors="replace")
        if re.search(pattern, text):
            return text
        assert chunk, f"the process ended ({proc.wait()}) before printing {pattern!r}:\n{text[-2000:]}"
        seen += chunk


def trials_csv(out: Path) -> list[dict]:
    with (out / "trials.csv").open() as fh:
        return list(csv.DictReader(fh))


def load(out: Path, storage: str | None = None) -> optuna.Study:
    storage = storage or str(out / "journal.log")
    return optuna.load_study(study_name="tiny-mienet",
                             storage=open_storage(storage, SEARCH["heartbeat"]))


@pytest.fixture(scope="module")
def resumed_study(dataset, params, tmp_path_factory) -> Path:
    """Two trials, then the same command asked for three: only the third one runs."""
    out = tmp_path_factory.mktemp("study") / "out"
    assert main(search_args(dataset, params, out, "--n-trials", "2")) == 0
    first = {t.number: t.datetime_complete for t in load(out).trials}
    assert sorted(first) == [0, 1]
    assert main(search_args(dataset, params, out)) == 0
    study = load(out)
    assert [t.number for t in study.trials] == [0, 1, 2]
    assert {t.number: t.datetime_complete for t in study.trials[:2]} == first  # not run again
    return out


def test_a_study_writes_all_outputs(resumed_study):
    out = resumed_study
    rows = trials_csv(out)
    assert [r["number"] for r in rows] == ["0", "1", "2"]
    assert all(r["state"] == "COMPLETE" and r["epochs_trained"] == "2" for r in rows)
    assert rows[0]["default"] == "True" and float(rows[0]["params_lr"]) == 0.001  # the recipe's trial
    assert {"value", "duration_s", "params_lr", "params_dropout", "params_batch_size"} <= set(rows[0])
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["n_trials"], summary["complete"], summary["pruned"], summary["failed"]) == (3, 3, 0, 0)
    assert summary["study_name"] == "tiny-mienet" and summary["storage"].endswith("journal.log")
    assert summary["epochs_trained"] == summary["epochs_without_pruning"] == 6
    assert summary["default_value"] is not None
    best = yaml.safe_load((out / "best_params.yaml").read_text())
    assert set(best["params"]) == {"lr", "dropout", "batch_size"}
    assert best["value"] == summary["best_value"] == max(float(r["value"]) for r in rows)
    for name in ("optimization_history", "param_importances", "parallel_coordinate"):
        assert (out / "plots" / f"{name}.png").read_bytes()[:4] == b"\x89PNG", name
    for n in range(3):  # run folders keep their logs; checkpoints go once a trial ends
        assert (out / "trials" / str(n) / "log.csv").is_file()
        assert not (out / "trials" / str(n) / "checkpoints").exists()
    assert not list(out.rglob("*.tmp"))


def test_a_finished_study_runs_nothing_more(resumed_study, dataset, params, capsys):
    assert main(search_args(dataset, params, resumed_study)) == 0
    assert len(load(resumed_study).trials) == 3
    assert "3 of 3 trials" in capsys.readouterr().out


def test_report_only_reads_the_study_without_running(resumed_study, dataset, params, tmp_path, capsys):
    (resumed_study / "summary.json").unlink()
    assert main(search_args(dataset, params, resumed_study, "--report-only")) == 0
    assert json.loads((resumed_study / "summary.json").read_text())["complete"] == 3
    assert len(load(resumed_study).trials) == 3
    assert main(search_args(dataset, params, tmp_path / "none", "--report-only")) == 2
    assert "no study journal" in capsys.readouterr().err


def test_best_params_feed_the_final_training(resumed_study, dataset, tmp_path):
    best = yaml.safe_load((resumed_study / "best_params.yaml").read_text())["params"]
    run = tmp_path / "final"
    assert main(["train", "--annotations", str(dataset / "annotations"), "--out", str(run), "--arch", "resnet18",
                 "--segments", "2", "--size", "32", "--epochs", "1", "--workers", "0", "--no-progress",
                 "--hparams", str(resumed_study / "best_params.yaml")]) == 0
    config = json.loads((run / "config.json").read_text())
    assert {k: config[k] for k in best} == best


def test_changed_fixed_settings_start_over_only_with_restart_if_changed(dataset, params, tmp_path, caplog,
                                                                         capsys):
    """A study made with other fixed training settings is not silently continued by the workflow."""
    out, runs = tmp_path / "out", tmp_path / "runs"
    args = ["--n-trials", "1", "--epochs", "1", "--trials-dir", str(runs)]
    assert main(search_args(dataset, params, out, *args)) == 0
    first = load(out).trials[0].datetime_complete
    assert (runs / "0").is_dir()
    changed = [*args[:3], "2", *args[4:]]  # --epochs 2: other fixed settings
    assert main(search_args(dataset, params, out, *changed, "--restart-if-changed")) == 0
    assert "other fixed training settings" in caplog.text and "starting over" in caplog.text
    olds = sorted(out.glob("journal.log.*.old"))
    assert len(olds) == 1  # the old study is kept aside, not lost
    study = load(out)
    assert len(study.trials) == 1 and study.trials[0].datetime_complete != first
    assert study.user_attrs["mienet"]["train"]["epochs"] == 2
    assert json.loads((out / "summary.json").read_text())["max_epochs"] == 2
    # Without the flag the same change only warns and goes on.
    assert main(search_args(dataset, params, out, *args)) == 0
    assert len(load(out).trials) == 1
    # A journal that also holds another study is never set aside: an error naming it.
    assert main(search_args(dataset, params, out, *args, "--study-name", "other", "--n-trials", "0")) == 0
    assert main(search_args(dataset, params, out, *args, "--restart-if-changed")) == 2
    assert "also holds other" in capsys.readouterr().err
    assert sorted(out.glob("journal.log.*.old")) == olds


def test_a_trial_that_raises_is_recorded_and_the_study_goes_on(dataset, params, tmp_path):
    out = tmp_path / "out"
    assert main(search_args(dataset, params, out, "--epochs", "1", "--debug-fail-trial", "1",
                            "--trials-dir", str(tmp_path / "runs"))) == 0
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["0", "1", "2"]
    assert not (out / "trials").exists()
    rows = trials_csv(out)
    assert [r["state"] for r in rows] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert "loss became nan" in rows[1]["error"]
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["complete"], summary["failed"], summary["finished"]) == (2, 1, 3)


def test_a_study_where_every_trial_fails_is_an_error(dataset, params, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(search_args(dataset, params, out, "--n-trials", "1", "--epochs", "1", "--debug-fail-trial", "0"))
    assert code == 2
    assert "no trial of study tiny-mienet completed" in capsys.readouterr().err
    assert trials_csv(out)[0]["state"] == "FAIL" and not (out / "best_params.yaml").exists()


def test_a_killed_worker_is_retried_and_its_run_resumed(dataset, params, tmp_path):
    out = tmp_path / "out"
    cmd = [str(BIN / "mienet"), *search_args(dataset, params, out, "--n-trials", "1", "--epochs", "3")]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    log = out / "trials" / "0" / "log.csv"
    # The training logs an epoch once its last.pt and log.csv are written: one epoch done.
    read_until(proc, r"epoch 1/3\b")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert [t.state for t in load(out).trials] == [optuna.trial.TrialState.RUNNING]  # stuck without help

    assert main(search_args(dataset, params, out, "--n-trials", "1", "--epochs", "3")) == 0
    trials = load(out).trials
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    assert trials[1].system_attrs["failed_trial"] == 0 and trials[1].params == trials[0].params
    epochs = [int(r["epoch"]) for r in csv.DictReader(log.open())]
    assert epochs == [1, 2, 3]  # resumed from the killed run's checkpoint, not started over
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["finished"], summary["complete"], summary["failed"], summary["retried"]) == (1, 1, 0, 1)


def test_a_writer_killed_holding_the_journal_lock_leaves_it_free(tmp_path):
    """The journal's write lock is an flock: a worker killed in the middle of a write (the
    killed-worker test above kills one right after its epoch, while it reports) leaves no lock
    behind for the next worker to wait out (Optuna's own symlink lock: 30 s)."""
    journal = tmp_path / "journal.log"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from mienet.search.storage import JournalWriteLock; "
        f"JournalWriteLock(Path({str(journal)!r})).acquire(); print('held', flush=True); time.sleep(600)")],
        env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"  # waits for the line, not on a clock
        lock = open_storage(str(journal), SEARCH["heartbeat"])._backend._lock
        with open(lock.path, "a") as fh:
            with pytest.raises(BlockingIOError):  # held by the live process
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            holder.kill()
            holder.wait()
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free as soon as its holder is gone
            fcntl.flock(fh, fcntl.LOCK_UN)
    finally:  # never left sleeping when an assertion above fails
        holder.kill()
        holder.wait()
        holder.stdout.close()
    storage = open_storage(str(journal), SEARCH["heartbeat"])
    optuna.create_study(storage=storage, study_name="after-a-kill")  # a real write goes through
    assert [s.study_name for s in optuna.get_all_study_summaries(storage)] == ["after-a-kill"]


def _assert_exactly(study: optuna.Study, n: int) -> None:
    trials = study.trials
    assert [t.number for t in trials] == list(range(n))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials), [t.state for t in trials]
    assert len({tuple(sorted(t.params.items())) for t in trials}) == n  # no trial drawn twice


def test_two_worker_jobs_share_one_journal_and_a_final_step_collects_them(dataset, params, tmp_path, capsys):
    """A study spread over jobs (search.jobs: 2): two separate commands, as two Snakemake or SLURM
    jobs run them (not --workers), each writing its record; then the final step."""
    out = tmp_path / "out"
    records = [out / "workers" / f"worker{k}.json" for k in range(2)]
    procs = [subprocess.Popen([str(BIN / "mienet"), *search_args(dataset, params, out, "--n-trials", "4",
                                                                 "--worker-record", str(r))],
                              env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for r in records]
    for p in procs:
        stdout, err = p.communicate(timeout=900)  # a guard against a hung job; each ends on its own
        assert p.returncode == 0, err.decode()[-2000:]
        assert "search: worker job worker" in stdout.decode()
    assert not (out / "summary.json").exists() and not (out / "best_params.yaml").exists()  # the final step's
    study = load(out)
    _assert_exactly(study, 4)
    assert {t.user_attrs["worker"]["pid"] for t in study.trials} == {p.pid for p in procs}
    assert len(list((out / "trials").iterdir())) == 4
    ran = [[t["number"] for t in json.loads(r.read_text())["trials"]] for r in records]
    assert all(ran) and sorted(ran[0] + ran[1]) == [0, 1, 2, 3]  # both ran trials, none twice
    for t in study.trials:  # each trial's training ran once, in the job that took it
        assert t.user_attrs["job"] == f"worker{next(k for k in range(2) if t.number in ran[k])}"
        log = out / "trials" / str(t.number) / "log.csv"
        assert [r["epoch"] for r in csv.DictReader(log.open())] == ["1", "2"]

    assert main(search_args(dataset, params, out, "--n-trials", "4", "--after-workers", *map(str, records))) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["jobs"] == {f"worker{k}": sorted(ran[k]) for k in range(2)}
    assert (summary["finished"], summary["running"]) == (4, 0) and (out / "best_params.yaml").is_file()
    _assert_exactly(load(out), 4)  # the final step ran no trial

    # a record that claims another job's trial is refused, naming the file
    bad = out / "workers" / "worker9.json"
    bad.write_text(json.dumps({"job": "worker9", "trials": [{"number": ran[0][0]}]}))
    capsys.readouterr()
    assert main(search_args(dataset, params, out, "--n-trials", "4", "--after-workers", str(records[0]), str(bad))) == 2
    assert f"worker9.json: trial {ran[0][0]} was run by job 'worker0' too" in capsys.readouterr().err


def test_the_final_step_runs_the_trial_a_lost_worker_job_left(dataset, params, tmp_path):
    """Job 0 ran trial 0 and wrote its record; job 1 died in trial 1 (its SLURM job killed, no
    record, no retry of the job). The final step reaps the lost trial and runs its retry."""
    out = tmp_path / "out"
    record = out / "workers" / "worker0.json"
    assert main(search_args(dataset, params, out, "--n-trials", "1", "--worker-record", str(record))) == 0
    lost = subprocess.run([str(BIN / "mienet"), *search_args(dataset, params, out, "--n-trials", "2",
                                                             "--worker-record", str(out / "workers" / "worker1.json"),
                                                             "--debug-exit-trial", "1")],
                          env=ENV, capture_output=True, text=True, timeout=900)  # guards a hang only
    assert lost.returncode == 137 and not (out / "workers" / "worker1.json").exists()
    assert [t.state.name for t in load(out).trials] == ["COMPLETE", "RUNNING"]
    assert main(search_args(dataset, params, out, "--n-trials", "2", "--after-workers", str(record))) == 0
    trials = load(out).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert trials[2].system_attrs["failed_trial"] == 1 and trials[2].user_attrs["job"] is None  # the final step's
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["finished"], summary["running"], summary["retried"]) == (2, 0, 1)
    assert summary["jobs"] == {"worker0": [0]}


def test_stale_trials_of_another_machine_are_failed_and_queued(tmp_path):
    # A grace period far beyond any pause of a busy machine: "fresh" stays fresh until the reaping.
    settings = parse_search_settings({**SEARCH, "heartbeat": {"interval": 1, "grace_period": 600, "max_retry": 1}})
    storage = open_storage(str(tmp_path / "journal.log"), settings.heartbeat)
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    old, fresh = study.ask(), study.ask()
    for trial, beat in ((old, time.time() - 3600), (fresh, time.time())):
        trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        trial.set_user_attr("worker", {"machine": "elsewhere/boot", "pid": 1, "start": "1"})
        trial.set_user_attr("heartbeat", beat)
    reaped = reap_stale_trials(study, storage, settings.heartbeat)
    assert [r.number for r in reaped] == [old.number]
    states = [t.state.name for t in study.trials]
    assert states == ["FAIL", "RUNNING", "WAITING"]
    assert study.trials[2].params == study.trials[0].params
    t = tally(study.trials)
    assert (t.retried, t.used) == (1, 2)


def test_pruning_saves_epochs_and_is_recorded(dataset, params, tmp_path, monkeypatch):
    # The bookkeeping of pruned trials, with a stand-in for training whose curve we choose.
    import mienet.engine.loop as loop

    def fake_train(cfg, resume=False, progress=True, on_epoch=None, take_over_lock=False):
        good = cfg.lr == RECIPE["lr"]  # the default trial learns; the others do worse from epoch 1
        for epoch in range(1, cfg.epochs + 1):
            on_epoch(epoch, {"val_top1": 50.0 + epoch if good else 10.0})
        return {"best": {"val_top1": 50.0 + cfg.epochs, "epoch": cfg.epochs}}

    monkeypatch.setattr(loop, "train", fake_train)
    out = tmp_path / "out"
    assert main(search_args(dataset, params, out, "--n-trials", "4", "--epochs", "5")) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["complete"], summary["pruned"]) == (1, 3)
    assert summary["epochs_trained"] == 5 + 3 * 1
    assert summary["epochs_without_pruning"] == 4 * 5
    assert summary["epochs_saved_pct"] == 60.0
    # what optuna-dashboard shows: the objective's name and the attributes a reader needs
    study = load(out)
    assert study.metric_names == ["val_top1"]
    trials = sorted(study.trials, key=lambda t: t.number)
    assert trials[0].user_attrs | {"max_epochs": 5, "epochs_trained": 5, "best_epoch": 5} == trials[0].user_attrs
    assert all(t.user_attrs["pruned_at_epoch"] == 1 and t.user_attrs["epochs_trained"] == 1 for t in trials[1:])


@pytest.mark.parametrize("space, message", [
    ({"learning_rate": {"type": "float", "low": 0.1, "high": 1}}, "learning_rate"),
    ({"variant": {"type": "categorical", "choices": ["tsn"]}}, "variant"),
    ({"lr": {"type": "float", "low": 0.1, "high": 0.01}}, "space.lr: low"),
    ({"lr": {"type": "float", "low": 0.0, "high": 0.1, "log": True}}, "space.lr: a log distribution"),
    ({"lr": {"type": "normal", "low": 0.0, "high": 0.1}}, "space.lr"),
    ({"lr": {"type": "float", "low": 0.0, "hi": 0.1}}, "space.lr: unknown key(s) hi"),
    ({"segments": {"type": "float", "low": 1, "high": 4}}, "space.segments"),
    ({"batch_size": {"type": "categorical", "choices": [4, "8"]}}, "space.batch_size.choices"),
    ({"lr_steps": {"type": "categorical", "choices": [[10]]}}, "space.lr_steps.choices"),
])
def test_bad_search_spaces_name_the_key(space, message):
    with pytest.raises(MienetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_search_settings({"space": space}, "params.yaml: search")


def test_bad_settings_name_the_key():
    # the params schema (mienet.config) says these, naming the key
    with pytest.raises(MienetError, match="search: Additional properties are not allowed \\('n_trial' was unexpected"):
        parse_search_settings({"n_trial": 3})
    with pytest.raises(MienetError, match="search: train: 'epoch' is not one of"):
        parse_search_settings({"train": {"epoch": 3}})
    with pytest.raises(MienetError, match="search: pruner.type: 'asha' is not one of"):
        parse_search_settings({"pruner": {"type": "asha"}})
    with pytest.raises(MienetError, match="search: heartbeat.interval: 0 is less than the minimum of 1"):
        parse_search_settings({"heartbeat": {"interval": 0}})
    # what the schema cannot say: a key of another pruner type, a grace period within the interval
    with pytest.raises(MienetError, match="search.heartbeat: need grace_period > interval"):
        parse_search_settings({"heartbeat": {"interval": 200}})
    with pytest.raises(MienetError, match="search.pruner: unknown key\\(s\\) min_resource"):
        parse_search_settings({"pruner": {"type": "median", "min_resource": 1}})
    s = parse_search_settings({"space": {"lr": {"type": "float", "low": "1e-4", "high": 0.1, "log": True}}})
    assert s.space["lr"].low == 1e-4  # PyYAML reads 1e-4 as a string


def test_trial_settings_layer_recipe_search_and_dataset_overrides(tmp_path):
    from mienet.cli import build_parser
    from mienet.search.cli import build_plan

    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({
        "data_root": str(tmp_path / "data"),
        "datasets": {"tiny": {"format": "synth", "train": RECIPE, "search": {"n_trials": 7, "train": {"epochs": 3},
                                                          "space": {"momentum": {"type": "float", "low": 0.8,
                                                                                 "high": 0.99}}}},
                     "other": {"format": "synth", "train": {"arch": "resnet50"}}},
        "search": SEARCH,
    }))
    args = build_parser("search").parse_args(["search", "--params", str(path), "--dataset", "tiny",
                                              "--out", str(tmp_path / "out"), "--size", "40"])
    plan = build_plan(args)
    s = plan.settings
    assert s.n_trials == 7 and set(s.space) == {"lr", "dropout", "batch_size", "momentum"}
    assert s.train["arch"] == "resnet18" and s.train["lr"] == 0.001  # the recipe
    assert (s.train["segments"], s.train["amp"]) == (2, "off")  # search.train over the recipe
    assert s.train["epochs"] == 3 and s.train["size"] == 40  # the dataset's search, then the option
    assert plan.annotations == str(tmp_path / "data" / "tiny" / "annotations")
    assert plan.study_name == "tiny-mienet" and plan.storage == str(tmp_path / "out" / "journal.log")
    bad = yaml.safe_load(path.read_text())
    bad["datasets"]["tiny"]["search"]["train"] = {"epoch": 3}
    path.write_text(yaml.safe_dump(bad))
    # the params schema (mienet.config) names the key and the allowed names
    with pytest.raises(MienetError, match="datasets.tiny.search.train: 'epoch' is not one of"):
        build_plan(args)


# --------------------------------------------------------------------------- PostgreSQL

def _postgres_bin() -> Path | None:
    found = shutil.which("pg_ctl")
    candidates = [Path(found).resolve().parent] if found else []
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    return None


@pytest.fixture(scope="module")
def postgres_url():
    """A throw-away PostgreSQL server on 127.0.0.1, data and socket in a temporary folder."""
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    base = Path(tempfile.mkdtemp(prefix="mienet-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        user = pwd.getpwnam("postgres")  # created by Debian's postgresql package
        os.chown(base, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = base / "data"
    subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "mienet",
                    "--no-sync", "-E", "UTF8"], check=True, capture_output=True)
    subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "server.log"), "-w",
                    "-o", f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql://mienet@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def test_two_workers_share_one_postgresql_study(dataset, params, tmp_path, postgres_url):
    out = tmp_path / "out"
    assert main(search_args(dataset, params, out, "--n-trials", "4", "--epochs", "1", "--workers", "2",
                            "--storage", postgres_url)) == 0
    study = load(out, postgres_url)
    _assert_exactly(study, 4)
    assert len({t.user_attrs["worker"]["pid"] for t in study.trials}) == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["storage"] == postgres_url and summary["workers"] == 2 and summary["complete"] == 4
    assert not (out / "journal.log").exists()
