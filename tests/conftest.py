"""Common fixtures: the real sample videos of tests/fixtures/videos and small folders built from them."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# DVC's usage report: every dvc command would start a `dvc daemon analytics` process (about 50 in
# a run of the suite, 0.4 CPU-s each) that can reach no server here. Set before any test starts a
# process, so that every dvc, snakemake, sbatch and mienet child inherits it.
os.environ["DVC_NO_ANALYTICS"] = "1"
# The suite runs more PyTorch processes than there are cores (2 pytest workers, their trainings,
# the SLURM jobs). OpenMP's idle threads spin by default, taking the cores the others wait for:
# 3 copies of 4 test_engine trainings at once on 2 cores took 68 s (120 user-s) with spinning
# threads, 43 s (69 user-s) with OMP_WAIT_POLICY=PASSIVE; alone, 15.7 and 16.9 s. What the
# trainings compute does not change. Inherited like the line above; a value already set stays.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Real sample videos (OpenMMLab MMAction2, Apache-2.0: see tests/fixtures/videos/NOTICE).
FIXTURE_VIDEOS = REPO / "tests" / "fixtures" / "videos"
# Frame counts decoded by OpenCV, as documented in tests/fixtures/videos/README.md.
FIXTURE_FRAMES = {"test.mp4": 300, "test.avi": 164, "demo.mp4": 280, "part_0.mp4": 32}
# Names and shapes of the released SLJD MIE-Net state dict (see docs/mie-net.md).
REFERENCE_DIR = REPO / "tests" / "data" / "reference"
RELEASED_MANIFEST = REFERENCE_DIR / "mienet_r50_released_state_dict.json"


@pytest.fixture
def class_videos(tmp_path) -> Path:
    """Folder-per-class videos from the real clips, with spaces in names and a nested clip."""
    root = tmp_path / "videos"
    layout = {
        "jump/part_0.mp4": "part_0.mp4",
        "jump/clip two.avi": "test.avi",
        "run fast/test.mp4": "test.mp4",
        "run fast/nested/part 0.mp4": "part_0.mp4",
        "walk/demo.mp4": "demo.mp4",
        "walk/part_0.mp4": "part_0.mp4",
    }
    for dest, src in layout.items():
        (root / dest).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(FIXTURE_VIDEOS / src, root / dest)
    return root


def make_synthetic_dataset(root: Path, clips_per_class: int, frames: int = 20, size: int = 40,
                           val_ratio: float = 0.34, jobs: int = 2) -> Path:
    """A tiny real dataset: 3 classes of synthetic videos, their frames and annotations."""
    from mienet.data.annotations import make_annotations
    from mienet.data.frames import extract_frames
    from mienet.data.synth import synthesize

    synthesize(root / "videos", classes=3, clips_per_class=clips_per_class, frames=frames, size=size,
               seed=0, jobs=jobs, progress=False)
    extract_frames(root / "videos", root / "frames", jobs=jobs, progress=False)
    make_annotations("folder", root / "annotations", videos=root / "videos", frames=root / "frames",
                     val_ratio=val_ratio, seed=0)
    return root


@contextlib.contextmanager
def mounted_tmpfs(mount: Path, size: str):
    """A tmpfs of ``size`` (e.g. ``4m``) mounted at ``mount``: a real disk that fills up. Skips
    the test with the reason where mounting is not permitted (it needs root)."""
    import subprocess

    mount.mkdir(exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or 'not permitted'}): "
                    "the full-disk behaviour needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 4 MiB tmpfs: a real full disk for the out-of-space tests."""
    with mounted_tmpfs(tmp_path / "full", "4m") as mount:
        yield mount


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread in this process: on a shared 2-core machine, OpenMP threads that wait
    for each other make an epoch of the tiny model take seconds instead of a fraction of one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def fill(path: Path, leave: int = 0) -> None:
    """Fill the file system of ``path`` up to ``leave`` bytes free."""
    import shutil as _sh

    free = _sh.disk_usage(path).free - leave
    with open(path / ".filler", "wb") as fh:
        while free > 0:
            n = min(free, 1 << 20)
            try:
                fh.write(b"\0" * n)
                fh.flush()
            except OSError:
                break
            free -= n
