"""Frame packs (mienet.data.pack) and the packed layout of extract-frames: the format, damaged
files, an interrupted extraction, and the loader reading packs with the pixels of the folders.

Real OpenCV, real files, a real killed process; nothing is mocked."""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from conftest import FIXTURE_VIDEOS
from mienet.data import pack
from mienet.data.annotations import make_annotations, read_frame_list
from mienet.data.frames import PARTIAL_DIR, clip_frames, extract_frames, read_manifest
from mienet.data.synth import synthesize
from mienet.engine.dataset import ClipDataset, build_loader
from mienet.engine.decoding import FrameReadError, decode_frames, decode_pack_frames
from mienet.errors import MienetError

MIENET = Path(sys.executable).parent / "mienet"


def jpegs(n: int, size: int = 16) -> list[bytes]:
    rng = np.random.default_rng(0)
    return [cv2.imencode(".jpg", rng.integers(0, 255, (size, size, 3), np.uint8))[1].tobytes() for _ in range(n)]


# --------------------------------------------------------------------------- the format

def test_round_trip_reads_any_frames_in_any_order(tmp_path):
    frames = jpegs(7)
    path = pack.write_pack(tmp_path / "a" / "clip.frames", frames, {"id": "clip", "frames": 7},
                           temp_dir=tmp_path / "tmp")
    assert path == tmp_path / "a" / "clip.frames" and list((tmp_path / "tmp").iterdir()) == []
    index = pack.read_index(path)
    assert index.count == 7 and index.meta == {"id": "clip", "frames": 7}
    assert list(index.lengths) == [len(f) for f in frames]
    assert pack.read_all(path) == frames
    assert pack.read_frames(path, [6, 0, 3, 3, 4]) == [frames[6], frames[0], frames[3], frames[3], frames[4]]
    assert pack.read_frames(tmp_path / "absent.frames", [0]) is None  # no pack: the caller looks for a folder
    data = path.read_bytes()
    assert data[:8] == pack.HEAD_MAGIC and data[-8:] == pack.TAIL_MAGIC
    assert struct.unpack_from("<H", data, 8)[0] == pack.VERSION
    assert data[16:16 + len(frames[0])] == frames[0]  # the frames themselves, byte for byte
    with pytest.raises(pack.PackError, match=r"frame 8 of .*clip\.frames: the pack holds 7 frames"):
        pack.read_frames(path, [7])
    assert pack.pack_path(tmp_path / "frames" / "x") == tmp_path / "frames" / "x.frames"


def test_many_frames_need_a_second_read_of_the_index(tmp_path):
    frames = [bytes([i % 256]) * (1 + i % 5) for i in range(600)]  # an index of 9.6 KB > TAIL_READ
    path = pack.write_pack(tmp_path / "long.frames", frames)
    assert pack.read_index(path).count == 600
    assert pack.read_frames(path, [0, 599, 300]) == [frames[0], frames[599], frames[300]]


def test_a_writer_left_unfinished_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with pack.PackWriter(tmp_path / "p.frames", tmp_path / "tmp") as writer:
            writer.add(b"\xff\xd8abc\xff\xd9")
            raise RuntimeError("killed")
    assert not (tmp_path / "p.frames").exists() and list((tmp_path / "tmp").iterdir()) == []
    with pytest.raises(ValueError, match="at least one frame"):
        pack.write_pack(tmp_path / "empty.frames", [])
    assert not (tmp_path / "empty.frames").exists()


@pytest.mark.parametrize("damage, words", [
    ("cut", "no end marker: the file is cut short"),
    ("cut_in_frames", "no end marker: the file is cut short"),
    ("index", "the index fails its checksum"),
    ("frame", "frame 3 of {path}: the frame's bytes fail their checksum"),
    ("tiny", "only 5 bytes"),
    ("jpeg", "no end marker"),
    ("grown", "does not end where the file ends"),
])
def test_a_damaged_pack_is_an_error_naming_the_file_and_the_frame(tmp_path, damage, words):
    frames = jpegs(5)
    path = pack.write_pack(tmp_path / "clip.frames", frames)
    data = bytearray(path.read_bytes())
    if damage == "cut":
        data = data[:-7]
    elif damage == "cut_in_frames":
        data = data[:16 + len(frames[0]) + 10]
    elif damage == "index":
        data[pack.read_index(path).offsets[-1] + len(frames[-1]) + 3] ^= 0xFF
    elif damage == "frame":
        data[pack.read_index(path).offsets[2] + 40] ^= 0x01
    elif damage == "tiny":
        data = data[:5]
    elif damage == "jpeg":
        data = bytearray(frames[0])
    elif damage == "grown":
        data = data[:-32] + b"\0" * 64 + data[-32:]
    path.write_bytes(bytes(data))
    with pytest.raises(pack.PackError) as err:
        pack.read_frames(path, [0, 2, 4])
    message = str(err.value)
    assert words.format(path=path) in message and str(path) in message and "re-extract" in message
    # the loader's error names the pack and the frame as well
    with pytest.raises(FrameReadError) as err:
        decode_pack_frames(path, [0, 2, 4])
    assert str(path) in str(err.value) and (damage != "frame" or "frame 3 of" in str(err.value))


def test_an_undecodable_frame_in_a_pack_is_named(tmp_path):
    good = jpegs(2)
    path = pack.write_pack(tmp_path / "c.frames", [good[0], good[1][: len(good[1]) // 2]])  # checksum fine
    assert decode_pack_frames(path, [0]).shape == (1, 3, 16, 16)
    with pytest.raises(FrameReadError, match=rf"cannot read frame 2 of {path}: truncated JPEG"):
        decode_pack_frames(path, [0, 1])


# --------------------------------------------------------------------------- extraction

def kill_when(proc: subprocess.Popen, ready, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_a_killed_extraction_resumes_skipping_finished_packs_and_redoing_the_rest(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    for k in range(8):
        shutil.copy(FIXTURE_VIDEOS / "test.mp4", videos / f"v{k}.mp4")  # 300 frames each
    frames = tmp_path / "frames"
    proc = subprocess.Popen([str(MIENET), "extract-frames", str(videos), "-o", str(frames), "-j", "1",
                             "--no-progress"], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kill_when(proc, lambda: len(list(frames.glob("*.frames"))) >= 2)
    finished = {p.name: p.stat().st_mtime_ns for p in frames.glob("*.frames")}
    assert 2 <= len(finished) < 8
    for name in finished:  # what looks finished is finished: complete, undamaged packs
        assert pack.read_index(frames / name).count == 300
    # a partial pack of the killed run (the video being written) lies in .partial, never in place;
    # make sure there is one, as a kill between two videos would leave none
    (frames / PARTIAL_DIR).mkdir(exist_ok=True)
    (frames / PARTIAL_DIR / ".v7.frames.deadbeef.tmp").write_bytes(pack.HEAD_MAGIC + b"\0" * 5000)
    summary = extract_frames(videos, frames, jobs=2, progress=False)
    assert summary["skipped"] == len(finished) and summary["extracted"] == 8 - len(finished)
    assert summary["failed"] == 0 and summary["redone"] == []
    assert {p.name: p.stat().st_mtime_ns for p in frames.glob("*.frames") if p.name in finished} == finished
    assert sorted(p.name for p in frames.iterdir()) == sorted(
        [".lock", "manifest.csv", *(f"v{k}.frames" for k in range(8))])  # .partial gone
    assert all(r.frames == 300 and r.status == "ok" for r in read_manifest(frames).values())


def test_a_damaged_pack_is_extracted_again(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(FIXTURE_VIDEOS / "part_0.mp4", videos / "a.mp4")
    shutil.copy(FIXTURE_VIDEOS / "test.avi", videos / "b.avi")
    frames = tmp_path / "frames"
    assert extract_frames(videos, frames, progress=False)["extracted"] == 2
    good = (frames / "a.frames").read_bytes()
    (frames / "a.frames").write_bytes(good[: len(good) // 2])  # cut short behind our back
    proc = subprocess.run([str(MIENET), "extract-frames", str(videos), "-o", str(frames), "--no-progress"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "1 extracted (1 again: frames missing or added since), 1 already done" in proc.stdout
    assert f"{frames / 'a.frames'} is damaged (no end marker" in proc.stderr
    assert (frames / "a.frames").read_bytes() == good  # the same encoder output again
    again = subprocess.run([str(MIENET), "extract-frames", str(videos), "-o", str(frames), "--no-progress"],
                           capture_output=True, text=True)
    assert "0 extracted, 2 already done" in again.stdout and again.stderr == ""


# --------------------------------------------------------------------------- the loader

@pytest.fixture(scope="module")
def both_layouts(tmp_path_factory) -> tuple[Path, Path]:
    """The same synthetic clips extracted twice, packed and as folders, with one set of lists."""
    base = tmp_path_factory.mktemp("layouts")
    synthesize(base / "videos", classes=3, clips_per_class=2, frames=20, size=48, jobs=2, progress=False)
    roots = []
    for layout in ("packed", "folders"):
        root = base / layout
        extract_frames(base / "videos", root / "frames", jobs=2, progress=False, layout=layout)
        make_annotations("folder", root / "annotations", videos=base / "videos", frames=root / "frames",
                         val_ratio=0.5, seed=0)
        roots.append(root)
    return roots[0], roots[1]


def test_both_layouts_give_the_same_lists_and_bit_identical_pixels(both_layouts):
    packed, folders = both_layouts
    for split in ("train", "val"):
        assert (packed / "annotations" / f"{split}.txt").read_text() == \
            (folders / "annotations" / f"{split}.txt").read_text()  # list path = video id, in either layout
    clips = read_frame_list(packed / "annotations" / "train.txt")
    for clip in clips:
        assert not (packed / clip.path).exists() and (packed / f"{clip.path}.frames").is_file()
        assert clip_frames(packed / clip.path) == ("packed", clip.frames)
        assert clip_frames(folders / clip.path) == ("folders", clip.frames)
        files = [folders / clip.path / f"img_{i:05d}.jpg" for i in range(1, clip.frames + 1)]
        assert pack.read_all(packed / f"{clip.path}.frames") == [f.read_bytes() for f in files]
        assert torch.equal(decode_pack_frames(packed / f"{clip.path}.frames", range(clip.frames)),
                           decode_frames(files))
    for train in (True, False):
        kwargs = dict(num_segments=3, frames_per_segment=4, size=32, train=train)
        if not train:
            kwargs.update(num_clips=2, num_crops=3)
        a = ClipDataset(packed / "annotations" / "train.txt", packed, **kwargs)
        b = ClipDataset(folders / "annotations" / "train.txt", folders, **kwargs)
        cached = ClipDataset(packed / "annotations" / "train.txt", packed, cache_frames=True, **kwargs)
        for i in range(len(a)):
            for seed in (0, 5):
                x = a[(i, seed)][0]
                assert torch.equal(x, b[(i, seed)][0])
                assert torch.equal(x, cached[(i, seed)][0]) and torch.equal(x, cached[(i, seed)][0])
        assert len(cached.cache) > 0 and all(isinstance(k, Path) for k in cached.cache)


def test_the_loader_reads_packs_with_workers_and_a_mixed_dataset(both_layouts, tmp_path):
    packed, folders = both_layouts
    ds = ClipDataset(packed / "annotations" / "train.txt", packed, 3, size=32, train=True)
    serial = build_loader(ds, batch_size=2, shuffle=True, seed=3, workers=0)
    parallel = build_loader(ds, batch_size=2, shuffle=True, seed=3, workers=2)
    serial.sampler.set_epoch(0)
    parallel.sampler.set_epoch(0)
    for a, b in zip(serial, parallel):
        assert torch.equal(a[0], b[0]) and torch.equal(a[2], b[2])
    # a root holding some clips as packs and others as folders
    mixed = tmp_path / "mixed"
    shutil.copytree(packed, mixed)
    clips = read_frame_list(mixed / "annotations" / "train.txt")
    moved = clips[0].path
    (mixed / f"{moved}.frames").unlink()
    shutil.copytree(folders / moved, mixed / moved)
    m = ClipDataset(mixed / "annotations" / "train.txt", mixed, 3, size=32)
    f = ClipDataset(folders / "annotations" / "train.txt", folders, 3, size=32)
    assert all(torch.equal(m[i][0], f[i][0]) for i in range(len(m)))
    # neither a pack nor a folder: the error says both were looked for
    shutil.rmtree(mixed / moved)
    with pytest.raises(MienetError) as err:
        m[0]
    assert f"neither the frame pack {mixed / moved}.frames nor the frame folder exists" in str(err.value)
    assert f"clip {moved}" in str(err.value)
