"""Clips from TSN frame lists: segment sampling, clip-consistent augmentation, decoding, loading.

A list line ``frames/<clip> <num frames> <label>`` becomes a uint8 tensor
``(V, T, L, 3, S, S)``: ``T`` segments, ``L`` consecutive frames from each
(``docs/mie-net.md``, "Input"), ``V`` views (test clips x crops; 1 for training and
validation), cropped and flipped but not yet normalised. The loader's workers hand these
uint8 clips over (a quarter of float32's bytes through the workers' shared memory, the pinned
buffer and the host-to-device copy); :func:`normalise_clips` turns them into ImageNet-normalised
float32 where the model runs (:func:`mienet.engine.performance.to_device`), on CPU and GPU alike,
with the very operations the workers used to run, so the values are bit-identical.

Reproducibility: :class:`ClipSampler` hands every item a ``sample_seed`` derived only from
``(seed, epoch, index)``; :class:`ClipDataset` seeds the frame offsets and the augmentation
with it inside :func:`torch.random.fork_rng`. A batch therefore depends neither on the
number of DataLoader workers nor on whether they persist, and an epoch replayed after a
resume is the same epoch.

Decoding: :func:`decode_frames` uses OpenCV (``cv2.imdecode`` of the file's bytes, with a
check that a JPEG or PNG is complete, because OpenCV silently returns a half-grey image for a
truncated JPEG). :func:`compare_decoders` is the measurement behind that choice. On the
project's 2-core CPU machine, one thread (as in a DataLoader worker), 200 frames, median of
15 interleaved rounds, images per second (another process was using the CPUs):

==========================  =======  =======  =======  =======
decoder                     112 px   128 px   340x256  340x256
                            (synth)  (synth)  test     demo
==========================  =======  =======  =======  =======
opencv (imdecode, checked)  24,200   14,700    3,150    3,430
opencv-imread + cvtColor    23,600   14,700    2,940    3,200
torchvision (list decode)   21,700   15,100    3,080    3,340
pil                         10,300    8,800    2,420    2,540
==========================  =======  =======  =======  =======

OpenCV and torchvision are within noise of each other; OpenCV is ahead at the CPU engine's
112 px and torchvision's image decoders are deprecated since 0.29 (superseded by
TorchCodec). ``opencv-imread`` does not notice a truncated JPEG, so it is only a reference.
All four give identical pixels here.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import math
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torchvision.transforms.v2 as v2
import torchvision.transforms.v2.functional as TF
from torch.utils.data import DataLoader, Dataset, Sampler

from mienet.data.annotations import Clip, Problems, read_frame_list
from mienet.registry.frames import FRAME_TEMPLATE
from mienet.engine.jpeg import decode_jpegs, jpeg_size
from mienet.errors import MienetError

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

MODES = ("train", "val", "test")
# Dense sampling: segments a fixed stride apart inside a window of this many frames
# (64 frames, as in the TSM / MMAction2 dense protocol: stride 8 for T = 8).
DENSE_WINDOW = 64
# Multi-scale crop of the TSN family: crop sides relative to the short side, and how many
# steps apart the height and width scales may be.
CROP_SCALES = (1.0, 0.875, 0.75, 0.66)
MAX_DISTORT = 1
PREFETCH_FACTOR = 4


# --------------------------------------------------------------------------- sampling

def sample_indices(num_frames: int, num_segments: int, frames_per_segment: int, mode: str,
                   generator: torch.Generator | None = None, num_clips: int = 1, dense: bool = False,
                   dense_window: int = DENSE_WINDOW) -> torch.Tensor:
    """0-based frame indices ``(num_clips, T, L)`` of a video with ``num_frames`` frames.

    Segment sampling (TSN): the possible start frames ``0 .. num_frames - L`` are cut into
    ``T`` equal segments; ``mode="train"`` takes a random start inside each segment,
    ``"val"``/``"test"`` its centre. With ``num_clips = n`` (test; 2 is the family's "twice")
    clip ``k`` sits ``k / n`` of a segment after the centre, wrapping round inside the
    segment: for two clips, the centres and the segment starts.

    Dense sampling: the ``T`` segment starts lie a fixed stride of ``dense_window // T``
    frames apart (shrunk for a video too short to hold that window, so that its frames still
    spread over the whole video). Training places the window at random; test spreads
    ``num_clips`` windows evenly from the first frame to the last (one clip: the centre).

    From each start, ``L`` consecutive frames; indices past the end repeat the last frame, so
    videos shorter than ``T * L`` (or than ``T``) frames still give a full clip.
    Randomness comes from ``generator`` (torch's global generator when ``None``).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    if num_frames < 1:
        raise ValueError(f"a video needs at least one frame, got {num_frames}")
    if num_segments < 1 or frames_per_segment < 1 or num_clips < 1:
        raise ValueError("num_segments, frames_per_segment and num_clips must be at least 1")
    T, L = num_segments, frames_per_segment
    span = max(num_frames - L + 1, 1)  # how many start frames keep all L frames inside the video
    seg = torch.arange(T, dtype=torch.float64)
    if dense:
        stride = max(1, min(dense_window // T, (span - 1) // max(T - 1, 1)))
        free = max(span - 1 - stride * (T - 1), 0)  # latest window start
        if mode == "train":
            first = torch.randint(free + 1, (num_clips, 1), generator=generator).double()
        elif num_clips == 1:
            first = torch.tensor([[free // 2]], dtype=torch.float64)
        else:
            first = torch.linspace(0, free, num_clips, dtype=torch.float64).round().view(-1, 1)
        starts = first + stride * seg
    else:
        tick = span / T
        if mode == "train":
            lo = torch.floor(seg * tick)
            width = (torch.floor((seg + 1) * tick) - lo).clamp(min=1)
            starts = lo + torch.floor(torch.rand(num_clips, T, generator=generator, dtype=torch.float64) * width)
        else:
            phase = (0.5 + torch.arange(num_clips, dtype=torch.float64) / num_clips) % 1.0
            starts = torch.floor((seg + phase.view(-1, 1)) * tick)
    index = starts.long().unsqueeze(-1) + torch.arange(L)
    return index.clamp(max=num_frames - 1)


# --------------------------------------------------------------------------- augmentation

class MultiScaleCornerCrop(v2.Transform):
    """Random crop of the TSN family, resized to ``size x size``; one draw for all frames.

    The crop's height and width are each one of ``scales`` times the short side, at most
    ``max_distort`` steps of the scale list apart (so the aspect ratio is jittered a little);
    a side within 3 pixels of ``size`` is taken as ``size``. The crop sits at one of the four
    corners or the centre. Randomness: torch's global generator.
    """

    def __init__(self, size: int, scales: Sequence[float] = CROP_SCALES, max_distort: int = MAX_DISTORT):
        super().__init__()
        self.size = int(size)
        self.scales = tuple(scales)
        self.max_distort = int(max_distort)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return self.params_for(*v2.query_size(flat_inputs))

    def params_for(self, height: int, width: int) -> dict[str, Any]:
        """The crop of frames of ``height x width`` (two draws of torch's global generator)."""
        short = min(height, width)
        sides = [int(short * s) for s in self.scales]
        sides = [self.size if abs(s - self.size) < 3 else s for s in sides]
        shapes = [(sides[i], sides[j]) for i in range(len(sides)) for j in range(len(sides))
                  if abs(i - j) <= self.max_distort]
        crop_h, crop_w = shapes[int(torch.randint(len(shapes), ()))]
        crop_h, crop_w = min(crop_h, height), min(crop_w, width)
        free_y, free_x = height - crop_h, width - crop_w
        places = [(0, 0), (0, free_x), (free_y, 0), (free_y, free_x), (free_y // 2, free_x // 2)]
        top, left = places[int(torch.randint(len(places), ()))]
        return dict(top=top, left=left, height=crop_h, width=crop_w)

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self._call_kernel(TF.resized_crop, inpt, **params, size=[self.size, self.size], antialias=True)


def normalise_clips(clips: torch.Tensor) -> torch.Tensor:
    """uint8 RGB ``(..., 3, H, W)`` -> ImageNet-normalised float32 of the same shape, on the
    tensor's device. Float input is returned as it is (already normalised)."""
    if clips.is_floating_point():
        return clips
    if clips.dtype != torch.uint8:
        raise ValueError(f"expected uint8 clips, got {clips.dtype}")
    out = TF.to_dtype(clips, torch.float32, scale=True)
    return TF.normalize(out, IMAGENET_MEAN, IMAGENET_STD, inplace=True)


class ClipTransform:
    """uint8 ``(F, 3, H, W)`` RGB frames of one clip -> uint8 ``(num_crops, F, 3, S, S)``.

    In two steps, so that the random part can run where the pixels are not (a worker holding a
    clip's JPEG bytes for a device to decode, :class:`EncodedClip`): :meth:`draw` takes the
    clip's random parameters from torch's global generator knowing only the frame size, and
    :meth:`apply` applies them to every frame of the clip, on whatever device they are.
    Training: the multi-scale corner crop resized to ``size`` (:class:`MultiScaleCornerCrop`),
    then a horizontal flip with p = 0.5 when ``flip``: the same draws in the same order, and the
    same kernels, as ``v2.Compose([MultiScaleCornerCrop(size), v2.RandomHorizontalFlip(0.5)])``
    (tested bit for bit). Evaluation: the short side resized to ``scale_size``, then
    :meth:`crops`. Normalisation is not here: it runs where the model runs
    (:func:`normalise_clips`).

    Every step stays in the workers but normalisation: the multi-scale crop and the evaluation
    resize shrink the frames (456x256 to 224x224 is 43 % of the pixels), so moving them to the
    device would send more bytes than it saves work; the flip is free either way.
    """

    def __init__(self, train: bool, size: int, num_crops: int = 1, flip: bool = True,
                 scale_size: int | None = None):
        self.train = bool(train)
        self.size = int(size)
        self.num_crops = int(num_crops)
        self.flip = bool(flip)
        self.scale_size = round(self.size * 256 / 224) if scale_size is None else int(scale_size)
        self.crop = MultiScaleCornerCrop(self.size) if self.train else None

    def draw(self, height: int, width: int) -> dict:
        """The clip's random parameters for frames of ``height x width`` (none in evaluation)."""
        if not self.train:
            return {}
        params = self.crop.params_for(height, width)
        params["flip"] = bool(self.flip and torch.rand(1) < 0.5)  # v2: mirrored unless rand >= p
        return params

    def apply(self, frames: torch.Tensor, params: dict) -> torch.Tensor:
        """``frames`` (F, 3, H, W) uint8 with the parameters of :meth:`draw`."""
        if self.train:
            out = TF.resized_crop(frames, params["top"], params["left"], params["height"], params["width"],
                                  size=[self.size, self.size], antialias=True)
            return (TF.horizontal_flip(out) if params["flip"] else out).unsqueeze(0)
        return self.crops(TF.resize(frames, [self.scale_size], antialias=True))

    def crops(self, frames: torch.Tensor) -> torch.Tensor:
        s = self.size
        height, width = frames.shape[-2:]
        if self.num_crops == 1:
            return TF.center_crop(frames, [s, s]).unsqueeze(0)
        # three crops along the long side: left, centre, right (or top, centre, bottom)
        if width >= height:
            top = (height - s) // 2
            places = [(top, 0), (top, (width - s) // 2), (top, width - s)]
        else:
            left = (width - s) // 2
            places = [(0, left), ((height - s) // 2, left), (height - s, left)]
        return torch.stack([TF.crop(frames, t, l, s, s) for t, l in places])

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.dim() != 4 or frames.shape[1] != 3 or frames.dtype != torch.uint8:
            raise ValueError(f"expected uint8 frames (F, 3, H, W), got {frames.dtype} {tuple(frames.shape)}")
        return self.apply(frames, self.draw(*frames.shape[-2:]))

    def __repr__(self) -> str:
        what = f"train, flip={self.flip}" if self.train else f"scale_size={self.scale_size}"
        return f"ClipTransform({what}, size={self.size}, num_crops={self.num_crops})"


def build_transform(train: bool, size: int, flip: bool = True, scale_size: int | None = None,
                    num_crops: int = 1) -> ClipTransform:
    """The clip transform (:class:`ClipTransform`), its settings checked: uint8
    ``(F, 3, H, W)`` -> uint8 ``(num_crops, F, 3, size, size)``.

    Training: :class:`MultiScaleCornerCrop` to ``size``, then a horizontal flip with p = 0.5
    when ``flip`` (off for SSv2, where left and right are part of the label); ``num_crops``
    must be 1. Evaluation: the short side resized to ``scale_size`` (default
    ``round(size * 256 / 224)``), then a centre crop or three crops along the long side.
    """
    if num_crops not in (1, 3):
        raise ValueError(f"num_crops must be 1 or 3, not {num_crops}")
    if train and num_crops != 1:
        raise ValueError("training takes one crop per clip")
    transform = ClipTransform(train, size, num_crops, flip=flip, scale_size=scale_size)
    if not train and transform.scale_size < size:
        raise ValueError(f"scale_size ({transform.scale_size}) must be at least the crop size ({size})")
    return transform


# --------------------------------------------------------------------------- decoding

class FrameReadError(MienetError):
    """An image file that is missing or cannot be decoded, or a frame of a pack (``frame``,
    1-based, with ``path`` the pack) that cannot be read or decoded."""

    def __init__(self, path: str | Path, reason: str, frame: int | None = None):
        self.path = str(path)
        self.reason = reason
        self.frame = frame
        super().__init__(f"cannot read frame {self.where}: {reason}")

    @property
    def where(self) -> str:
        """``<file>``, or ``<n> of <pack>`` for a frame of a pack."""
        return self.path if self.frame is None else f"{self.frame} of {self.path}"


class ClipLoadError(MienetError):
    """A clip of a :class:`ClipDataset` that cannot be loaded; the message names the file, the
    clip and its list line.

    A DataLoader worker process cannot hand its exception over as it is: torch re-raises it in
    the main process as ``ClipLoadError("Caught ClipLoadError in DataLoader worker process N.\n"
    "Original Traceback (most recent call last): ...")``, the worker's whole traceback in the
    message. This constructor recognises that message and keeps only the original one (the same
    words as without workers: one line from the command), with the worker in :attr:`worker`.
    """

    def __init__(self, message: str):
        self.worker: str | None = None
        message = str(message)
        caught = f"Caught {type(self).__name__} "
        head, _, rest = message.partition("\n")
        if message.startswith(caught) and rest.startswith("Original Traceback"):
            # format_exception's last part: "<module>.<class>: <message>" at the start of a line
            # (the traceback's own lines are indented)
            final = f"\n{type(self).__module__}.{type(self).__qualname__}: "
            at = rest.find(final)
            if at >= 0:
                self.worker = head[len(caught):].rstrip(".").removeprefix("in ")
                message = rest[at + len(final):].rstrip("\n")
        super().__init__(message)


_JPEG_START, _JPEG_END = b"\xff\xd8", b"\xff\xd9"
_PNG_START = b"\x89PNG\r\n\x1a\n"


def _read_bytes(path: str | Path) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise FrameReadError(path, "no such file") from None
    except OSError as exc:
        raise FrameReadError(path, exc.strerror or str(exc)) from None
    if not data:
        raise FrameReadError(path, "the file is empty")
    return data


def _check_complete(path: str | Path, data: bytes) -> None:
    """Reject a JPEG without its end-of-image marker and a PNG without its end chunk.

    Inside JPEG entropy-coded data every 0xFF byte is escaped, so an end marker near the end
    of the file is the real one.
    """
    if data.startswith(_JPEG_START) and _JPEG_END not in data[-32:]:
        raise FrameReadError(path, "truncated JPEG (no end-of-image marker); re-extract the frames")
    if data.startswith(_PNG_START) and b"IEND" not in data[-16:]:
        raise FrameReadError(path, "truncated PNG (no IEND chunk); re-extract the frames")


def _stack(paths: Sequence[str | Path], arrays: list, frames: Sequence[int] | None = None) -> torch.Tensor:
    """Stack (H, W, 3) arrays or (3, H, W) tensors of one size into (F, 3, H, W). ``frames``: the
    1-based numbers of the arrays when they are frames of one pack (``paths`` repeats it)."""
    first = tuple(arrays[0].shape)
    for k, (path, a) in enumerate(zip(paths, arrays)):
        if tuple(a.shape) != first:
            ref = paths[0] if frames is None else f"frame {frames[0]}"
            raise FrameReadError(path, f"shape {tuple(a.shape)} differs from {first} of {ref} "
                                       "(the frames of one clip must have one size)",
                                 frame=None if frames is None else frames[k])
    if isinstance(arrays[0], torch.Tensor):
        # torchvision returns (3, H, W) views of (H, W, 3) memory; torch.stack of such views
        # can take seconds with 2 threads on a busy machine, numpy's copy of the HWC memory does not
        arrays = [a.permute(1, 2, 0).numpy() for a in arrays]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)


_CV_RGB = getattr(cv2, "IMREAD_COLOR_RGB", None)


def _opencv_decode(path: str | Path, data: bytes) -> np.ndarray:
    _check_complete(path, data)
    try:
        flag = cv2.IMREAD_COLOR if _CV_RGB is None else _CV_RGB
        image = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    except cv2.error as exc:
        raise FrameReadError(path, f"OpenCV cannot decode it ({str(exc).strip().splitlines()[-1]})") from None
    if image is None:
        raise FrameReadError(path, "not a readable image")
    if _CV_RGB is None:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image


def decode_opencv(paths: Sequence[str | Path]) -> torch.Tensor:
    """OpenCV from the file's bytes, checked for truncation (the chosen decoder)."""
    return _stack(paths, [_opencv_decode(p, _read_bytes(p)) for p in paths])


def decode_opencv_imread(paths: Sequence[str | Path]) -> torch.Tensor:
    """``cv2.imread`` + ``cvtColor``: for reference only, a truncated JPEG passes unnoticed."""
    images = []
    for p in paths:
        image = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if image is None:
            raise FrameReadError(p, "missing or not a readable image")
        images.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    return _stack(paths, images)


def decode_torchvision(paths: Sequence[str | Path]) -> torch.Tensor:
    """torchvision: bytes read in Python, JPEGs decoded as one list (PNG one by one)."""
    from torchvision.io import ImageReadMode, decode_image, decode_jpeg

    data = [_read_bytes(p) for p in paths]
    tensors = [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in data]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # deprecated since torchvision 0.29
        try:
            if all(d.startswith(_JPEG_START) for d in data):
                images = decode_jpeg(tensors, mode=ImageReadMode.RGB)
            else:
                images = [decode_image(t, mode=ImageReadMode.RGB) for t in tensors]
        except RuntimeError:
            images = []
            for p, t in zip(paths, tensors):  # find the file that failed
                try:
                    images.append(decode_image(t, mode=ImageReadMode.RGB))
                except RuntimeError as exc:
                    reason = str(exc).splitlines()[-1]
                    raise FrameReadError(p, f"torchvision cannot decode it ({reason})") from None
    return _stack(paths, images)


def decode_pil(paths: Sequence[str | Path]) -> torch.Tensor:
    """Pillow (raises on a truncated file)."""
    from PIL import Image

    images = []
    for p in paths:
        data = _read_bytes(p)
        try:
            with Image.open(io.BytesIO(data)) as image:
                images.append(np.asarray(image.convert("RGB")))
        except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError... for bad files
            raise FrameReadError(p, f"Pillow cannot decode it ({exc})") from None
    return _stack(paths, images)


DECODERS: dict[str, Callable[[Sequence[str | Path]], torch.Tensor]] = {
    "opencv": decode_opencv,
    "opencv-imread": decode_opencv_imread,
    "torchvision": decode_torchvision,
    "pil": decode_pil,
}
# Measured with compare_decoders (table in the module docstring); the fastest of those
# that report a truncated file.
DECODER = "opencv"


def decode_frames(paths: list[str | Path]) -> torch.Tensor:
    """uint8 ``(F, 3, H, W)`` RGB frames; a missing, truncated or undecodable file raises
    :class:`FrameReadError` naming it."""
    if not paths:
        raise ValueError("decode_frames needs at least one path")
    return DECODERS[DECODER](paths)


def decode_pack_frames(pack_file: str | Path, indices: Sequence[int]) -> torch.Tensor | None:
    """uint8 ``(F, 3, H, W)`` RGB frames ``indices`` (0-based) of a frame pack
    (:mod:`mienet.data.pack`), decoded as :func:`decode_opencv` decodes the same bytes from files
    (the same pixels); ``None`` when there is no such pack. A damaged pack or an undecodable
    frame raises :class:`FrameReadError` naming the pack and the frame (1-based)."""
    from mienet.data.pack import PackError, read_frames

    try:
        data = read_frames(pack_file, indices)
    except PackError as exc:
        raise FrameReadError(exc.path, exc.reason, frame=exc.frame) from None
    if data is None:
        return None
    images = []
    for i, d in zip(indices, data):
        try:
            images.append(_opencv_decode(pack_file, d))
        except FrameReadError as exc:
            raise FrameReadError(pack_file, exc.reason, frame=int(i) + 1) from None
    return _stack([pack_file] * len(images), images, frames=[int(i) + 1 for i in indices])


@contextlib.contextmanager
def _quiet_stderr():
    """Silence libjpeg's "Premature end of JPEG file" on file descriptor 2 for a moment."""
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def compare_decoders(paths: Sequence[str | Path], repeats: int = 5) -> dict:
    """Images per second of every decoder in :data:`DECODERS` on ``paths`` (best of ``repeats``).

    Also checks that all decoders give the same pixels (largest absolute difference) and
    whether each reports a truncated copy of the first file. ``fastest`` is the fastest
    decoder that does.
    """
    paths = [str(p) for p in paths]
    if not paths:
        raise ValueError("compare_decoders needs at least one image")
    results: dict[str, dict] = {}
    reference = None
    with tempfile.TemporaryDirectory() as tmp:
        data = _read_bytes(paths[0])
        truncated = Path(tmp) / ("truncated" + Path(paths[0]).suffix)
        truncated.write_bytes(data[: len(data) // 2])
        for name, decode in DECODERS.items():
            best = math.inf
            for _ in range(repeats):
                start = time.perf_counter()
                images = decode(paths)
                best = min(best, time.perf_counter() - start)
            if reference is None:
                reference = images.int()
            try:
                with _quiet_stderr():
                    decode([truncated])
                detects = False
            except FrameReadError:
                detects = True
            results[name] = {
                "images_per_s": round(len(paths) / best, 1),
                "ms_per_image": round(1000 * best / len(paths), 4),
                "max_abs_diff": int((images.int() - reference).abs().max()),
                "detects_truncation": detects,
            }
    usable = [n for n, r in results.items() if r["detects_truncation"]]
    fastest = max(usable, key=lambda n: results[n]["images_per_s"]) if usable else None
    height, width = reference.shape[-2:]
    return {"images": len(paths), "height": int(height), "width": int(width), "repeats": repeats,
            "decoders": results, "fastest": fastest, "chosen": DECODER}


# --------------------------------------------------------------------------- sampler

_MASK64 = (1 << 64) - 1


def _splitmix64(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def derive_seed(*parts: int) -> int:
    """A well-mixed non-negative 63-bit seed that depends only on ``parts``."""
    h = 0
    for p in parts:
        h = _splitmix64(h ^ (int(p) & _MASK64))
    return h >> 1


class ClipSampler(Sampler):
    """Yields ``(index, sample_seed)``: the order and every seed come from ``(seed, epoch, index)``.

    Call :meth:`set_epoch` before each epoch. Under DistributedDataParallel each rank gets
    every ``world_size``-th item of the (shuffled) order; the order is first padded by
    repeating its beginning so that every rank has the same number of items
    (``drop_last=True``: the tail is dropped instead), as :class:`DistributedSampler` does.
    A padded duplicate carries the same seed, so it is the same sample.
    """

    def __init__(self, num_items: int, shuffle: bool, seed: int = 0, rank: int = 0, world_size: int = 1,
                 drop_last: bool = False):
        if num_items < 0:
            raise ValueError(f"num_items must not be negative, got {num_items}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
        self.num_items = int(num_items)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.drop_last = bool(drop_last)
        if drop_last:
            self.num_samples = self.num_items // self.world_size
        else:
            self.num_samples = math.ceil(self.num_items / self.world_size)
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch; ``start`` skips this rank's first items (resuming mid-epoch)."""
        if not 0 <= start <= self.num_samples:
            raise ValueError(f"start must be in 0..{self.num_samples}, got {start}")
        self.epoch = int(epoch)
        self.start = int(start)

    def order(self) -> list[int]:
        """All indices of this epoch, in order, before sharding."""
        if not self.shuffle:
            return list(range(self.num_items))
        g = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch))
        return torch.randperm(self.num_items, generator=g).tolist()

    def indices(self) -> list[int]:
        """This rank's indices of this epoch (without ``start``)."""
        order = self.order()
        total = self.num_samples * self.world_size
        if order and len(order) < total:
            order = list(itertools.islice(itertools.cycle(order), total))
        return order[:total][self.rank::self.world_size]

    def sample_seed(self, index: int) -> int:
        return derive_seed(self.seed, self.epoch, index)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for index in self.indices()[self.start:]:
            yield index, self.sample_seed(index)

    def __len__(self) -> int:
        return self.num_samples - self.start


# --------------------------------------------------------------------------- dataset

@contextlib.contextmanager
def one_intra_op_thread():
    """Run a clip's small tensor operations on one thread (DataLoader workers already do).

    Synchronising intra-op threads costs more than they win on one clip's tensors, and far
    more when the cores are shared: on the 2-core machine, with another torch process
    running, every 2-thread operation waited about 8 ms and the loader without workers
    delivered 14 clips/s instead of about 200. Parallelism comes from the workers.
    """
    threads = torch.get_num_threads()
    if threads > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if threads > 1:
            torch.set_num_threads(threads)


class ClipDataset(Dataset):
    """The clips of a frame list, each as uint8 ``(V, T, L, 3, size, size)`` (normalised on the
    device: :func:`normalise_clips`).

    ``root`` is the folder the list's paths are relative to. A clip's frames are read from its
    frame pack ``root / (clip.path + ".frames")`` when there is one (``mienet extract-frames``'
    default layout, :mod:`mienet.data.pack`: entry ``i``), else from its folder: frame ``i``
    (0-based) is ``root / clip.path / template.format(i + 1)`` (frames extracted with
    ``--layout folders``, or come ready as with SLJD). Both give the same pixels for the same
    encoded bytes; which one a clip has is looked up when it is read (one ``open``), so a
    dataset may mix them. ``train`` selects random offsets and
    the training augmentation; otherwise segment centres and the evaluation transform with
    ``num_clips`` clips (2: "twice") and ``num_crops`` crops, ``V = num_clips * num_crops``
    views ordered clip by clip. ``dense`` switches to dense sampling (:func:`sample_indices`).

    An item is an ``(index, sample_seed)`` pair from :class:`ClipSampler` or a plain index
    (then ``sample_seed = index``). A missing or unreadable frame raises :class:`MienetError`
    naming the file, the clip and its list line; with ``skip_missing`` the item is ``None``
    instead and :func:`collate_clips` drops and counts it.

    ``cache_frames`` keeps every decoded frame in memory after its first read (in each loader
    process): the items are identical, only the decoding is done once per frame instead of once
    per epoch. For small datasets (the synthetic default: about 160 MB).

    ``encoded`` (the recipe's ``decode: gpu``): an item is an :class:`EncodedClip`, the sampled
    frames' JPEG bytes with the clip's augmentation drawn from their size (the same draws as the
    pixel path), for the device to decode (:class:`EncodedBatch`, :mod:`mienet.engine.jpeg`).
    """

    def __init__(self, list_file, root, num_segments: int, frames_per_segment: int = 4, size: int = 224,
                 train: bool = False, flip: bool = True, num_clips: int = 1, num_crops: int = 1,
                 dense: bool = False, template: str = FRAME_TEMPLATE, skip_missing: bool = False,
                 num_classes: int | None = None, scale_size: int | None = None, cache_frames: bool = False,
                 encoded: bool = False):
        self.list_file = Path(list_file)
        self.root = Path(root)
        self.num_segments = int(num_segments)
        self.frames_per_segment = int(frames_per_segment)
        self.size = int(size)
        self.train = bool(train)
        self.num_clips = int(num_clips)
        self.num_crops = int(num_crops)
        self.dense = bool(dense)
        self.template = template
        self.skip_missing = bool(skip_missing)
        self.cache: dict[Path, torch.Tensor] | None = {} if cache_frames else None
        self.encoded = bool(encoded)
        if self.encoded and cache_frames:
            raise MienetError("cache_frames keeps decoded frames; with decode: gpu the device decodes "
                              "them: use one or the other")
        if self.num_segments < 1 or self.frames_per_segment < 1 or self.num_clips < 1:
            raise MienetError("segments, frames per segment and clips must be at least 1")
        try:
            template.format(1)
        except (IndexError, KeyError, ValueError) as exc:
            raise MienetError(f"frame name template {template!r} cannot take a frame number ({exc})") from None
        try:
            self.transform = build_transform(self.train, self.size, flip=flip, scale_size=scale_size,
                                             num_crops=self.num_crops)
        except ValueError as exc:
            raise MienetError(str(exc)) from None
        self.clips: list[Clip] = read_frame_list(self.list_file)
        _refuse_duplicates(self.list_file, self.clips)
        self.labels: list[int] = [c.label for c in self.clips]
        if num_classes is None:
            num_classes = max(self.labels, default=-1) + 1
        self.num_classes = int(num_classes)
        problems = Problems()
        for c in self.clips:
            if c.label >= self.num_classes:
                problems.add(c.origin, f"label {c.label} of {c.path} is outside the class list "
                                       f"(0..{self.num_classes - 1}); check the list against classes.txt")
        problems.raise_if_any(f"{self.list_file} does not fit {self.num_classes} classes")

    @property
    def mode(self) -> str:
        return "train" if self.train else "test"

    @property
    def num_views(self) -> int:
        return self.num_clips * self.num_crops

    def __len__(self) -> int:
        return len(self.clips)

    def frame_path(self, clip: Clip, index: int) -> Path:
        """The image file of frame ``index`` (0-based) in the folder layout (also the key of a
        cached frame, in either layout)."""
        return self.root / clip.path / self.template.format(index + 1)

    def pack_path(self, clip: Clip) -> Path:
        """The frame pack of a clip (it may not exist: the clip then has a folder)."""
        from mienet.data.pack import pack_path

        return pack_path(self.root / clip.path)

    def __getitem__(self, item):
        index, sample_seed = item if isinstance(item, tuple) else (item, item)
        index = int(index)
        clip = self.clips[index]
        try:
            if clip.frames < 1:
                raise ClipLoadError(f"clip {clip.path} ({clip.origin}) lists {clip.frames} frames")
            with torch.random.fork_rng(devices=[]), one_intra_op_thread():
                # only the CPU generator: torch.manual_seed would also reseed the caller's CUDA RNG
                torch.default_generator.manual_seed(int(sample_seed))
                clips = self._load(clip)
        except FrameReadError as exc:
            error = ClipLoadError(f"cannot read frame {exc.where} ({exc.reason}) of clip {clip.path} "
                                  f"({clip.origin}); re-extract its frames, or leave such clips out "
                                  "with --skip-missing")
            if not self.skip_missing:
                raise error from None
            log.warning("skipped: %s", error)
            return None
        except MienetError as exc:
            if not self.skip_missing:
                # one exception type torch can re-raise from a worker with the message intact
                raise exc if isinstance(exc, ClipLoadError) else ClipLoadError(str(exc)) from None
            log.warning("skipped: %s", exc)
            return None
        return clips, clip.label, index

    def _load(self, clip: Clip) -> torch.Tensor | EncodedClip:
        T, L, C = self.num_segments, self.frames_per_segment, self.num_clips
        idx = sample_indices(clip.frames, T, L, self.mode, num_clips=C, dense=self.dense)
        used, inverse = torch.unique(idx.view(-1), return_inverse=True)
        inverse = inverse.view(C, T * L)
        if self.encoded:
            data, where = self._read_encoded(clip, used.tolist())
            height, width = jpeg_size(data[0], where[0])
            return EncodedClip(data=[torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in data],
                               where=where, inverse=inverse, params=self._draw(height, width),
                               transform=self.transform, segments=T, frames_per_segment=L)
        frames = self._decode_clip(clip, used.tolist())  # each frame once
        return assemble_views(self.transform, frames, inverse, self._draw(*frames.shape[-2:]), T, L)

    def _draw(self, height: int, width: int) -> list[dict]:
        """The random parameters of each view's augmentation (every training clip its own draw;
        normally one clip), in the order the views are assembled."""
        return [self.transform.draw(height, width) for _ in range(self.num_clips)] if self.train else [{}]

    def _read_encoded(self, clip: Clip, indices: list[int]) -> tuple[list[bytes], list[str]]:
        """The JPEG bytes of frames ``indices`` of a clip (pack or folder), each with its name for
        errors; checked for completeness as the CPU path checks them."""
        from mienet.data.pack import PackError, read_frames

        pack = self.pack_path(clip)
        try:
            data = read_frames(pack, indices)
        except PackError as exc:
            raise FrameReadError(exc.path, exc.reason, frame=exc.frame) from None
        if data is not None:
            return data, [f"frame {i + 1} of {pack}" for i in indices]
        paths = [self.frame_path(clip, i) for i in indices]
        if not paths[0].parent.is_dir():
            raise FrameReadError(paths[0].parent, f"neither the frame pack {pack} nor the frame folder exists")
        data = [_read_bytes(p) for p in paths]
        for p, d in zip(paths, data):
            _check_complete(p, d)
        return data, [str(p) for p in paths]


    def _read(self, clip: Clip, indices: list[int]) -> torch.Tensor:
        """Frames ``indices`` of a clip, from its pack or else its folder."""
        frames = decode_pack_frames(self.pack_path(clip), indices)
        if frames is not None:
            return frames
        try:
            return decode_frames([self.frame_path(clip, i) for i in indices])
        except FrameReadError as exc:
            folder = self.root / clip.path
            if exc.reason == "no such file" and not folder.is_dir():
                raise FrameReadError(folder, f"neither the frame pack {self.pack_path(clip)} nor the frame "
                                             "folder exists") from None
            raise

    def _decode_clip(self, clip: Clip, indices: list[int]) -> torch.Tensor:
        if self.cache is None:
            return self._read(clip, indices)
        keys = [self.frame_path(clip, i) for i in indices]
        missing = [(i, k) for i, k in zip(indices, keys) if k not in self.cache]
        if missing:
            decoded = self._read(clip, [i for i, _ in missing])
            for (_, key), frame in zip(missing, decoded):
                self.cache[key] = frame.clone()  # its own memory, not a view of the batch
        return torch.stack([self.cache[k] for k in keys])


def assemble_views(transform: ClipTransform, frames: torch.Tensor, inverse: torch.Tensor, params: list[dict],
                   segments: int, frames_per_segment: int) -> torch.Tensor:
    """A clip's uint8 views ``(V, T, L, 3, S, S)`` from its decoded frames ``(U, 3, H, W)`` (each
    sampled frame once; ``inverse`` ``(C, T * L)`` maps the clip's frame slots onto them) and the
    drawn ``params`` (:meth:`ClipDataset._draw`), on the frames' device: the CPU path runs it in the
    workers, the byte path (:class:`EncodedBatch`) where the frames were decoded."""
    T, L = segments, frames_per_segment
    if transform.train:
        views = []
        for c, p in enumerate(params):
            mine, local = torch.unique(inverse[c], return_inverse=True)
            if len(mine) < len(frames):
                frames_c = frames.index_select(0, mine.to(frames.device))
            else:
                frames_c = frames
            views.append(_gather(transform.apply(frames_c, p), local))
        out = views[0] if len(views) == 1 else torch.cat(views)
    else:
        out = _gather(transform.apply(frames, {}), inverse.view(-1)).unflatten(1, tuple(inverse.shape))
        # (crops, C, T * L, 3, S, S) -> (C * crops, T * L, 3, S, S), clip by clip
        out = out.transpose(0, 1).reshape(inverse.shape[0] * transform.num_crops, T * L, *out.shape[-3:])
    # Not made contiguous here: torchvision's uint8 resize returns channels-last strides, and the
    # batch's torch.stack (collate_clips) copies into a contiguous batch anyway, one copy not two.
    return out.reshape(-1, T, L, *out.shape[-3:])


def _gather(views: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
    """``views[:, slots]`` (frames into the clip's frame slots): a plain copy-free view when
    every slot has its own frame in order (the common case), else one ``index_select``."""
    if len(slots) == views.shape[1] and torch.equal(slots, torch.arange(len(slots))):
        return views
    return views.index_select(1, slots.to(views.device))


@dataclass
class EncodedClip:
    """One clip as the JPEG bytes of its sampled frames (each once, 1-D uint8 tensors) with its
    augmentation already drawn: what a worker hands over with ``decode: gpu``
    (:mod:`mienet.engine.jpeg`); :class:`EncodedBatch` decodes and assembles it on a device."""

    data: list[torch.Tensor]
    where: list[str]
    inverse: torch.Tensor
    params: list[dict]
    transform: ClipTransform
    segments: int
    frames_per_segment: int

    def finish(self, frames: torch.Tensor) -> torch.Tensor:
        return assemble_views(self.transform, frames, self.inverse, self.params, self.segments,
                              self.frames_per_segment)


class EncodedBatch:
    """A batch of :class:`EncodedClip`: :meth:`decode` gives the uint8 clips
    ``(B, V, T, L, 3, S, S)`` on a device, every frame of the batch decoded in one call."""

    def __init__(self, clips: list[EncodedClip]):
        self.clips = clips

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def shape(self) -> torch.Size:
        return torch.Size([len(self.clips)])

    def decode(self, device: torch.device | str) -> torch.Tensor:
        images = decode_jpegs([d for c in self.clips for d in c.data], device,
                              [w for c in self.clips for w in c.where])
        out, k = [], 0
        for clip in self.clips:
            n = len(clip.data)
            out.append(clip.finish(torch.stack(images[k:k + n])))
            k += n
        return torch.stack(out)


def _line_number(clip: Clip) -> str:
    """The line number of a clip read from a list (its origin is ``<list>:<line>``)."""
    return clip.origin.rsplit(":", 1)[-1] if ":" in clip.origin else "?"


def _clip_key(root: Path, clip: Clip) -> str:
    """One spelling per clip folder: ``frames/a``, ``./frames/a/`` and ``frames//a`` are one clip."""
    return os.path.normpath(os.path.abspath(root / clip.path.replace("\\", "/")))


def _refuse_duplicates(list_file: Path, clips: Sequence[Clip]) -> None:
    """A clip listed twice in one list would be trained (or scored) twice per epoch: an error
    naming the list, the clip and the line numbers."""
    seen: dict[str, list[Clip]] = {}
    for c in clips:
        seen.setdefault(_clip_key(Path("/"), c), []).append(c)
    problems = Problems()
    for repeats in seen.values():
        if len(repeats) > 1:
            numbers = [_line_number(c) for c in repeats]
            times = "twice" if len(repeats) == 2 else f"{len(repeats)} times"
            problems.add(str(list_file), f"clip {repeats[0].path} is listed {times}, on lines "
                                         f"{', '.join(numbers[:-1])} and {numbers[-1]}")
    problems.raise_if_any(f"{list_file} lists clips more than once",
                          "remove the repeated lines (mienet make-annotations writes lists without repeats)")


def assert_disjoint(train: "ClipDataset", val: "ClipDataset", shown: int = 5) -> None:
    """Refuse a validation list that shares clips with the training list: the scores would
    measure memorisation. The error names both lists and up to ``shown`` shared clips with
    their line numbers in each."""
    in_train: dict[str, Clip] = {}
    for c in train.clips:
        in_train.setdefault(_clip_key(train.root, c), c)
    shared = [(in_train[key], c) for c in val.clips if (key := _clip_key(val.root, c)) in in_train]
    if not shared:
        return
    lines = [f"  {v.path} ({train.list_file.name} line {_line_number(t)}, {val.list_file.name} line "
             f"{_line_number(v)})" for t, v in shared[:shown]]
    more = f"\n  ... and {len(shared) - shown} more" if len(shared) > shown else ""
    raise MienetError(
        f"{train.list_file} and {val.list_file} share {len(shared)} clip(s); validation on training "
        "clips says nothing about new ones. Remove them from one list (mienet make-annotations "
        "writes disjoint splits):\n" + "\n".join(lines) + more)


def collate_clips(batch) -> tuple[torch.Tensor | EncodedBatch, torch.Tensor, torch.Tensor, int]:
    """``(clips (B, V, T, L, 3, S, S) or an EncodedBatch, labels (B,), indices (B,), skipped)``; ``None`` items
    (skipped clips) are dropped and counted. A batch of only skipped items has empty tensors."""
    kept = [b for b in batch if b is not None]
    skipped = len(batch) - len(kept)
    if not kept:
        return torch.empty(0), torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long), skipped
    if isinstance(kept[0][0], EncodedClip):
        clips = EncodedBatch([b[0] for b in kept])
    else:
        with one_intra_op_thread():
            clips = torch.stack([b[0] for b in kept])
    labels = torch.tensor([b[1] for b in kept], dtype=torch.long)
    indices = torch.tensor([b[2] for b in kept], dtype=torch.long)
    return clips, labels, indices, skipped


# --------------------------------------------------------------------------- loader

def _init_worker(worker_id: int) -> None:
    cv2.setNumThreads(1)  # the workers are the parallelism; torch already runs them on one thread


def build_loader(dataset: ClipDataset, batch_size: int, shuffle: bool, seed: int = 0, workers: int = 0,
                 device: str = "cpu", rank: int = 0, world_size: int = 1, drop_last: bool = False) -> DataLoader:
    """A DataLoader over ``dataset`` with a :class:`ClipSampler` as ``loader.sampler``.

    The caller calls ``loader.sampler.set_epoch(epoch)`` before each epoch. ``drop_last``
    drops the last incomplete batch and, under DDP, the uneven tail instead of padding it.
    Workers persist between epochs; memory is pinned for a CUDA device. The loader has its
    own generator, so starting an epoch leaves the caller's global RNG untouched.
    """
    if batch_size < 1:
        raise MienetError(f"batch size must be at least 1, got {batch_size}")
    if workers < 0:
        raise MienetError(f"workers must not be negative, got {workers}")
    sampler = ClipSampler(len(dataset), shuffle, seed=seed, rank=rank, world_size=world_size,
                          drop_last=drop_last)
    extra = {}
    if workers > 0:
        extra = dict(persistent_workers=True, prefetch_factor=PREFETCH_FACTOR, worker_init_fn=_init_worker)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      collate_fn=collate_clips, pin_memory=str(device).startswith("cuda"),
                      drop_last=drop_last, generator=torch.Generator().manual_seed(derive_seed(seed)),
                      **extra)


def measure_loader(dataset: ClipDataset, batch_size: int, workers: int, batches: int = 20) -> dict:
    """Clips per second the loader delivers over ``batches`` batches after a warm-up batch
    (which pays for starting the workers); epochs repeat as needed."""
    if len(dataset) == 0:
        raise MienetError("cannot measure the loader on an empty dataset")
    loader = build_loader(dataset, batch_size, shuffle=True, workers=workers)

    def endless():
        for epoch in itertools.count():
            loader.sampler.set_epoch(epoch)
            yield from loader

    stream = endless()
    try:
        next(stream)
        clips = 0
        start = time.perf_counter()
        for _ in range(batches):
            clips += next(stream)[0].shape[0]
        seconds = time.perf_counter() - start
    finally:
        stream.close()
        del loader
    return {"clips_per_s": round(clips / seconds, 2), "workers": workers, "batch_size": batch_size,
            "decoder": DECODER, "batches": batches, "clips": clips, "seconds": round(seconds, 3),
            "views": dataset.num_views, "segments": dataset.num_segments,
            "frames_per_segment": dataset.frames_per_segment, "size": dataset.size, "train": dataset.train}
