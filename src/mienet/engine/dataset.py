"""The clips of a TSN frame list, batched: the dataset, its collate function and its loader.

A list line ``frames/<clip> <num frames> <label>`` becomes a uint8 tensor
``(V, T, L, 3, S, S)``: ``T`` segments, ``L`` consecutive frames from each
(:func:`mienet.engine.sampling.sample_indices`), ``V`` views (test clips x crops; 1 for training
and validation), cropped and flipped (:mod:`mienet.engine.transforms`) but not yet normalised;
the frames are decoded by :mod:`mienet.engine.decoding`, or, with ``decode: gpu``, handed over
as JPEG bytes for the device to decode (:class:`EncodedBatch`, :mod:`mienet.engine.jpeg`).

Reproducibility: :class:`~mienet.engine.sampling.ClipSampler` hands every item a
``sample_seed`` derived only from ``(seed, epoch, index)``; :class:`ClipDataset` seeds the
frame offsets and the augmentation with it inside :func:`torch.random.fork_rng`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import torch
from torch.utils.data import DataLoader, Dataset

from mienet.data.annotations import Clip, Problems, read_frame_list
from mienet.data.pack import PackError, read_frames
from mienet.data.pack import pack_path as pack_of
from mienet.engine.decoding import FrameReadError, check_complete, decode_frames, decode_pack_frames, read_bytes
from mienet.engine.jpeg import decode_jpegs, jpeg_size
from mienet.engine.sampling import ClipSampler, derive_seed, sample_indices
from mienet.engine.transforms import ClipTransform, build_transform
from mienet.errors import MienetError
from mienet.registry.frames import FRAME_TEMPLATE

log = logging.getLogger(__name__)

PREFETCH_FACTOR = 4


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
        return pack_of(self.root / clip.path)

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
        data = [read_bytes(p) for p in paths]
        for p, d in zip(paths, data):
            check_complete(p, d)
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


def probe_decode(cpu_set, gpu_set, device: torch.device, workers: int, batch: int, batches: int = 3) -> dict:
    """Seconds per clip of each path for :func:`mienet.engine.jpeg.resolve_decode`: the CPU path's per-worker time
    over the workers; the GPU path's byte reading over the workers plus its decoding on the
    device, which the training process does. Items ``0 .. batch * batches`` of each dataset."""
    n = min(len(cpu_set), batch * batches)
    if n == 0:
        raise MienetError("no clip to probe the decoders with")
    spread = max(workers, 1)
    start = time.perf_counter()
    for i in range(n):
        cpu_set[i]
    cpu = (time.perf_counter() - start) / n / spread
    start = time.perf_counter()
    items = [gpu_set[i] for i in range(n)]
    read = (time.perf_counter() - start) / n / spread
    EncodedBatch([it[0] for it in items[:batch] if it is not None]).decode(device)  # warm-up
    torch.cuda.synchronize(device)
    start = time.perf_counter()
    for k in range(0, n, batch):
        EncodedBatch([it[0] for it in items[k:k + batch] if it is not None]).decode(device)
    torch.cuda.synchronize(device)
    return {"cpu": cpu, "gpu": read + (time.perf_counter() - start) / n}


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

