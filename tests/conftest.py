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
