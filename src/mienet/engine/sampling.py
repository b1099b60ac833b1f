"""Which frames a clip is made of, and the order and seeds of an epoch's items.

:func:`sample_indices` turns a video of ``num_frames`` frames into the frame indices
``(num_clips, T, L)`` of its clips: ``T`` segments, ``L`` consecutive frames from each
(``docs/mie-net.md``, "Input"). :class:`ClipSampler` hands every item of an epoch a
``sample_seed`` derived only from ``(seed, epoch, index)`` (:func:`derive_seed`);
:class:`mienet.engine.dataset.ClipDataset` seeds the frame offsets and the augmentation with it
inside :func:`torch.random.fork_rng`. A batch therefore depends neither on the number of
DataLoader workers nor on whether they persist, and an epoch replayed after a resume is the
same epoch.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

MODES = ("train", "val", "test")
# Dense sampling: segments a fixed stride apart inside a window of this many frames
# (64 frames, as in the TSM / MMAction2 dense protocol: stride 8 for T = 8).
DENSE_WINDOW = 64


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
