"""ZIP with stored members against the version 1 frame pack, on the bench of docs/scale.md (a
benchmark: it prints figures, it asserts nothing beyond both containers giving the same bytes).

    .venv/bin/python workflow/scripts/bench_zip_vs_pack.py [--clips 64] [--reads 2000]
        [--repeats 11] [--dvc-clips 1000] [--dvc-repeats 9] [--pack-rev REV] [--work DIR] [--json FILE]

The JPEG frames are those of docs/scale.md: ``mienet synth`` clips of 45 frames at 240x240,
extracted in the folders layout (OpenCV, quality 95). From the very same bytes it writes

- version 1 packs (``MIEFRMS`` ... index, ``MIEFEND``) with the pack module as it was at
  ``--pack-rev`` (taken from git, the last commit with that writer), read by that module's reader
  (the baseline) and by today's :mod:`mienet.data.pack`, which still reads them;
- ZIP packs (``zipfile``, ``ZIP_STORED``, a CRC-32 per member, the central directory at the end),
  written and read by today's :mod:`mienet.data.pack`, and read by ``zipfile.ZipFile`` as well;

and measures, interleaved so that all see the same load (in every repeat the readers take turns
every 50 clips, the writers every pack, in a shuffled order; medians over the repeats; each ratio
is the median of the ratios within a repeat), both wall and CPU time (the CPU time of this
thread is less disturbed by other work on the machine):

1. clips/s reading random clips as the loader does (bytes only, checked, page cache warm): TSN
   sampling of T = 8 segments of L = 1 frame, and of L = 4 consecutive frames (MIE-Net's input);
2. clips/s writing a pack of 45 frames (to the page cache);
3. ``dvc add`` (3 times, alternating) and ``dvc status`` of a folder of ``--dvc-clips`` packs and of
   as many ZIPs (real dvc, in a temporary git + dvc repository; the first status is reported apart);
4. bytes on disk (file sizes and allocated blocks).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from mienet.data.frames import extract_frames
from mienet.data.pack import read_frames, read_index, write_pack
from mienet.data.synth import synthesize

FRAMES, SIZE = 45, 240  # the clips of docs/scale.md
PACK_REV = "5c98d24"  # the last commit whose mienet.data.pack wrote version 1 packs
REPO = Path(__file__).resolve().parents[2]
CHUNK = 50  # clips read by one task before the next task's turn
V1, NEW_V1, ZIP, ZIPFILE = "pack v1", "pack v1, today's reader", "zip", "zip, read by zipfile"


def load_v1(rev: str):
    """The module ``mienet.data.pack`` as it was at ``rev``."""
    text = subprocess.run(["git", "show", f"{rev}:src/mienet/data/pack.py"], cwd=REPO, check=True,
                          capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp(prefix="packv1")) / "pack_v1.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("pack_v1", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def source_clips(work: Path, clips: int) -> list[list[bytes]]:
    """The JPEG bytes of ``clips`` synthetic clips, frame by frame."""
    videos, folders = work / "videos", work / "folders"
    synthesize(videos, classes=8, clips_per_class=-(-clips // 8), frames=FRAMES, size=SIZE, jobs=2, progress=False)
    extract_frames(videos, folders, jobs=2, progress=False, layout="folders")
    dirs = sorted({p.parent for p in folders.rglob("img_00001.jpg")})[:clips]
    return [[f.read_bytes() for f in sorted(d.glob("img_*.jpg"))] for d in dirs]


def picks(counts: list[int], reads: int, segments: int, length: int, seed: int) -> list[tuple[int, list[int]]]:
    """(clip, sorted frame indices) for ``reads`` clips: ``segments`` runs of ``length`` frames,
    one run at a random place in each of ``segments`` equal parts of the clip (TSN sampling)."""
    rng = random.Random(seed)
    out = []
    for _ in range(reads):
        k = rng.randrange(len(counts))
        part = counts[k] / segments
        sel = []
        for s in range(segments):
            start = int(s * part) + rng.randrange(max(1, int(part) - length + 1))
            sel.extend(min(start + j, counts[k] - 1) for j in range(length))
        out.append((k, sorted(set(sel))))
    return out


def read_zipfile(path: Path, sel: list[int]) -> list[bytes]:
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        return [zf.read(names[i]) for i in sel]


def interleaved(tasks: dict, repeats: int, chunks: int = 1, seed: int = 1) -> dict[str, dict[str, list[float]]]:
    """Wall and CPU seconds of each task in each repeat. A task is a callable of a chunk number; a
    repeat runs chunk 0 of every task, then chunk 1 of every task, and so on, the order of the tasks
    shuffled for each chunk, so that all tasks see the same load to within a chunk's time."""
    rng = random.Random(seed)
    times = {name: {"wall": [], "cpu": []} for name in tasks}
    for _ in range(repeats):
        spent = {name: [0.0, 0.0] for name in tasks}
        for chunk in range(chunks):
            order = list(tasks)
            rng.shuffle(order)
            for name in order:
                wall, cpu = time.perf_counter(), time.thread_time()
                tasks[name](chunk)
                spent[name][0] += time.perf_counter() - wall
                spent[name][1] += time.thread_time() - cpu
        for name, (wall, cpu) in spent.items():
            times[name]["wall"].append(wall)
            times[name]["cpu"].append(cpu)
    return times


def rates(times: dict, n: int, base: str) -> dict:
    """Per task and clock: median ``n`` / seconds, and the median ratio of its rate to ``base``'s."""
    out = {}
    for name, clocks in times.items():
        for clock, secs in clocks.items():
            out.setdefault(clock, {})[name] = {
                "per_s": round(n / statistics.median(secs), 1),
                "ratio": round(statistics.median(b / a for a, b in zip(secs, times[base][clock])), 3)}
    return out


def bench_reads(work: Path, v1mod, clips: list[list[bytes]], reads: int, repeats: int) -> dict:
    old = [v1mod.write_pack(work / "v1" / f"c{k}.frames", c, {"clip": k}) for k, c in enumerate(clips)]
    new = [write_pack(work / "zip" / f"c{k}.frames", c, {"clip": k}) for k, c in enumerate(clips)]
    assert read_index(old[0]).legacy and not read_index(new[0]).legacy and read_index(new[0]).stride
    out = {}
    for name, (segments, length) in {"T8_L1": (8, 1), "T8_L4": (8, 4)}.items():
        sample = picks([len(c) for c in clips], reads, segments, length, seed=0)
        for k, sel in sample[:100]:
            assert v1mod.read_frames(old[k], sel) == read_frames(old[k], sel) == read_frames(new[k], sel) \
                == read_zipfile(new[k], sel) == [clips[k][i] for i in sel]
        parts = [sample[c:c + CHUNK] for c in range(0, len(sample), CHUNK)]
        tasks = {V1: lambda c: [v1mod.read_frames(old[k], sel) for k, sel in parts[c]],
                 NEW_V1: lambda c: [read_frames(old[k], sel) for k, sel in parts[c]],
                 ZIP: lambda c: [read_frames(new[k], sel) for k, sel in parts[c]],
                 ZIPFILE: lambda c: [read_zipfile(new[k], sel) for k, sel in parts[c]]}
        out[name] = {"frames_per_clip": statistics.mean(len(s) for _, s in sample), "reads": len(sample),
                     "clips_per_s": rates(interleaved(tasks, repeats, len(parts)), len(sample), V1)}
    return out


def write_many(v1mod, folder_v1: Path, folder_zip: Path, clips: list[list[bytes]], n: int, repeats: int) -> dict:
    """Write ``n`` packs of each format (clip ``i % len(clips)``, meta naming ``i``); the write
    rates are taken over the first ``len(clips)`` of each, interleaved."""
    tasks = {V1: lambda k: v1mod.write_pack(folder_v1 / f"c{k}.frames", clips[k], {"n": k}),
             ZIP: lambda k: write_pack(folder_zip / f"c{k}.frames", clips[k], {"n": k})}
    times = interleaved(tasks, repeats, len(clips))
    for i in range(n):
        v1mod.write_pack(folder_v1 / f"c{i}.frames", clips[i % len(clips)], {"n": i})
        write_pack(folder_zip / f"c{i}.frames", clips[i % len(clips)], {"n": i})
    return rates(times, len(clips), V1)


def usage(folder: Path) -> dict:
    files = [p.stat() for p in folder.iterdir() if p.is_file()]
    return {"files": len(files), "bytes": sum(s.st_size for s in files),
            "disk_bytes": sum(s.st_blocks for s in files) * 512}


def run(cmd: list, cwd: Path, env: dict) -> float:
    start = time.perf_counter()
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed in {cwd}:\n{proc.stdout}{proc.stderr}")
    return seconds


def dvc_add(repo: Path, dvc, env: dict, repeats: int) -> dict:
    """Seconds of ``dvc add`` of each folder (every byte hashed and copied into the cache), the
    order alternating; between repeats the cache, the state database and the .dvc files go."""
    times: dict[str, list[float]] = {V1: [], ZIP: []}
    folders = {V1: "pack_v1", ZIP: "zip"}
    for r in range(repeats):
        for name in ([V1, ZIP] if r % 2 == 0 else [ZIP, V1]):
            times[name].append(run([dvc, "add", "-q", folders[name]], repo, env))
        if r + 1 < repeats:
            for folder in folders.values():
                (repo / f"{folder}.dvc").unlink()
            for cache in (repo / ".dvc" / "cache", repo / ".dvc-site"):
                shutil.rmtree(cache, ignore_errors=True)
    return {name: round(statistics.median(t), 2) for name, t in times.items()}


def bench_dvc(repo: Path, v1mod, clips: list[list[bytes]], n: int, repeats: int) -> dict:
    """``dvc add`` and ``dvc status`` of ``n`` version 1 packs against ``n`` ZIP packs."""
    dvc = Path(sys.executable).with_name("dvc")
    dvc = dvc if dvc.exists() else shutil.which("dvc")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(repo / ".dvc-site")}
    writes = write_many(v1mod, repo / "pack_v1", repo / "zip", clips, n, repeats)
    run(["git", "init", "-q"], repo, env)
    run([dvc, "init", "-q"], repo, env)
    out = {"clips": n, "write_clips_per_s": writes,
           "disk": {V1: usage(repo / "pack_v1"), ZIP: usage(repo / "zip")},
           "dvc_add_s": dvc_add(repo, dvc, env, 3)}
    status = {V1: [dvc, "status", "-q", "pack_v1.dvc"], ZIP: [dvc, "status", "-q", "zip.dvc"]}
    out["dvc_status_first_s"] = {k: round(run(cmd, repo, env), 3) for k, cmd in status.items()}
    times = interleaved({k: (lambda _, cmd=cmd: run(cmd, repo, env)) for k, cmd in status.items()}, repeats)
    out["dvc_status_s"] = {k: round(statistics.median(t["wall"]), 3) for k, t in times.items()}
    out["dvc_status_time_zip_over_v1"] = round(statistics.median(
        z / v for v, z in zip(times[V1]["wall"], times[ZIP]["wall"])), 3)
    out["disk_zip_over_v1"] = round(out["disk"][ZIP]["bytes"] / out["disk"][V1]["bytes"], 4)
    return out


def rate_rows(label: str, r: dict, names: list[str]) -> list[str]:
    return [f"| {label} ({clock}) | " + " | ".join(f"{r[clock][n]['per_s']:,} ({r[clock][n]['ratio']:.3f})"
                                                   for n in names) + " |" for clock in ("cpu", "wall")]


def report(res: dict) -> str:
    names = [V1, NEW_V1, ZIP, ZIPFILE]
    lines = [f"clips/s (ratio to {V1}), median of {res['repeats']} interleaved repeats", "",
             "| pattern | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for name, r in res["reads"].items():
        lines += rate_rows(f"read {name}, {r['frames_per_clip']:.1f} frames", r["clips_per_s"], names)
    d = res["dvc"]
    lines += ["", f"| pattern | {V1} | {ZIP} |", "|---|---|---|"]
    lines += rate_rows(f"write {FRAMES} frames", d["write_clips_per_s"], [V1, ZIP])
    lines += ["", f"| {d['clips']} clips | {V1} | {ZIP} | {ZIP}/{V1} |", "|---|---|---|---|"]
    for key in ("bytes", "disk_bytes"):
        a, b = d["disk"][V1][key], d["disk"][ZIP][key]
        lines.append(f"| {key} | {a:,} | {b:,} | {b / a:.4f} |")
    lines.append(f"| dvc add s (median of 3) | {d['dvc_add_s'][V1]} | {d['dvc_add_s'][ZIP]} | "
                 f"{d['dvc_add_s'][ZIP] / d['dvc_add_s'][V1]:.3f} |")
    lines.append(f"| dvc status s (first) | {d['dvc_status_first_s'][V1]} | {d['dvc_status_first_s'][ZIP]} | |")
    lines.append(f"| dvc status s (median) | {d['dvc_status_s'][V1]} | {d['dvc_status_s'][ZIP]} | "
                 f"{d['dvc_status_time_zip_over_v1']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=64, help="source clips (as in mienet bench scale)")
    parser.add_argument("--reads", type=int, default=2000, help="random clips read per pass")
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--dvc-clips", type=int, default=1000)
    parser.add_argument("--dvc-repeats", type=int, default=9)
    parser.add_argument("--pack-rev", default=PACK_REV, help="git revision of the version 1 pack module")
    parser.add_argument("--work", type=Path, help="a folder to work in (default: a temporary one, removed)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="zipbench"))
    v1mod = load_v1(args.pack_rev)
    try:
        clips = source_clips(work, args.clips)
        res = {"clips": len(clips), "frames": FRAMES, "size": SIZE, "repeats": args.repeats,
               "pack_rev": args.pack_rev, "frame_bytes": round(statistics.mean(len(f) for c in clips for f in c)),
               "reads": bench_reads(work, v1mod, clips, args.reads, args.repeats)}
        shutil.rmtree(work / "dvc", ignore_errors=True)
        res["dvc"] = bench_dvc(work / "dvc", v1mod, clips, args.dvc_clips, args.dvc_repeats)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(Path(v1mod.__file__).parent, ignore_errors=True)
    print(report(res))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
