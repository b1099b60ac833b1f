"""The byte path of ``decode: gpu`` on the CPU: workers hand JPEG bytes and drawn augmentations,
the training process decodes a batch in one call and assembles the clips. On the real sample
videos (tests/fixtures/videos), packed and in folders, as `mienet extract-frames` writes them.
The GPU itself (nvJPEG) is exercised by workflow/scripts/gpu_checks.sh on a GPU machine."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from conftest import FIXTURE_VIDEOS
from mienet.data.frames import extract_frames
from mienet.data.pack import read_frames
from mienet.engine.dataset import ClipDataset, EncodedBatch, EncodedClip, build_loader
from mienet.engine.decoding import decode_pack_frames
from mienet.engine.jpeg import PIXEL_TOLERANCE, JpegError, decode_jpegs, jpeg_size, resolve_decode
from mienet.engine.performance import SpeedConfig, to_device
from mienet.errors import MienetError

SIZE = 64  # crop


def clip_folders(root: Path) -> list[Path]:
    return sorted(p for p in (root / "folders").iterdir() if p.is_dir() and not p.name.startswith("."))


@pytest.fixture(scope="module")
def frames_root(tmp_path_factory) -> Path:
    """The four sample videos at short side 96: packs, one clip also as a folder, and a list."""
    root = tmp_path_factory.mktemp("jpeg")
    videos = root / "videos"
    videos.mkdir()
    for video in FIXTURE_VIDEOS.glob("*.*"):
        if video.suffix in (".mp4", ".avi"):  # test.mp4 and test.avi would share the id "test"
            shutil.copy(video, videos / f"{video.stem}_{video.suffix[1:]}{video.suffix}")
    extract_frames(videos, root / "frames", jobs=1, short_side=96, progress=False)
    extract_frames(videos, root / "folders", jobs=1, short_side=96, progress=False, layout="folders")
    from mienet.data.pack import frame_count

    lines = [f"frames/{p.stem} {frame_count(p)} {i}" for i, p in enumerate(sorted((root / "frames").glob("*.frames")))]
    (root / "list.txt").write_text("\n".join(lines) + "\n")
    folder = clip_folders(root)[0]
    (root / "folder.txt").write_text(f"folders/{folder.name} {len(list(folder.glob('*.jpg')))} 0\n")
    return root


def test_jpeg_size_reads_the_header_of_every_kind_of_jpeg(frames_root, tmp_path):
    pack = sorted((frames_root / "frames").glob("*.frames"))[0]
    data = read_frames(pack, [0])[0]
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert jpeg_size(data) == image.shape[:2]
    frame = np.random.default_rng(0).integers(0, 255, (37, 53, 3), dtype=np.uint8)
    for flags in ([], [cv2.IMWRITE_JPEG_PROGRESSIVE, 1], [cv2.IMWRITE_JPEG_OPTIMIZE, 1]):
        ok, encoded = cv2.imencode(".jpg", frame, flags)
        assert ok and jpeg_size(encoded.tobytes()) == (37, 53)
    ok, png = cv2.imencode(".png", frame)
    with pytest.raises(JpegError, match="x.png is not a JPEG .*--ext jpg"):
        jpeg_size(png.tobytes(), "x.png")
    with pytest.raises(JpegError, match="no JPEG frame header"):
        jpeg_size(encoded.tobytes()[:20], "cut.jpg")


def test_torchvision_and_opencv_decode_the_same_pixels(frames_root):
    """The byte path on a CPU decodes with torchvision (libjpeg-turbo), the pixel path with OpenCV
    (libjpeg-turbo): the same pixels within PIXEL_TOLERANCE grey levels (measured: 0)."""
    worst = 0
    for pack in sorted((frames_root / "frames").glob("*.frames")):
        indices = [0, 5, 17, 31]
        data = read_frames(pack, indices)
        ours = torch.stack(decode_jpegs([torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in data], "cpu",
                                        [f"{pack}:{i}" for i in indices]))
        opencv = decode_pack_frames(pack, indices)
        assert ours.shape == opencv.shape and ours.dtype == opencv.dtype == torch.uint8
        worst = max(worst, int((ours.int() - opencv.int()).abs().max()))
    assert worst <= PIXEL_TOLERANCE, worst


@pytest.mark.parametrize("train,crops,workers", [(True, 1, 0), (True, 1, 2), (False, 3, 0)])
def test_the_byte_path_gives_the_pixel_path_clips(frames_root, train, crops, workers):
    """Same sampler, same seeds: the workers draw the same augmentation from the JPEG header as
    from the decoded frames, and the batch decoded in one call is the pixel path's batch."""
    common = dict(root=frames_root, num_segments=3, frames_per_segment=4, size=SIZE, train=train, num_crops=crops)
    pixels = ClipDataset(frames_root / "list.txt", **common)
    encoded = ClipDataset(frames_root / "list.txt", encoded=True, **common)
    a = build_loader(pixels, 2, shuffle=train, seed=3, workers=workers)
    b = build_loader(encoded, 2, shuffle=train, seed=3, workers=workers)
    for epoch in range(2):
        a.sampler.set_epoch(epoch)
        b.sampler.set_epoch(epoch)
        for (clips, labels, idx, _), (batch, labels_b, idx_b, _) in zip(a, b):
            assert isinstance(batch, EncodedBatch) and len(batch) == len(labels_b)
            assert torch.equal(labels, labels_b) and torch.equal(idx, idx_b)
            decoded = batch.decode("cpu")
            assert decoded.dtype == torch.uint8 and decoded.shape == clips.shape
            assert int((decoded.int() - clips.int()).abs().max()) <= PIXEL_TOLERANCE
            # to_device decodes and normalises, as it normalises the pixel path's uint8 batch
            assert torch.allclose(to_device(batch, "cpu", SpeedConfig()), to_device(clips, "cpu", SpeedConfig()),
                                  atol=PIXEL_TOLERANCE / 255 / 0.224)


def test_one_decode_call_per_batch_each_frame_once(frames_root, monkeypatch):
    encoded = ClipDataset(frames_root / "list.txt", root=frames_root, num_segments=8, frames_per_segment=4,
                          size=SIZE, train=True, encoded=True)
    items = [encoded[i][0] for i in range(len(encoded))]
    assert all(isinstance(it, EncodedClip) for it in items)
    # 8 x 4 = 32 slots; a frame two segments share is read (and decoded) once
    for it in items:
        assert len(it.data) == len(torch.unique(it.inverse)) == int(it.inverse.max()) + 1 <= 32
    import mienet.engine.dataset as dataset_module

    calls = []
    real = dataset_module.decode_jpegs
    monkeypatch.setattr(dataset_module, "decode_jpegs", lambda d, device, where: calls.append(len(d)) or real(d, device, where))
    EncodedBatch(items).decode("cpu")
    assert calls == [sum(len(it.data) for it in items)]


def test_the_byte_path_reads_folders_too(frames_root):
    common = dict(root=frames_root, num_segments=3, frames_per_segment=4, size=SIZE, train=False)
    pixels = ClipDataset(frames_root / "folder.txt", **common)[0][0]
    encoded = ClipDataset(frames_root / "folder.txt", encoded=True, **common)[0][0]
    assert int((EncodedBatch([encoded]).decode("cpu")[0].int() - pixels.int()).abs().max()) <= PIXEL_TOLERANCE


def test_a_damaged_frame_is_named_in_one_line(frames_root, tmp_path):
    clip = clip_folders(frames_root)[0]
    copy = tmp_path / "clip"
    shutil.copytree(clip, copy)
    (tmp_path / "l.txt").write_text(f"clip {len(list(copy.glob('*.jpg')))} 0\n")
    ds = ClipDataset(tmp_path / "l.txt", tmp_path, num_segments=8, frames_per_segment=4, size=SIZE, encoded=True)
    item = ds[0][0]
    first = Path(item.where[0])
    data = first.read_bytes()
    # the header stays (the worker reads the size from it), the image data is cut short
    first.write_bytes(data[:600] + b"\xff\xd9")
    item = ds[0][0]
    with pytest.raises(MienetError) as err:
        EncodedBatch([item]).decode("cpu")
    assert f"cannot decode {first}" in str(err.value) and "\n" not in str(err.value)


def test_decode_setting_resolves_per_device():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_decode("cpu", cuda) is False and resolve_decode("auto", cpu) is False
    with pytest.raises(MienetError, match="decode: gpu needs a CUDA device; this run trains on cpu"):
        resolve_decode("gpu", cpu)
    assert resolve_decode("gpu", cuda) is True
    # auto on CUDA follows the probe's measurement (seconds per clip of each path)
    assert resolve_decode("auto", cuda, probe=lambda: {"cpu": 0.02, "gpu": 0.005}) is True
    assert resolve_decode("auto", cuda, probe=lambda: {"cpu": 0.005, "gpu": 0.02}) is False
    with pytest.raises(MienetError, match="decode must be one of auto, cpu, gpu"):
        resolve_decode("nvjpeg", cuda)
    with pytest.raises(MienetError, match="cache_frames keeps decoded frames"):
        ClipDataset(Path(__file__), Path("."), 3, encoded=True, cache_frames=True)
