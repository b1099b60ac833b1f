"""The decoders of :mod:`mienet.engine.decoding` side by side: speed, pixels, truncation.

The measurement behind :data:`mienet.engine.decoding.DECODER` (its table is in that module's
docstring).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from mienet.engine.decoding import DECODER, DECODERS, FrameReadError, read_bytes


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
        data = read_bytes(paths[0])
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

