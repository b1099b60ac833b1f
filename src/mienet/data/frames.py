"""``mienet extract-frames``: decode every video of a folder into numbered image folders.

Layout written::

    FRAMES_DIR/<video id>/img_00001.jpg ...
    FRAMES_DIR/manifest.csv      one row per video: id, source, frames, width, height, fps, status, error

A video is decoded into ``FRAMES_DIR/.partial/<random>/`` and renamed to its final
folder only once every frame is written, so a folder that exists is complete and
a killed run leaves nothing that looks finished. Each finished folder holds a stamp,
``.source.json``, with the size and modification time of its video and what was decoded;
a re-run skips the videos whose stamp still matches (and whose folder still holds
every frame the stamp records) and re-extracts the others.

A bad video (empty, corrupt, unsupported) is recorded as failed in the manifest, with
FFmpeg's own reason where it gives one, and the run goes on; FFmpeg's log lines are
captured for that instead of being printed over the progress bar. A problem with the
output (a full disk, a read-only folder) stops the run with an ``OSError`` naming the
file; the video being written is discarded, its frames never appear as a finished folder.
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
import tempfile
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from mienet.errors import MienetError
from mienet.io import make_temp_dir, write_bytes_named, write_text_atomic

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".avi", ".webm", ".mkv", ".mov")
IMAGE_TEMPLATE = "img_{:05d}.{ext}"
MANIFEST_NAME = "manifest.csv"
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


_FFMPEG_LINE = re.compile(r"^\[[^\]]* @ (?:0x)?[0-9a-fA-F]+\]\s*(.*)$")


@contextlib.contextmanager
def _captured_stderr():
    """Capture what the C libraries (FFmpeg through OpenCV) print on file descriptor 2.

    FFmpeg's messages ("moov atom not found") would otherwise land in the middle of the
    progress bar; captured, the last of them becomes the reason a video failed. Yields a
    list that holds the captured lines once the block has ended.
    """
    lines: list[str] = []
    try:
        sink = tempfile.TemporaryFile()
    except OSError:  # nowhere to keep them: drop them
        sink = open(os.devnull, "w+b")
    with sink:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            try:
                sink.seek(0)
                text = sink.read(1 << 16).decode("utf-8", "replace")
            except OSError:
                text = ""
            lines.extend(line.strip() for line in text.splitlines() if line.strip())


def _ffmpeg_reason(lines: list[str]) -> str:
    """The last FFmpeg message (without its ``[demuxer @ 0x...]`` prefix), or ''."""
    for line in reversed(lines):
        m = _FFMPEG_LINE.match(line)
        if m and m.group(1):
            return m.group(1)
    return ""


def _with_reason(message: str, lines: list[str]) -> str:
    reason = _ffmpeg_reason(lines)
    return f"{message} (FFmpeg: {reason})" if reason else message


def extract_video(source: Path, final_dir: Path, partial_root: Path, vid: str,
                  ext: str = "jpg", short_side: int | None = None, quality: int = 95) -> VideoRecord:
    """Decode ``source`` into ``final_dir``.

    A bad video gives a failed record (with FFmpeg's reason when it gives one). An error
    writing the output (full disk, permissions) raises ``OSError`` naming the file; the
    partial frames are removed and ``final_dir`` is left as it was.
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
    with _captured_stderr() as ffmpeg_log:
        rec = _decode_video(source, final_dir, partial_root, rec, ext, short_side, quality)
    if rec.error:  # failed, or a warning ("decoded 80 of 120 frames"): FFmpeg may say why
        rec.error = _with_reason(rec.error, ffmpeg_log)
    return rec


def _decode_video(source: Path, final_dir: Path, partial_root: Path, rec: VideoRecord, ext: str,
                  short_side: int | None, quality: int) -> VideoRecord:
    import cv2

    cv2.setNumThreads(1)  # parallelism comes from the worker processes
    cap = cv2.VideoCapture(str(source))
    if not cap.isOpened():
        rec.status, rec.error = "failed", "cannot open: corrupt file or unsupported container/codec"
        return rec
    declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    rec.fps = round(float(cap.get(cv2.CAP_PROP_FPS) or 0.0), 3)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext == "jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    partial_root.mkdir(parents=True, exist_ok=True)
    tmp_dir = make_temp_dir(partial_root, prefix="v")
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
            # cv2.imwrite only returns False.
            ok, data = cv2.imencode(f".{ext}", frame, params)
            if not ok:
                raise MienetError(f"OpenCV cannot encode frame {n} of {source} as {ext}")
            write_bytes_named(tmp_dir / IMAGE_TEMPLATE.format(n, ext=ext), data)
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
        stamp = {**source_stamp, **asdict(rec)}
        write_bytes_named(tmp_dir / STAMP_NAME, json.dumps(stamp).encode())
        final_dir.parent.mkdir(parents=True, exist_ok=True)
        if final_dir.exists():  # stale frames of an older version of the video
            os.replace(final_dir, make_temp_dir(partial_root, prefix="old") / "x")
        os.replace(tmp_dir, final_dir)  # atomic: the folder appears complete or not at all
        return rec
    finally:
        cap.release()
        if tmp_dir.exists():
            shutil.rmtree(tmp_dir, ignore_errors=True)


def _source_stamp(source: Path, ext: str, short_side: int | None, quality: int) -> dict:
    """What a finished folder was made from: the video file as it was, and the settings."""
    st = source.stat()
    return {"source_bytes": st.st_size, "source_mtime_ns": st.st_mtime_ns,
            "ext": ext, "short_side": short_side, "quality": quality}


def check_finished(vid: str, source: Path, folder: Path, ext: str = "jpg", short_side: int | None = None,
                   quality: int = 95) -> tuple[VideoRecord | None, str]:
    """``(record, "")`` for a folder finished from this very video with these settings and still
    holding every frame its stamp records; else ``(None, why)`` (``why`` is "" when the folder
    was never finished or the video or settings changed, which needs no comment)."""
    try:
        stamp = json.loads((folder / STAMP_NAME).read_text())
        expected = _source_stamp(source, ext, short_side, quality)
        if {k: stamp.get(k) for k in expected} != expected:
            return None, ""
        rec = VideoRecord(**{f: stamp[f] for f in MANIFEST_FIELDS})
        present = count_frames(folder)
    except (OSError, ValueError, KeyError, TypeError):
        return None, ""
    if present != rec.frames:
        return None, (f"{folder} holds {present} of the {rec.frames} frames it was extracted with "
                      "(frames deleted or added since)")
    rec.id, rec.source = vid, str(source)
    return rec, ""


def finished_record(vid: str, source: Path, folder: Path, ext: str = "jpg", short_side: int | None = None,
                    quality: int = 95) -> VideoRecord | None:
    """The record of a complete folder finished from this very video with these settings, else None."""
    return check_finished(vid, source, folder, ext, short_side, quality)[0]


def _worker(job: tuple) -> VideoRecord:
    return extract_video(*job)


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


def extract_frames(videos_dir: str | Path, frames_dir: str | Path, jobs: int = 1, ext: str = "jpg",
                   short_side: int | None = None, quality: int = 95, progress: bool = True) -> dict:
    """Extract every video under ``videos_dir``; returns a summary dict.

    Failed videos are recorded in the manifest and the summary; the others are extracted.
    """
    from tqdm import tqdm

    videos_dir, frames_dir = Path(videos_dir), Path(frames_dir)
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
        records: dict[str, VideoRecord] = {}
        todo = []
        redone = []
        for vid, src in videos.items():
            final = frames_dir / vid
            done, why = check_finished(vid, src, final, ext, short_side, quality)
            if done is not None:
                records[vid] = done
            else:
                if why:
                    log.warning("%s: extracting %s again", why, src)
                    redone.append(vid)
                todo.append((src, final, partial_root, vid, ext, short_side, quality))
        skipped = len(records)
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
    failed = [r for r in records.values() if r.status == "failed"]
    done = [r for r in records.values() if r.status == "ok"]
    return {
        "videos": len(videos),
        "extracted": len(done) - skipped,
        "skipped": skipped,
        "redone": redone,
        "failed": len(failed),
        "failures": [(r.source, r.error) for r in failed],
        "frames": sum(r.frames for r in done),
        "seconds": round(time.perf_counter() - start, 3),
    }


def add_arguments(parser) -> None:
    parser.add_argument("videos_dir", type=Path, help="folder searched recursively for videos")
    parser.add_argument("-o", "--output", dest="frames_dir", type=Path, required=True,
                        help="frames folder to write (FRAMES_DIR/<video id>/img_00001.jpg)")
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
                             progress=not args.no_progress)
    again = f" ({len(summary['redone'])} again: frames missing or added since)" if summary["redone"] else ""
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
