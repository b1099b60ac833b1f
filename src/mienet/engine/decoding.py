"""Image files and frame packs to uint8 RGB frames ``(F, 3, H, W)``; a bad frame is named.

:func:`decode_frames` uses OpenCV (``cv2.imdecode`` of the file's bytes, with a check that a
JPEG or PNG is complete, because OpenCV silently returns a half-grey image for a truncated
JPEG); :func:`decode_pack_frames` decodes the same bytes from a frame pack
(:mod:`mienet.data.pack`). :func:`mienet.bench.decoders.compare_decoders` is the measurement
behind the choice of decoder. On the project's 2-core CPU machine, one thread (as in a
DataLoader worker), 200 frames, median of 15 interleaved rounds, images per second (another
process was using the CPUs):

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

import io
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_image, decode_jpeg

from mienet.data.pack import PackError, read_frames
from mienet.errors import MienetError
from mienet.registry.frames import JPEG_START, PNG_START


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


_JPEG_END = b"\xff\xd9"


def read_bytes(path: str | Path) -> bytes:
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


def check_complete(path: str | Path, data: bytes) -> None:
    """Reject a JPEG without its end-of-image marker and a PNG without its end chunk.

    Inside JPEG entropy-coded data every 0xFF byte is escaped, so an end marker near the end
    of the file is the real one.
    """
    if data.startswith(JPEG_START) and _JPEG_END not in data[-32:]:
        raise FrameReadError(path, "truncated JPEG (no end-of-image marker); re-extract the frames")
    if data.startswith(PNG_START) and b"IEND" not in data[-16:]:
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
    check_complete(path, data)
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
    return _stack(paths, [_opencv_decode(p, read_bytes(p)) for p in paths])


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
    data = [read_bytes(p) for p in paths]
    tensors = [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in data]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # deprecated since torchvision 0.29
        try:
            if all(d.startswith(JPEG_START) for d in data):
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
    images = []
    for p in paths:
        data = read_bytes(p)
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
# Measured with mienet.bench.decoders.compare_decoders (table in the module docstring); the fastest of those
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

