"""JPEG bytes to pixels on a device: frame sizes from the headers, batched ``decode_jpeg``.

``decode: gpu`` (a recipe key, :func:`resolve_decode`) has the loader's workers read the sampled
frames' JPEG bytes, straight from the frame packs, and draw the clip's augmentation from the
frame size in the JPEG header (:func:`jpeg_size`); the training process then decodes a whole
batch with :func:`torchvision.io.decode_jpeg` on the GPU (nvJPEG, one call per batch) and crops,
flips and normalises it there (:class:`mienet.engine.dataset.EncodedBatch`). The workers are left
with reading bytes: no decoding, no resizing.

nvJPEG and libjpeg-turbo (OpenCV, the CPU path) use different IDCT and chroma upsampling, so
the two paths give the same clips up to a few grey levels (:data:`PIXEL_TOLERANCE`), not bit
for bit; ``tests/test_jpeg.py`` checks libjpeg-turbo's two front ends (torchvision's
``decode_jpeg`` on the CPU, which the byte path runs on a CPU, and OpenCV) against each other.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence

import torch
from torchvision.io import ImageReadMode, decode_jpeg

from mienet.errors import MienetError
from mienet.registry.frames import JPEG_START

log = logging.getLogger(__name__)

DECODE_CHOICES = ("auto", "cpu", "gpu")
# Largest difference in grey levels between decoders of the same JPEG bytes: OpenCV and
# torchvision's CPU decode_jpeg (both libjpeg-turbo) measured 0 on the test frames; nvJPEG's
# IDCT and upsampling differ from libjpeg-turbo's by a few levels at edges (NVIDIA documents
# it as not bit-exact).
PIXEL_TOLERANCE = 2
# Start-of-frame markers: baseline, extended, progressive, lossless (0xC4 DHT, 0xC8 JPG and
# 0xCC DAC share the range but are not frames)
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


class JpegError(MienetError):
    pass


def jpeg_size(data: bytes | memoryview, where: str = "frame") -> tuple[int, int]:
    """``(height, width)`` of a JPEG from its start-of-frame header, without decoding it."""
    data = bytes(data[:65536])  # the headers come first
    if not data.startswith(JPEG_START):
        raise JpegError(f"{where} is not a JPEG (decode: gpu reads JPEG frames only; extract with "
                        "--ext jpg, or set the recipe's decode to cpu)")
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise JpegError(f"{where}: damaged JPEG header (no marker at byte {i})")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            i += 2
            continue
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if marker in _SOF:
            if i + 9 > len(data):
                break
            return int.from_bytes(data[i + 5:i + 7], "big"), int.from_bytes(data[i + 7:i + 9], "big")
        if marker == 0xDA or length < 2:  # scan data before any frame header
            break
        i += 2 + length
    raise JpegError(f"{where}: no JPEG frame header (SOF) found")


def decode_jpegs(data: Sequence[torch.Tensor], device: torch.device | str, where: Sequence[str]) -> list[torch.Tensor]:
    """uint8 ``(3, H, W)`` RGB images on ``device`` from 1-D uint8 tensors of JPEG bytes, in one
    batched call; a frame that does not decode is named (``where[i]``) in one line."""
    device = torch.device(device)
    try:
        return _decode_jpeg(list(data), device)
    except RuntimeError:
        pass
    for d, w in zip(data, where):  # find the culprit, one frame at a time
        try:
            _decode_jpeg(d, device)
        except RuntimeError as exc:
            raise JpegError(f"cannot decode {w} ({str(exc).splitlines()[0]}); re-extract its frames") from None
    raise JpegError(f"the batch of {len(data)} frames failed to decode on {device}, each frame alone did not")


def _decode_jpeg(data, device: torch.device):
    with warnings.catch_warnings():
        # torchvision 0.29 deprecates its image decoders in favour of TorchCodec (not one of the
        # project's packages); decode_jpeg still works and is nvJPEG on CUDA
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="torchvision")
        return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)


def resolve_decode(setting: str, device: torch.device, probe=None) -> bool:
    """Whether the loader hands JPEG bytes to the device (True) or decoded pixels (False).

    ``cpu``: pixels, decoded in the workers. ``gpu``: bytes, decoded on the CUDA device (an error
    on another device). ``auto``: bytes only on CUDA and only when ``probe()`` (seconds per clip
    of each path, ``{"cpu": s, "gpu": s}``: :func:`mienet.engine.dataset.probe_decode`) measures
    the device path faster; pixels everywhere else."""
    if setting not in DECODE_CHOICES:
        raise MienetError(f"decode must be one of {', '.join(DECODE_CHOICES)}, not {setting!r}")
    if setting == "cpu":
        return False
    if device.type != "cuda":
        if setting == "gpu":
            raise MienetError(f"decode: gpu needs a CUDA device; this run trains on {device.type} "
                              "(set decode to cpu or auto)")
        return False
    if setting == "gpu":
        return True
    if probe is None:
        return False
    try:
        seconds = probe()
    except MienetError as exc:  # PNG frames, say: the CPU path reads them
        log.info("decode auto: cpu (%s)", exc)
        return False
    faster = seconds["gpu"] < seconds["cpu"]
    log.info("decode auto: %s (%.2f ms a clip decoding on the GPU against %.2f ms in the workers)",
             "gpu" if faster else "cpu", 1e3 * seconds["gpu"], 1e3 * seconds["cpu"])
    return faster
