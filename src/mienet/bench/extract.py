"""``mienet bench-extract``: frame-extraction speed of ``mienet extract-frames`` against ffmpeg.

Every video is decoded to JPEGs by both tools on the same inputs: the ffmpeg command
line (one process, one video after another, one file per frame) and ``extract-frames`` with one
worker, then with ``-j N``, in ``--layout`` (default: its default, packed; ``folders`` writes
one file per frame as ffmpeg does). Prints frames per second and the ratios, measured in one run. A benchmark,
not a test: nothing is asserted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from mienet.data.frames import DEFAULT_LAYOUT, LAYOUTS, VIDEO_EXTENSIONS, extract_frames
from mienet.errors import MienetError


def _collect(inputs: list[Path]) -> list[Path]:
    videos = []
    for item in inputs:
        if item.is_dir():
            videos += sorted(p for p in item.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS)
        elif item.is_file():
            videos.append(item)
        else:
            raise MienetError(f"{item}: no such file or folder")
    if not videos:
        raise MienetError("no videos to benchmark in " + ", ".join(map(str, inputs)))
    return videos


def _ffmpeg(videos: list[Path], out: Path, threads: int | None) -> float:
    start = time.perf_counter()
    for i, video in enumerate(videos):
        target = out / f"v{i:03d}"
        target.mkdir(parents=True)
        cmd = ["ffmpeg", "-nostdin", "-loglevel", "error"]
        if threads:
            cmd += ["-threads", str(threads)]
        cmd += ["-i", str(video), "-q:v", "2", "-start_number", "1", str(target / "img_%05d.jpg")]
        subprocess.run(cmd, check=True)
    return time.perf_counter() - start


def benchmark(inputs: list[Path], copies: int = 4, jobs: int = 2, repeat: int = 3,
              layout: str = DEFAULT_LAYOUT) -> dict:
    if shutil.which("ffmpeg") is None:
        raise MienetError("ffmpeg is not installed: run `make setup` as root, or "
                          "`apt-get install -y ffmpeg`")
    videos = _collect(inputs)
    with tempfile.TemporaryDirectory(prefix="mienet-bench-") as tmp:
        tmp = Path(tmp)
        src = tmp / "videos"
        src.mkdir()
        # Copies give -j N enough videos to share out; links keep them cheap.
        work = []
        for c in range(copies):
            for i, video in enumerate(videos):
                link = src / f"c{c}_{i:03d}{video.suffix.lower()}"
                os.symlink(video.resolve(), link)
                work.append(link)

        def best(fn) -> float:
            times = []
            for r in range(repeat):
                out = tmp / f"out{len(os.listdir(tmp))}"
                out.mkdir()
                times.append(fn(out))
                shutil.rmtree(out)
            return min(times)

        frames = extract_frames(src, tmp / "count", jobs=1, progress=False, layout=layout)["frames"]
        shutil.rmtree(tmp / "count")
        t_ff = best(lambda out: _ffmpeg(work, out, None))
        t_ff1 = best(lambda out: _ffmpeg(work, out, 1))
        t_j1 = best(lambda out: extract_frames(src, out, jobs=1, progress=False, layout=layout)["seconds"])
        t_jn = best(lambda out: extract_frames(src, out, jobs=jobs, progress=False, layout=layout)["seconds"])
    return {
        "videos": len(work), "frames": frames, "jobs": jobs, "repeat": repeat, "layout": layout,
        "ffmpeg_fps": frames / t_ff, "ffmpeg_threads1_fps": frames / t_ff1,
        "mienet_j1_fps": frames / t_j1, f"mienet_j{jobs}_fps": frames / t_jn,
    }


def add_arguments(parser) -> None:
    parser.add_argument("inputs", nargs="+", type=Path, help="video files or folders")
    parser.add_argument("--copies", type=int, default=4, help="times each video is decoded (default 4)")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="workers for the parallel run (default 2)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions, best kept (default 3)")
    parser.add_argument("--layout", choices=LAYOUTS, default=DEFAULT_LAYOUT,
                        help=f"layout extract-frames writes (default {DEFAULT_LAYOUT})")


def run(args) -> int:
    r = benchmark(args.inputs, copies=args.copies, jobs=args.jobs, repeat=args.repeat, layout=args.layout)
    jn = r[f"mienet_j{args.jobs}_fps"]
    print(f"bench-extract: {r['videos']} videos, {r['frames']} frames, best of {r['repeat']}; "
          f"mienet writes the {r['layout']} layout")
    print(f"  ffmpeg (default threads)      {r['ffmpeg_fps']:8.0f} frames/s")
    print(f"  ffmpeg -threads 1             {r['ffmpeg_threads1_fps']:8.0f} frames/s")
    print(f"  mienet extract-frames -j 1    {r['mienet_j1_fps']:8.0f} frames/s"
          f"   {r['mienet_j1_fps'] / r['ffmpeg_fps']:.2f}x ffmpeg")
    print(f"  mienet extract-frames -j {args.jobs}    {jn:8.0f} frames/s"
          f"   {jn / r['ffmpeg_fps']:.2f}x ffmpeg, {jn / r['mienet_j1_fps']:.2f}x -j 1")
    return 0
