"""Where a study lives, and what keeps it consistent when several workers share it.

Storage: a path is an Optuna journal file (``JournalStorage`` + ``JournalFileBackend``, safe for
several processes on one machine); a URL (``postgresql://``, ``mysql+pymysql://``, ``sqlite:///``)
is an ``RDBStorage`` for workers on many machines.

Three mechanisms, the same for every storage:

* **A study lock** around "count the trials, then take one" (:func:`study_lock`), so K workers
  never start more than ``n_trials`` between them: ``flock`` on a file next to a journal or a
  SQLite database, ``pg_advisory_lock`` on PostgreSQL, ``GET_LOCK`` on MySQL. The operating
  system or the database server drops the lock of a process that dies.
* **A heartbeat** while a trial runs (:class:`Heartbeat`). On an RDB storage it is Optuna's own
  (``RDBStorage(heartbeat_interval=..., grace_period=...)``). Optuna 5's ``JournalStorage`` has
  no heartbeat (it is not a ``BaseHeartbeat``), so for a journal the worker writes the time into
  the trial's ``heartbeat`` user attribute every ``interval`` seconds.
* **Reaping stale trials** (:func:`reap_stale_trials`) before each new trial: a RUNNING trial whose
  worker process is gone (same machine: the recorded process no longer exists) or whose heartbeat
  is older than ``grace_period`` (another machine) is marked FAIL and queued again with the same
  parameters by Optuna's ``RetryHeartbeatStaleTrialCallback`` (up to ``max_retry`` times).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import optuna
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from mienet.errors import MienetError
from mienet.runlock import _process_start, machine, process_alive  # a process's identity, defined once

log = logging.getLogger(__name__)

JOURNAL_NAME = "journal.log"


def is_url(storage: str) -> bool:
    return "://" in storage


def describe(storage: str) -> str:
    """The storage for logs and summaries: a URL's password hidden."""
    if not is_url(storage):
        return str(storage)
    try:
        from sqlalchemy.engine import make_url  # lazy: 300 ms that a journal-file study never needs

        return make_url(storage).render_as_string(hide_password=True)
    except Exception:  # not a SQLAlchemy URL: say only its scheme
        return storage.split("://", 1)[0] + "://..."


def retry_callback(max_retry: int):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback(
            max_retry=max_retry, inherit_intermediate_values=True)


def open_storage(storage: str, heartbeat: dict) -> optuna.storages.BaseStorage:
    """A journal file for a path, an RDBStorage with Optuna's heartbeat for a URL."""
    if not is_url(storage):
        path = Path(storage)
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path), lock_obj=JournalWriteLock(path)))
    engine_kwargs = {}
    if storage.startswith("sqlite"):
        # Writers wait for each other instead of failing at once with "database is locked".
        engine_kwargs = {"connect_args": {"timeout": 120}}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                storage, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat["interval"],
                grace_period=heartbeat["grace_period"],
                heartbeat_stale_trial_callback=retry_callback(heartbeat["max_retry"]))
    except Exception as exc:  # SQLAlchemy: connection refused, bad URL, authentication
        raise storage_error(storage, exc) from None


def storage_error(storage: str, exc: BaseException) -> MienetError:
    """A database error (refused connection, unknown host, failed login, bad URL, missing driver)
    as one line naming the storage with its password hidden."""
    if isinstance(exc, MienetError):
        return exc
    if isinstance(exc, ImportError):
        return MienetError(f"storage {describe(storage)}: a database driver is missing ({exc})")
    reason = " ".join(str(getattr(exc, "orig", None) or exc).split())  # the driver's words, one line
    reason = reason.split(" (Background on this error at:", 1)[0]
    password = _password(storage)
    if password:
        reason = reason.replace(password, "***")
    return MienetError(f"cannot open the study storage {describe(storage)}: {reason or type(exc).__name__}")


def _password(storage: str) -> str | None:
    try:
        from sqlalchemy.engine import make_url  # lazy: 300 ms that a journal-file study never needs

        return make_url(storage).password
    except Exception:
        return None


def check_reachable(storage: str) -> None:
    """Connect once to a database server storage (a journal file or SQLite needs no server), so
    that an unreachable server or a refused login is one line before anything is written."""
    if not is_url(storage) or storage.startswith("sqlite"):
        return
    try:
        import sqlalchemy  # lazy: 300 ms that a journal-file study never needs

        engine = sqlalchemy.create_engine(storage, poolclass=sqlalchemy.pool.NullPool)
        try:
            with engine.connect():
                pass
        finally:
            engine.dispose()
    except Exception as exc:
        raise storage_error(storage, exc) from None


class JournalWriteLock:
    """The lock around each write to a journal file: ``flock`` on ``<journal>.write.mienet-lock``.

    Optuna's default (a symlink that a crashed writer leaves behind, taken over only when it is
    30 s old) made every worker of a study wait 30 s after a worker was killed while writing, as
    a job killed at its time limit can be. The operating system drops an ``flock`` with the
    process, however it ends. It needs what the study lock (an ``flock`` too) already needs: on a
    file system shared by worker jobs, Linux's NFS client makes it a POSIX lock (docs/clusters.md).
    Optuna's backend only calls ``acquire()`` and ``release()`` (its lock base class is private)."""

    def __init__(self, journal: Path):
        self.path = Path(f"{journal}.write.mienet-lock")
        self._fd: int | None = None

    def acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the only descriptor drops the flock


# --------------------------------------------------------------------------- the study lock

@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class StudyLock:
    """A lock every worker of one study takes around "count the trials, then take one"."""

    def __init__(self, storage: str, study_name: str):
        self.storage, self.study_name = storage, study_name
        self._engine = None
        self._warned = False

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        s = self.storage
        if not is_url(s):
            with _file_lock(Path(f"{s}.mienet-lock")):
                yield
            return
        if s.startswith("sqlite"):
            db = s.split(":///", 1)[-1].split("?", 1)[0]
            with _file_lock(Path(f"{db or 'memory'}.mienet-lock")):
                yield
            return
        dialect = s.split("://", 1)[0].split("+", 1)[0]
        if dialect not in ("postgresql", "mysql", "mariadb"):
            if not self._warned:
                log.warning("no study lock for %s storages: concurrent workers may start up to one "
                            "trial each beyond n_trials", dialect)
                self._warned = True
            yield
            return
        import sqlalchemy  # lazy: 300 ms that a journal-file study never needs

        name = f"mienet-search:{self.study_name}"
        if dialect == "postgresql":
            key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
            take, release, values = "SELECT pg_advisory_lock(:k)", "SELECT pg_advisory_unlock(:k)", {"k": key}
        else:
            take, release, values = "SELECT GET_LOCK(:n, -1)", "SELECT RELEASE_LOCK(:n)", {"n": name[:64]}
        try:  # an unreachable server or a refused login: one line, the password hidden
            if self._engine is None:
                self._engine = sqlalchemy.create_engine(s, poolclass=sqlalchemy.pool.NullPool)
            conn = self._engine.connect()
        except Exception as exc:
            raise storage_error(s, exc) from None
        with conn:
            try:
                conn.execute(sqlalchemy.text(take), values)
            except Exception as exc:
                raise storage_error(s, exc) from None
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text(release), values)


# --------------------------------------------------------------------------- who runs a trial

def this_worker() -> dict:
    pid = os.getpid()
    return {"machine": machine(), "pid": pid, "start": _process_start(pid) or ""}


def worker_alive(worker: dict) -> bool | None:
    """Whether the worker process still runs: None when it ran on another machine."""
    if not isinstance(worker, dict) or worker.get("machine") != machine():
        return None
    pid = int(worker.get("pid", 0))
    if pid <= 0:
        return None
    return process_alive(pid, str(worker.get("start") or ""))


class Heartbeat:
    """Proof of life of one running trial, written every ``interval`` seconds from a thread."""

    def __init__(self, storage, trial_id: int, interval: int):
        self.storage, self.trial_id, self.interval = storage, trial_id, interval
        self.rdb = rdb_of(storage)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name="mienet-heartbeat")

    def _beat(self) -> None:
        while True:
            try:
                if self.rdb is not None:
                    self.rdb.record_heartbeat(self.trial_id)
                else:
                    self.storage.set_trial_user_attr(self.trial_id, "heartbeat", time.time())
            except Exception as exc:  # reaped by another worker, storage down: the trial decides
                log.debug("heartbeat of trial id %d: %s", self.trial_id, exc)
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def rdb_of(storage) -> optuna.storages.RDBStorage | None:
    return storage if isinstance(storage, optuna.storages.RDBStorage) else None


@dataclass
class Reaped:
    number: int
    reason: str


def reap_stale_trials(study: optuna.Study, storage, heartbeat: dict) -> list[Reaped]:
    """Fail the RUNNING trials whose worker is gone and queue them again. Call under the lock."""
    reaped: list[Reaped] = []
    now = time.time()
    callback = retry_callback(heartbeat["max_retry"])
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker")
        alive = worker_alive(worker)
        if alive is False:
            reason = f"its worker (pid {worker.get('pid')}) is gone"
        elif alive is None and rdb_of(storage) is None:
            beat = trial.user_attrs.get("heartbeat")
            if beat is None or now - float(beat) <= heartbeat["grace_period"]:
                continue
            reason = f"no heartbeat for {now - float(beat):.0f} s"
        else:
            continue  # alive here, or an RDB storage: Optuna's heartbeat covers other machines
        try:
            failed = study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # it finished in the meantime
        if failed.state != TrialState.FAIL or failed.datetime_complete is None:
            continue
        callback(study, failed)
        reaped.append(Reaped(trial.number, reason))
    if rdb_of(storage) is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
            optuna.storages.fail_stale_trials(study)
            failed = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))}
        reaped += [Reaped(n, "no heartbeat within the grace period") for n in sorted(before & failed)]
    for r in reaped:
        log.warning("trial %d marked failed and queued again: %s", r.number, r.reason)
    return reaped
