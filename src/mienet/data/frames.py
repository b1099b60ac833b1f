"""``mienet extract-frames``: decode every video of a folder into frame packs or numbered image folders.

Layouts written (``--layout``, ``extract.layout`` in params.yaml)::

    packed (default)   FRAMES_DIR/<video id>.frames       one file per video: its encoded frames
                                                          and an index (mienet.data.pack)
    folders            FRAMES_DIR/<video id>/img_00001.jpg ...
    both               FRAMES_DIR/manifest.csv            one row per video: id, source, frames,
                                                          width, height, fps, status, error

Both hold the same encoder output (OpenCV's JPEG at ``--quality``, or PNG), so a clip decodes to
identical pixels from either; the loader (:class:`mienet.engine.dataset.ClipDataset`) and
``make-annotations`` read both, and a list line ``frames/<video id> 45 3`` names either. The
packed layout exists for scale: Something-Something V2 is 220,847 videos and about 10 million
frames, and DVC (status, commit, push) works per file; ``docs/scale.md`` has the measurements.

A video is decoded into ``FRAMES_DIR/.partial/`` (a temporary folder, or a temporary pack
file) and renamed to its final name only once every frame is written, so a folder or pack
that exists is complete and a killed run leaves nothing that looks finished. Each finished
output carries a stamp with the size and modification time of its video and what was decoded:
``.source.json`` in a folder, the meta JSON inside a pack (beside its index). A re-run skips the
videos whose stamp still matches (and whose folder still holds every frame the stamp records,
or whose pack is complete and undamaged) and re-extracts the others. Switching the layout
converts the finished outputs of the other layout by copying their encoded bytes (no decoding):
a folder becomes a pack with the same bytes and stamp, and the other layout's copy is removed.

A bad video (empty, corrupt, unsupported) is recorded as failed in the manifest, with
FFmpeg's own reason where it gives one, and the run goes on; FFmpeg's log lines are
captured for that instead of being printed over the progress bar. A problem with the
output (a full disk, a read-only folder) stops the run with an ``OSError`` naming the
file; the video being written is discarded, its frames never appear as a finished output.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import logging
import multiprocessing
import os
import re
import shutil
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from mienet.data import pack
from mienet.data.ffmpeg_log import captured_stderr, with_reason
from mienet.errors import MienetError
from mienet.io import make_temp_dir, write_bytes_named, write_text_atomic
from mienet.registry.frames import (DEFAULT_LAYOUT, FRAME_TEMPLATE, IMAGE_TEMPLATE, LAYOUTS,  # noqa: F401
                                    MANIFEST_NAME, VIDEO_EXTENSIONS)

log = logging.getLogger(__name__)

PARTIAL_DIR = ".partial"
STAMP_NAME = ".source.json"
_UNSAFE = re.compile(r"[^A-Za-z0-9._\-/]")


@dataclass
class VideoRecord:
    """One manifest row."""

    id: str
    source: str
    frames: int = 0
    width: int = 0
    height: int = 0
    fps: float = 0.0
    status: str = ""  # ok | failed
    error: str = ""


MANIFEST_FIELDS = [f.name for f in fields(VideoRecord)]


def video_id(path: Path, root: Path) -> str:
    """The id of ``path``: its path under ``root`` without extension, unsafe characters as ``_``."""
    rel = path.relative_to(root).with_suffix("").as_posix()
    return _UNSAFE.sub("_", rel)


def find_videos(videos_dir: Path, require: bool = False) -> dict[str, Path]:
    """Map video id -> file for every video under ``videos_dir`` (recursive, sorted).

    Two files with the same id are an error naming both; so is, with ``require``, a folder
    without any video.
    """
    if not videos_dir.is_dir():
        raise MienetError(f"videos folder {videos_dir} does not exist or is not a folder")
    found: dict[str, Path] = {}
    clashes = []
    for path in sorted(videos_dir.rglob("*")):
        if path.suffix.lower() not in VIDEO_EXTENSIONS or not path.is_file():
            continue
        if any(part.startswith(".") for part in path.relative_to(videos_dir).parts):
            continue  # hidden files and our own temporary files
        vid = video_id(path, videos_dir)
        if vid in found:
            clashes.append(f"  {found[vid]} and {path} both map to id '{vid}'")
        else:
            found[vid] = path
    if clashes:
        raise MienetError(
            "video ids clash (ids keep A-Za-z0-9._-/ and replace everything else by '_'); "
            "rename one file of each pair:\n" + "\n".join(clashes)
        )
    if require and not found:
        raise MienetError(
            f"no video found in {videos_dir} (looked for {', '.join('*' + e for e in VIDEO_EXTENSIONS)}, "
            "in any letter case and in sub-folders; names starting with '.' are ignored)")
    return found


def count_frames(folder: Path) -> int:
    """Number of ``img_*`` images in a frame folder."""
    return sum(1 for p in folder.iterdir() if p.name.startswith("img_"))


def other_layout(layout: str) -> str:
    """The layout that is not ``layout`` (an error unless ``layout`` is one of :data:`LAYOUTS`)."""
    if layout not in LAYOUTS:
        raise MienetError(f"--layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    return LAYOUTS[1 - LAYOUTS.index(layout)]


def output_path(base: Path, layout: str) -> Path:
    """Where the frames of the video whose folder would be ``base`` (``FRAMES_DIR/<id>``) go:
    ``base`` itself (folders) or ``base.frames`` (packed)."""
    other_layout(layout)  # checks it
    return Path(base) if layout == "folders" else pack.pack_path(base)


def clip_frames(base: Path) -> tuple[str, int] | None:
    """``(layout, number of frames)`` of the clip whose folder would be ``base``: its pack
    ``base.frames`` when there is one (checked: a damaged pack raises
    :class:`~mienet.data.pack.PackError`), else its folder's ``img_*`` images; ``None`` when
    there is neither. The loader looks in the same order."""
    try:
        return "packed", pack.frame_count(pack.pack_path(base))
    except (FileNotFoundError, NotADirectoryError):
        pass
    if Path(base).is_dir():
        return "folders", count_frames(Path(base))
    return None


def read_manifest(frames_dir: Path) -> dict[str, VideoRecord]:
    path = frames_dir / MANIFEST_NAME
    if not path.exists():
        return {}
    records = {}
    with path.open(newline="", encoding="utf-8-sig") as fh:
        for line_no, row in enumerate(csv.DictReader(fh), start=2):
            try:
                rec = VideoRecord(
                    id=row["id"], source=row["source"], frames=int(row["frames"]),
                    width=int(row["width"]), height=int(row["height"]), fps=float(row["fps"]),
                    status=row["status"], error=row.get("error") or "",
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise MienetError(f"{path}:{line_no}: unreadable manifest row ({exc}); "
                                  "delete the manifest to rebuild it") from exc
            records[rec.id] = rec
    return records


def write_manifest(frames_dir: Path, records: dict[str, VideoRecord]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=MANIFEST_FIELDS, lineterminator="\n")
    writer.writeheader()
    for vid in sorted(records):
        writer.writerow(asdict(records[vid]))
    write_text_atomic(frames_dir / MANIFEST_NAME, buf.getvalue())


def _resized_shape(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    if not short_side:
        return width, height
    scale = short_side / min(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def extract_video(source: Path, base: Path, partial_root: Path, vid: str, ext: str = "jpg",
                  short_side: int | None = None, quality: int = 95, layout: str = DEFAULT_LAYOUT) -> VideoRecord:
    """Decode ``source`` into the frames of ``base`` (``FRAMES_DIR/<id>``) in ``layout``.

    A bad video gives a failed record (with FFmpeg's reason when it gives one). An error
    writing the output (full disk, permissions) raises ``OSError`` naming the file; the
    partial frames are removed and the output is left as it was.
    """
    rec = VideoRecord(id=vid, source=str(source))
    try:
        size = source.stat().st_size
    except OSError as exc:
        rec.status, rec.error = "failed", f"cannot stat file: {exc.strerror}"
        return rec
    if size == 0:
        rec.status, rec.error = "failed", "empty file (0 bytes)"
        return rec
    if not os.access(source, os.R_OK):
        rec.status, rec.error = "failed", "file is not readable (permissions)"
        return rec
    with captured_stderr() as ffmpeg_log:
        rec = _decode_video(source, Path(base), partial_root, rec, ext, short_side, quality, layout)
    if rec.error:  # failed, or a warning ("decoded 80 of 120 frames"): FFmpeg may say why
        rec.error = with_reason(rec.error, ffmpeg_log)
    return rec


class _FolderSink:
    """Frames written as files into a temporary folder, renamed onto ``FRAMES_DIR/<id>/``."""

    def __init__(self, base: Path, partial_root: Path, ext: str):
        self.final, self.partial_root, self.ext = base, partial_root, ext
        self.tmp_dir = make_temp_dir(partial_root, prefix="v")

    def add(self, n: int, data) -> None:
        write_bytes_named(self.tmp_dir / IMAGE_TEMPLATE.format(n, ext=self.ext), data)

    def commit(self, stamp: dict) -> None:
        write_bytes_named(self.tmp_dir / STAMP_NAME, json.dumps(stamp).encode())
        self.final.parent.mkdir(parents=True, exist_ok=True)
        if self.final.exists():  # stale frames of an older version of the video
            os.replace(self.final, make_temp_dir(self.partial_root, prefix="old") / "x")
        os.replace(self.tmp_dir, self.final)  # atomic: the folder appears complete or not at all

    def discard(self) -> None:
        if self.tmp_dir.exists():
            shutil.rmtree(self.tmp_dir, ignore_errors=True)


class _PackSink:
    """Frames appended to a temporary pack in ``.partial/``, renamed onto ``FRAMES_DIR/<id>.frames``."""

    def __init__(self, base: Path, partial_root: Path, ext: str):
        self.writer = pack.PackWriter(pack.pack_path(base), partial_root)

    def add(self, n: int, data) -> None:
        self.writer.add(data)

    def commit(self, stamp: dict) -> None:
        self.writer.commit(stamp)  # atomic: the pack appears complete or not at all

    def discard(self) -> None:
        self.writer.abort()


def _sink(layout: str, base: Path, partial_root: Path, ext: str):
    partial_root.mkdir(parents=True, exist_ok=True)
    return (_PackSink if layout == "packed" else _FolderSink)(base, partial_root, ext)


def _remove_other_layout(base: Path, layout: str, partial_root: Path) -> None:
    """Remove the frames of the other layout of this video (left by a run with the other
    ``--layout``), so that the frames folder holds each video once. Only what extract-frames
    writes is removed: a folder's ``img_*`` images and stamp (the folder itself when that
    leaves it empty: it may also hold the frames of videos in a sub-folder)."""
    if layout == "folders":
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            pack.pack_path(base).unlink()
        return
    if not base.is_dir():
        return
    for p in base.iterdir():
        if (p.name.startswith("img_") or p.name == STAMP_NAME) and p.is_file():
            p.unlink()
    with contextlib.suppress(OSError):
        base.rmdir()


def _decode_video(source: Path, base: Path, partial_root: Path, rec: VideoRecord, ext: str,
                  short_side: int | None, quality: int, layout: str) -> VideoRecord:
    import cv2  # lazy: 70 ms (with numpy) of `mienet extract-frames --help` and `make-annotations --help`

    cv2.setNumThreads(1)  # parallelism comes from the worker processes
    cap = cv2.VideoCapture(str(source))
    if not cap.isOpened():
        rec.status, rec.error = "failed", "cannot open: corrupt file or unsupported container/codec"
        return rec
    declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    rec.fps = round(float(cap.get(cv2.CAP_PROP_FPS) or 0.0), 3)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext == "jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    sink = _sink(layout, base, partial_root, ext)
    try:
        n = 0
        target = None
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if target is None:
                h, w = frame.shape[:2]
                target = _resized_shape(w, h, short_side)
                rec.width, rec.height = target
            if target != (frame.shape[1], frame.shape[0]):
                frame = cv2.resize(frame, target, interpolation=cv2.INTER_AREA)
            n += 1
            # Encoded here and written by Python, so that a failed write says why (errno);
            # cv2.imwrite only returns False. Both layouts store these very bytes.
            ok, data = cv2.imencode(f".{ext}", frame, params)
            if not ok:
                raise MienetError(f"OpenCV cannot encode frame {n} of {source} as {ext}")
            sink.add(n, data)
        cap.release()
        if n == 0:
            rec.status, rec.error = "failed", "no frame could be decoded (corrupt or unsupported codec)"
            return rec
        rec.frames = n
        if declared > 0 and n < 0.9 * declared:
            rec.error = f"warning: decoded {n} of {declared} frames the container declares"
        try:
            source_stamp = _source_stamp(source, ext, short_side, quality)
        except OSError as exc:  # the video went away while it was being read
            rec.status, rec.error = "failed", f"cannot stat file: {exc.strerror}"
            return rec
        rec.status = "ok"
        sink.commit({**source_stamp, **asdict(rec)})
        _remove_other_layout(base, layout, partial_root)
        return rec
    finally:
        cap.release()
        sink.discard()


def _source_stamp(source: Path, ext: str, short_side: int | None, quality: int) -> dict:
    """What a finished output was made from: the video file as it was, and the settings."""
    st = source.stat()
    return {"source_bytes": st.st_size, "source_mtime_ns": st.st_mtime_ns,
            "ext": ext, "short_side": short_side, "quality": quality}


def _read_stamp(output: Path, layout: str) -> tuple[dict, int]:
    """(stamp, frames present) of a finished folder or pack; OSError/ValueError/PackError when
    there is none or it is unreadable."""
    if layout == "folders":
        return json.loads((output / STAMP_NAME).read_text()), count_frames(output)
    index = pack.read_index(output)
    return index.meta, index.count


def check_finished(vid: str, source: Path, output: Path, ext: str = "jpg", short_side: int | None = None,
                   quality: int = 95, layout: str = "folders") -> tuple[VideoRecord | None, str]:
    """``(record, "")`` for an output (``layout``'s folder or pack at ``output``) finished from
    this very video with these settings and still holding every frame its stamp records; else
    ``(None, why)`` (``why`` is "" when it was never finished or the video or settings changed,
    which needs no comment; it says what is wrong with a damaged pack or a folder that lost frames)."""
    try:
        stamp, present = _read_stamp(output, layout)
        expected = _source_stamp(source, ext, short_side, quality)
        if {k: stamp.get(k) for k in expected} != expected:
            return None, ""
        rec = VideoRecord(**{f: stamp[f] for f in MANIFEST_FIELDS})
    except pack.PackError as exc:
        return None, f"{output} is damaged ({exc.reason})"
    except (OSError, ValueError, KeyError, TypeError):
        return None, ""
    if present != rec.frames:
        return None, (f"{output} holds {present} of the {rec.frames} frames it was extracted with "
                      "(frames deleted or added since)")
    rec.id, rec.source = vid, str(source)
    return rec, ""


def finished_record(vid: str, source: Path, output: Path, ext: str = "jpg", short_side: int | None = None,
                    quality: int = 95, layout: str = "folders") -> VideoRecord | None:
    """The record of a complete output finished from this very video with these settings, else None."""
    return check_finished(vid, source, output, ext, short_side, quality, layout)[0]


def convert_output(base: Path, partial_root: Path, rec: VideoRecord, layout: str, ext: str) -> VideoRecord:
    """Rewrite the finished output of the other layout of ``base`` in ``layout``: the same encoded
    bytes and stamp, no decoding. The other layout's copy is removed once the new one is in place."""
    other = other_layout(layout)
    source = output_path(base, other)
    stamp, _ = _read_stamp(source, other)
    stamp = {**stamp, "id": rec.id, "source": rec.source}
    sink = _sink(layout, base, partial_root, ext)
    try:
        if other == "packed":
            for n, data in enumerate(pack.read_all(source), start=1):
                sink.add(n, data)
        else:
            for n in range(1, rec.frames + 1):
                sink.add(n, (source / IMAGE_TEMPLATE.format(n, ext=ext)).read_bytes())
        sink.commit(stamp)
        _remove_other_layout(base, layout, partial_root)
    finally:
        sink.discard()
    return rec


def _worker(job: tuple) -> VideoRecord:
    if job[0] == "convert":
        return convert_output(*job[1:])
    return extract_video(*job[1:])


class _DirLock:
    """Exclusive lock on a frames folder, so two runs never write the same folder."""

    def __init__(self, frames_dir: Path):
        self.path = frames_dir / ".lock"
        self.fh = None

    def __enter__(self):
        self.fh = open(self.path, "w")
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.fh.close()
            raise MienetError(f"{self.path.parent} is being written by another extract-frames run") from None
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fh, fcntl.LOCK_UN)
        self.fh.close()


def _plan(videos: dict[str, Path], frames_dir: Path, partial_root: Path, ext: str, short_side: int | None,
          quality: int, layout: str) -> tuple[dict[str, VideoRecord], list[tuple], list[str], int]:
    """What a run does with each video: the records of the outputs already finished in ``layout``
    (skipped), and a job for every other video: converting its output finished in the other layout,
    else extracting it. Also the ids extracted again (their output lost frames or is damaged) and
    the number of conversions."""
    other = other_layout(layout)
    records: dict[str, VideoRecord] = {}
    todo = []
    redone = []
    converted = 0
    for vid, src in videos.items():
        base = frames_dir / vid
        done, why = check_finished(vid, src, output_path(base, layout), ext, short_side, quality, layout)
        if done is not None:
            records[vid] = done
            continue
        if not why:  # never finished in this layout: maybe in the other one
            ready = finished_record(vid, src, output_path(base, other), ext, short_side, quality, other)
            if ready is not None:
                todo.append(("convert", base, partial_root, ready, layout, ext))
                converted += 1
                continue
        if why:
            log.warning("%s: extracting %s again", why, src)
            redone.append(vid)
        todo.append(("extract", src, base, partial_root, vid, ext, short_side, quality, layout))
    return records, todo, redone, converted


def _run_jobs(todo: list[tuple], jobs: int, records: dict[str, VideoRecord], frames_dir: Path,
              partial_root: Path, progress: bool) -> None:
    """Run ``todo`` in up to ``jobs`` worker processes, adding each video's record to ``records``
    and keeping the manifest current; the partial frames are removed and the manifest written at
    the end, also when an error (a full disk, Ctrl-C) stops the run."""
    from tqdm import tqdm  # lazy: 15 ms of `mienet extract-frames --help` and `make-annotations --help`

    bar = tqdm(total=len(todo), unit="video", desc="extract-frames", disable=not progress,
               file=sys.stderr)
    last_write = time.monotonic()

    def collect(rec: VideoRecord) -> None:
        nonlocal last_write
        records[rec.id] = rec
        bar.update(1)
        if time.monotonic() - last_write > 10:  # keep the manifest current on long runs
            write_manifest(frames_dir, records)
            last_write = time.monotonic()

    try:
        if jobs > 1 and len(todo) > 1:
            ctx = multiprocessing.get_context("fork")
            with ctx.Pool(min(jobs, len(todo))) as pool:
                for rec in pool.imap_unordered(_worker, todo):
                    collect(rec)
        else:
            for job in todo:
                collect(_worker(job))
    except BaseException:
        # Stopped (full disk, Ctrl-C): partial frames go first, which frees their space;
        # the manifest then lists what is finished. The error that stopped the run is
        # the one reported, not a second one from writing the manifest.
        bar.leave = False  # the error message, not a stale bar, is the last line
        bar.close()
        shutil.rmtree(partial_root, ignore_errors=True)
        with contextlib.suppress(OSError):
            write_manifest(frames_dir, records)
        raise
    bar.close()
    shutil.rmtree(partial_root, ignore_errors=True)
    # Rows of videos no longer in the folder are dropped: the manifest describes this run.
    write_manifest(frames_dir, records)


def extract_frames(videos_dir: str | Path, frames_dir: str | Path, jobs: int = 1, ext: str = "jpg",
                   short_side: int | None = None, quality: int = 95, progress: bool = True,
                   layout: str = DEFAULT_LAYOUT) -> dict:
    """Extract every video under ``videos_dir`` in ``layout`` (packed or folders); returns a
    summary dict.

    Failed videos are recorded in the manifest and the summary; the others are extracted.
    A video finished in the other layout (with the same video and settings) is converted, not
    decoded again (``converted`` in the summary).
    """
    videos_dir, frames_dir = Path(videos_dir), Path(frames_dir)
    other_layout(layout)  # checks it
    if ext not in ("jpg", "png"):
        raise MienetError(f"--ext must be jpg or png, not {ext!r}")
    if short_side is not None and short_side < 8:
        raise MienetError(f"--short-side must be at least 8 pixels, not {short_side}")
    videos = find_videos(videos_dir, require=True)
    frames_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with _DirLock(frames_dir):
        partial_root = frames_dir / PARTIAL_DIR
        shutil.rmtree(partial_root, ignore_errors=True)  # leftovers of a killed run
        records, todo, redone, converted = _plan(videos, frames_dir, partial_root, ext, short_side, quality, layout)
        skipped = len(records)
        _run_jobs(todo, jobs, records, frames_dir, partial_root, progress)
    failed = [r for r in records.values() if r.status == "failed"]
    done = [r for r in records.values() if r.status == "ok"]
    return {
        "videos": len(videos),
        "extracted": len(done) - skipped,
        "skipped": skipped,
        "redone": redone,
        "converted": converted,
        "failed": len(failed),
        "layout": layout,
        "failures": [(r.source, r.error) for r in failed],
        "frames": sum(r.frames for r in done),
        "seconds": round(time.perf_counter() - start, 3),
    }


def add_arguments(parser) -> None:
    parser.add_argument("videos_dir", type=Path, help="folder searched recursively for videos")
    parser.add_argument("-o", "--output", dest="frames_dir", type=Path, required=True,
                        help="frames folder to write (FRAMES_DIR/<video id>.frames, or with --layout "
                             "folders FRAMES_DIR/<video id>/img_00001.jpg)")
    parser.add_argument("--layout", choices=LAYOUTS, default=DEFAULT_LAYOUT,
                        help="packed: one file per video, its frames and an index (default; see "
                             "docs/scale.md); folders: one image file per frame")
    parser.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1,
                        help="parallel worker processes (default: number of CPUs)")
    parser.add_argument("--ext", choices=("jpg", "png"), default="jpg", help="image format (default jpg)")
    parser.add_argument("--short-side", type=int, default=None,
                        help="resize so the shorter side has this many pixels (default: keep)")
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality (default 95)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    if args.jobs < 1:
        raise MienetError(f"--jobs must be at least 1, not {args.jobs}")
    summary = extract_frames(args.videos_dir, args.frames_dir, jobs=args.jobs, ext=args.ext,
                             short_side=args.short_side, quality=args.quality,
                             progress=not args.no_progress, layout=args.layout)
    again = f" ({len(summary['redone'])} again: frames missing or added since)" if summary["redone"] else ""
    if summary["converted"]:
        again += f" ({summary['converted']} converted from the {'folders' if args.layout == 'packed' else 'packed'} layout)"
    print(
        f"extract-frames: {summary['videos']} videos: {summary['extracted']} extracted{again}, "
        f"{summary['skipped']} already done, {summary['failed']} failed; "
        f"{summary['frames']} frames in total; {summary['seconds']:.1f} s; "
        f"manifest {Path(args.frames_dir) / MANIFEST_NAME}"
    )
    if summary["failed"]:
        for source, error in summary["failures"]:
            print(f"  failed: {source}: {error}", file=sys.stderr)
        return 1
    return 0
