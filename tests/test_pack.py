"""Frame packs (mienet.data.pack) and the packed layout of extract-frames: the format (a ZIP of
stored members, read by zipfile and unzip; the version 1 packs of before), damaged files, an
interrupted extraction, and the loader reading packs with the pixels of the folders.

Real OpenCV, real files, a real killed process; nothing is mocked. No test polls with a
deadline: the killed extraction is killed when inotify reports its packs renamed into place."""

from __future__ import annotations

import ctypes
import hashlib
import itertools
import json
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import zipfile
import zlib
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
LEGACY_PACK = Path(__file__).parent / "fixtures" / "packs" / "legacy_v1.frames"  # written by mienet's v1 writer


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
    assert index.count == 7 and index.meta == {"id": "clip", "frames": 7} and not index.legacy
    assert list(index.lengths) == [len(f) for f in frames]
    assert pack.read_all(path) == frames
    assert pack.read_frames(path, [6, 0, 3, 3, 4]) == [frames[6], frames[0], frames[3], frames[3], frames[4]]
    assert pack.read_frames(tmp_path / "absent.frames", [0]) is None  # no pack: the caller looks for a folder
    with pytest.raises(pack.PackError, match=r"frame 8 of .*clip\.frames: the pack holds 7 frames"):
        pack.read_frames(path, [7])
    assert pack.pack_path(tmp_path / "frames" / "x") == tmp_path / "frames" / "x.frames"
    # the same frames and meta give the same file
    again = pack.write_pack(tmp_path / "b.frames", frames, {"frames": 7, "id": "clip"})
    assert again.read_bytes() == path.read_bytes()


def test_a_pack_is_a_zip_of_stored_frames_that_zipfile_reads(tmp_path):
    frames = jpegs(5)
    path = pack.write_pack(tmp_path / "clip.frames", frames, {"id": "clip"})
    data = path.read_bytes()
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == [f"img_{i:05d}.jpg" for i in range(1, 6)]  # the folder layout's names
        assert zf.testzip() is None  # every member's CRC-32 checks out
        assert json.loads(zf.comment) == {"id": "clip"}
        for info, frame in zip(zf.infolist(), frames):
            assert info.compress_type == zipfile.ZIP_STORED and info.file_size == len(frame)
            assert zf.read(info) == frame
            assert data[info.header_offset + 30 + len(info.filename):][:len(frame)] == frame  # byte for byte
            assert info.date_time == (1980, 1, 1, 0, 0, 0) and info.external_attr >> 16 == 0o644
    assert data[:4] == b"PK\x03\x04" and pack.read_index(path).stride  # records of one length: the fast path
    png = cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))[1]
    with zipfile.ZipFile(pack.write_pack(tmp_path / "p.frames", [png])) as zf:
        assert zf.namelist() == ["img_00001.png"]


@pytest.mark.skipif(shutil.which("unzip") is None, reason="no unzip binary here (zipfile is checked above)")
def test_unzip_lists_and_tests_a_pack(tmp_path):
    frames = jpegs(3)
    path = pack.write_pack(tmp_path / "clip.frames", frames, {"id": "clip"})
    listed = subprocess.run(["unzip", "-lv", str(path)], capture_output=True, text=True, check=True).stdout
    for i, frame in enumerate(frames, start=1):
        assert f"Stored {len(frame)}" in " ".join(listed.split()) and f"img_{i:05d}.jpg" in listed
    tested = subprocess.run(["unzip", "-t", str(path)], capture_output=True, text=True)
    assert tested.returncode == 0 and "No errors detected" in tested.stdout
    subprocess.run(["unzip", "-q", str(path), "-d", str(tmp_path / "out")], check=True)
    assert [(tmp_path / "out" / f"img_{i:05d}.jpg").read_bytes() for i in (1, 2, 3)] == frames


def test_an_old_pack_is_still_read():
    """A version 1 pack (MIEFRMS ... MIEFEND), written by the writer this format replaced."""
    assert LEGACY_PACK.read_bytes()[:8] == pack.HEAD_MAGIC and LEGACY_PACK.read_bytes()[-8:] == pack.TAIL_MAGIC
    index = pack.read_index(LEGACY_PACK)
    assert index.legacy and index.count == 3 and pack.frame_count(LEGACY_PACK) == 3
    assert index.meta["id"] == "legacy" and pack.read_meta(LEGACY_PACK)["frames"] == 3
    frames = pack.read_all(LEGACY_PACK)
    assert [hashlib.sha256(f).hexdigest() for f in frames] == index.meta["sha256"]
    assert pack.read_frames(LEGACY_PACK, [2, 0, 2]) == [frames[2], frames[0], frames[2]]
    assert decode_pack_frames(LEGACY_PACK, [0, 2]).shape == (2, 3, 16, 16)
    assert v1_pack(frames, index.meta) == LEGACY_PACK.read_bytes()  # what the next tests write is such a pack


def v1_pack(frames: list[bytes], meta: dict) -> bytes:
    """The bytes of a version 1 pack of ``frames`` (docs/scale.md has the format)."""
    offsets = itertools.accumulate((len(f) for f in frames[:-1]), initial=pack.HEAD_SIZE)
    table = b"".join(struct.pack("<QII", o, len(f), zlib.crc32(f)) for o, f in zip(offsets, frames))
    table += json.dumps(meta, sort_keys=True).encode()
    foot = struct.pack("<QIIII8s", pack.HEAD_SIZE + sum(map(len, frames)), len(frames),
                       len(table) - pack.ENTRY_SIZE * len(frames), zlib.crc32(table), pack.VERSION, pack.TAIL_MAGIC)
    return struct.pack("<8sH6x", pack.HEAD_MAGIC, pack.VERSION) + b"".join(frames) + table + foot


def test_extract_frames_keeps_an_old_pack_and_the_loader_reads_it(tmp_path):
    videos, frames = tmp_path / "videos", tmp_path / "frames"
    videos.mkdir()
    shutil.copy(FIXTURE_VIDEOS / "part_0.mp4", videos / "a.mp4")
    assert extract_frames(videos, frames, progress=False)["extracted"] == 1
    path = frames / "a.frames"
    index = pack.read_index(path)
    jpgs = pack.read_all(path)
    old = v1_pack(jpgs, index.meta)  # the pack as the release before wrote it
    path.write_bytes(old)
    assert pack.read_index(path).legacy and pack.read_all(path) == jpgs
    summary = extract_frames(videos, frames, progress=False)
    assert (summary["skipped"], summary["extracted"], summary["redone"]) == (1, 0, [])
    assert path.read_bytes() == old and clip_frames(frames / "a") == ("packed", index.count)
    assert torch.equal(decode_pack_frames(path, [0, 5]), decode_frames_of(jpgs, [0, 5], tmp_path))
    # converted without decoding (docs/scale.md): a ZIP with the same frames and meta, still finished
    proc = subprocess.run([sys.executable, "-m", "mienet.data.pack", str(frames)], capture_output=True, text=True)
    assert proc.returncode == 0 and f"1 version 1 pack(s) under {frames} rewritten" in proc.stdout, proc.stderr
    after = pack.read_index(path)
    assert not after.legacy and after.meta == index.meta and pack.read_all(path) == jpgs
    assert pack.upgrade_folder(frames) == [] and sorted(p.name for p in frames.iterdir()) == \
        [".lock", "a.frames", "manifest.csv"]
    assert extract_frames(videos, frames, progress=False)["skipped"] == 1


def decode_frames_of(jpgs: list[bytes], indices: list[int], folder: Path) -> torch.Tensor:
    """The frames ``indices`` decoded from image files holding ``jpgs``."""
    files = []
    for i in indices:
        files.append(folder / f"img_{i + 1:05d}.jpg")
        files[-1].write_bytes(jpgs[i])
    return decode_frames(files)


def test_a_damaged_old_pack_is_an_error(tmp_path):
    data = bytearray(LEGACY_PACK.read_bytes())
    path = tmp_path / "old.frames"
    index = pack.read_index(LEGACY_PACK)
    for damage, words in (("index", "the index fails its checksum"), ("frame", "frame 2 of {path}: the frame's "
                                                                                 "bytes fail their checksum"),
                          ("cut", "no end marker: the file is cut short")):
        broken = bytearray(data)
        if damage == "index":
            broken[index.limit + 5] ^= 0xFF
        elif damage == "frame":
            broken[index.offsets[1] + 100] ^= 0x01
        else:
            broken = broken[:-3]
        path.write_bytes(bytes(broken))
        with pytest.raises(pack.PackError) as err:
            pack.read_frames(path, [0, 1, 2])
        assert words.format(path=path) in str(err.value) and "re-extract" in str(err.value)


def test_many_frames_need_a_second_read_of_the_central_directory(tmp_path):
    frames = [bytes([i % 256]) * (1 + i % 5) for i in range(600)]  # a directory of 35 KB > TAIL_READ
    path = pack.write_pack(tmp_path / "long.frames", frames)
    assert pack.read_index(path).count == 600
    assert pack.read_frames(path, [0, 599, 300]) == [frames[0], frames[599], frames[300]]
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist()[599] == "img_00600.bin"


def test_zips_the_fast_path_does_not_cover_are_read_by_zipfile(tmp_path):
    """Names of different lengths, extra fields, ZIP64 (over 65,535 frames): zipfile indexes them."""
    frames = jpegs(3)
    other = tmp_path / "other.frames"
    with zipfile.ZipFile(other, "w") as zf:  # as `zip -0` would: any names, extra fields
        for name, frame in zip(("a.jpg", "bb.jpg", "ccc.jpg"), frames):
            info = zipfile.ZipInfo(name)
            info.extra = struct.pack("<HH4s", 0xCAFE, 4, b"mine")
            zf.writestr(info, frame)
    index = pack.read_index(other)
    assert not index.stride and index.count == 3 and index.meta == {}
    assert pack.read_frames(other, [2, 0]) == [frames[2], frames[0]]
    many = [bytes([i % 251 + 1]) for i in range(0x10000 + 2)]
    big = pack.write_pack(tmp_path / "big.frames", many, {"n": len(many)})
    assert b"PK\x06\x06" in big.read_bytes()[-200:]  # the ZIP64 end record
    assert pack.frame_count(big) == len(many) and pack.read_frames(big, [0, 0x10001]) == [many[0], many[-1]]


def test_a_writer_left_unfinished_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with pack.PackWriter(tmp_path / "p.frames", tmp_path / "tmp") as writer:
            writer.add(b"\xff\xd8abc\xff\xd9")
            raise RuntimeError("killed")
    assert not (tmp_path / "p.frames").exists() and list((tmp_path / "tmp").iterdir()) == []
    with pytest.raises(ValueError, match="at least one frame"):
        pack.write_pack(tmp_path / "empty.frames", [])
    assert not (tmp_path / "empty.frames").exists()
    with pytest.raises(MienetError, match="do not fit a frame pack"):
        pack.write_pack(tmp_path / "m.frames", jpegs(1), {"x": "y" * pack.MAX_META})  # the meta is a ZIP comment
    assert not (tmp_path / "m.frames").exists() and [p.name for p in tmp_path.iterdir()] == ["tmp"]


def _central_record(path: Path, frame: int) -> int:
    """Where the central directory record of ``frame`` (1-based) starts in the pack ``path``."""
    index = pack.read_index(path)
    return index.limit + (frame - 1) * index.stride


@pytest.mark.parametrize("damage, words", [
    ("cut", "no end marker: the file is cut short"),
    ("cut_in_frames", "no end marker: the file is cut short"),
    ("directory_crc", "frame 3 of {path}: the frame's bytes fail their checksum"),  # the directory's CRC
    ("directory_offset", "frame 3 of {path}: no member header where the central directory places it"),
    ("directory_method", "frame 3 of {path}: the member is compressed (method 8)"),
    ("directory_far", "frame 3 of {path}: the central directory places the member where there is no room"),
    ("frame", "frame 3 of {path}: the frame's bytes fail their checksum"),
    ("tiny", "only 5 bytes"),
    ("jpeg", "no end marker"),
    ("grown", "does not end where the end record starts"),
    ("empty", "the archive holds no frames"),
])
def test_a_damaged_pack_is_an_error_naming_the_file_and_the_frame(tmp_path, damage, words):
    frames = jpegs(5)
    path = pack.write_pack(tmp_path / "clip.frames", frames, {"id": "clip"})
    data = bytearray(path.read_bytes())
    end = len(data) - 22 - len(json.dumps({"id": "clip"}))  # the end record
    if damage == "cut":
        data = data[:-7]
    elif damage == "cut_in_frames":
        data = data[:30 + 13 + len(frames[0]) + 10]
    elif damage == "directory_crc":
        data[_central_record(path, 3) + 16] ^= 0x01
    elif damage == "directory_offset":
        data[_central_record(path, 3) + 42] ^= 0x01
    elif damage == "directory_method":
        data[_central_record(path, 3) + 10] = 8
    elif damage == "directory_far":  # frame 4 far away: frame 3 would run to there
        data[_central_record(path, 4) + 42:_central_record(path, 4) + 46] = struct.pack("<I", 0x7FFFFFFF)
    elif damage == "frame":
        data[pack.read_index(path).offsets[2] + 30 + 13 + 40] ^= 0x01
    elif damage == "tiny":
        data = data[:5]
    elif damage == "jpeg":
        data = bytearray(frames[0])
    elif damage == "grown":
        data = data[:end] + b"\0" * 64 + data[end:]
    elif damage == "empty":
        zipfile.ZipFile(path, "w").close()
        data = bytearray(path.read_bytes())
    path.write_bytes(bytes(data))
    with pytest.raises(pack.PackError) as err:
        pack.read_frames(path, [0, 2, 4])
    message = str(err.value)
    assert words.format(path=path) in message and str(path) in message and "re-extract" in message
    if damage == "frame":  # a standard tool finds the same damage
        with zipfile.ZipFile(path) as zf:
            assert zf.testzip() == "img_00003.jpg"
    # the loader's error names the pack and the frame as well
    with pytest.raises(FrameReadError) as err:
        decode_pack_frames(path, [0, 2, 4])
    assert str(path) in str(err.value) and ("frame 3" not in words or "frame 3 of" in str(err.value))


def test_an_undecodable_frame_in_a_pack_is_named(tmp_path):
    good = jpegs(2)
    path = pack.write_pack(tmp_path / "c.frames", [good[0], good[1][: len(good[1]) // 2]])  # checksum fine
    assert decode_pack_frames(path, [0]).shape == (1, 3, 16, 16)
    with pytest.raises(FrameReadError, match=rf"cannot read frame 2 of {path}: truncated JPEG"):
        decode_pack_frames(path, [0, 1])


# --------------------------------------------------------------------------- extraction

IN_MOVED_TO = 0x80  # inotify(7): a file renamed into the watched folder
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, length of the name that follows


class RenamedInto:
    """The names of files renamed into a folder, as inotify reports them: waiting on the file
    system, not polling it."""

    def __init__(self, folder: Path):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_CLOEXEC)
        if self.fd < 0 or self.libc.inotify_add_watch(self.fd, os.fsencode(folder), IN_MOVED_TO) < 0:
            raise OSError(ctypes.get_errno(), "inotify", str(folder))

    def read(self) -> list[str]:
        buf, names, at = os.read(self.fd, 1 << 16), [], 0
        while at < len(buf):
            length = _EVENT.unpack_from(buf, at)[3]
            names.append(buf[at + _EVENT.size:at + _EVENT.size + length].rstrip(b"\0").decode())
            at += _EVENT.size + length
        return names

    def close(self) -> None:
        os.close(self.fd)


def kill_after(proc: subprocess.Popen, watch: RenamedInto, packs: int) -> None:
    """SIGKILL ``proc``'s group once ``packs`` packs are renamed into place. Waits on the folder
    and on the process (a pidfd): a run that ends first fails the test at once."""
    pidfd = os.pidfd_open(proc.pid)
    seen: set[str] = set()
    try:
        while len(seen) < packs:
            ready, _, _ = select.select([watch.fd, pidfd], [], [], 600)  # a hang guard only
            assert watch.fd in ready, "the run ended (or hung) before it could be killed"
            seen.update(name for name in watch.read() if name.endswith(pack.PACK_SUFFIX))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        os.close(pidfd)


def test_a_killed_extraction_resumes_skipping_finished_packs_and_redoing_the_rest(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    for k in range(8):
        shutil.copy(FIXTURE_VIDEOS / "test.mp4", videos / f"v{k}.mp4")  # 300 frames each
    frames = tmp_path / "frames"
    frames.mkdir()
    watch = RenamedInto(frames)
    try:
        proc = subprocess.Popen([str(MIENET), "extract-frames", str(videos), "-o", str(frames), "-j", "1",
                                 "--no-progress"], start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        kill_after(proc, watch, 2)
    finally:
        watch.close()
    finished = {p.name: p.stat().st_mtime_ns for p in frames.glob("*.frames")}
    assert 2 <= len(finished) < 8
    for name in finished:  # what looks finished is finished: complete, undamaged packs
        assert pack.read_index(frames / name).count == 300
    # a partial pack of the killed run (the video being written) lies in .partial, never in place;
    # make sure there is one, as a kill between two videos would leave none
    (frames / PARTIAL_DIR).mkdir(exist_ok=True)
    (frames / PARTIAL_DIR / ".v7.frames.deadbeef.tmp").write_bytes(b"PK\x03\x04" + b"\0" * 5000)
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
