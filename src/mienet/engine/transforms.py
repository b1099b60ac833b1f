"""Clip-consistent augmentation and normalisation of uint8 frames.

Every frame of a clip gets the same crop and flip (:class:`ClipTransform`, one draw a clip).
The loader's workers hand uint8 clips over (a quarter of float32's bytes through the workers'
shared memory, the pinned buffer and the host-to-device copy); :func:`normalise_clips` turns
them into ImageNet-normalised float32 where the model runs
(:func:`mienet.engine.performance.to_device`), on CPU and GPU alike, with the very operations
the workers used to run, so the values are bit-identical.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torchvision.transforms.v2 as v2
import torchvision.transforms.v2.functional as TF

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Multi-scale crop of the TSN family: crop sides relative to the short side, and how many
# steps apart the height and width scales may be.
CROP_SCALES = (1.0, 0.875, 0.75, 0.66)
MAX_DISTORT = 1


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

