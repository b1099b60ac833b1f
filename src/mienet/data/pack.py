"""Frame packs: every encoded frame of one video in one file, a ZIP archive of stored members.

``mienet extract-frames --layout packed`` (the default, ``extract.layout`` in params.yaml)
writes ``FRAMES_DIR/<video id>.frames`` instead of a folder ``FRAMES_DIR/<video id>/`` of
``img_00001.jpg ...``: one file per video instead of one per frame, so a dataset of 220,847
videos (Something-Something V2) is 220,847 files for DVC to hash, check and push, not 10
million (``docs/scale.md`` has the measurements). The frames are the very bytes the folder
layout writes (the same encoder and quality), so a clip decodes to identical pixels.

Format: a plain ZIP archive (PKWARE APPNOTE), written by Python's :mod:`zipfile`, so that
``unzip -l a.frames``, ``zipfile`` and fsspec read it and ``unzip a.frames -d a/`` gives the
folder layout's files:

- one member per frame, in frame order, named as the folder layout names the files
  (``img_00001.jpg``, ``img_00002.jpg`` ...; ``.png`` for PNG frames), ``ZIP_STORED``
  (uncompressed: the bytes are the encoder's), each with its CRC-32 in its headers;
- the central directory (the index: where each member starts, its length and CRC-32) and the
  end record at the end of the file, so that a pack is written in one pass with constant
  memory (a frame goes to disk as soon as it is encoded, as with a folder of files);
- the meta (what extract-frames knows of the video: its source stamp and manifest record) as
  the archive comment, a UTF-8 JSON object of at most 65,535 bytes (``unzip -z a.frames``);
- fixed member dates (1980-01-01) and modes (0644), so that the same frames give the same file.

A reader opens the file, reads its last 4 KiB (end record, meta and the central directory of up
to about 60 frames in one read; a longer directory costs one more read) and then exactly the
bytes of the frames it samples (one ``pread`` per run of consecutive frames, each frame's local
header with it). The central directory of what this module writes has records of one length,
which are unpacked in one C call; any other ZIP (ZIP64, more than 99,999 frames, a pack made by
another tool) is indexed by :mod:`zipfile` instead, with the same checks.

Integrity: a pack is written under a temporary name in ``FRAMES_DIR/.partial/`` and renamed
into place only once its central directory is written, so a killed extraction never leaves a
file that looks finished. A file that is cut short anyway (copied halfway, a damaged disk) has
no end record where the file ends; a central directory that does not end where the end record
starts, a member that is compressed, encrypted, empty or out of order, no local header where the
central directory places one, and a frame whose bytes fail the CRC-32 of the central directory
are errors too.
Each is a :class:`PackError` naming the file (and the frame, 1-based as in ``img_00001.jpg``)
and saying to re-extract.

Packs of the format before this one (version 1: ``MIEFRMS``, frames, a custom index and the
footer ``MIEFEND``; recognised by their last 8 bytes) are still read, until the next release;
nothing writes them any more, and ``python -m mienet.data.pack FRAMES`` (:func:`upgrade_folder`)
rewrites a frames folder's as ZIP packs.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import struct
import sys
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mienet.errors import MienetError
from mienet.io import create_temp_file, named_os_error
from mienet.registry.frames import IMAGE_TEMPLATE, JPEG_START, PNG_START

PACK_SUFFIX = ".frames"
TAIL_READ = 4096  # first read from the end: end record, meta and central directory of short clips
# At most what the writer writes: 4,194,304 frames (38 hours at 30 fps) and a meta that fits the
# ZIP comment (extract-frames writes well under 1 KiB).
MAX_FRAMES = 1 << 22
MAX_META = 0xFFFF
MEMBER_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest ZIP date: the same frames give the same file
MEMBER_MODE = 0o644 << 16  # rw-r--r-- for unzip

# ZIP records (APPNOTE 4.3), all little-endian
END_SIG, CENTRAL_SIG, LOCAL_SIG, ZIP64_LOCATOR_SIG = b"PK\x05\x06", b"PK\x01\x02", b"PK\x03\x04", b"PK\x06\x07"
_END = struct.Struct("<4sHHHHIIH")  # sig, disk, disk of the directory, entries here, entries, size, offset, comment
# a central directory record: signature, versions, flags (byte 8), method (10), time, date, crc32 (16),
# compressed size (20), size (24), lengths of name, extra field and comment (28), disk, attributes,
# offset of the local header (42), then the name. Unpacked: crc32, compressed size, offset (the rest
# is checked a byte column at a time, :func:`_stride`).
_CENTRAL = struct.Struct("<16xII18xI")
_LOCAL = struct.Struct("<4s22xHH")  # a local header: signature, (version, flags, method, time, date,
# crc32, sizes: the central directory's count), lengths of name and extra field
_EVEN = bytes(range(0, 256, 2))  # flag bytes without bit 0 (encrypted)
END_SIZE, CENTRAL_SIZE, LOCAL_SIZE = _END.size, _CENTRAL.size, _LOCAL.size  # 22, 46, 30

# The format before this one (version 1), read until the next release
HEAD_MAGIC = b"MIEFRMS\x00"
TAIL_MAGIC = b"MIEFEND\x00"
VERSION = 1
_V1_ENTRY = struct.Struct("<QII")  # offset, length, crc32
_V1_FOOT = struct.Struct("<QIIII8s")  # index offset, count, meta length, crc32, version, magic
HEAD_SIZE, ENTRY_SIZE, FOOT_SIZE = 16, _V1_ENTRY.size, _V1_FOOT.size  # 16, 16, 32
V1_MAX_META = 1 << 20


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


def _member(path: str, i: int, flags: int, method: int, crc: int, length: int, size: int,
            offset: int) -> tuple[int, int, int]:
    """``(crc32, length, offset)`` of member ``i`` as the central directory gives it, once it
    holds a frame: stored, not encrypted, with bytes."""
    if method:
        raise PackError(path, f"the member is compressed (method {method}); the frames of a pack are "
                              "stored members (zip -0)", frame=i + 1)
    if flags & 1:
        raise PackError(path, "the member is encrypted", frame=i + 1)
    if length != size or not length:
        raise PackError(path, f"the central directory gives the member {length} stored bytes and size {size}: "
                              "the file is damaged", frame=i + 1)
    return crc, length, offset


@dataclass(frozen=True)
class PackIndex:
    """What the central directory (or a version 1 index) of a pack says: ``count`` frames, row
    ``i`` of which (:meth:`rows`) is ``(crc32, length, offset)`` of frame ``i``; ``offset`` is
    where its record starts (its ZIP local header; version 1: its bytes) and ``limit`` where the
    frame records end (the central directory; version 1: the index).

    ``table`` is the central directory itself when its records have one length (what the writer
    writes): rows are then unpacked when they are asked for, so that reading 8 frames of a clip
    does not decode the records of the others. Otherwise it is a tuple of the rows."""

    path: str
    size: int
    count: int
    meta_bytes: bytes
    limit: int
    table: bytes | tuple[tuple[int, int, int], ...]
    stride: int = 0  # of the records of a central directory in ``table``; 0 for a tuple
    legacy: bool = False  # version 1

    def rows(self, first: int, last: int) -> list[tuple[int, int, int]]:
        """Rows ``first`` to ``last`` (both included)."""
        if not self.stride:
            return list(self.table[first:last + 1])
        return list(_records(self.stride).iter_unpack(self.table[first * self.stride:(last + 1) * self.stride]))

    @property
    def offsets(self) -> tuple[int, ...]:
        return tuple(r[2] for r in self.rows(0, self.count - 1))

    @property
    def lengths(self) -> tuple[int, ...]:
        return tuple(r[1] for r in self.rows(0, self.count - 1))

    @property
    def meta(self) -> dict:
        try:
            meta = json.loads(self.meta_bytes.decode("utf-8")) if self.meta_bytes else {}
        except (UnicodeDecodeError, ValueError) as exc:
            raise PackError(self.path, f"unreadable meta ({exc})") from None
        if not isinstance(meta, dict):
            raise PackError(self.path, "meta is not a JSON object")
        return meta


# --------------------------------------------------------------------------- reading a ZIP


@functools.lru_cache(maxsize=8)
def _records(stride: int) -> struct.Struct:
    """The fields of central directory records of ``stride`` bytes."""
    return struct.Struct(f"{_CENTRAL.format}{stride - CENTRAL_SIZE}x")


def _find_end(tail: bytes) -> int:
    """Where in ``tail`` the end record starts that ends ``tail`` exactly (its comment to the
    last byte), or -1."""
    p = tail.rfind(END_SIG)
    while p >= 0:
        if p + END_SIZE <= len(tail) and p + END_SIZE + _END.unpack_from(tail, p)[7] == len(tail):
            return p
        p = tail.rfind(END_SIG, 0, p)
    return -1


def _stride(directory: bytes, count: int) -> int:
    """The length of the records of a central directory of ``count`` records of one length, with
    names of one length and no extra field or comment (what the writer writes), every member
    stored and not encrypted; 0 for any other directory (:mod:`zipfile` reads it, and names what
    is wrong). Each of these fields is compared in every record at once, a byte column at a time."""
    if count < 1 or len(directory) < CENTRAL_SIZE or len(directory) % count:
        return 0
    stride = len(directory) // count
    lengths = directory[28:34]  # of the name, the extra field and the comment
    if lengths != struct.pack("<HHH", stride - CENTRAL_SIZE, 0, 0):
        return 0
    for at, expected in ((0, CENTRAL_SIG), (10, b"\0\0"), (28, lengths)):  # signature, method, lengths
        for j in range(len(expected)):
            if directory[at + j::stride] != expected[j:j + 1] * count:
                return 0
    if directory[8::stride].translate(None, _EVEN):  # a flag byte with bit 0: encrypted
        return 0
    return stride


def _zipfile_entries(fd: int, path: str) -> tuple[tuple, int, bytes]:
    """(entries, offset of the central directory, comment) of any ZIP, read by :mod:`zipfile`."""
    try:
        with open(fd, "rb", closefd=False) as fh, zipfile.ZipFile(fh) as zf:
            infos = zf.infolist()
            limit, comment = zf.start_dir, zf.comment
    except (zipfile.BadZipFile, ValueError, EOFError, struct.error) as exc:
        raise PackError(path, f"not a readable ZIP archive ({exc})") from None
    entries = tuple(_member(path, i, z.flag_bits, z.compress_type, z.CRC, z.compress_size, z.file_size,
                            z.header_offset) for i, z in enumerate(infos))
    return entries, limit, comment


def _parse_zip(fd: int, path: str, size: int, tail: bytes, tail_start: int) -> PackIndex:
    p = _find_end(tail)
    if p < 0 and tail_start > 0:  # a comment longer than the first read
        tail_start = max(0, size - END_SIZE - 0xFFFF)
        tail = os.pread(fd, size - tail_start, tail_start)
        p = _find_end(tail)
    if p < 0:
        raise PackError(path, "no end marker: the file is cut short (or not a frame pack)")
    _, disk, cd_disk, here, count, cd_size, cd_offset, _ = _END.unpack_from(tail, p)
    comment = bytes(tail[p + END_SIZE:])
    ends = tail_start + p
    zip64 = p >= 20 and tail[p - 20:p - 16] == ZIP64_LOCATOR_SIG
    if not zip64 and not disk and not cd_disk and here == count:
        if cd_offset + cd_size != ends:
            raise PackError(path, f"the central directory ({count} frames, {cd_size} bytes at byte {cd_offset}) "
                                  f"does not end where the end record starts (byte {ends}): the file is "
                                  "damaged or cut short")
        start = cd_offset - tail_start
        directory = tail[start:p] if start >= 0 else os.pread(fd, cd_size, cd_offset)
        stride = _stride(directory, count) if len(directory) == cd_size else 0
        if stride:
            return PackIndex(path, size, count, comment, cd_offset, directory, stride)
    entries, limit, comment = _zipfile_entries(fd, path)
    if not entries:
        raise PackError(path, "the archive holds no frames: the file is damaged (or not a frame pack)")
    return PackIndex(path, size, len(entries), bytes(comment), limit, entries)


def _member_error(index: PackIndex, i: int, blob: memoryview, at: int, stop: int, length: int) -> PackError:
    """What is wrong with the record of frame ``i`` (``length`` bytes), at ``at`` in ``blob`` up to ``stop``."""
    if at + LOCAL_SIZE > stop:
        reason = "the central directory places the member where there is no room for it"
    elif _LOCAL.unpack_from(blob, at)[0] != LOCAL_SIG:
        reason = "no member header where the central directory places it"
    elif not length:
        reason = "the member has no bytes"
    else:
        reason = "the member's bytes run past the next member"
    return PackError(index.path, f"{reason}: the file is damaged", frame=i + 1)


# --------------------------------------------------------------------------- reading version 1


def _parse_v1(path: str, size: int, tail: bytes, tail_start: int, fd: int) -> PackIndex:
    """The index of a version 1 pack of ``size`` bytes whose last bytes (from ``tail_start``) are
    ``tail``."""
    if size < HEAD_SIZE + FOOT_SIZE:
        raise PackError(path, f"only {size} bytes: not a frame pack, or cut short")
    index_offset, count, meta_len, crc, version, _ = _V1_FOOT.unpack_from(tail, len(tail) - FOOT_SIZE)
    if version != VERSION:
        raise PackError(path, f"format version {version}; this mienet reads ZIP packs and version {VERSION}")
    if count > MAX_FRAMES or meta_len > V1_MAX_META:
        raise PackError(path, f"its footer claims {count} frames and {meta_len} bytes of meta, more than a "
                              f"pack holds ({MAX_FRAMES} frames, {V1_MAX_META} bytes): the file is damaged")
    table_len = count * ENTRY_SIZE + meta_len
    if count < 1 or index_offset < HEAD_SIZE or index_offset + table_len + FOOT_SIZE != size:
        raise PackError(path, f"the index ({count} frames at byte {index_offset}) does not end where the "
                              f"file ends ({size} bytes): the file is damaged or cut short")
    start = index_offset - tail_start
    table = tail[start:start + table_len] if start >= 0 else os.pread(fd, table_len, index_offset)
    if len(table) != table_len:
        raise PackError(path, "the index cannot be read in full: the file is cut short")
    if zlib.crc32(table) != crc:
        raise PackError(path, "the index fails its checksum: the file is damaged")
    rows = tuple((c, n, off) for off, n, c in _V1_ENTRY.iter_unpack(table[:count * ENTRY_SIZE]))
    for i, (_, n, off) in enumerate(rows):
        if off < HEAD_SIZE or off + n > index_offset or n == 0:
            raise PackError(path, f"its index places the frame at bytes {off}..{off + n}, outside the "
                                  "frame data: the file is damaged", frame=i + 1)
    return PackIndex(path, size, count, bytes(table[count * ENTRY_SIZE:]), index_offset, rows, legacy=True)


# --------------------------------------------------------------------------- reading


def _open(path: str | os.PathLike) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except IsADirectoryError:
        raise PackError(path, "is a folder, not a frame pack") from None


def _index_of_fd(fd: int, path: str) -> PackIndex:
    size = os.fstat(fd).st_size
    if size < END_SIZE:
        raise PackError(path, f"only {size} bytes: not a frame pack, or cut short")
    tail_start = max(0, size - TAIL_READ)
    tail = os.pread(fd, size - tail_start, tail_start)
    if len(tail) != size - tail_start:
        raise PackError(path, "could not be read to its end: the file is cut short")
    if tail.endswith(TAIL_MAGIC):
        return _parse_v1(path, size, tail, tail_start, fd)
    return _parse_zip(fd, path, size, tail, tail_start)


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


def _read_run(fd: int, index: PackIndex, rows: list, base: int, run: list[int], got: dict[int, bytes],
              check: bool) -> None:
    """Frames ``run`` (consecutive) of the pack open as ``fd``, read with one ``pread`` into ``got``;
    ``rows`` are the index rows from frame ``base`` on, up to the one after the run if there is one."""
    lo, hi = run[0] - base, run[-1] - base
    if index.legacy:  # the bytes themselves, in any order inside the frame data (checked)
        start, end = min(r[2] for r in rows[lo:hi + 1]), max(r[2] + r[1] for r in rows[lo:hi + 1])
    else:  # each member's record runs to the next one's, the last to the central directory
        start, end = rows[lo][2], rows[hi + 1][2] if hi + 1 < len(rows) else index.limit
        stops = [r[2] - start for r in rows[lo + 1:hi + 1]]
        stops.append(end - start)
    if not start < end <= index.limit:
        raise PackError(index.path, "the central directory places the member where there is no room for it: "
                                    "the file is damaged", frame=run[-1] + 1)
    blob = memoryview(os.pread(fd, end - start, start))
    if len(blob) != end - start:
        raise PackError(index.path, "cut short inside the frame data", frame=run[-1] + 1)
    legacy, local, crc32 = index.legacy, _LOCAL.unpack_from, zlib.crc32
    for k, i in enumerate(run):
        crc, length, at = rows[lo + k]
        at -= start
        if not legacy:  # the record: the local header, then the bytes
            stop = stops[k]
            if at + LOCAL_SIZE > stop:
                raise _member_error(index, i, blob, at, stop, length)
            sig, name, extra = local(blob, at)
            if sig != LOCAL_SIG or at + LOCAL_SIZE + name + extra + length > stop or not length:
                raise _member_error(index, i, blob, at, stop, length)
            at += LOCAL_SIZE + name + extra
        data = bytes(blob[at:at + length])
        if check and crc32(data) != crc:
            raise PackError(index.path, "the frame's bytes fail their checksum: the file is damaged", frame=i + 1)
        got[i] = data


def read_frames(path: str | os.PathLike, indices: Sequence[int], check: bool = True) -> list[bytes] | None:
    """The encoded bytes of frames ``indices`` (0-based) of the pack ``path``, in the order asked.

    ``None`` when there is no file ``path`` (the caller may then look for a frame folder). Consecutive
    frames are read with one ``pread``; each frame's bytes are checked against its CRC-32 unless
    ``check`` is false. A damaged pack raises :class:`PackError` naming the file and the frame.
    """
    spath = os.fspath(path)
    try:
        fd = _open(spath)
    except (FileNotFoundError, NotADirectoryError):  # no such file, or a parent of the path is a file
        return None
    except OSError as exc:
        raise PackError(spath, exc.strerror or str(exc)) from None
    try:
        index = _index_of_fd(fd, spath)
        runs = _runs(indices)
        got: dict[int, bytes] = {}
        if runs:
            first, last = runs[0][0], runs[-1][-1]
            if first < 0 or last >= index.count:
                raise PackError(spath, f"the pack holds {index.count} frames",
                                frame=(first if first < 0 else last) + 1)
            rows = index.rows(first, min(last + 1, index.count - 1))  # one unpacking for the clip
            for run in runs:
                _read_run(fd, index, rows, first, run, got, check)
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


def _extension(data: memoryview) -> str:
    """The file extension of an encoded image, from its first bytes."""
    head = bytes(data[:len(PNG_START)])
    if head.startswith(JPEG_START):
        return "jpg"
    return "png" if head == PNG_START else "bin"


class PackWriter:
    """Write one pack atomically with :mod:`zipfile`: frames are appended as stored members to a
    temporary file in ``temp_dir`` (the frames folder's ``.partial/``, on the same file system),
    and :meth:`commit` writes the meta (the archive comment) and the central directory and renames
    the file onto ``path``. :meth:`abort` (or leaving a ``with`` block by an exception) deletes the
    temporary file; ``path`` is then left as it was.

    An ``OSError`` while writing (a full disk) is raised naming ``path``.
    """

    def __init__(self, path: str | os.PathLike, temp_dir: str | os.PathLike | None = None):
        self.path = Path(path)
        temp_dir = Path(temp_dir) if temp_dir is not None else self.path.parent
        temp_dir.mkdir(parents=True, exist_ok=True)
        self.tmp = create_temp_file(temp_dir / self.path.name)
        self.count = 0
        self.fh = self.zip = None
        try:
            self.fh = open(self.tmp, "r+b", buffering=1 << 16)
            self.zip = zipfile.ZipFile(self.fh, "w", zipfile.ZIP_STORED, allowZip64=True)
        except OSError as exc:
            self.abort()
            raise named_os_error(exc, self.path) from exc

    def __enter__(self) -> PackWriter:
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if kind is not None or self.fh is not None:
            self.abort()

    def add(self, data) -> None:
        """Append one encoded frame (bytes or a buffer such as ``cv2.imencode``'s array)."""
        view = memoryview(data).cast("B")
        self.count += 1
        info = zipfile.ZipInfo(IMAGE_TEMPLATE.format(self.count, ext=_extension(view)), MEMBER_TIME)
        info.external_attr = MEMBER_MODE
        try:
            self.zip.writestr(info, view)
        except OSError as exc:
            raise named_os_error(exc, self.path) from exc

    def commit(self, meta: dict | None = None) -> Path:
        """Write meta and central directory, and rename the pack into place (atomically)."""
        if not self.count:
            raise ValueError(f"a frame pack needs at least one frame ({self.path})")
        comment = json.dumps(meta or {}, sort_keys=True).encode("utf-8")
        if self.count > MAX_FRAMES or len(comment) > MAX_META:
            self.abort()
            raise MienetError(f"{self.path}: {self.count} frames and {len(comment)} bytes of meta do not "
                              f"fit a frame pack (at most {MAX_FRAMES} frames, {MAX_META} bytes); "
                              "extract this video with --layout folders")
        try:
            self.zip.comment = comment
            self.zip.close()
            self.zip = None
            self.fh.close()
            self.fh = None
            self.path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.tmp, self.path)
        except OSError as exc:
            self.abort()
            raise named_os_error(exc, self.path) from exc
        return self.path

    def abort(self) -> None:
        if self.zip is not None:
            with contextlib.suppress(OSError, ValueError):
                self.zip.close()  # zipfile would write the directory when collected; the file goes anyway
            self.zip = None
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


# --------------------------------------------------------------------------- converting version 1


def upgrade_folder(root: str | os.PathLike) -> list[Path]:
    """Rewrite every version 1 pack under the frames folder ``root`` as a ZIP pack: the same frames
    and meta, no decoding, each written under a temporary name in ``root/.partial/`` (the folder
    extract-frames empties when it starts) and renamed into place. Returns the packs rewritten."""
    root = Path(root)
    partial = root / ".partial"
    done = []
    for path in sorted(root.rglob(f"*{PACK_SUFFIX}")):
        if path.is_file() and not path.relative_to(root).parts[0].startswith("."):
            index = read_index(path)
            if index.legacy:
                done.append(write_pack(path, read_all(path), index.meta, temp_dir=partial))
    with contextlib.suppress(OSError):
        partial.rmdir()
    return done


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mienet.data.pack FRAMES``: :func:`upgrade_folder`."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0].startswith("-") or not Path(args[0]).is_dir():
        print("usage: python -m mienet.data.pack FRAMES_DIR (rewrites its version 1 packs as ZIP packs)",
              file=sys.stderr)
        return 2
    try:
        done = upgrade_folder(args[0])
    except (MienetError, OSError) as exc:
        print(f"mienet.data.pack: error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(done)} version 1 pack(s) under {args[0]} rewritten as ZIP packs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
