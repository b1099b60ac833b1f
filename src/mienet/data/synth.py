"""``mienet synth``: the embedded default dataset, a diagnostic benchmark built from named factors.

Every clip shows a procedurally drawn figure (side view) swinging its legs in antiphase, in
front of a wall, under a light that changes over the clip. A class is one combination
of three factors with two levels each (8 classes), and each factor is built to be visible
through exactly one kind of evidence (:data:`mienet.registry.variants.CUES`):

- ``appearance`` (red / blue wall): the hue family of the wall above the hip line. It is
  static and nothing that moves ever touches it, so it is visible in any single frame and
  invisible in frame differences (no camera shake).
- ``motion`` (smooth / jerky legs): the legs swing in antiphase 1.5 to 3 times per clip from a random
  start, shown frame by frame (smooth) or with every frame taken up to 6 frames off its time
  (jerky: the leg jumps back and forth). Each single frame draws the leg from the same pose
  distribution either way, and frames a segment apart see the same swing up to that jitter
  (small beside the spread of swing speeds); consecutive frames differ (what PA sees).
- ``order`` (clockwise / anticlockwise light): a uniform tint whose hue turns half round the
  colour wheel over the clip from a random start, one way or the other. Any frame's tint is
  uniform on the wheel wherever the frame lies in the clip, and consecutive frames differ by the
  same uniform chord either way (PA takes magnitudes); no pixel is ever clipped. So no single
  frame and no window of consecutive frames tells the way it turns; only comparing segments
  does (DPTAM's temporal convolution; average consensus is blind to it). A brightness ramp would
  not do: which frames a model samples is not symmetric in time, so a ramp's mean would leak.

Everything else (body proportions, clothes and skin colours, arms, placement, facing, the
lower background, the leg's swing range, pixel noise) is drawn from one per-clip distribution
for every class. So a variant's *ceiling* follows from the factors it can see
(:func:`ceilings`) before anything is trained: TSN sees appearance only (25 % top-1 on the 8
classes), TSN+DPTAM appearance and order (50 %), PA only motion (25 %), RGB+PA fusions
appearance and motion (50 %), fusions with DPTAM all three (100 %). ``mienet synth`` writes
this design, with the ceilings, to ``OUT_DIR/factors.json``.

The design (factors, classes, ceilings) is :mod:`mienet.data.synth_design`, the
drawing :mod:`mienet.data.synth_render`; this module writes the videos and is the command.

Everything random comes from ``numpy.random.Generator`` seeded by (seed, class index, clip
index), so a clip does not depend on ``-j`` or on the other clips, and the same seed gives the
same decoded frames.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import math
import multiprocessing
import os
import re
import signal
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from mienet.config import SYNTH_DEFAULTS, SYNTH_LIMITS
from mienet.data.synth_design import CLASS_LEVELS, CLASS_NAMES, GENERATOR_VERSION, design
from mienet.data.synth_render import render_clip
from mienet.errors import MienetError
from mienet.io import write_text_atomic
# Written last, removed first: it exists only while OUT_DIR holds exactly the requested clips.
# A workflow should take this file as the step's output, not the folder: Snakemake and DVC
# delete an output before re-running its step, and deleting the folder would throw away
# the finished clips of an interrupted run, which `mienet synth` otherwise keeps and skips.
from mienet.layout import SYNTH_DONE as DONE_NAME  # the workflow waits for it
from mienet.layout import FACTORS_FILE as FACTORS_NAME  # the design and the ceilings

# Defaults and limits: the `synth` section of the configuration model (mienet.config).
DEFAULT_CLASSES = SYNTH_DEFAULTS.classes
DEFAULT_CLIPS_PER_CLASS = SYNTH_DEFAULTS.clips_per_class
DEFAULT_FRAMES = SYNTH_DEFAULTS.frames
DEFAULT_SIZE = SYNTH_DEFAULTS.size
DEFAULT_FPS = SYNTH_DEFAULTS.fps
DEFAULT_SEED = SYNTH_DEFAULTS.seed
MIN_FRAMES = SYNTH_LIMITS["frames"]["minimum"]
MIN_SIZE = SYNTH_LIMITS["size"]["minimum"]
FOURCC = "mp4v"
META_NAME = ".mienet-synth.json"
LOCK_NAME = ".mienet-synth.lock"
_CLIP_FILE = re.compile(r"^clip_(\d{4,})\.mp4$")


# ---------------------------------------------------------------------------
# Writing videos
# ---------------------------------------------------------------------------

def clip_name(clip_index: int) -> str:
    return f"clip_{clip_index:04d}.mp4"


def temp_name(final: Path) -> Path:
    # OpenCV picks the container from the extension, so ".mp4" stays last.
    return final.with_name(f".{final.stem}.tmp.mp4")


def read_video(path: str | os.PathLike) -> np.ndarray:
    """Decode every frame of a video: (F, H, W, 3) uint8 BGR."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
    finally:
        cap.release()
    if not frames:
        return np.empty((0, 0, 0, 3), np.uint8)
    return np.stack(frames)


def write_video(path: Path, video: np.ndarray, fps: float) -> None:
    """Write ``video`` to ``path`` atomically and check that it decodes to the same shape."""
    tmp = temp_name(path)
    n, h, w = video.shape[:3]
    try:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*FOURCC), float(fps), (w, h))
        if not writer.isOpened():
            raise MienetError(f"OpenCV cannot open a '{FOURCC}' video writer for {tmp}; "
                              "check that opencv-python(-headless) was built with FFmpeg")
        try:
            for frame in video:
                writer.write(frame)
        finally:
            writer.release()
        decoded = read_video(tmp)
        if decoded.shape != video.shape:
            raise MienetError(f"{tmp} decodes to {decoded.shape[0]} frames of {decoded.shape[1:3]}, "
                              f"expected {n} frames of {(h, w)}")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _make_clip(task: tuple[str, int, int, int, int, int, float]) -> str:
    out_dir, class_index, clip_index, seed, frames, size, fps = task
    video = render_clip(class_index, clip_index, seed, frames, size)
    path = Path(out_dir) / CLASS_NAMES[class_index] / clip_name(clip_index)
    write_video(path, video, fps)
    return str(path)


def _worker_init() -> None:
    cv2.setNumThreads(1)  # one process per core already


def default_jobs() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def validate(classes: int, clips_per_class: int, frames: int, size: int, fps: float, seed: int,
             jobs: int | None) -> None:
    """Raise MienetError naming the option when a value is out of range."""
    n = len(CLASS_LEVELS)
    if not 2 <= classes <= n:
        raise MienetError(f"--classes must be between 2 and {n}, got {classes}")
    if clips_per_class < 1:
        raise MienetError(f"--clips-per-class must be at least 1, got {clips_per_class}")
    if frames < MIN_FRAMES:
        raise MienetError(f"--frames must be at least {MIN_FRAMES} (T=3 segments x L=4 frames need room), "
                          f"got {frames}")
    if size < MIN_SIZE or size % 2:
        raise MienetError(f"--size must be an even number of pixels, at least {MIN_SIZE} "
                          f"(the mp4v codec needs even dimensions), got {size}")
    if not (fps > 0 and math.isfinite(fps)):
        raise MienetError(f"--fps must be a positive number, got {fps}")
    if seed < 0:
        raise MienetError(f"--seed must be non-negative, got {seed}")
    if jobs is not None and jobs < 1:
        raise MienetError(f"-j/--jobs must be at least 1, got {jobs}")


@contextlib.contextmanager
def _locked(out_dir: Path):
    """Hold an exclusive lock on ``out_dir``: two runs writing the same clips would each
    find the other's half-written temporary file."""
    with open(out_dir / LOCK_NAME, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise MienetError(f"{out_dir} is being written by another mienet synth run; "
                              "wait for it to finish") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _remove_clips(folder: Path, keep: int) -> int:
    """Remove this generator's clips numbered ``keep`` and up (and temporary files) from
    ``folder``; the folder too once empty. Other files are left alone. Returns the count."""
    removed = 0
    if not folder.is_dir():
        return 0
    for path in folder.iterdir():
        m = _CLIP_FILE.match(path.name)
        if (m and int(m.group(1)) >= keep) or (path.name.startswith(".") and path.name.endswith(".tmp.mp4")):
            path.unlink()
            removed += 1 if m else 0
    if not any(folder.iterdir()):
        folder.rmdir()
    return removed


def _check_meta(out_dir: Path, meta: dict, restart_if_changed: bool = False) -> int:
    """Refuse to resume into a folder written with options that change the pixels, or, with
    ``restart_if_changed``, remove its clips and start over. Returns the clips removed."""
    path = out_dir / META_NAME
    removed = 0
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise MienetError(f"{path} is unreadable ({exc}); delete it or choose another OUT_DIR") from exc
        diff = {k: (old.get(k), v) for k, v in meta.items() if old.get(k) != v}
        if not diff:
            return 0
        what = ", ".join(f"{k}: {a} there, {b} now" for k, (a, b) in diff.items())
        if not restart_if_changed:
            raise MienetError(f"{out_dir} holds clips made with other settings ({what}); "
                              "use the same options to resume, pass --restart-if-changed to replace "
                              "them, or choose another OUT_DIR")
        (out_dir / DONE_NAME).unlink(missing_ok=True)
        for name in CLASS_NAMES:
            removed += _remove_clips(out_dir / name, keep=0)
        print(f"synth: {out_dir} held {removed} clips made with other settings ({what}); "
              "removed them, starting over", file=sys.stderr)
    write_text_atomic(path, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return removed


def synthesize(out_dir: str | os.PathLike, classes: int = DEFAULT_CLASSES,
               clips_per_class: int = DEFAULT_CLIPS_PER_CLASS, frames: int = DEFAULT_FRAMES,
               size: int = DEFAULT_SIZE, fps: float = DEFAULT_FPS, seed: int = DEFAULT_SEED,
               jobs: int | None = None, progress: bool | None = None,
               restart_if_changed: bool = False, debug_kill_after: int | None = None) -> dict:
    """Write ``out_dir/<class>/clip_NNNN.mp4`` for the first ``classes`` classes; skip clips already there.

    An interrupted run is resumed: finished clips are kept (each is renamed into place only
    once complete), the missing ones written. Clips beyond the request (of classes or clip
    numbers not asked for, left by a larger earlier run) are removed, so that the folder
    holds exactly the requested dataset. ``DONE_NAME`` is written last.

    Returns a summary: written, skipped, removed, seconds and the settings used.
    ``progress=None`` shows the bar only on a terminal.
    """
    validate(classes, clips_per_class, frames, size, fps, seed, jobs)
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with _locked(out):
        settings = {"generator_version": GENERATOR_VERSION, "frames": frames, "size": size,
                    "fps": float(fps), "seed": seed, "fourcc": FOURCC}
        replaced = _check_meta(out, settings, restart_if_changed)
        done_path = out / DONE_NAME
        done_path.unlink(missing_ok=True)  # from here on the folder is being changed

        removed = 0
        for c, name in enumerate(CLASS_NAMES):
            removed += _remove_clips(out / name, keep=clips_per_class if c < classes else 0)

        todo: list[tuple] = []
        skipped = 0
        for c in range(classes):
            class_dir = out / CLASS_NAMES[c]
            class_dir.mkdir(exist_ok=True)
            for k in range(clips_per_class):
                if (class_dir / clip_name(k)).exists():
                    skipped += 1
                else:
                    todo.append((str(out), c, k, seed, frames, size, float(fps)))

        jobs = min(jobs or default_jobs(), max(1, len(todo)))
        if skipped and todo:
            print(f"synth: resuming: {skipped} clips already in {out} are kept, {len(todo)} to write",
                  file=sys.stderr)
        with tqdm(total=len(todo), desc="synth", unit="clip", dynamic_ncols=True,
                  disable=None if progress is None else not progress) as bar:
            if jobs == 1:
                for n, task in enumerate(todo, 1):
                    _make_clip(task)
                    bar.update()
                    if n == debug_kill_after:  # tests: what the OOM killer or a time limit leaves
                        os.kill(os.getpid(), signal.SIGKILL)
            else:
                # spawn: workers must not inherit OpenCV's thread pool through fork
                ctx = multiprocessing.get_context("spawn")
                with ctx.Pool(jobs, initializer=_worker_init) as pool:
                    for _ in pool.imap_unordered(_make_clip, todo, chunksize=2):
                        bar.update()
        seconds = time.perf_counter() - started
        summary = {
            "out_dir": str(out), "classes": CLASS_NAMES[:classes], "clips_per_class": clips_per_class,
            "frames": frames, "size": size, "fps": float(fps), "seed": seed, "jobs": jobs,
            "written": len(todo), "skipped": skipped, "removed": removed + replaced,
            "seconds": round(seconds, 3),
        }
        done = {**settings, "classes": classes, "clips_per_class": clips_per_class,
                "clips": classes * clips_per_class}
        write_text_atomic(out / FACTORS_NAME, json.dumps(design(classes), indent=2) + "\n")
        write_text_atomic(done_path, json.dumps(done, indent=2, sort_keys=True) + "\n")
    return summary


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

def add_arguments(parser) -> None:
    parser.add_argument("out_dir", metavar="OUT_DIR", help="folder to write OUT_DIR/<class>/<clip>.mp4 into")
    parser.add_argument("--classes", type=int, default=DEFAULT_CLASSES,
                        help=f"number of classes, the first K of the {len(CLASS_LEVELS)} factor combinations (default: %(default)s)")
    parser.add_argument("--clips-per-class", type=int, default=DEFAULT_CLIPS_PER_CLASS,
                        help="clips per class (default: %(default)s)")
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES,
                        help=f"frames per clip, at least {MIN_FRAMES} (default: %(default)s)")
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE,
                        help=f"frame width and height in pixels, even, at least {MIN_SIZE} (default: %(default)s)")
    parser.add_argument("--fps", type=float, default=DEFAULT_FPS, help="frame rate (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (default: %(default)s)")
    parser.add_argument("-j", "--jobs", type=int, default=None,
                        help="worker processes (default: the number of CPUs)")
    parser.add_argument("--restart-if-changed", action="store_true",
                        help="if OUT_DIR holds clips made with other frames/size/fps/seed, remove them and "
                             "start over (default: refuse)")
    parser.add_argument("--debug-kill-after", type=int, default=None, help=argparse.SUPPRESS)


def run(args) -> int:
    summary = synthesize(args.out_dir, classes=args.classes, clips_per_class=args.clips_per_class,
                         frames=args.frames, size=args.size, fps=args.fps, seed=args.seed, jobs=args.jobs,
                         restart_if_changed=args.restart_if_changed, debug_kill_after=args.debug_kill_after)
    removed = f", {summary['removed']} removed" if summary["removed"] else ""
    print(f"synth: {summary['written']} clips written, {summary['skipped']} skipped{removed} "
          f"({len(summary['classes'])} classes x {summary['clips_per_class']} clips, "
          f"{summary['frames']} frames {summary['size']}x{summary['size']} at {summary['fps']:g} fps, "
          f"seed {summary['seed']}) in {summary['seconds']:.1f} s with {summary['jobs']} "
          f"worker{'s' if summary['jobs'] != 1 else ''} -> "
          f"{summary['out_dir']}")
    return 0
