"""``mienet bench e2e``: training with the real loader on a frame-list dataset (:func:`end_to_end`).

The loader's worker count and pinned memory are chosen by measuring, the page cache is dropped
(root) before one timed epoch; the figures are clips/s and the shares of the time spent waiting
for data and computing (GPU busy time from CUDA events on a GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from mienet.bench.loader import measure_loader
from mienet.bench.training import TrainShape, device_environment, shape_of
from mienet.engine.dataset import ClipDataset, build_loader
from mienet.engine.jpeg import resolve_decode
from mienet.engine.performance import (default_speed_config, make_grad_scaler, prepare_model, setup_cuda_graphs,
                                       synchronize, to_device, train_step)
from mienet.errors import MienetError
from mienet.models import build_model

E2E_WORKERS = (0, 2, 4, 8)  # loader worker counts `bench e2e` tries
DROP_CACHES = "/proc/sys/vm/drop_caches"


def drop_page_cache() -> tuple[bool, str]:
    """``sync; echo 3 > /proc/sys/vm/drop_caches``: the frames are then read from the disk, as
    in the first epoch of a dataset larger than memory. ``(dropped, how or why not)``; only
    root may, and containers often mount ``/proc/sys`` read-only."""
    os.sync()
    try:
        with open(DROP_CACHES, "w", encoding="ascii") as fh:
            fh.write("3\n")
    except OSError as exc:
        return False, f"not dropped ({DROP_CACHES}: {exc.strerror or exc})"
    return True, f"dropped (sync; echo 3 > {DROP_CACHES})"


def _choose_pin_memory(dataset, batch: int, workers: int, device, batches: int) -> tuple[bool, dict]:
    """On CUDA: loader + host-to-device copy timed with and without pinned memory; the faster."""
    if device.type != "cuda":
        return False, {"note": "no CUDA device: nothing to pin for"}
    if getattr(dataset, "encoded", False):
        return False, {"note": "decode gpu: the batches are JPEG bytes, decoded on the device"}
    times = {}
    for pin in (True, False):
        loader = build_loader(dataset, batch, shuffle=True, workers=workers, device="cuda" if pin else "cpu")
        it = iter(loader)
        next(it)
        torch.cuda.synchronize(device)
        start, n = time.perf_counter(), 0
        for clips, *_ in it:
            clips.to(device, non_blocking=pin)
            n += 1
            if n >= batches:
                break
        torch.cuda.synchronize(device)
        times[pin] = (time.perf_counter() - start) / max(n, 1)
        del it, loader
    return times[True] <= times[False], {"pinned_s_per_batch": times[True], "unpinned_s_per_batch": times[False]}


def _training_step(shape: TrainShape, num_classes: int, device, pin: bool):
    """The default training step of ``shape`` (forward, cross-entropy, backward, SGD; CUDA graphs
    by the ``auto`` rule) as a function of one loader batch; with its speed configuration and
    the CUDA-graph decision."""
    torch.manual_seed(0)
    model = build_model(shape.variant, shape.arch, num_classes, shape.segments,
                        frames_per_segment=shape.frames_per_segment).train()
    speed = default_speed_config(device)
    model = prepare_model(model, device, speed)
    graphs = setup_cuda_graphs(model, device, speed, "auto",
                               (shape.batch, shape.segments, shape.frames_per_segment, 3, shape.size, shape.size),
                               num_classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
    scaler = make_grad_scaler(device, speed)

    def step(clips, labels):
        train_step(model, optimizer, scaler, to_device(clips, device, speed)[:, 0],
                   labels.to(device, non_blocking=pin), device, speed)

    return step, speed, graphs


def _warm_up(loader, step, warmup: int) -> None:
    """``warmup`` untimed steps of epoch 0: workers started, kernels chosen."""
    loader.sampler.set_epoch(0)
    done = 0
    for clips, labels, _, _ in loader:
        if done >= warmup:
            break
        step(clips, labels)
        done += 1


def _timed_epoch(loader, step, device, max_steps: int | None) -> dict:
    """Epoch 1, at most ``max_steps`` steps: the seconds waiting for each batch and computing
    (step and synchronisation), and on CUDA the device's busy seconds between events."""
    loader.sampler.set_epoch(1)
    events = []
    wait_s = compute_s = 0.0
    clips_done = steps = 0
    start = time.perf_counter()
    it = iter(loader)
    while max_steps is None or steps < max_steps:
        t0 = time.perf_counter()
        try:
            clips, labels, _, _ = next(it)
        except StopIteration:
            break
        t1 = time.perf_counter()
        if device.type == "cuda":
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
        step(clips, labels)
        if device.type == "cuda":
            end.record()
            events.append((begin, end))
        synchronize(device)
        t2 = time.perf_counter()
        wait_s += t1 - t0
        compute_s += t2 - t1
        clips_done += labels.numel()
        steps += 1
    seconds = time.perf_counter() - start
    del it
    busy = sum(b.elapsed_time(e) for b, e in events) / 1e3 if events else None
    return {"wait_s": wait_s, "compute_s": compute_s, "clips": clips_done, "steps": steps, "seconds": seconds,
            "busy_s": busy}


def end_to_end(list_file, root, shape: TrainShape, device, workers=E2E_WORKERS, trial_batches: int = 10,
               warmup: int = 2, max_steps: int | None = None, drop_cache: bool = True, decode: str = "cpu") -> dict:
    """Training throughput with the real loader (see ``mienet bench e2e``) as a JSON-ready dict.

    Each step waits for its batch (``data wait``), then copies it, runs the default training
    step (forward, cross-entropy, backward, SGD; CUDA graphs by the ``auto`` rule) and
    synchronises, as the training loop's ``loss.item()`` does. ``compute_share``: the rest of
    the time; on CUDA ``gpu_busy_share``: the device's time between CUDA events around each step
    over the wall time. ``decode``: ``cpu``, the workers decode; ``gpu``, the workers read JPEG
    bytes and the step decodes them on the device (the recipe's ``decode: gpu``; its decoding
    then counts as compute, the bytes' reading as data wait).
    """
    workers = sorted(set(int(w) for w in workers))
    if not workers or workers[0] < 0 or trial_batches < 1 or warmup < 0 or (max_steps is not None and max_steps < 1):
        raise MienetError("--workers must be counts >= 0, --trial-batches and --max-steps positive, "
                          "--warmup not negative")
    encoded = resolve_decode(decode, torch.device(device))
    dataset = ClipDataset(list_file, root=root, num_segments=shape.segments,
                          frames_per_segment=shape.frames_per_segment, size=shape.size, train=True,
                          encoded=encoded)
    if len(dataset) < shape.batch:
        raise MienetError(f"{list_file} has {len(dataset)} clips, fewer than one batch of {shape.batch}")
    trials = [{"workers": w, "clips_per_s": measure_loader(dataset, shape.batch, w, trial_batches)["clips_per_s"]}
              for w in workers]
    best_workers = max(trials, key=lambda t: t["clips_per_s"])["workers"]
    pin, pin_trial = _choose_pin_memory(dataset, shape.batch, best_workers, device, trial_batches)

    num_classes = max(shape.num_classes, dataset.num_classes)
    step, speed, graphs = _training_step(shape, num_classes, device, pin)
    loader = build_loader(dataset, shape.batch, shuffle=True, seed=0, workers=best_workers,
                          device="cuda" if pin else "cpu", drop_last=True)
    _warm_up(loader, step, warmup)
    synchronize(device)
    dropped, cache_note = drop_page_cache() if drop_cache else (False, "not asked (--no-drop-cache)")
    timed = _timed_epoch(loader, step, device, max_steps)
    if timed["steps"] == 0:
        raise MienetError(f"{list_file}: no timed step (one batch of {shape.batch} per epoch, used by the warm-up)")
    seconds, busy = timed["seconds"], timed["busy_s"]
    return {
        "mode": "e2e",
        "decode": "gpu" if encoded else "cpu",
        "clips_per_s": timed["clips"] / seconds,
        "data_wait_share": timed["wait_s"] / seconds,
        "compute_share": timed["compute_s"] / seconds,
        "gpu_busy_share": busy / seconds if busy is not None else None,
        "clips": timed["clips"],
        "steps": timed["steps"],
        "seconds": seconds,
        "warmup": warmup,
        "workers": best_workers,
        "worker_trials": trials,
        "pin_memory": pin,
        "pin_memory_trial": pin_trial,
        "page_cache_dropped": dropped,
        "page_cache": cache_note,
        "cuda_graphs": graphs,
        "speed": speed.as_dict(),
        "speed_name": speed.describe(),
        "list": str(list_file),
        "root": str(root),
        "dataset_clips": len(dataset),
        **shape.__dict__,
        "num_classes": num_classes,
        **device_environment(device),
    }


def run_e2e(args: argparse.Namespace, device) -> int:
    shape = shape_of(args)
    result = end_to_end(args.list, args.root, shape, device, workers=args.workers,
                        trial_batches=args.trial_batches, warmup=args.warmup, max_steps=args.max_steps,
                        drop_cache=not args.no_drop_cache, decode=args.decode)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    trials = ", ".join(f"{t['workers']}: {t['clips_per_s']:.1f}" for t in result["worker_trials"])
    print(f"{shape.variant}/{shape.arch}: batch {shape.batch} x {shape.segments} segments x "
          f"{shape.frames_per_segment} frames of {shape.size} px from {result['list']} "
          f"({result['dataset_clips']} clips); {result['device']} ({result['device_name']}), torch {result['torch']}")
    print(f"loader clips/s by workers: {trials} -> {result['workers']} workers, "
          f"pin_memory {'on' if result['pin_memory'] else 'off'}")
    print(f"page cache: {result['page_cache']}; CUDA graphs: {result['cuda_graphs']['reason']}")
    busy = result["gpu_busy_share"]
    print(f"end to end ({result['speed_name']}): {result['clips_per_s']:.2f} clips/s over {result['steps']} "
          f"steps ({result['seconds']:.1f} s); waiting for data {100 * result['data_wait_share']:.1f} %, "
          f"computing {100 * result['compute_share']:.1f} %"
          + (f", GPU busy {100 * busy:.1f} %" if busy is not None else ""))
    return 0
