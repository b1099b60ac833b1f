"""mienet extract-frames on the real sample clips (real OpenCV, real files), in both layouts."""

from __future__ import annotations

import csv
import shutil

import cv2
import numpy as np
import pytest

from conftest import FIXTURE_FRAMES, FIXTURE_VIDEOS
from mienet.cli import main
from mienet.data import pack
from mienet.data.frames import PARTIAL_DIR, extract_frames, find_videos, video_id
from mienet.errors import MienetError


def manifest_rows(frames_dir):
    with open(frames_dir / "manifest.csv", newline="") as fh:
        return {row["id"]: row for row in csv.DictReader(fh)}


def stored_frames(frames_dir, vid, layout) -> list[bytes]:
    """The encoded frames of one video, in order, from its folder or its pack."""
    if layout == "folders":
        return [p.read_bytes() for p in sorted((frames_dir / vid).glob("img_*"))]
    return pack.read_all(frames_dir / f"{vid}.frames")


def first_image(frames_dir, vid, layout) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(stored_frames(frames_dir, vid, layout)[0], np.uint8), cv2.IMREAD_COLOR)


def exists(frames_dir, vid, layout) -> bool:
    return (frames_dir / vid).is_dir() if layout == "folders" else (frames_dir / f"{vid}.frames").is_file()


@pytest.mark.parametrize("layout", ["packed", "folders"])
@pytest.mark.parametrize("name", sorted(FIXTURE_FRAMES))
def test_every_real_clip_extracts_its_documented_frame_count(tmp_path, name, layout):
    videos = tmp_path / "v"
    videos.mkdir()
    shutil.copy(FIXTURE_VIDEOS / name, videos / name)
    summary = extract_frames(videos, tmp_path / "frames", jobs=1, progress=False, layout=layout)
    vid = name.rsplit(".", 1)[0]
    assert summary["failed"] == 0 and summary["extracted"] == 1
    if layout == "folders":
        images = sorted((tmp_path / "frames" / vid).glob("img_*"))
        assert images[0].name == "img_00001.jpg" and images[-1].name == f"img_{FIXTURE_FRAMES[name]:05d}.jpg"
        assert not (tmp_path / "frames" / f"{vid}.frames").exists()
    else:
        assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == sorted([".lock", f"{vid}.frames", "manifest.csv"])
    assert len(stored_frames(tmp_path / "frames", vid, layout)) == FIXTURE_FRAMES[name]
    first = first_image(tmp_path / "frames", vid, layout)
    row = manifest_rows(tmp_path / "frames")[vid]
    assert (int(row["width"]), int(row["height"])) == (first.shape[1], first.shape[0])
    assert int(row["frames"]) == FIXTURE_FRAMES[name] and row["status"] == "ok"


def test_ids_keep_folders_and_replace_unsafe_characters(class_videos, tmp_path):
    ids = find_videos(class_videos)
    assert set(ids) == {"jump/part_0", "jump/clip_two", "run_fast/test", "run_fast/nested/part_0",
                        "walk/demo", "walk/part_0"}
    assert video_id(class_videos / "a+b (1).mkv", class_videos) == "a_b__1_"


def test_clashing_ids_are_an_error_naming_both(tmp_path):
    (tmp_path / "v").mkdir()
    for name in ("a b.mp4", "a_b.avi"):
        shutil.copy(FIXTURE_VIDEOS / "part_0.mp4", tmp_path / "v" / name)
    with pytest.raises(MienetError, match=r"a b\.mp4 and .*a_b\.avi both map to id 'a_b'"):
        extract_frames(tmp_path / "v", tmp_path / "f", progress=False)


@pytest.mark.parametrize("layout", ["packed", "folders"])
def test_parallel_extraction_with_bad_files_and_resize(class_videos, tmp_path, capsys, layout):
    (class_videos / "walk" / "empty.mp4").write_bytes(b"")
    (class_videos / "walk" / "corrupt.mkv").write_bytes(b"\x1aE\xdf\xa3" + bytes(range(256)) * 40)
    frames = tmp_path / "frames"
    rc = main(["extract-frames", str(class_videos), "-o", str(frames), "-j", "2", "--short-side", "64",
               "--no-progress", "--layout", layout])
    out, err = capsys.readouterr()
    assert rc == 1  # something failed
    assert "6 extracted" in out and "2 failed" in out
    assert "empty.mp4: empty file" in err and "corrupt.mkv: " in err
    rows = manifest_rows(frames)
    assert rows["walk/empty"]["status"] == "failed" and rows["walk/corrupt"]["status"] == "failed"
    assert not (frames / "walk" / "empty").exists() and not (frames / "walk" / "corrupt").exists()
    assert not (frames / "walk" / "empty.frames").exists() and not (frames / "walk" / "corrupt.frames").exists()
    assert int(rows["jump/clip_two"]["frames"]) == 164
    assert len(stored_frames(frames, "jump/clip_two", layout)) == 164
    img = first_image(frames, "run_fast/test", layout)
    assert img.shape[:2] == (64, 85)  # 340x256 with the short side at 64
    assert (int(rows["run_fast/test"]["width"]), int(rows["run_fast/test"]["height"])) == (85, 64)


def test_resume_skips_finished_videos_and_discards_partial_work(class_videos, tmp_path):
    """The folders layout; tests/test_pack.py has the packed one."""
    frames = tmp_path / "frames"
    extract_frames(class_videos, frames, jobs=1, progress=False, layout="folders")
    done = frames / "walk" / "demo"
    mtimes = {p.name: p.stat().st_mtime_ns for p in done.iterdir()}
    # Simulate a run killed in the middle of two videos: one folder never renamed into place
    # (left in .partial), one finished video removed; the manifest lost too.
    shutil.rmtree(frames / "jump" / "clip_two")
    partial = frames / PARTIAL_DIR / "vkilled"
    partial.mkdir(parents=True)
    for i in range(1, 11):
        shutil.copy(frames / "jump" / "part_0" / f"img_{i:05d}.jpg", partial / f"img_{i:05d}.jpg")
    (frames / "manifest.csv").unlink()
    summary = extract_frames(class_videos, frames, jobs=2, progress=False, layout="folders")
    assert summary["extracted"] == 1 and summary["skipped"] == 5 and summary["failed"] == 0
    assert len(list((frames / "jump" / "clip_two").glob("img_*"))) == 164
    assert not (frames / PARTIAL_DIR).exists()
    assert {p.name: p.stat().st_mtime_ns for p in done.iterdir()} == mtimes  # not rewritten
    rows = manifest_rows(frames)
    assert len(rows) == 6 and int(rows["walk/demo"]["frames"]) == 280
    assert (int(rows["walk/demo"]["width"]), int(rows["walk/demo"]["height"])) == (340, 256)


def test_png_output_and_bad_options(tmp_path, capsys):
    (tmp_path / "v").mkdir()
    shutil.copy(FIXTURE_VIDEOS / "part_0.mp4", tmp_path / "v" / "p.mp4")
    assert main(["extract-frames", str(tmp_path / "v"), "-o", str(tmp_path / "f"), "--ext", "png",
                 "--no-progress", "--layout", "folders"]) == 0
    assert len(list((tmp_path / "f" / "p").glob("img_*.png"))) == 32
    assert main(["extract-frames", str(tmp_path / "v"), "-o", str(tmp_path / "g"), "--ext", "png",
                 "--no-progress"]) == 0  # packed: the same PNG files, in one pack
    pngs = pack.read_all(tmp_path / "g" / "p.frames")
    assert len(pngs) == 32 and all(d.startswith(b"\x89PNG") for d in pngs)
    assert pngs == [p.read_bytes() for p in sorted((tmp_path / "f" / "p").glob("img_*.png"))]
    assert main(["extract-frames", str(tmp_path / "nowhere"), "-o", str(tmp_path / "f")]) == 2
    assert "nowhere does not exist" in capsys.readouterr().err
    assert main(["extract-frames", str(tmp_path / "v"), "-o", str(tmp_path / "f"), "-j", "0"]) == 2
    assert "--jobs must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["extract-frames", str(tmp_path / "v"), "-o", str(tmp_path / "f"), "--layout", "tar"])
    assert "invalid choice: 'tar'" in capsys.readouterr().err


@pytest.mark.parametrize("layout", ["packed", "folders"])
def test_changed_video_or_settings_are_extracted_again(tmp_path, layout):
    videos = tmp_path / "v"
    videos.mkdir()
    shutil.copy(FIXTURE_VIDEOS / "part_0.mp4", videos / "a.mp4")
    frames = tmp_path / "f"
    assert extract_frames(videos, frames, progress=False, layout=layout)["extracted"] == 1
    assert extract_frames(videos, frames, progress=False, layout=layout)["skipped"] == 1
    shutil.copy(FIXTURE_VIDEOS / "test.avi", videos / "a.mp4")  # same id, new content
    summary = extract_frames(videos, frames, progress=False, layout=layout)
    assert summary["extracted"] == 1 and summary["frames"] == 164
    assert len(stored_frames(frames, "a", layout)) == 164
    summary = extract_frames(videos, frames, short_side=60, progress=False, layout=layout)
    assert summary["extracted"] == 1 and summary["converted"] == 0
    assert first_image(frames, "a", layout).shape[:2] == (60, 80)
    assert not (frames / PARTIAL_DIR).exists()


def test_switching_the_layout_converts_without_decoding_and_keeps_each_video_once(class_videos, tmp_path):
    frames = tmp_path / "frames"
    extract_frames(class_videos, frames, jobs=2, progress=False, layout="folders")
    before = {vid: stored_frames(frames, vid, "folders") for vid in find_videos(class_videos)}
    summary = extract_frames(class_videos, frames, jobs=2, progress=False, layout="packed")
    assert summary["converted"] == 6 and summary["extracted"] == 6 and summary["skipped"] == 0
    for vid, data in before.items():
        assert stored_frames(frames, vid, "packed") == data  # the very JPEG bytes
        assert not (frames / vid).exists()  # the folder is gone: DVC tracks each video once
    assert extract_frames(class_videos, frames, progress=False, layout="packed")["skipped"] == 6
    back = extract_frames(class_videos, frames, jobs=1, progress=False, layout="folders")
    assert back["converted"] == 6
    for vid, data in before.items():
        assert stored_frames(frames, vid, "folders") == data and not exists(frames, vid, "packed")
    assert not (frames / PARTIAL_DIR).exists()
