"""Shared fixtures: the real sample videos of ../shared and small folders built from them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MIENET_SHARED", REPO.parent / "shared"))
FIXTURE_VIDEOS = SHARED / "fixtures" / "videos"
# Frame counts decoded by OpenCV, as documented in shared/fixtures/videos/README.md.
FIXTURE_FRAMES = {"test.mp4": 300, "test.avi": 164, "demo.mp4": 280, "part_0.mp4": 32}


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    assert SHARED.is_dir(), f"shared folder not found at {SHARED} (set MIENET_SHARED)"
    return SHARED


@pytest.fixture
def class_videos(tmp_path, shared_dir) -> Path:
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
