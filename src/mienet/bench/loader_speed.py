"""``mienet bench loader``: clips per second the data loader delivers (measured by
:func:`mienet.bench.loader.measure_loader`), per worker, and the workers one GPU needs;
``--compare-train`` also measures the training step of the same shape
(:func:`mienet.bench.training.train_speed`), since the loader should deliver at least
:data:`LOADER_GOAL` times what the step consumes."""

from __future__ import annotations

import argparse
import json

from mienet.bench.loader import measure_loader
from mienet.bench.training import device_environment, shape_of, train_speed
from mienet.engine.dataset import ClipDataset, one_intra_op_thread
from mienet.engine.transforms import normalise_clips
from mienet.errors import MienetError
from mienet.sizing import workers_needed

LOADER_GOAL = 2.0  # the loader should deliver this many times what the training step consumes


class FloatInWorkers:
    """A :class:`~mienet.engine.dataset.ClipDataset` whose workers normalise, as before the uint8
    path: float32 clips cross the worker boundary. For ``bench loader --worker-output float``."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name):  # sampler and measurement read the dataset's attributes
        if name == "dataset":  # not set yet (unpickling in a spawned worker)
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, item):
        out = self.dataset[item]
        if out is None:
            return None
        clips, label, index = out
        with one_intra_op_thread():
            return normalise_clips(clips), label, index


def _measure_outputs(args: argparse.Namespace) -> dict:
    """Worker output (``float``, ``uint8``; float first with ``both``) -> the loader's measurement."""
    dataset = ClipDataset(
        args.list, root=args.root, num_segments=args.segments,
        frames_per_segment=args.frames_per_segment, size=args.size, train=True,
    )
    outputs = ["float", "uint8"] if args.worker_output == "both" else [args.worker_output]
    by_output = {}
    for output in outputs:
        measured = measure_loader(FloatInWorkers(dataset) if output == "float" else dataset,
                                  args.batch, args.workers, args.batches)
        measured["worker_output"] = output
        measured["clips_per_s_per_worker"] = round(measured["clips_per_s"] / max(args.workers, 1), 2)
        by_output[output] = measured
    return by_output


def loader_speed(args: argparse.Namespace, device) -> dict:
    """The ``bench loader`` measurement as a JSON-ready dict (see :func:`run_loader`)."""
    if args.workers < 0 or args.batches < 1:
        raise MienetError(
            f"--workers must not be negative and --batches must be positive, got "
            f"{args.workers}, {args.batches}"
        )
    if args.train_rate is not None and args.train_rate <= 0:
        raise MienetError(f"--train-rate must be positive, got {args.train_rate}")
    by_output = _measure_outputs(args)
    measured = list(by_output.values())[-1]
    clips_per_s = float(measured["clips_per_s"])
    per_worker = measured["clips_per_s_per_worker"]
    result = {
        "loader_clips_per_s": clips_per_s,
        "clips_per_s": clips_per_s,
        "clips_per_s_per_worker": per_worker,
        "worker_output": measured["worker_output"],
        "list": str(args.list),
        "root": str(args.root),
        "segments": args.segments,
        "frames_per_segment": args.frames_per_segment,
        "size": args.size,
        "batch": args.batch,
        "workers": args.workers,
        "batches": args.batches,
        **device_environment(device),
    }
    result["loader"] = measured
    if len(by_output) == 2:
        result["float_path"] = by_output["float"]
        result["uint8_over_float"] = round(by_output["uint8"]["clips_per_s"] / by_output["float"]["clips_per_s"], 2)
    if args.compare_train:
        train = train_speed(shape_of(args), device, args.steps, args.warmup)
        result["train_clips_per_s"] = train["clips_per_s"]
        result["train_speed_name"] = train["speed_name"]
        result["train_variant"], result["train_arch"] = args.variant, args.arch
        result["loader_over_train"] = clips_per_s / train["clips_per_s"]
        result["goal_loader_over_train"] = LOADER_GOAL
    rate = args.train_rate if args.train_rate is not None else result.get("train_clips_per_s")
    if rate is not None:
        result["train_rate"] = rate
        result["workers_per_gpu"] = workers_needed(rate, per_worker)
    return result


def run_loader(args: argparse.Namespace, device) -> int:
    result = loader_speed(args, device)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    shape = (f"batch {args.batch}, {args.segments} x {args.frames_per_segment} frames at {args.size} px, "
             f"{args.batches} batches")
    for m in ([result["float_path"]] if "float_path" in result else []) + [result["loader"]]:
        print(f"loader ({m['worker_output']} from the workers): {m['clips_per_s']:.2f} clips/s with {args.workers} "
              f"workers, {m['clips_per_s_per_worker']:.2f} clips/s per worker ({shape})")
    if "uint8_over_float" in result:
        print(f"uint8 / float workers: {result['uint8_over_float']:.2f}x")
    if "train_rate" in result:
        print(f"workers one GPU needs at {result['train_rate']:.1f} training clips/s: {result['workers_per_gpu']} "
              f"(at {result['clips_per_s_per_worker']:.2f} clips/s per worker)")
    if args.compare_train:
        print(
            f"training step ({args.variant}/{args.arch}, {result['train_speed_name']} on "
            f"{result['device']}): {result['train_clips_per_s']:.2f} clips/s"
        )
        ratio = result["loader_over_train"]
        verdict = "meets" if ratio >= LOADER_GOAL else "misses"
        print(f"loader / training step: {ratio:.2f}x ({verdict} the goal of {LOADER_GOAL:g}x)")
    return 0
