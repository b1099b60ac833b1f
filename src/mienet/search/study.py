"""An Optuna study over the training settings: the objective, the worker loop, K workers.

The objective is the Optuna examples' shape: suggest, train with ``trial.report`` after every
epoch and ``trial.should_prune()``, return the trial's best validation top-1 (maximised).

Budget: ``n_trials`` counts the trials that ended (COMPLETE, PRUNED or FAIL) plus those running
or queued, except a FAIL whose worker died or was interrupted and that was queued again (its retry
takes its place). A trial that raises therefore uses up its slot, so a search space that always
fails still ends. Running the command again continues the study up to ``n_trials``; a higher
``n_trials`` extends it. Workers take trials under a study lock (:mod:`mienet.search.storage`),
so K workers, on one machine or many, start exactly the trials the budget leaves.

A retried trial continues the training run of the trial it replaces (``trials/<first number>/``,
resumed from its last checkpoint), so a killed worker costs at most the epoch it was in.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import multiprocessing
import os
import random
import shutil
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import optuna
from optuna.trial import TrialState

from mienet.config import TRAIN_DEFAULTS, TrainConfig
from mienet.data.annotations import read_list_lines
from mienet.errors import MienetError
from mienet.io import write_text_atomic
from mienet.search.space import SearchSettings, default_trial_params
from mienet.search.storage import (Heartbeat, StudyLock, describe, is_url, open_storage,
                                   reap_stale_trials, retry_callback, this_worker)

log = logging.getLogger(__name__)

METRIC = "val_top1"


@dataclass
class SearchPlan:
    """One invocation of ``mienet search``: the data, the study and its settings."""

    annotations: str
    root: str
    out: str
    dataset: str
    variant: str
    storage: str
    study_name: str
    settings: SearchSettings
    progress: bool = True
    trials_dir: str | None = None  # the trials' training runs (default OUT/trials)
    debug_fail_trials: tuple[int, ...] = ()  # tests: these trial numbers hit a NaN loss at once
    debug_exit_trials: tuple[int, ...] = ()  # tests: the worker dies (no clean-up) at their first step
    threads: int | None = None  # torch threads of each worker process (None: PyTorch's choice)
    # A journal-file study started with another space or other fixed training settings is
    # set aside (renamed *.old, its trial runs deleted) and a new study starts.
    restart_if_changed: bool = False
    job: str | None = None  # a worker job of a spread study: its trials carry this name (user attr "job")


@dataclass
class Tally:
    """The study's trials by state, and how much of ``n_trials`` they use."""

    complete: int = 0
    pruned: int = 0
    failed: int = 0  # every FAIL, the retried ones included
    retried: int = 0  # FAIL trials queued again (their retry holds their slot)
    running: int = 0
    waiting: int = 0
    replaced: set[int] = field(default_factory=set)

    @property
    def used(self) -> int:
        return self.complete + self.pruned + self.failed - self.retried + self.running + self.waiting

    @property
    def finished(self) -> int:
        return self.complete + self.pruned + self.failed - self.retried


def tally(trials: list[optuna.trial.FrozenTrial]) -> Tally:
    t = Tally()
    for trial in trials:
        t.replaced.update(trial.system_attrs.get("retry_history", []))
    for trial in trials:
        if trial.state == TrialState.COMPLETE:
            t.complete += 1
        elif trial.state == TrialState.PRUNED:
            t.pruned += 1
        elif trial.state == TrialState.FAIL:
            t.failed += 1
            t.retried += trial.number in t.replaced
        elif trial.state == TrialState.RUNNING:
            t.running += 1
        elif trial.state == TrialState.WAITING:
            t.waiting += 1
    return t


# --------------------------------------------------------------------------- sampler, pruner

def max_epochs(settings: SearchSettings) -> int:
    dist = settings.space.get("epochs")
    if dist is not None:
        return int(max(dist.choices) if dist.type == "categorical" else dist.high)
    return int(settings.train.get("epochs", TRAIN_DEFAULTS.epochs))


def make_sampler(settings: SearchSettings, salt: tuple = ()) -> optuna.samplers.BaseSampler:
    """Seeded TPE. ``salt`` (the study's history when a trial is taken) gives each trial its own
    stream, so parallel workers never draw the same values and a rerun draws the same ones."""
    s = settings.sampler
    seed = int.from_bytes(hashlib.sha256(f"{s['seed']}:{salt}".encode()).digest()[:4], "big")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=s["n_startup_trials"],
                                          multivariate=s["multivariate"], constant_liar=True)


def make_pruner(settings: SearchSettings) -> optuna.pruners.BasePruner:
    p = dict(settings.pruner)
    kind = p.pop("type")
    if kind == "median":
        return optuna.pruners.MedianPruner(**p)
    if kind == "percentile":
        return optuna.pruners.PercentilePruner(**p)
    if kind == "hyperband":
        p.setdefault("max_resource", max_epochs(settings))
        return optuna.pruners.HyperbandPruner(**p)
    return optuna.pruners.NopPruner()


# --------------------------------------------------------------------------- the study

def _jsonable(x):
    return json.loads(json.dumps(x, sort_keys=True))


def study_record(plan: SearchPlan) -> dict:
    s = plan.settings
    return _jsonable({"dataset": plan.dataset, "variant": plan.variant, "metric": METRIC,
                      "space": {k: v.as_dict() for k, v in s.space.items()}, "train": s.train})


def open_study(plan: SearchPlan) -> tuple[optuna.Study, optuna.storages.BaseStorage, StudyLock]:
    """Load the study, or create it (and queue the untuned default as its first trial).

    A study started with another search space is an error; one started with other fixed
    training settings is a warning, since its trials are not comparable with new ones.
    With ``plan.restart_if_changed`` (the workflow's setting) either case starts over
    instead when the storage is a journal file: the old journal is renamed
    ``<journal>.<UTC time>.old`` and the old trials' runs are deleted.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the search logs what happens itself
    lock = StudyLock(plan.storage, plan.study_name)
    with lock():  # also serialises creating the tables of a fresh database
        storage = open_storage(plan.storage, plan.settings.heartbeat)
        try:
            study = optuna.load_study(**_study_kwargs(plan, storage))
        except KeyError:
            return _create_study(plan, storage), storage, lock
        if study.direction != optuna.study.StudyDirection.MAXIMIZE:
            raise MienetError(f"study {plan.study_name} in {describe(plan.storage)} minimises; "
                              "mienet search maximises validation top-1: choose another --study-name")
        if study.metric_names is None:  # a study of an older mienet
            name_metric(study)
        saved, now = study.user_attrs.get("mienet") or {}, study_record(plan)
        changed = [key for key in ("space", "train") if saved and saved.get(key) != now[key]]
        if not changed:
            return study, storage, lock
        what = " and ".join({"space": "another search space", "train": "other fixed training settings"}[k]
                            for k in changed)
        others = [st.study_name for st in storage.get_all_studies() if st.study_name != plan.study_name]
        if plan.restart_if_changed and not is_url(plan.storage) and not others:
            del study, storage
            old = Path(plan.storage).with_name(
                f"{Path(plan.storage).name}.{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.old")
            os.replace(plan.storage, old)
            shutil.rmtree(Path(plan.trials_dir or Path(plan.out) / "trials"), ignore_errors=True)
            log.warning("study %s was started with %s (%s); starting over: the old journal is now %s",
                        plan.study_name, what, {k: saved.get(k) for k in changed}, old)
            storage = open_storage(plan.storage, plan.settings.heartbeat)
            return _create_study(plan, storage), storage, lock
        if "space" in changed or plan.restart_if_changed:
            raise MienetError(
                f"study {plan.study_name} in {describe(plan.storage)} was started with {what} "
                f"({ {k: saved.get(k) for k in changed} }); use the same settings, another --study-name"
                + (", or delete the study (optuna delete-study)" if is_url(plan.storage) or others
                   else ", or --restart-if-changed to start over")
                + (f" (the journal also holds {', '.join(others)}, so it is not set aside)" if others else ""))
        log.warning("study %s was started with other fixed training settings (%s, now %s)",
                    plan.study_name, saved.get("train"), now["train"])
        return study, storage, lock


def name_metric(study: optuna.Study) -> None:
    """The objective's name, as optuna-dashboard and ``trials_dataframe`` show it (not "Objective 0")."""
    with warnings.catch_warnings():  # set_metric_names is marked experimental in Optuna 3 to 5
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([METRIC])


def _study_kwargs(plan: SearchPlan, storage) -> dict:
    return dict(study_name=plan.study_name, storage=storage, sampler=make_sampler(plan.settings),
                pruner=make_pruner(plan.settings))


def _create_study(plan: SearchPlan, storage) -> optuna.Study:
    s = plan.settings
    study = optuna.create_study(direction="maximize", **_study_kwargs(plan, storage))
    name_metric(study)
    study.set_user_attr("mienet", study_record(plan))
    defaults = default_trial_params(s) if s.enqueue_default else None
    if defaults is not None:
        study.enqueue_trial(defaults, user_attrs={"default": True})
    elif s.enqueue_default and s.space:
        log.info("the untuned settings lie outside the search space: no default trial")
    log.info("created study %s in %s", plan.study_name, describe(plan.storage))
    return study


def load_existing_study(plan: SearchPlan) -> optuna.Study:
    """The study for reading only (``--report-only``): never created."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.load_study(study_name=plan.study_name,
                                 storage=open_storage(plan.storage, plan.settings.heartbeat))
    except KeyError:
        raise MienetError(f"no study {plan.study_name} in {describe(plan.storage)}") from None


def take_trial(study: optuna.Study, plan: SearchPlan, storage, lock: StudyLock) -> optuna.Trial | None:
    """The next trial of this worker (a queued one first), or None when the budget is used up."""
    with lock():
        reap_stale_trials(study, storage, plan.settings.heartbeat)
        trials = study.get_trials(deepcopy=False)
        t = tally(trials)
        if t.waiting == 0 and t.used >= plan.settings.n_trials:
            return None
        study.sampler = make_sampler(plan.settings, salt=(len(trials), t.waiting))
        with warnings.catch_warnings():  # Optuna warns that its heartbeat expects Study.optimize
            warnings.simplefilter("ignore")
            trial = study.ask()
        trial.set_user_attr("worker", this_worker())
        trial.set_user_attr("heartbeat", time.time())
        trial.set_user_attr("epochs_trained", 0)
        if plan.job is not None or "job" in trial.user_attrs:  # a retry carries its lost job's name
            trial.set_user_attr("job", plan.job)
        return trial


# --------------------------------------------------------------------------- one trial

def retry_of(study: optuna.Study, trial: optuna.Trial) -> int | None:
    """The first trial of the retry chain ``trial`` continues (RetryHeartbeatStaleTrialCallback)."""
    frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
    return frozen.system_attrs.get("failed_trial")


def trial_config(plan: SearchPlan, params: dict, run_dir: Path):
    # A trial trains in its worker's process on the worker job's one GPU, whatever the recipe's
    # gpus (the searched lr is the rate at batch 8, scaled linearly in either case).
    values = {**plan.settings.train, **params, "gpus": 1}
    if values.get("pretrained") == "none":  # the recipes' spelling, as in `mienet train`
        values["pretrained"] = None
    if "lr_steps" in values:
        values["lr_steps"] = list(values["lr_steps"])
    return TrainConfig(annotations=plan.annotations, root=plan.root, out=str(run_dir),
                       dataset=plan.dataset, variant=plan.variant, **values)


def objective(trial: optuna.Trial, plan: SearchPlan, run_dir: Path, resume: bool) -> float:
    # lazy: torch (1.5 s), which the parent of K worker processes and --report-only never need
    from mienet.engine.loop import train

    params = {name: dist.suggest(trial) for name, dist in plan.settings.space.items()}
    cfg = trial_config(plan, params, run_dir)
    if trial.number in plan.debug_fail_trials:
        cfg.debug_nan_at_step = 0
    if trial.number in plan.debug_exit_trials:
        cfg.debug_exit_at_step = 0
    trial.set_user_attr("max_epochs", cfg.epochs)
    epochs = 0

    def report(epoch: int, row: dict) -> None:
        nonlocal epochs
        epochs += 1
        trial.set_user_attr("epochs_trained", epochs)
        trial.report(row[METRIC], epoch)
        # A trial that reached its last epoch has completed: it is never pruned (it counts for
        # the best, with its best epoch's value).
        if epoch < cfg.epochs and trial.should_prune():
            trial.set_user_attr("pruned_at_epoch", epoch)
            raise optuna.TrialPruned(f"val top-1 {row[METRIC]:.2f} at epoch {epoch}")

    # a retry continues the run of a trial whose worker is gone, on whichever node it ran
    summary = train(cfg, resume=resume, progress=plan.progress, on_epoch=report, take_over_lock=resume)
    trial.set_user_attr("best_epoch", summary["best"].get("epoch"))
    return float(summary["best"][METRIC])


def run_trial(study: optuna.Study, trial: optuna.Trial, plan: SearchPlan, storage) -> TrialState:
    """Run the objective and record its end: COMPLETE, PRUNED, or FAIL (with the error)."""
    first = retry_of(study, trial)  # a retry continues the run of the trial it replaces
    run_dir = Path(plan.trials_dir or Path(plan.out) / "trials") / str(trial.number if first is None else first)
    value, error = None, None
    try:
        # Trial._trial_id: the storage's key for the heartbeat (Optuna's optimize loop does the same).
        with Heartbeat(storage, trial._trial_id, plan.settings.heartbeat["interval"]):
            value = objective(trial, plan, run_dir, resume=first is not None)
        state = TrialState.COMPLETE
    except optuna.TrialPruned as exc:
        state = TrialState.PRUNED
        log.info("trial %d pruned: %s", trial.number, exc)
    except KeyboardInterrupt:
        with contextlib.suppress(Exception):
            frozen = study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            if frozen.state == TrialState.FAIL:
                retry_callback(plan.settings.heartbeat["max_retry"])(study, frozen)
        raise
    except Exception as exc:
        state = TrialState.FAIL
        error = str(exc) if isinstance(exc, MienetError) else f"{type(exc).__name__}: {exc}"
        log.warning("trial %d failed: %s", trial.number, error,
                    exc_info=not isinstance(exc, (MienetError, optuna.exceptions.OptunaError)))
        with contextlib.suppress(Exception):
            trial.set_user_attr("error", error[:1000])
    try:
        frozen = study.tell(trial, value if state == TrialState.COMPLETE else None, state=state,
                            skip_if_finished=True)
    except optuna.exceptions.UpdateFinishedTrialError:
        frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
    if frozen.state != state:
        log.warning("trial %d had already been marked %s by another worker (its heartbeat was late)",
                    trial.number, frozen.state.name)
    elif state == TrialState.COMPLETE:
        log.info("trial %d: best val top-1 %.2f with %s", trial.number, value, trial.params)
    if not plan.settings.keep_checkpoints:
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    return frozen.state


# --------------------------------------------------------------------------- workers

def run_worker(plan: SearchPlan, deadline: float | None = None) -> int:
    """Take and run trials until the budget is used up or ``deadline`` (time.monotonic) passes."""
    if plan.threads:
        import torch  # lazy: 1.5 s, see objective

        torch.set_num_threads(plan.threads)
    study, storage, lock = open_study(plan)
    ran = 0
    while deadline is None or time.monotonic() < deadline:
        trial = take_trial(study, plan, storage, lock)
        if trial is None:
            break
        first = retry_of(study, trial)
        log.info("trial %d: %s", trial.number, "started" if first is None else f"retry of trial {first}")
        run_trial(study, trial, plan, storage)
        ran += 1
    return ran


def _worker_process(plan: SearchPlan, index: int, deadline_s: float | None, verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format=f"%(levelname)s worker {index} %(name)s: %(message)s")
    deadline = None if deadline_s is None else time.monotonic() + deadline_s
    try:
        run_worker(plan, deadline)
    except MienetError as exc:
        log.error("%s", exc)
        raise SystemExit(2)
    except KeyboardInterrupt:
        raise SystemExit(130)


def run_search(plan: SearchPlan, workers: int = 1) -> dict:
    """Run the study (``workers`` processes) up to its budget; returns what happened."""
    t0 = time.monotonic()
    study, storage, lock = open_study(plan)
    with lock():
        reap_stale_trials(study, storage, plan.settings.heartbeat)
        t = tally(study.get_trials(deepcopy=False))
    todo = max(plan.settings.n_trials - t.used, 0) + t.waiting
    timeout = plan.settings.timeout
    deadline = None if timeout is None else t0 + timeout
    log.info("study %s: %d of %d trials used (%d complete, %d pruned, %d failed, %d running); %d to run",
             plan.study_name, t.used, plan.settings.n_trials, t.complete, t.pruned,
             t.failed - t.retried, t.running, todo)
    errors = []
    workers = max(1, min(workers, todo))
    if todo == 0:
        pass
    elif workers == 1:
        run_worker(plan, deadline)
    else:
        ctx = multiprocessing.get_context("spawn")  # fresh interpreters: no forked torch state
        threads = plan.threads or max(1, (os.cpu_count() or 1) // workers)
        verbose = logging.getLogger().isEnabledFor(logging.DEBUG)
        procs = [ctx.Process(target=_worker_process, name=f"search-worker-{i}",
                             args=(replace(plan, threads=threads), i, timeout, verbose))
                 for i in range(workers)]
        for p in procs:
            p.start()
        try:
            for p in procs:
                p.join()
        except KeyboardInterrupt:
            for p in procs:
                p.join(30)
            raise
        errors = [f"worker {i} exited with status {p.exitcode}" for i, p in enumerate(procs) if p.exitcode]
    return {"study": study, "workers": workers, "worker_errors": errors, "seconds": time.monotonic() - t0}


def settle_lost_trials(plan: SearchPlan) -> int:
    """After every worker job of a spread study has ended, a trial still RUNNING lost its worker
    (killed, timed out) unless its heartbeat is still fresh. Wait, at most the heartbeat's grace
    period and one interval, until such trials are reaped (failed and queued again, to be run by
    :func:`run_search` next) or finished; returns the trials still running then."""
    study, storage, lock = open_study(plan)
    hb = plan.settings.heartbeat
    deadline = time.monotonic() + hb["grace_period"] + hb["interval"]
    while True:
        with lock():
            reap_stale_trials(study, storage, hb)
            running = tally(study.get_trials(deepcopy=False)).running
        if running == 0 or time.monotonic() >= deadline:
            return running
        log.info("waiting for %d running trial(s) of study %s: finished, or reaped after %d s without a "
                 "heartbeat", running, plan.study_name, hb["grace_period"])
        time.sleep(hb["interval"])


def job_trials(study: optuna.Study, job: str) -> list[dict]:
    """The trials the worker job ``job`` took: number, state, and the trial a retry continues."""
    return [{"number": t.number, "state": t.state.name, "retry_of": t.system_attrs.get("failed_trial")}
            for t in study.get_trials(deepcopy=False) if t.user_attrs.get("job") == job]


def check_worker_records(study: optuna.Study, records: list[Path]) -> dict[str, list[int]]:
    """The worker jobs' records (``mienet search --worker-record``) against the study: every
    record names its own job, no trial is claimed by two jobs, and each record lists what the
    study says that job ran. Returns job -> trial numbers."""
    jobs: dict[str, list[int]] = {}
    owner: dict[int, str] = {}
    for path in records:
        try:
            record = json.loads(Path(path).read_text())
            job, numbers = record["job"], [int(t["number"]) for t in record["trials"]]
        except FileNotFoundError:
            raise MienetError(f"{path}: no record of this worker job (has it run?)") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise MienetError(f"{path}: not a worker record of mienet search ({exc})") from None
        if job in jobs:
            raise MienetError(f"{path}: job {job!r} has a second record")
        for n in numbers:
            if n in owner:
                raise MienetError(f"{path}: trial {n} was run by job {owner[n]!r} too")
            owner[n] = job
        study_says = [t["number"] for t in job_trials(study, job)]
        if sorted(numbers) != sorted(study_says):
            raise MienetError(f"{path}: job {job!r} lists trials {numbers}, the study {study_says}")
        jobs[job] = sorted(numbers)
    return jobs


# --------------------------------------------------------------------------- data subset

def subset_annotations(annotations: Path, out: Path, subset: dict) -> Path:
    """A stratified, seeded subset of train.txt and val.txt (``k`` clips per class) in ``out``."""
    ann_out = out / "annotations"
    for split, key in (("train", "train_per_class"), ("val", "val_per_class")):
        src = annotations / f"{split}.txt"
        if not src.is_file():
            raise MienetError(f"{src} does not exist (written by `mienet make-annotations`)")
        lines = [l for l in read_list_lines(src) if l.strip()]
        k = subset.get(key)
        if k is not None:
            by_class: dict[str, list[int]] = {}
            for i, line in enumerate(lines):
                by_class.setdefault(line.split()[-1], []).append(i)
            rng = random.Random(subset.get("seed", 0))
            keep = set()
            for label in sorted(by_class):
                idx = by_class[label]
                rng.shuffle(idx)
                keep.update(idx[:k])
            lines = [l for i, l in enumerate(lines) if i in keep]
        write_text_atomic(ann_out / f"{split}.txt", "\n".join(lines) + "\n")
    classes = annotations / "classes.txt"
    if not classes.is_file():
        raise MienetError(f"{classes} does not exist (written by `mienet make-annotations`)")
    write_text_atomic(ann_out / "classes.txt", classes.read_text())
    return ann_out
