"""One writer per run folder: ``mienet train --out DIR`` and ``mienet search --out DIR`` hold a lock.

The lock is a file, ``DIR/.mienet-lock``, created with ``os.open(O_CREAT | O_EXCL)``: exactly one
process can create it, on one machine and on a shared file system seen by many (NFS v3 and later,
Lustre, GPFS/Spectrum Scale, CephFS and BeeGFS create a file exclusively on the server). ``flock``
is not used for this, because it is not shared across nodes everywhere (Lustre without ``-o flock``,
some NFS set-ups). The file holds, as JSON, who holds it: the host name, its boot id and PID
namespace, the process id and the process start time (``/proc/<pid>/stat``, so that a reused pid
is not mistaken for the holder), the time the lock was taken (UTC) and the command.

* A second writer gets :class:`~mienet.errors.MienetError`, one line naming the holder::

      run folder runs/x is in use by pid 1234 on host vm since 2026-12-04T17:20:03Z (mienet train ...;
      lock runs/x/.mienet-lock; remove it if that process is gone)

* A stale lock, whose holder ran on this machine (same host name, boot id and PID namespace) and
  whose process is gone (or its pid now belongs to a process started later), is taken over with a
  warning. Taking over is itself race-free: the processes that found the same stale lock compete
  for a guard file named after the stale lock's content (``.mienet-lock.takeover-<hash>``,
  ``O_EXCL`` again); only the winner removes the stale file, and only while it still holds that
  content, and then every process competes for a new lock with ``O_EXCL`` as at first.
* A lock from another machine (or from before a reboot: another boot id) is never taken over
  automatically: whether its process lives cannot be known from here. The message says so, and
  removing the file is the way out. The one exception is a search trial that continues the run
  of a trial whose worker the study has declared dead (``take_over_foreign``).
* The lock is released when the ``with`` block ends, also by an exception or ``KeyboardInterrupt``;
  a ``SIGTERM`` (SLURM's, Snakemake's) removes it before the process ends as it would have. Only
  ``SIGKILL``, an out-of-memory kill or a crashed node leave it behind (stale, see above).
* Shared holders (:func:`run_lock` with ``key``): the commands of one search study (the same
  storage, study name and settings, as K separate ``mienet search`` commands on one ``--out``
  are) may hold one folder together. Each records itself in ``.mienet-lock.holder-<token>``,
  written while it holds ``.mienet-lock`` for a moment; a holder with another key, or an exclusive
  holder, is refused as above.

Importing this module imports no third-party package.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import signal
import socket
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from mienet.errors import MienetError
from mienet.io import FILE_MODE, write_text_atomic

log = logging.getLogger(__name__)

LOCK_NAME = ".mienet-lock"
HOLDER_PREFIX = f"{LOCK_NAME}.holder-"
TAKEOVER_PREFIX = f"{LOCK_NAME}.takeover-"
# A lock file is created empty and written at once: a reader that finds it empty or half
# written reads it again for this long before calling it corrupt.
PARTIAL_READ_S = 2.0
# How long a process waits while another one holds the lock only to join a shared lock (ms).
JOIN_WAIT_S = 30.0
# How long competing take-overs of one stale lock may take before the guard is called stuck.
TAKEOVER_WAIT_S = 10.0


# --------------------------------------------------------------------------- who is a process

def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot), None when there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return ""
    rest = stat.rsplit(")", 1)[1].split()  # the fields after the command name, from field 3
    if rest[0] in ("Z", "X"):  # a zombie is dead: a killed --workers child not yet joined
        return None
    return rest[19]  # field 22: start time


def machine() -> str:
    return f"{socket.gethostname()}/{_boot_id()}"


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def process_alive(pid: int, start: str = "") -> bool:
    """Whether process ``pid`` of this machine runs (and, given ``start``, is the process that
    started then, not a later one that reuses its pid). Unknown counts as alive."""
    if pid <= 0:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        stat = None  # no such process, no /proc, or hidden (hidepid): the kernel knows
    except OSError:
        return True
    if stat is not None:
        rest = stat.rsplit(")", 1)[1].split()
        if rest[0] in ("Z", "X"):
            return False
        return not start or rest[19] == start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _command() -> str:
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    if name in ("__main__.py", "-c", "-m"):
        name = "python"
    text = " ".join([name, *sys.argv[1:]])
    text = re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", text)  # a storage URL's password
    return text if len(text) <= 160 else text[:157] + "..."


def identity(pid: int | None = None) -> dict:
    """Who this process is, as a lock records it."""
    pid = os.getpid() if pid is None else pid
    return {"host": socket.gethostname(), "boot_id": _boot_id(), "pid_ns": _pid_namespace(), "pid": pid,
            "start": _process_start(pid) or ""}


def _same_machine(rec: dict) -> bool:
    me = identity()
    if rec.get("host") != me["host"] or rec.get("boot_id", "") != me["boot_id"]:
        return False
    return not (rec.get("pid_ns") and me["pid_ns"] and rec["pid_ns"] != me["pid_ns"])


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- the lock file

class _Gone(Exception):
    """The lock file disappeared while it was being read (released meanwhile)."""


def _create(path: Path, text: str) -> bool:
    """Create ``path`` holding ``text`` if it does not exist; False if it does."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    except FileExistsError:
        return False
    try:
        data = text.encode()
        while data:
            data = data[os.write(fd, data):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    os.close(fd)
    return True


def _read(path: Path, folder: Path, what: str) -> tuple[str, dict]:
    """The text and the record of lock file ``path``; :class:`_Gone` when it is not there."""
    deadline = time.monotonic() + PARTIAL_READ_S
    while True:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise _Gone() from None
        except (OSError, UnicodeDecodeError) as exc:
            raise MienetError(f"{what} {folder}: its lock file {path} cannot be read ({exc}); if no mienet "
                              "command is using the folder, remove the file") from None
        try:
            rec = json.loads(text)
            if isinstance(rec, dict) and isinstance(rec.get("pid"), int) and isinstance(rec.get("host"), str):
                return text, rec
            problem = "not a mienet lock record"
        except ValueError as exc:
            problem = f"not JSON: {exc}"
        if time.monotonic() > deadline:  # not a holder writing its record: corrupt
            raise MienetError(f"{what} {folder}: its lock file {path} is corrupt ({problem}); if no mienet "
                              "command is using the folder, remove the file")
        time.sleep(0.02)


def _describe(rec: dict) -> str:
    return (f"pid {rec.get('pid')} on host {rec.get('host')} since {rec.get('started', '?')}"
            + (f" ({rec['command']})" if rec.get("command") else ""))


def _in_use(what: str, folder: Path, rec: dict, path: Path, foreign: bool) -> MienetError:
    purpose = f" for {rec['purpose']}" if rec.get("purpose") else ""
    if not foreign:
        why = "remove it if that process is gone"
    elif rec.get("host") == socket.gethostname():
        why = ("this machine has been restarted since, or another with the same name holds it: it is not "
               "taken over automatically; remove it if that process is gone")
    else:
        why = "another machine: it is not taken over automatically; remove it if that process is gone"
    return MienetError(f"{what} {folder} is in use{purpose} by {_describe(rec)}; lock {path}; {why}")


def _take_over(path: Path, text: str, rec: dict, reason: str) -> bool:
    """Remove the stale lock ``path`` if it still holds ``text``; False when another process is
    taking it over (its guard exists)."""
    guard = path.with_name(TAKEOVER_PREFIX + hashlib.sha256(text.encode()).hexdigest()[:16])
    if not _create(guard, json.dumps(identity())):
        return False
    try:
        try:
            current = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return True
        if current == text:  # only its dead holder or this guard's holder could remove it
            log.warning("taking over the lock %s of %s: %s", path, _describe(rec), reason)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        return True
    finally:
        with contextlib.suppress(OSError):
            os.unlink(guard)


def _stale_reason(rec: dict, take_over_foreign: bool) -> tuple[str | None, bool]:
    """(why the holder of ``rec`` is gone, or None while it may live; whether it is foreign)."""
    if not _same_machine(rec):
        return ("the search declared its worker gone" if take_over_foreign else None), True
    pid, start = int(rec["pid"]), str(rec.get("start") or "")
    if process_alive(pid, start):
        return None, False
    return f"process {pid} is gone", False


def _acquire(path: Path, text: str, folder: Path, what: str, take_over_foreign: bool) -> None:
    """Create the lock file ``path`` holding ``text`` (a record)."""
    join_deadline = time.monotonic() + JOIN_WAIT_S
    takeover_deadline = None
    while True:
        if _create(path, text):
            return
        try:
            held_text, rec = _read(path, folder, what)
        except _Gone:
            continue
        reason, foreign = _stale_reason(rec, take_over_foreign and rec.get("mode") != "join")
        if reason is None:
            if rec.get("mode") == "join" and time.monotonic() < join_deadline:
                time.sleep(0.02)  # another command joining a shared lock holds it for a moment
                continue
            raise _in_use(what, folder, rec, path, foreign)
        if not _take_over(path, held_text, rec, reason):
            takeover_deadline = takeover_deadline or time.monotonic() + TAKEOVER_WAIT_S
            if time.monotonic() > takeover_deadline:
                raise MienetError(f"{what} {folder}: the lock {path} of {_describe(rec)} is stale ({reason}), "
                                  f"but a take-over of it did not finish ({path.name}.takeover-* exists); "
                                  "if no mienet command is using the folder, remove both files")
            time.sleep(0.02)


def _release(path: Path, text: str, held: bool = True) -> None:
    """Remove the lock file ``path`` if it holds ``text``. ``held=False``: this process may not
    have created it yet (a SIGTERM while acquiring), so a missing or other file is no news."""
    try:
        current = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if held:
            log.warning("the lock %s was removed while this process held it", path)
        return
    except OSError as exc:
        log.warning("cannot release the lock %s: %s", path, exc)
        return
    if current != text:
        if held:
            log.warning("the lock %s was taken over by another process while this one held it; left alone", path)
        return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _holders(folder: Path) -> list[Path]:
    return sorted(folder.glob(HOLDER_PREFIX + "*"))


def _check_holders(folder: Path, what: str, key: str | None) -> None:
    """Under the lock: refuse when a live holder of another key (or any, for ``key=None``) is
    recorded; remove the records of dead holders."""
    for path in _holders(folder):
        try:
            _, rec = _read(path, folder, what)
        except _Gone:
            continue
        reason, foreign = _stale_reason(rec, False)
        if reason is not None:
            log.warning("removing the stale lock %s of %s: %s", path, _describe(rec), reason)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        elif key is None or rec.get("key") != key:
            raise _in_use(what, folder, rec, path, foreign)


# --------------------------------------------------------------------------- SIGTERM

_TERM_RELEASES: list = []  # the release functions of the locks held, innermost last
_TERM_OWNER: list = [0, None]  # the pid that installed the handler, the handler it replaced


def _on_sigterm(signum, frame) -> None:
    if os.getpid() == _TERM_OWNER[0]:  # not a forked child (a data-loading worker)
        for release in reversed(list(_TERM_RELEASES)):
            with contextlib.suppress(Exception):
                release()
    previous = _TERM_OWNER[1]
    if callable(previous):
        previous(signum, frame)
        return
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # end as the signal would have ended it
    os.kill(os.getpid(), signal.SIGTERM)


@contextlib.contextmanager
def _released_on_sigterm(release) -> Iterator[None]:
    installed = False
    if threading.current_thread() is threading.main_thread() and not _TERM_RELEASES:
        previous = signal.getsignal(signal.SIGTERM)
        if previous is not signal.SIG_IGN:
            _TERM_OWNER[:] = [os.getpid(), previous]
            signal.signal(signal.SIGTERM, _on_sigterm)
            installed = True
    _TERM_RELEASES.append(release)
    try:
        yield
    finally:
        _TERM_RELEASES.remove(release)
        if installed:
            signal.signal(signal.SIGTERM, _TERM_OWNER[1] if _TERM_OWNER[1] is not None else signal.SIG_DFL)


# --------------------------------------------------------------------------- the public lock

@contextlib.contextmanager
def run_lock(folder: str | os.PathLike, what: str = "run folder", key: str | None = None,
             purpose: str = "", take_over_foreign: bool = False, enabled: bool = True) -> Iterator[Path]:
    """Hold ``folder`` (created when missing) for this process while the block runs.

    ``key``: holders with the same key share the folder (the commands of one search study);
    ``purpose`` says what they do, for the message another one gets. ``take_over_foreign``: a
    lock from another machine is taken over too (the caller knows its holder is gone).
    ``enabled=False``: no lock (a ``torchrun`` rank other than 0). Yields the lock file."""
    folder = Path(folder)
    path = folder / LOCK_NAME
    if not enabled:
        yield path
        return
    created = []
    for d in (folder, *folder.parents):
        if d.exists():
            break
        created.append(d)
    folder.mkdir(parents=True, exist_ok=True)
    pid = os.getpid()
    record = {**identity(), "started": _now_iso(), "command": _command(), "token": secrets.token_hex(8),
              "mode": "exclusive" if key is None else "join"}
    text = json.dumps(record, sort_keys=True)
    # What release() has to undo, set before each step. The SIGTERM handler is installed before
    # the lock file is created and removed only after release() has run, so a SIGTERM at any
    # moment leaves nothing behind; release() may run again from the handler (a SIGTERM while it
    # runs), so each of its steps can be repeated.
    state = {"lock": "acquiring", "holder": None}

    def drop_lock() -> None:
        if state["lock"] != "released":
            held = state["lock"] == "held"
            state["lock"] = "releasing"  # a repeat is quiet about a file already gone
            _release(path, text, held=held)
            state["lock"] = "released"

    def release() -> None:
        if os.getpid() != pid:  # a forked child (a data-loading worker) holds nothing
            return
        if state["holder"] is not None:
            with contextlib.suppress(FileNotFoundError):
                state["holder"].unlink()
            state["holder"] = None
        drop_lock()
        for d in created:  # a folder made only for the lock goes again when nothing was written
            try:
                d.rmdir()
            except FileNotFoundError:
                continue
            except OSError:
                break

    with _released_on_sigterm(release):
        try:
            _acquire(path, text, folder, what, take_over_foreign)
            state["lock"] = "held"
            _check_holders(folder, what, key)
            if key is not None:  # a shared holder: its own record, the lock file only while joining
                state["holder"] = folder / f"{HOLDER_PREFIX}{record['token']}"
                write_text_atomic(state["holder"], json.dumps({**record, "mode": "shared", "key": key,
                                                               "purpose": purpose}, sort_keys=True))
                drop_lock()
            yield path
        finally:
            release()


def holder_of(folder: str | os.PathLike) -> dict | None:
    """The record of the exclusive holder of ``folder``, None when it is free (for tools and tests)."""
    folder = Path(folder)
    try:
        return _read(folder / LOCK_NAME, folder, "folder")[1]
    except _Gone:
        return None


__all__ = ["LOCK_NAME", "run_lock", "holder_of", "identity", "process_alive", "machine"]
