"""Frame packs: every encoded frame of one video in one file, with an index at its end.

``mienet extract-frames --layout packed`` (the default, ``extract.layout`` in params.yaml)
writes ``FRAMES_DIR/<video id>.frames`` instead of a folder ``FRAMES_DIR/<video id>/`` of
``img_00001.jpg ...``: one file per video instead of one per frame, so a dataset of 220,847
videos (Something-Something V2) is 220,847 files for DVC to hash, check and push, not 10
million (``docs/scale.md`` has the measurements). The frames are the very bytes the folder
layout writes (the same encoder and quality), so a clip decodes to identical pixels.

Format, version 1 (all integers little-endian)::

    offset            size       what
    0                 8          head magic  b"MIEFRMS\\x00"
    8                 2          version (uint16) = 1
    10                6          reserved, zero
    16                ...        frame 1, frame 2, ... frame N: the encoded images (JPEG or PNG),
                                 back to back, in frame order
    index_offset      16 * N     index, one entry per frame:
                                   offset (uint64)  where the frame's bytes start
                                   length (uint32)  how many bytes it has
                                   crc32  (uint32)  zlib.crc32 of those bytes
    index_offset+16N  M          meta: UTF-8 JSON object (what extract-frames knows of the video:
                                 its source stamp and manifest record; readers may ignore it)
    size - 32         32         footer:
                                   index_offset (uint64)
                                   N            (uint32)  number of frames, at least 1
                                   M            (uint32)  bytes of meta
                                   crc32        (uint32)  of the index and meta bytes
                                   version      (uint32) = 1
                                   tail magic   8 bytes  b"MIEFEND\\x00"

The index comes last so that a pack is written in one pass with constant memory (a frame's
bytes go to disk as soon as they are encoded, as with a folder of files); a reader opens the
file, reads its last few KiB (footer, index and meta in one read for up to ~200 frames) and
then exactly the bytes of the frames it samples (one ``pread`` per run of consecutive frames).

Integrity: a pack is written under a temporary name in ``FRAMES_DIR/.partial/`` and renamed
into place only once its footer is written, so a killed extraction never leaves a file that
looks finished. A file that is cut short anyway (copied halfway, a damaged disk) has no tail
magic or an index that does not end where the file ends; a changed byte inside the index or
meta fails its checksum; a changed byte inside a frame fails the frame's checksum when it is
read. Each of these is a :class:`PackError` naming the file (and the frame, 1-based as in
``img_00001.jpg``) and saying to re-extract.

Why not an uncompressed tar: tar has no index, so finding frame ``i`` means walking the 512-byte
member headers from the start (``tarfile`` reads all of them on open); ``docs/scale.md`` gives
the measured read rates of both.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mienet.errors import MienetError
from mienet.io import create_temp_file, named_os_error

PACK_SUFFIX = ".frames"
VERSION = 1
HEAD_MAGIC = b"MIEFRMS\x00"
TAIL_MAGIC = b"MIEFEND\x00"
_HEAD = struct.Struct("<8sH6x")  # magic, version, reserved
_ENTRY = struct.Struct("<QII")  # offset, length, crc32
_FOOT = struct.Struct("<QIIII8s")  # index offset, count, meta length, crc32, version, magic
HEAD_SIZE = _HEAD.size  # 16
ENTRY_SIZE = _ENTRY.size  # 16
FOOT_SIZE = _FOOT.size  # 32
TAIL_READ = 4096  # first read from the end: footer, index and meta of packs up to ~200 frames
# What a footer may claim before anything more is read (a damaged or forged footer must not make a
# reader allocate gigabytes): 4,194,304 frames (a 64 MiB index; 38 hours at 30 fps) and 1 MiB of
# meta (extract-frames writes well under 1 KiB). The writer refuses to write more.
MAX_FRAMES = 1 << 22
MAX_META = 1 << 20


class PackError(MienetError):
    """A pack that is not a pack, is cut short or is damaged; names the file and the frame."""

    def __init__(self, path: str | os.PathLike, reason: str, frame: int | None = None):
        where = f"frame {frame} of {path}" if frame is not None else str(path)
        super().__init__(f"cannot read frame pack {where}: {reason}; re-extract its video "
                         "(mienet extract-frames redoes a damaged pack)")
        self.path = str(path)
        self.reason = reason
        self.frame = frame  # 1-based, or None for the whole file


def pack_path(base: str | os.PathLike) -> Path:
    """The pack of a clip whose folder would be ``base`` (``frames/a`` -> ``frames/a.frames``)."""
    base = os.fspath(base).rstrip("/")
    return Path(base + PACK_SUFFIX)


@dataclass(frozen=True)
class PackIndex:
    """What the footer and index of a pack say."""

    path: str
    size: int
    offsets: tuple[int, ...]
    lengths: tuple[int, ...]
    crcs: tuple[int, ...]
    meta_bytes: bytes

    @property
    def count(self) -> int:
        return len(self.offsets)

    @property
    def meta(self) -> dict:
        try:
            meta = json.loads(self.meta_bytes.decode("utf-8")) if self.meta_bytes else {}
        except (UnicodeDecodeError, ValueError) as exc:
            raise PackError(self.path, f"unreadable meta ({exc})") from None
        if not isinstance(meta, dict):
            raise PackError(self.path, "meta is not a JSON object")
        return meta


# --------------------------------------------------------------------------- reading


def _parse(path: str, size: int, tail: bytes, tail_start: int, read_at) -> PackIndex:
    """The index of a pack of ``size`` bytes whose last bytes (from ``tail_start``) are ``tail``;
    ``read_at(offset, length)`` reads more when the index does not fit in ``tail``."""
    if size < HEAD_SIZE + FOOT_SIZE:
        raise PackError(path, f"only {size} bytes: not a frame pack, or cut short")
    index_offset, count, meta_len, crc, version, magic = _FOOT.unpack_from(tail, len(tail) - FOOT_SIZE)
    if magic != TAIL_MAGIC:
        raise PackError(path, "no end marker: the file is cut short (or not a frame pack)")
    if version != VERSION:
        raise PackError(path, f"format version {version}; this mienet reads version {VERSION}")
    if count > MAX_FRAMES or meta_len > MAX_META:
        raise PackError(path, f"its footer claims {count} frames and {meta_len} bytes of meta, more than a "
                              f"pack holds ({MAX_FRAMES} frames, {MAX_META} bytes): the file is damaged")
    table_len = count * ENTRY_SIZE + meta_len
    if count < 1 or index_offset < HEAD_SIZE or index_offset + table_len + FOOT_SIZE != size:
        raise PackError(path, f"the index ({count} frames at byte {index_offset}) does not end where the "
                              f"file ends ({size} bytes): the file is damaged or cut short")
    start = index_offset - tail_start
    if start >= 0:
        table = tail[start:start + table_len]
    else:
        table = read_at(index_offset, table_len)
    if len(table) != table_len:
        raise PackError(path, "the index cannot be read in full: the file is cut short")
    if zlib.crc32(table) != crc:
        raise PackError(path, "the index fails its checksum: the file is damaged")
    entries = list(_ENTRY.iter_unpack(table[:count * ENTRY_SIZE]))
    offsets = tuple(e[0] for e in entries)
    lengths = tuple(e[1] for e in entries)
    for i, (off, n) in enumerate(zip(offsets, lengths)):
        if off < HEAD_SIZE or off + n > index_offset or n == 0:
            raise PackError(path, f"its index places the frame at bytes {off}..{off + n}, outside the "
                                  "frame data: the file is damaged", frame=i + 1)
    return PackIndex(path, size, offsets, lengths, tuple(e[2] for e in entries),
                     bytes(table[count * ENTRY_SIZE:]))


def _open(path: str | os.PathLike) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except IsADirectoryError:
        raise PackError(path, "is a folder, not a frame pack") from None


def _index_of_fd(fd: int, path: str) -> PackIndex:
    size = os.fstat(fd).st_size
    if size < HEAD_SIZE + FOOT_SIZE:
        raise PackError(path, f"only {size} bytes: not a frame pack, or cut short")
    tail_start = max(0, size - TAIL_READ)
    tail = os.pread(fd, size - tail_start, tail_start)
    if len(tail) != size - tail_start:
        raise PackError(path, "could not be read to its end: the file is cut short")
    return _parse(path, size, tail, tail_start, lambda off, n: os.pread(fd, n, off))


def read_index(path: str | os.PathLike) -> PackIndex:
    """The index of the pack ``path``. Raises ``FileNotFoundError`` when there is no such file,
    :class:`PackError` when it is not a complete, undamaged pack."""
    fd = _open(path)
    try:
        return _index_of_fd(fd, os.fspath(path))
    except OSError as exc:
        raise PackError(path, exc.strerror or str(exc)) from None
    finally:
        os.close(fd)


def read_meta(path: str | os.PathLike) -> dict:
    """The meta JSON of a pack (what extract-frames stamped it with)."""
    return read_index(path).meta


def frame_count(path: str | os.PathLike) -> int:
    """How many frames the pack ``path`` holds."""
    return read_index(path).count


def _runs(indices: Sequence[int]) -> list[list[int]]:
    """Sorted distinct ``indices`` cut into runs of consecutive numbers."""
    runs: list[list[int]] = []
    for i in sorted(set(indices)):
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def read_frames(path: str | os.PathLike, indices: Sequence[int], check: bool = True) -> list[bytes] | None:
    """The encoded bytes of frames ``indices`` (0-based) of the pack ``path``, in the order asked.

    ``None`` when there is no file ``path`` (the caller may then look for a frame folder). Consecutive
    frames are read with one ``pread``; each frame's bytes are checked against its CRC-32 unless
    ``check`` is false. A damaged pack raises :class:`PackError` naming the file and the frame.
    """
    spath = os.fspath(path)
    try:
        fd = _open(spath)
    except FileNotFoundError:
        return None
    except NotADirectoryError:  # a parent of the path is a file
        return None
    except OSError as exc:
        raise PackError(spath, exc.strerror or str(exc)) from None
    try:
        index = _index_of_fd(fd, spath)
        got: dict[int, bytes] = {}
        for run in _runs(indices):
            if run[0] < 0 or run[-1] >= index.count:
                bad = run[0] if run[0] < 0 else run[-1]
                raise PackError(spath, f"the pack holds {index.count} frames", frame=bad + 1)
            start = index.offsets[run[0]]
            end = index.offsets[run[-1]] + index.lengths[run[-1]]
            contiguous = all(index.offsets[i] + index.lengths[i] == index.offsets[i + 1] for i in run[:-1])
            if contiguous:
                blob = os.pread(fd, end - start, start)
                if len(blob) != end - start:
                    raise PackError(spath, "cut short inside the frame data", frame=run[-1] + 1)
                view = memoryview(blob)
                for i in run:
                    off = index.offsets[i] - start
                    got[i] = bytes(view[off:off + index.lengths[i]])
            else:
                for i in run:
                    got[i] = os.pread(fd, index.lengths[i], index.offsets[i])
        for i, data in got.items():
            if len(data) != index.lengths[i]:
                raise PackError(spath, "cut short inside the frame data", frame=i + 1)
            if check and zlib.crc32(data) != index.crcs[i]:
                raise PackError(spath, "the frame's bytes fail their checksum: the file is damaged", frame=i + 1)
        return [got[int(i)] for i in indices]
    except OSError as exc:
        raise PackError(spath, exc.strerror or str(exc)) from None
    finally:
        os.close(fd)


def read_all(path: str | os.PathLike) -> list[bytes]:
    """Every frame of a pack, in order (checked)."""
    frames = read_frames(path, range(read_index(path).count))
    if frames is None:
        raise FileNotFoundError(2, "No such file or directory", os.fspath(path))
    return frames


# --------------------------------------------------------------------------- writing


class PackWriter:
    """Write one pack atomically: frames are appended to a temporary file in ``temp_dir`` (the
    frames folder's ``.partial/``, on the same file system), and :meth:`commit` writes the index,
    meta and footer and renames the file onto ``path``. :meth:`abort` (or leaving a ``with``
    block by an exception) deletes the temporary file; ``path`` is then left as it was.

    An ``OSError`` while writing (a full disk) is raised naming ``path``.
    """

    def __init__(self, path: str | os.PathLike, temp_dir: str | os.PathLike | None = None):
        self.path = Path(path)
        temp_dir = Path(temp_dir) if temp_dir is not None else self.path.parent
        temp_dir.mkdir(parents=True, exist_ok=True)
        self.tmp = create_temp_file(temp_dir / self.path.name)
        self.entries: list[tuple[int, int, int]] = []
        self.fh = None
        try:
            self.fh = open(self.tmp, "r+b", buffering=1 << 16)
            self.fh.write(_HEAD.pack(HEAD_MAGIC, VERSION))
        except OSError as exc:
            self.abort()
            raise named_os_error(exc, self.path) from exc
        self.position = HEAD_SIZE

    def __enter__(self) -> PackWriter:
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if kind is not None or self.fh is not None:
            self.abort()

    def add(self, data) -> None:
        """Append one encoded frame (bytes or a buffer such as ``cv2.imencode``'s array)."""
        view = memoryview(data).cast("B")
        try:
            self.fh.write(view)
        except OSError as exc:
            raise named_os_error(exc, self.path) from exc
        self.entries.append((self.position, len(view), zlib.crc32(view)))
        self.position += len(view)

    def commit(self, meta: dict | None = None) -> Path:
        """Write index, meta and footer, and rename the pack into place (atomically)."""
        if not self.entries:
            raise ValueError(f"a frame pack needs at least one frame ({self.path})")
        table = b"".join(_ENTRY.pack(*e) for e in self.entries)
        table += json.dumps(meta or {}, sort_keys=True).encode("utf-8")
        meta_len = len(table) - len(self.entries) * ENTRY_SIZE
        if len(self.entries) > MAX_FRAMES or meta_len > MAX_META:
            self.abort()
            raise MienetError(f"{self.path}: {len(self.entries)} frames and {meta_len} bytes of meta do not "
                              f"fit a frame pack (at most {MAX_FRAMES} frames, {MAX_META} bytes); "
                              "extract this video with --layout folders")
        foot = _FOOT.pack(self.position, len(self.entries), meta_len, zlib.crc32(table), VERSION, TAIL_MAGIC)
        try:
            self.fh.write(table + foot)
            self.fh.close()
            self.fh = None
            self.path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.tmp, self.path)
        except OSError as exc:
            self.abort()
            raise named_os_error(exc, self.path) from exc
        return self.path

    def abort(self) -> None:
        if self.fh is not None:
            with contextlib.suppress(OSError):
                self.fh.close()
            self.fh = None
        with contextlib.suppress(OSError):
            self.tmp.unlink()


def write_pack(path: str | os.PathLike, frames: Iterable, meta: dict | None = None,
               temp_dir: str | os.PathLike | None = None) -> Path:
    """Write ``frames`` (encoded images) as the pack ``path``, atomically."""
    with PackWriter(path, temp_dir) as writer:
        for data in frames:
            writer.add(data)
        return writer.commit(meta)
