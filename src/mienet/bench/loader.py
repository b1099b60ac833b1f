"""How many clips per second the training loader delivers (:func:`measure_loader`)."""

from __future__ import annotations

import itertools
import time

from mienet.engine.dataset import ClipDataset, build_loader
from mienet.engine.decoding import DECODER
from mienet.errors import MienetError


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
