"""Issue 16, data side: full disks, byte-order marks, leaking lists, damaged frame folders,
file modes, interrupted synth, and the messages of extract-frames and make-annotations.

Everything runs for real: the `mienet` command in a subprocess, OpenCV and FFmpeg on the
sample videos, a 4 MiB tmpfs for the full disk (see conftest.small_tmpfs)."""

from __future__ import annotations

import csv
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import FIXTURE_VIDEOS, fill
from mienet.data.annotations import make_annotations, read_classes, read_frame_list
from mienet.data.frames import MANIFEST_NAME, PARTIAL_DIR, extract_frames
from mienet.data.synth import DONE_NAME, META_NAME, synthesize
from mienet.engine.dataset import ClipDataset, assert_disjoint
from mienet.errors import MienetError
from mienet.io import write_files_atomic, write_text_atomic

MIENET = Path(sys.executable).parent / "mienet"
NO_SPACE = os.strerror(errno.ENOSPC)  # "No space left on device"


def mienet(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(MIENET), *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def manifest_ids(frames: Path) -> set[str]:
    with open(frames / MANIFEST_NAME, newline="") as fh:
        return {row["id"] for row in csv.DictReader(fh)}


def fake_dataset(root: Path, classes: int = 2, clips: int = 3, frames: int = 4) -> Path:
    """Class folders of (empty) video files and frame folders of small real JPEGs: enough for
    make-annotations, which counts frames, and for ClipDataset, which decodes them."""
    image = cv2.imencode(".jpg", np.full((24, 24, 3), 128, np.uint8))[1].tobytes()
    for c in range(classes):
        for k in range(clips):
            (root / "videos" / f"c{c}").mkdir(parents=True, exist_ok=True)
            (root / "videos" / f"c{c}" / f"v{k}.mp4").write_bytes(b"")
            folder = root / "frames" / f"c{c}" / f"v{k}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(1, frames + 1):
                (folder / f"img_{i:05d}.jpg").write_bytes(image)
    return root


# --------------------------------------------------------------------------- 2: full disk

@pytest.mark.parametrize("layout", ["packed", "folders"])
@pytest.mark.parametrize("jobs", [1, 2])
def test_full_disk_during_extraction_is_one_line_and_nothing_looks_finished(small_tmpfs, tmp_path, jobs,
                                                                           layout):
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("a.mp4", "b.mp4"):
        shutil.copy(FIXTURE_VIDEOS / "part_0.mp4", videos / name)  # 32 frames, about 1 MB each
    frames = small_tmpfs / "frames"
    fill(small_tmpfs, leave=300_000)
    proc = mienet("extract-frames", videos, "-o", frames, "-j", jobs, "--no-progress", "--layout", layout)
    line = one_line(proc.stderr)
    assert proc.returncode == 1, proc.stderr
    assert line.startswith("mienet extract-frames: error: ") and NO_SPACE in line
    if layout == "folders":
        assert f"{frames}/{PARTIAL_DIR}/" in line and ".jpg" in line  # the frame that could not be written
    else:  # the pack that could not be written, by its final name
        assert f"{frames}/a.frames: " in line or f"{frames}/b.frames: " in line
    # no frame folder or pack appears finished; the partial one is gone (its space freed)
    assert not (frames / "a").exists() and not (frames / "b").exists()
    assert not (frames / "a.frames").exists() and not (frames / "b.frames").exists()
    assert not (frames / PARTIAL_DIR).exists()
    assert manifest_ids(frames) == set()


@pytest.mark.parametrize("layout", ["packed", "folders"])
def test_extraction_raises_oserror_with_errno_and_file(small_tmpfs, tmp_path, layout):
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(FIXTURE_VIDEOS / "part_0.mp4", videos / "a.mp4")
    fill(small_tmpfs, leave=100_000)
    with pytest.raises(OSError) as err:
        extract_frames(videos, small_tmpfs / "frames", progress=False, layout=layout)
    assert err.value.errno == errno.ENOSPC
    if layout == "folders":
        assert err.value.filename.startswith(str(small_tmpfs / "frames" / PARTIAL_DIR))
    else:
        assert err.value.filename == str(small_tmpfs / "frames" / "a.frames")


@pytest.mark.parametrize("layout, output", [("packed", "a.frames"), ("folders", "a")])
def test_full_disk_at_the_manifest_keeps_the_old_one(small_tmpfs, tmp_path, layout, output):
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(FIXTURE_VIDEOS / "part_0.mp4", videos / "a.mp4")
    frames = small_tmpfs / "frames"
    assert mienet("extract-frames", videos, "-o", frames, "--no-progress", "--layout", layout).returncode == 0
    before = (frames / MANIFEST_NAME).read_bytes()
    fill(small_tmpfs, leave=0)
    # only the manifest to write
    proc = mienet("extract-frames", videos, "-o", frames, "--no-progress", "--layout", layout)
    assert proc.returncode == 1
    assert one_line(proc.stderr).startswith(f"mienet extract-frames: error: {frames / MANIFEST_NAME}: {NO_SPACE}")
    assert (frames / MANIFEST_NAME).read_bytes() == before
    assert sorted(p.name for p in frames.iterdir()) == sorted([".lock", output, MANIFEST_NAME])  # no temporary file


def test_full_disk_during_make_annotations_leaves_the_old_set(small_tmpfs, tmp_path):
    root = fake_dataset(tmp_path / "ds", clips=6)
    ann = small_tmpfs / "annotations"
    args = ["make-annotations", "--format", "folder", "--videos", root / "videos", "--frames", root / "frames",
            "--val-ratio", "0.34", "-o"]
    assert mienet(*args, ann).returncode == 0
    before = {p.name: p.read_bytes() for p in ann.iterdir()}
    fill(small_tmpfs, leave=0)
    proc = mienet(*args, ann, "--seed", "7")  # another split: every file would change
    assert proc.returncode == 1
    line = one_line(proc.stderr)
    assert line.startswith(f"mienet make-annotations: error: {ann}/") and NO_SPACE in line
    assert {p.name: p.read_bytes() for p in ann.iterdir()} == before  # the old set, whole
    proc = mienet(*args, small_tmpfs / "fresh")
    assert proc.returncode == 1 and NO_SPACE in one_line(proc.stderr)
    assert not [p for p in (small_tmpfs / "fresh").rglob("*") if p.is_file()]


def test_atomic_writes_name_the_destination_on_a_full_disk(small_tmpfs):
    fill(small_tmpfs, leave=0)
    target = small_tmpfs / "out" / "metrics.json"
    with pytest.raises(OSError) as err:
        write_text_atomic(target, "x" * 100_000)
    assert (err.value.errno, err.value.filename) == (errno.ENOSPC, str(target))
    with pytest.raises(OSError) as err:
        write_files_atomic({small_tmpfs / "a.txt": "a" * 100_000, small_tmpfs / "b.txt": "b"})
    assert (err.value.errno, err.value.filename) == (errno.ENOSPC, str(small_tmpfs / "a.txt"))
    assert sorted(p.name for p in small_tmpfs.rglob("*") if p.is_file()) == [".filler"]


# --------------------------------------------------------------------------- 6: byte-order mark

def test_a_byte_order_mark_is_not_part_of_the_first_path(tmp_path):
    root = fake_dataset(tmp_path)
    lines = "frames/c0/v0 4 0\nframes/c1/v0 4 1\n"
    bom = tmp_path / "train.txt"
    bom.write_bytes(b"\xef\xbb\xbf" + lines.encode())
    assert [c.path for c in read_frame_list(bom)] == ["frames/c0/v0", "frames/c1/v0"]
    ds = ClipDataset(bom, root, num_segments=2, frames_per_segment=1, size=16)
    assert ds[0][0].shape == (1, 2, 1, 3, 16, 16)  # the frames of the first line are found
    # two lists joined with `cat`: the second mark sits at the start of a line in the middle
    joined = tmp_path / "joined.txt"
    joined.write_bytes(b"\xef\xbb\xbfframes/c0/v1 4 0\n" + b"\xef\xbb\xbfframes/c1/v1 4 1\n")
    assert [c.path for c in read_frame_list(joined)] == ["frames/c0/v1", "frames/c1/v1"]
    classes = tmp_path / "classes.txt"
    classes.write_bytes(b"\xef\xbb\xbfjump\nrun\n")
    assert read_classes(classes) == ["jump", "run"]


# --------------------------------------------------------------------------- 7: leaking lists

def test_a_clip_listed_twice_in_one_list_is_an_error(tmp_path):
    root = fake_dataset(tmp_path)
    lst = tmp_path / "train.txt"
    lst.write_text("frames/c0/v0 4 0\nframes/c0/v1 4 0\n./frames/c0/v0/ 4 0\nframes/c1/v0 4 1\n")
    with pytest.raises(MienetError) as err:
        ClipDataset(lst, root, 2)
    msg = str(err.value)
    assert msg.startswith(f"{lst} lists clips more than once")
    assert "clip frames/c0/v0 is listed twice, on lines 1 and 3" in msg  # ./frames/c0/v0/ is the same folder
    assert "frames/c0/v1" not in msg


def test_train_and_val_sharing_clips_is_an_error_naming_both_lists(tmp_path):
    root = fake_dataset(tmp_path, clips=5)
    train, val = tmp_path / "train.txt", tmp_path / "val.txt"
    clips = [f"frames/c{c}/v{k}" for c in range(2) for k in range(5)]
    train.write_text("".join(f"{p} 4 {p[8]}\n" for p in clips[:8]))
    val.write_text("".join(f"{p} 4 {p[8]}\n" for p in clips[8:]))
    a, b = ClipDataset(train, root, 2), ClipDataset(val, root, 2)
    assert_disjoint(a, b)  # disjoint: fine
    val.write_text("".join(f"{p} 4 {p[8]}\n" for p in clips[8:] + clips[:6]))
    with pytest.raises(MienetError) as err:
        assert_disjoint(a, ClipDataset(val, root, 2))
    msg = str(err.value)
    assert str(train) in msg and str(val) in msg and "share 6 clip(s)" in msg
    assert "frames/c0/v0 (train.txt line 1, val.txt line 3)" in msg
    assert "frames/c0/v4 (train.txt line 5, val.txt line 7)" in msg
    assert "frames/c1/v0" not in msg and "... and 1 more" in msg  # at most five shown


# --------------------------------------------------------------------------- 8: damaged frame folder

def test_a_frame_deleted_from_a_finished_folder_is_extracted_again(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(FIXTURE_VIDEOS / "test.avi", videos / "clip.avi")  # 164 frames
    frames = tmp_path / "frames"
    # the folders layout (tests/test_pack.py: a damaged pack is extracted again)
    assert mienet("extract-frames", videos, "-o", frames, "--no-progress", "--layout", "folders").returncode == 0
    (frames / "clip" / "img_00056.jpg").unlink()
    proc = mienet("extract-frames", videos, "-o", frames, "--no-progress", "--layout", "folders")
    assert proc.returncode == 0, proc.stderr
    assert "1 extracted (1 again: frames missing or added since), 0 already done" in proc.stdout
    assert "holds 163 of the 164 frames" in proc.stderr
    assert len(list((frames / "clip").glob("img_*.jpg"))) == 164
    again = mienet("extract-frames", videos, "-o", frames, "--no-progress", "--layout", "folders")
    assert "0 extracted, 1 already done" in again.stdout and again.stderr == ""


# --------------------------------------------------------------------------- 9: file modes

@pytest.mark.parametrize("layout", ["packed", "folders"])
@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)])
def test_outputs_get_the_umask_mode(tmp_path, umask, file_mode, dir_mode, layout):
    old = os.umask(umask)
    try:
        videos = tmp_path / "videos" / "jump"
        videos.mkdir(parents=True)
        shutil.copy(FIXTURE_VIDEOS / "part_0.mp4", videos / "a.mp4")
        shutil.copy(FIXTURE_VIDEOS / "part_0.mp4", videos / "b.mp4")
        (tmp_path / "videos" / "run").mkdir()
        shutil.copy(FIXTURE_VIDEOS / "part_0.mp4", tmp_path / "videos" / "run" / "c.mp4")
        frames = tmp_path / "frames"
        assert extract_frames(tmp_path / "videos", frames, jobs=2, progress=False, layout=layout)["failed"] == 0
        ann = tmp_path / "annotations"
        make_annotations("folder", ann, videos=tmp_path / "videos", frames=frames, val_ratio=0.5)
        write_text_atomic(tmp_path / "note.txt", "x\n")
        synthesize(tmp_path / "synth", classes=2, clips_per_class=1, frames=16, size=32, jobs=1, progress=False)
    finally:
        os.umask(old)

    def mode(p: Path) -> int:
        return p.stat().st_mode & 0o777

    frame_file = frames / "jump" / "a" / "img_00001.jpg" if layout == "folders" else frames / "jump" / "a.frames"
    outputs = [frames / MANIFEST_NAME, tmp_path / "note.txt", frame_file,
               tmp_path / "synth" / META_NAME, tmp_path / "synth" / DONE_NAME, *ann.iterdir()]
    assert {p.name: mode(p) for p in outputs} == {p.name: file_mode for p in outputs}
    # a folder renamed into place from .partial; a pack's parent folder
    assert mode(frames / "jump" / "a" if layout == "folders" else frames / "jump") == dir_mode


# --------------------------------------------------------------------------- 11: interrupted synth

def test_a_killed_synth_resumes_keeping_its_finished_clips(tmp_path):
    out = tmp_path / "videos"
    args = ["synth", out, "--classes", "2", "--clips-per-class", "12", "--frames", "40", "--size", "128",
            "-j", "1"]
    total = 24
    # SIGKILL after its 21st clip (like the OOM killer or a cluster's time limit), at a set point
    # rather than by racing it from outside
    proc = subprocess.run([str(MIENET), *map(str, args), "--debug-kill-after", "21"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, timeout=120)
    assert proc.returncode == -signal.SIGKILL
    kept = {p: p.stat().st_mtime_ns for p in out.glob("*/clip_*.mp4")}
    assert len(kept) == 21
    assert not (out / DONE_NAME).exists()  # a killed run never looks finished
    again = mienet(*args)
    assert again.returncode == 0, again.stderr
    assert f"resuming: {len(kept)} clips already in {out} are kept, {total - len(kept)} to write" in again.stderr
    assert f"{total - len(kept)} clips written, {len(kept)} skipped" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # not rewritten
    assert len(list(out.glob("*/clip_*.mp4"))) == total and not list(out.rglob(".*.tmp.mp4"))
    assert json.loads((out / DONE_NAME).read_text())["clips"] == total


def test_synth_keeps_exactly_the_requested_clips(tmp_path):
    small = dict(frames=16, size=32, jobs=1, progress=False)
    synthesize(tmp_path, classes=3, clips_per_class=3, **small)
    smaller = synthesize(tmp_path, classes=2, clips_per_class=2, **small)
    assert (smaller["written"], smaller["skipped"], smaller["removed"]) == (0, 4, 5)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.mp4")) == [
        "00_red_smooth_clockwise/clip_0000.mp4", "00_red_smooth_clockwise/clip_0001.mp4",
        "01_red_smooth_anticlockwise/clip_0000.mp4", "01_red_smooth_anticlockwise/clip_0001.mp4"]
    with pytest.raises(MienetError, match="size: 32 there, 48 now.*--restart-if-changed"):
        synthesize(tmp_path, classes=2, clips_per_class=2, **{**small, "size": 48})
    assert (tmp_path / DONE_NAME).exists()  # a refused run changes nothing
    redone = synthesize(tmp_path, classes=2, clips_per_class=2, restart_if_changed=True, **{**small, "size": 48})
    assert (redone["written"], redone["skipped"], redone["removed"]) == (4, 0, 4)
    assert json.loads((tmp_path / META_NAME).read_text())["size"] == 48


# --------------------------------------------------------------------------- 15: messages

def test_a_folder_without_videos_is_an_error_naming_it_and_the_extensions(tmp_path):
    (tmp_path / "videos" / "jump").mkdir(parents=True)
    (tmp_path / "videos" / "jump" / "notes.txt").write_text("no video here")
    proc = mienet("extract-frames", tmp_path / "videos", "-o", tmp_path / "frames")
    assert proc.returncode == 2
    assert one_line(proc.stderr) == (
        f"mienet extract-frames: error: no video found in {tmp_path / 'videos'} (looked for *.mp4, *.avi, "
        "*.webm, *.mkv, *.mov, in any letter case and in sub-folders; names starting with '.' are ignored)")


def test_ffmpeg_log_is_kept_out_of_the_terminal_and_goes_to_the_manifest(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(FIXTURE_VIDEOS / "part_0.mp4", videos / "good.mp4")
    (videos / "cut.mp4").write_bytes((FIXTURE_VIDEOS / "test.mp4").read_bytes()[:30_000])  # no moov atom
    frames = tmp_path / "frames"
    proc = mienet("extract-frames", videos, "-o", frames, "-j", "1")  # with the progress bar
    assert proc.returncode == 1
    assert "moov atom" not in proc.stderr.replace("(FFmpeg: moov atom not found)", "")
    assert "failed: " + str(videos / "cut.mp4") + ": cannot open: corrupt file or unsupported " \
           "container/codec (FFmpeg: moov atom not found)" in proc.stderr
    with open(frames / MANIFEST_NAME, newline="") as fh:
        rows = {row["id"]: row for row in csv.DictReader(fh)}
    assert rows["cut"]["status"] == "failed" and "moov atom not found" in rows["cut"]["error"]
    assert rows["good"]["status"] == "ok"


def test_missing_frames_messages_name_the_skip_missing_option(tmp_path):
    root = fake_dataset(tmp_path)
    shutil.rmtree(root / "frames" / "c1" / "v2")
    with pytest.raises(MienetError) as err:
        make_annotations("folder", tmp_path / "ann", videos=root / "videos", frames=root / "frames")
    assert "frames/c1/v2 does not exist" in str(err.value)
    assert str(err.value).endswith("1 clip(s) have no frames: extract them with `mienet extract-frames`, "
                                   "or leave them out with --skip-missing (they are then listed in skipped.txt)")
    lst = tmp_path / "list.txt"
    lst.write_text("frames/c0/v0 4 0\nframes/c1/v2 4 1\n")
    with pytest.raises(MienetError) as err:
        ClipDataset(lst, root, 2)[1]
    assert str(err.value).endswith("re-extract its frames, or leave such clips out with --skip-missing")
