"""``mienet bench scale``: what the frame layout costs as a dataset grows, fitted and projected to SSv2.

For each size (clips) and each layout of ``mienet extract-frames`` (``packed``: one file per
video; ``folders``: one JPEG file per frame) the benchmark

1. extracts synthetic clips at SSv2-like geometry (``mienet synth``: 240x240, 45 frames by
   default; written once, at the largest size, and shared by the smaller ones through hard
   links) with ``-j N``: frames/s and clips/s;
2. counts the frames folder: files, bytes of data and bytes allocated on disk;
3. runs ``snakemake -n reproduce_all`` of this project's workflow over a ``folder``-format
   dataset of that size (a scratch copy of the Snakefile, ``workflow/`` and ``profiles/`` with
   a params.yaml pointing at the clips, the frames already extracted): the dry-run time;
4. in a throw-away DVC repository (``dvc init --no-scm`` in that scratch project, a local
   folder as remote): ``dvc add`` of the frames folder (hashing and caching every file),
   ``dvc status`` three times with nothing changed (the first run is reported apart; the
   "warm" figure is the faster of the other two: DVC's state database and the page cache hold
   everything), and ``dvc push`` to the local remote. Then the same frames as the project's
   pipeline tracks them: ``dvc.yaml`` written by :mod:`mienet.stages` for the scratch project,
   ``dvc commit`` of its ``extract_frames`` stage (the videos folder is that stage's dependency,
   the frames its output) and a plain ``dvc status`` of the whole pipeline, warm;
5. measures the training loader (:class:`mienet.engine.dataset.ClipDataset` at T segments x L
   frames, default 8 x 1 as the paper's SSv2 recipe, 224 px crop, training augmentation,
   page cache warm) with each worker count: clips/s, and per worker.

Each extensive quantity (seconds, files, bytes) is fitted as ``a + b * clips`` by least squares
over the sizes, and projected to Something-Something V2 (220,847 clips; the clips here have
``--frames`` frames each, 45 by default as SSv2's average). A quantity that does not grow with
the clips (fitted slope not above zero: ``snakemake -n``, whose rules see the videos and frames
folders as single paths) is projected as the mean of its measurements and marked "flat".
``--refit OUT.json`` recomputes the fits and projections of an earlier run without measuring. Loader throughput does not grow with
the dataset; its projection is the per-worker rate at the largest size times the worker count
of the target machine (16 cores), which assumes the workers scale linearly (they share nothing
but the disk).

Also measured, once, on the smallest size: reading 8 frames of a clip (no decoding) from the
folder's files, from a pack, and from an uncompressed tar of the same JPEGs (``tarfile``, which
has no index), the container choice behind :mod:`mienet.data.pack`.

The fits, the projection and the tables are :mod:`mienet.bench.scale_report`'s. Results go to
``OUT.json`` and ``OUT.md`` (default ``results/bench/scale``) and are printed.
The generated data is deleted afterwards unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import cv2
import yaml

from mienet.bench.loader import measure_loader
from mienet.bench.scale_report import (
    SSV2_FRAMES,
    bytes_per_frame,
    fit_and_project,
    markdown,
    refit,
    targets,
)
from mienet.config import TrainConfig, load_params
from mienet.data.frames import LAYOUTS, extract_frames, read_manifest
from mienet.data.pack import read_frames, write_pack
from mienet.data.synth import clip_name, synthesize
from mienet.data.synth_design import CLASS_NAMES
from mienet.engine.dataset import ClipDataset
from mienet.errors import MienetError
from mienet.io import environment_tool, write_text_atomic
from mienet.registry.frames import FRAME_TEMPLATE
from mienet.stages import dvc_yaml_text

DATASET = "scale"
PROJECT_FILES = ("Snakefile", "workflow", "profiles", "pretrained", "src", ".dvcignore")


# --------------------------------------------------------------------------- helpers


def _tool(name: str) -> str:
    found = environment_tool(name)
    if not found:
        raise MienetError(f"`{name}` is not installed in this environment (looked beside {sys.executable})")
    return found


def _timed(cmd: list[str], cwd: Path, env: dict | None = None, ok: tuple[int, ...] = (0,)) -> float:
    """Run ``cmd`` in ``cwd``; seconds it took. A failure is an error with the command's output."""
    start = time.perf_counter()
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if proc.returncode not in ok:
        tail = (proc.stdout + proc.stderr).strip()[-3000:]
        raise MienetError(f"`{' '.join(map(str, cmd))}` failed in {cwd} ({proc.returncode}):\n{tail}")
    return seconds


def _dvc_env(project: Path) -> dict:
    # no analytics or update check (no network here), and DVC's state database inside the scratch
    # project (by default it lives in /var/tmp/dvc and would outlive the benchmark)
    return {**os.environ, "DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(project / ".dvc-site")}


def folder_usage(folder: Path) -> dict:
    """Files, bytes of data and bytes allocated (``du``) under ``folder``."""
    files = size = blocks = 0
    for dirpath, dirnames, filenames in os.walk(folder):
        blocks += os.lstat(dirpath).st_blocks
        for name in filenames:
            st = os.lstat(os.path.join(dirpath, name))
            files += 1
            size += st.st_size
            blocks += st.st_blocks
    return {"files": files, "bytes": size, "disk_bytes": blocks * 512}



def _split_sizes(total: int, classes: int) -> list[int]:
    """Clips per class for ``total`` clips over ``classes`` classes (the first ones get the rest)."""
    return [total // classes + (1 if c < total % classes else 0) for c in range(classes)]


# --------------------------------------------------------------------------- data


def make_videos(work: Path, sizes: list[int], classes: int, frames: int, size: int, jobs: int) -> dict:
    """Synthesise the largest size once, into ``work/synth`` (see :func:`link_videos`)."""
    largest = max(sizes)
    per_class = math.ceil(largest / classes)
    start = time.perf_counter()
    synthesize(work / "synth", classes=classes, clips_per_class=per_class, frames=frames, size=size,
               fps=12.0, seed=0, jobs=jobs, progress=False)
    seconds = time.perf_counter() - start
    return {"clips": per_class * classes, "seconds": round(seconds, 3), "jobs": jobs,
            "clips_per_s": round(per_class * classes / seconds, 2)}


def link_videos(synth: Path, target: Path, n: int, classes: int) -> None:
    """``target/<class>/clip_NNNN.mp4``: hard links to the first ``n`` clips of ``synth`` (real
    files to DVC and Snakemake, no copy)."""
    for c, count in enumerate(_split_sizes(n, classes)):
        (target / CLASS_NAMES[c]).mkdir(parents=True, exist_ok=True)
        for k in range(count):
            os.link(synth / CLASS_NAMES[c] / clip_name(k), target / CLASS_NAMES[c] / clip_name(k))


def write_project(project: Path, repo: Path, videos: Path, layout: str, jobs: int) -> dict:
    """A scratch copy of the workflow with one ``folder`` dataset, ``scale``, at ``videos``;
    returns its params."""
    project.mkdir(parents=True)
    for name in PROJECT_FILES:
        src = repo / name
        if src.is_dir():
            shutil.copytree(src, project / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif src.is_file():
            shutil.copy(src, project / name)
    params = load_params(repo / "params.yaml")
    recipe = dict(params["datasets"].get("sthv2", {}).get("train") or params["datasets"][params["profiles"][
        params["profile"]][0]]["train"])
    params["datasets"][DATASET] = {"format": "folder", "videos": os.path.relpath(videos, project), "train": recipe}
    params["profiles"][DATASET] = [DATASET]
    params["profile"] = DATASET
    params["data_root"] = "datasets"
    params["extract"] = {**params["extract"], "jobs": jobs, "layout": layout}
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return params


def clip_list(frames_dir: Path, out: Path) -> int:
    """A frame list of every extracted clip (label: its class folder's rank); returns the clips."""
    records = [r for r in read_manifest(frames_dir).values() if r.status == "ok"]
    labels = {name: k for k, name in enumerate(sorted({r.id.split("/")[0] for r in records}))}
    out.write_text("".join(f"{frames_dir.name}/{r.id} {r.frames} {labels[r.id.split('/')[0]]}\n"
                           for r in sorted(records, key=lambda r: r.id)), encoding="utf-8")
    return len(records)


def loader_by_workers(list_file: Path, root: Path, workers: list[int], segments: int, frames_per_segment: int,
                      crop: int, batch: int, batches: int) -> dict:
    """The training loader's clips/s (and per worker) with each worker count, the better of two runs."""
    ds = ClipDataset(list_file, root, num_segments=segments, frames_per_segment=frames_per_segment, size=crop,
                     train=True, flip=False)
    out = {}
    for w in workers:  # the better of two runs: the CPUs may be shared
        r = max((measure_loader(ds, batch_size=batch, workers=w, batches=batches) for _ in range(2)),
                key=lambda m: m["clips_per_s"])
        out[str(w)] = {"clips_per_s": r["clips_per_s"], "per_worker": round(r["clips_per_s"] / max(w, 1), 2),
                       "clips": r["clips"], "seconds": r["seconds"]}
    return out


def compare_containers(folders_frames: Path, work: Path, clips: int = 64, reads: int = 2000,
                       per_clip: int = 8, seed: int = 0) -> dict:
    """Clips/s reading ``per_clip`` random frames (bytes only) from folder files, packs and tars
    of the same JPEGs; ``clips`` clips of a folders-layout frames folder."""
    folders = sorted({p.parent for p in folders_frames.rglob("img_00001.*")})[:clips]
    if not folders:
        raise MienetError(f"no frame folders in {folders_frames}")
    out = work / "containers"
    out.mkdir(parents=True, exist_ok=True)
    packs, tars, counts = [], [], []
    for k, folder in enumerate(folders):
        files = sorted(folder.glob("img_*"))
        counts.append(len(files))
        packs.append(write_pack(out / f"c{k}.frames", [f.read_bytes() for f in files]))
        tars.append(out / f"c{k}.tar")
        with tarfile.open(tars[-1], "w", format=tarfile.USTAR_FORMAT) as tar:
            for f in files:
                tar.add(f, arcname=f.name)
    rng = random.Random(seed)
    picks = [(k, sorted(rng.sample(range(counts[k]), min(per_clip, counts[k]))))
             for k in (rng.randrange(len(folders)) for _ in range(reads))]

    def read_folder(k, sel):
        out_ = []
        for i in sel:
            with open(folders[k] / FRAME_TEMPLATE.format(i + 1), "rb") as fh:
                out_.append(fh.read())
        return out_

    def read_tar(k, sel):
        with tarfile.open(tars[k], "r:") as tar:
            return [tar.extractfile(FRAME_TEMPLATE.format(i + 1)).read() for i in sel]

    readers = {"folder (one file per frame)": read_folder, "pack (mienet.data.pack)":
               lambda k, sel: read_frames(packs[k], sel), "tar (tarfile, no index)": read_tar}
    result = {}
    for name, fn in readers.items():
        best = math.inf
        for _ in range(3):
            start = time.perf_counter()
            for k, sel in picks:
                fn(k, sel)
            best = min(best, time.perf_counter() - start)
        result[name] = round(len(picks) / best, 1)
    assert read_folder(*picks[0]) == read_frames(packs[picks[0][0]], picks[0][1]) == read_tar(*picks[0])
    shutil.rmtree(out, ignore_errors=True)
    return {"clips": len(folders), "reads": len(picks), "frames_per_read": per_clip,
            "clips_per_s": result, "page_cache": "warm"}


# --------------------------------------------------------------------------- one size, one layout


def measure_one(work: Path, repo: Path, n: int, layout: str, opts) -> tuple[dict, Path]:
    project = work / f"project_{n}_{layout}"
    videos = project / "videos"
    params = write_project(project, repo, videos, layout, opts.jobs)
    link_videos(work / "synth", videos, n, opts.classes)
    frames_dir = project / "datasets" / DATASET / "frames"
    row: dict = {"clips": n, "layout": layout}
    print(f"bench scale: {n} clips, {layout}: extracting", file=sys.stderr, flush=True)
    summary = extract_frames(videos, frames_dir, jobs=opts.jobs, progress=False, layout=layout)
    if summary["failed"]:
        raise MienetError(f"extraction failed for {summary['failed']} clips: {summary['failures'][:3]}")
    row["frames"] = summary["frames"]
    row["extract_s"] = summary["seconds"]
    row["extract_frames_per_s"] = round(summary["frames"] / summary["seconds"], 1)
    row["extract_clips_per_s"] = round(n / summary["seconds"], 2)
    row.update(folder_usage(frames_dir))

    if opts.workers:
        print(f"bench scale: {n} clips, {layout}: loader", file=sys.stderr, flush=True)
        list_file = project / "datasets" / DATASET / "all.txt"
        clip_list(frames_dir, list_file)
        row["loader"] = loader_by_workers(list_file, frames_dir.parent, opts.workers, opts.segments,
                                          opts.frames_per_segment, opts.crop, opts.batch, opts.batches)

    if not opts.no_snakemake:
        print(f"bench scale: {n} clips, {layout}: snakemake -n", file=sys.stderr, flush=True)
        smk = [_tool("snakemake"), "-n", "reproduce_all", "--quiet", "rules"]
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        first = _timed(smk, project, env)
        row["snakemake_n_first_s"] = round(first, 3)
        row["snakemake_n_s"] = round(min(_timed(smk, project, env) for _ in range(2)), 3)

    if not opts.no_dvc:
        dvc, env = _tool("dvc"), _dvc_env(project)
        remote = work / f"remote_{n}_{layout}"
        _timed([dvc, "init", "--no-scm", "-q"], project, env)
        # what `dvc init --no-scm`, `dvc remote add -d local REMOTE` and `dvc config core.check_update
        # false` write, without two more DVC start-ups
        (project / ".dvc" / "config").write_text(
            f"[core]\n    no_scm = True\n    remote = local\n    check_update = false\n"
            f"['remote \"local\"']\n    url = {remote}\n", encoding="utf-8")
        rel = frames_dir.relative_to(project)
        print(f"bench scale: {n} clips, {layout}: dvc add", file=sys.stderr, flush=True)
        row["dvc_add_s"] = round(_timed([dvc, "add", "-q", str(rel)], project, env), 3)
        print(f"bench scale: {n} clips, {layout}: dvc status", file=sys.stderr, flush=True)
        status = [str(rel) + ".dvc"]
        row["dvc_status_first_s"] = round(_timed([dvc, "status", "-q", *status], project, env), 3)
        row["dvc_status_s"] = round(min(_timed([dvc, "status", "-q", *status], project, env) for _ in range(2)), 3)
        print(f"bench scale: {n} clips, {layout}: dvc push", file=sys.stderr, flush=True)
        row["dvc_push_s"] = round(_timed([dvc, "push", "-q"], project, env), 3)
        if not opts.keep:
            shutil.rmtree(remote, ignore_errors=True)
        # the same frames as the pipeline tracks them: the output of the extract stage, whose
        # dependency is the videos folder (dvc status checks both, and every other stage)
        (project / (str(rel) + ".dvc")).unlink()
        (project / "dvc.yaml").write_text(dvc_yaml_text(params), encoding="utf-8")
        print(f"bench scale: {n} clips, {layout}: dvc commit, dvc status of the pipeline", file=sys.stderr,
              flush=True)
        row["dvc_commit_stage_s"] = round(_timed([dvc, "commit", "-f", "-q", f"extract_frames_{DATASET}"],
                                                 project, env), 3)
        row["dvc_status_pipeline_s"] = round(min(_timed([dvc, "status", "-q"], project, env, ok=(0, 1))
                                                 for _ in range(2)), 3)
    return row, project


# --------------------------------------------------------------------------- command


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated non-negative integers, got {text!r}")
    return values


def _layouts(text: str) -> list[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in values if v not in LAYOUTS]
    if bad or not values:
        raise argparse.ArgumentTypeError(f"layouts must be among {', '.join(LAYOUTS)}, got {text!r}")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", type=_ints, default=[500, 2000, 8000],
                        help="dataset sizes in clips, comma-separated (default 500,2000,8000)")
    parser.add_argument("--layouts", type=_layouts, default=["packed", "folders"],
                        help="layouts to measure (default packed,folders)")
    parser.add_argument("--frames", type=int, default=SSV2_FRAMES, help="frames per clip (default 45, SSv2's mean)")
    parser.add_argument("--size", type=int, default=240, help="frame width and height (default 240, SSv2's height)")
    parser.add_argument("--classes", type=int, default=8, help="classes of the synthetic clips (2..8, default 8)")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="extraction workers (default 2)")
    parser.add_argument("--workers", type=lambda t: _ints(t) if t else [], default=[0, 2],
                        help="loader worker counts, comma-separated (default 0,2; empty: no loader measurement)")
    parser.add_argument("--segments", type=int, default=8, help="loader: T segments (default 8, the SSv2 recipe)")
    parser.add_argument("--frames-per-segment", type=int, default=TrainConfig.frames_per_segment,
                        help="loader: L frames per segment (default %(default)s, the recipes' L: MIE-Net's 8+8*4)")
    parser.add_argument("--crop", type=int, default=224, help="loader: crop size (default 224)")
    parser.add_argument("--batch", type=int, default=8, help="loader: clips per batch (default 8)")
    parser.add_argument("--batches", type=int, default=20, help="loader: timed batches (default 20)")
    parser.add_argument("--no-dvc", action="store_true", help="leave out the DVC measurements")
    parser.add_argument("--no-snakemake", action="store_true", help="leave out the snakemake -n measurement")
    parser.add_argument("--no-containers", action="store_true", help="leave out the pack/tar/folder read comparison")
    parser.add_argument("--repo", type=Path, default=Path("."),
                        help="the project whose Snakefile, workflow/ and params.yaml are copied (default .)")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="where the data is generated (default: a new temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the generated data")
    parser.add_argument("--out", type=Path, default=Path("results/bench/scale"),
                        help="output path without suffix: OUT.json and OUT.md (default results/bench/scale)")
    parser.add_argument("--refit", type=Path, default=None, metavar="JSON",
                        help="measure nothing: recompute the fits, projections and tables of an earlier "
                             "run's JSON and write them to --out")


def benchmark(opts) -> dict:
    sizes = sorted(set(opts.sizes))
    if len(sizes) < 2 or sizes[0] < 1:
        raise MienetError(f"--sizes needs at least two different positive sizes, got {opts.sizes}")
    if not 2 <= opts.classes <= 8 or min(sizes) < opts.classes:
        raise MienetError(f"--classes must be in 2..8 and at most the smallest size, got {opts.classes}")
    repo = opts.repo.resolve()
    if not opts.no_snakemake and not (repo / "Snakefile").is_file():
        raise MienetError(f"{repo} has no Snakefile: run from the project folder, pass --repo, or --no-snakemake")
    if opts.work_dir is not None:
        opts.work_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="mienet-scale-", dir=opts.work_dir))
    versions = {"opencv": cv2.__version__}
    for name in ("dvc", "snakemake"):
        try:
            versions[name] = subprocess.run([_tool(name), "--version"], capture_output=True, text=True
                                            ).stdout.strip().splitlines()[-1]
        except (MienetError, IndexError, OSError):
            versions[name] = None
    settings = {
        "sizes": sizes, "layouts": opts.layouts, "frames": opts.frames, "size": opts.size, "classes": opts.classes,
        "jobs": opts.jobs, "quality": 95, "workers": opts.workers, "segments": opts.segments,
        "frames_per_segment": opts.frames_per_segment, "crop": opts.crop, "batch": opts.batch,
        "batches": opts.batches, "work_dir": str(work),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "versions": versions,
    }
    rows: list[dict] = []
    containers = None
    started = time.perf_counter()
    try:
        print(f"bench scale: synthesising {max(sizes)} clips in {work}", file=sys.stderr, flush=True)
        synth = make_videos(work, sizes, opts.classes, opts.frames, opts.size, opts.jobs)
        for n in sizes:
            for layout in opts.layouts:
                row, project = measure_one(work, repo, n, layout, opts)
                row["jobs"] = opts.jobs
                rows.append(row)
                if (layout == "folders" and containers is None and not opts.no_containers):
                    containers = compare_containers(project / "datasets" / DATASET / "frames", work)
                if not opts.keep:
                    shutil.rmtree(project, ignore_errors=True)
                print("bench scale: " + json.dumps(row), file=sys.stderr, flush=True)
    finally:
        if not opts.keep:
            shutil.rmtree(work, ignore_errors=True)
    fits, projection = fit_and_project(rows, opts.layouts, opts.frames)
    result = {"settings": settings, "synth": synth, "rows": rows, "fit": fits, "projection": projection,
              "bytes_per_frame": bytes_per_frame(rows),
              "targets": targets(projection, opts.layouts), "containers": containers,
              "seconds": round(time.perf_counter() - started, 1), "kept": str(work) if opts.keep else None}
    return result


def run(args) -> int:
    result = refit(args.refit) if args.refit else benchmark(args)
    text = markdown(result)
    out = Path(args.out)
    write_text_atomic(out.with_suffix(".json"), json.dumps(result, indent=2) + "\n")
    write_text_atomic(out.with_suffix(".md"), text)
    print(text)
    print(f"bench scale: {result['seconds']:.0f} s; wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}"
          + (f"; data kept in {result['kept']}" if result["kept"] else ""))
    return 0
