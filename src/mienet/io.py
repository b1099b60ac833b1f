"""Small file-system helpers shared by every stage: atomic writes, and this environment's tools
(:func:`environment_tool`).

Files are written to a temporary name next to their destination and renamed onto it only
once complete, so a reader (or a later run) sees the old file or the new one, never half of
one. The temporary file is created with mode ``0o666`` and the kernel applies the umask (and
a folder's default ACL), so outputs get the same mode as any file the user creates: ``0644``
under umask 022, not the ``0600`` of :func:`tempfile.mkstemp`.

An ``OSError`` raised while writing (a full disk, a read-only or foreign folder) names the
destination, not the temporary file: ``OSError(ENOSPC, 'No space left on device', path)``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import sys
from pathlib import Path
from typing import Iterator, Mapping

FILE_MODE = 0o666  # before the umask, as open() and touch do
DIR_MODE = 0o777


def named_os_error(exc: OSError, path: str | os.PathLike) -> OSError:
    """``exc`` naming ``path`` (same errno and message): Python's ``write``/``close`` errors and
    errors about a temporary file carry no name a user knows."""
    code = exc.errno if exc.errno is not None else errno.EIO
    return OSError(code, exc.strerror or os.strerror(code), os.fspath(path))


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")


def create_temp_file(path: Path) -> Path:
    """Create an empty, new temporary file next to ``path`` with the umask's mode."""
    for _ in range(100):
        tmp = _temp_name(path)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(errno.EEXIST, "no free temporary file name", os.fspath(path))


def make_temp_dir(parent: str | os.PathLike, prefix: str = "tmp") -> Path:
    """Create a new, empty folder in ``parent`` with the umask's mode (``mkdtemp`` gives 0700,
    which a folder renamed into place would keep)."""
    parent = Path(parent)
    for _ in range(100):
        folder = parent / f"{prefix}{secrets.token_hex(4)}"
        try:
            os.mkdir(folder, DIR_MODE)
        except FileExistsError:
            continue
        return folder
    raise FileExistsError(errno.EEXIST, "no free temporary folder name", os.fspath(parent))


def _is_temp_error(exc: OSError, tmp: Path) -> bool:
    return exc.filename is None or os.fspath(exc.filename) == os.fspath(tmp)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success.

    The temporary file exists (empty) when yielded and has the umask's mode. An ``OSError``
    about the temporary file (or without a file name) is re-raised naming ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = create_temp_file(path)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as exc:
        if _is_temp_error(exc, tmp_path):
            raise named_os_error(exc, path) from exc
        raise
    finally:
        with contextlib.suppress(OSError):
            tmp_path.unlink()


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new file, never half of one."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_files_atomic(files: Mapping[str | os.PathLike, str]) -> None:
    """Write several text files as one change: every file is written to its temporary name
    first, and only when all of them are complete are they renamed into place. A failure
    (a full disk) leaves every old file as it was, so a set of files that belong together
    (a split's lists and its class list) is never half old and half new."""
    staged: list[tuple[Path, Path]] = []
    try:
        for target, text in files.items():
            target = Path(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = create_temp_file(target)
            staged.append((tmp, target))
            try:
                tmp.write_text(text, encoding="utf-8")
            except OSError as exc:
                if _is_temp_error(exc, tmp):
                    raise named_os_error(exc, target) from exc
                raise
        for tmp, target in staged:
            try:
                os.replace(tmp, target)
            except OSError as exc:
                raise named_os_error(exc, target) from exc
    finally:
        for tmp, _ in staged:
            with contextlib.suppress(OSError):
                tmp.unlink()


def write_bytes_named(path: str | os.PathLike, data) -> None:
    """Write ``data`` (bytes or a buffer) to a new file ``path``; an ``OSError`` names ``path``
    (a bare ``write`` or ``close`` that fails on a full disk does not)."""
    try:
        with open(path, "wb") as fh:
            fh.write(data)
    except OSError as exc:
        raise named_os_error(exc, path) from exc


def environment_tool(name: str) -> str | None:
    """The executable ``name`` (dvc, snakemake) of the environment running this interpreter,
    activated or not (beside ``sys.executable``), else the one on ``PATH``; None when neither."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else shutil.which(name)
