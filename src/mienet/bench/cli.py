"""``mienet bench``: how fast the training step, the data loader and the frame layouts run; the
argument parser of its modes and their dispatch.

- ``mienet bench train``: clips/s of a full training step, the default path against the released
  eager float32 one, or every speed lever with ``--compare`` (:mod:`mienet.bench.training`).
- ``mienet bench loader``: clips/s the data loader delivers; ``--compare-train`` also measures the
  training step of the same shape (:mod:`mienet.bench.loader_speed`).
- ``mienet bench e2e``: training with the real loader on a frame-list dataset, the shares of the
  time spent waiting for data and computing (:mod:`mienet.bench.e2e`).
- ``mienet bench scale``: what the frame layout of ``extract-frames`` (packed or folders) costs as
  a dataset grows: extraction, disk, ``snakemake -n``, ``dvc add/status/push`` and the loader,
  fitted against the clip count and projected to SSv2 (:mod:`mienet.bench.scale`).
- ``mienet bench summary``: ``bench train`` and ``bench e2e`` JSON combined into
  ``gpu_summary.json`` / ``.md`` (``workflow/scripts/gpu_checks.sh``), which the report's
  efficiency table reads (:mod:`mienet.bench.summary`).
"""

from __future__ import annotations

import argparse

import torch

from mienet.bench import scale
from mienet.bench.e2e import E2E_WORKERS, run_e2e
from mienet.bench.loader_speed import run_loader
from mienet.bench.summary import run_summary
from mienet.bench.training import resolve_device, run_train
from mienet.errors import MienetError
from mienet.models.backbone import ARCHS
from mienet.registry.variants import FULL_MODEL, VARIANTS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    modes = parser.add_subparsers(dest="mode", metavar="MODE")
    modes.required = True
    for add in (_add_train, _add_e2e, _add_summary, _add_scale, _add_loader):
        add(modes)


def _add_train(modes) -> None:
    """``bench train``: the training step on random input."""
    train = modes.add_parser(
        "train", help="clips/s of a training step: default path vs eager float32",
        description="Clips per second of a full training step (forward, cross-entropy, "
        "backward, SGD with momentum) on random input: the default path on this device "
        "and eager float32 channels-first, in one run.",
    )
    _add_shape_arguments(train, required=True)
    _add_timing_arguments(train)
    train.add_argument(
        "--compare", action="store_true",
        help="measure every speed lever on its own and together and print a table",
    )
    train.add_argument("--no-compile", action="store_true",
                       help="with --compare: leave out the torch.compile rows (minutes of compiling)")
    train.add_argument("--fill-batch", type=int, default=None,
                       help="measure the same configurations again at this batch (one that fills the GPU, "
                            "e.g. 64), in the same run")
    train.add_argument("--json", action="store_true", help="print one JSON object")


def _add_e2e(modes) -> None:
    """``bench e2e``: training with the real loader."""
    e2e = modes.add_parser(
        "e2e", help="clips/s of training with the real data loader, and its data-wait share",
        description="End-to-end training throughput on a frame-list dataset: the loader's worker "
        "count (and pinned memory on CUDA) chosen by measuring, the page cache dropped where "
        "permitted (root), then one timed epoch of the default training path: clips/s, the share "
        "of the time spent waiting for data and the device's busy share.",
    )
    _add_frame_list_arguments(e2e)
    _add_shape_arguments(e2e, required=False)
    e2e.set_defaults(variant=FULL_MODEL, arch="resnet50", segments=3, size=224, batch=8)
    e2e.add_argument("--workers", type=int, nargs="+", default=list(E2E_WORKERS),
                     help="worker counts to try; the fastest is used (default 0 2 4 8)")
    e2e.add_argument("--trial-batches", type=int, default=10,
                     help="batches timed per worker count (default 10)")
    e2e.add_argument("--max-steps", type=int, default=None,
                     help="time at most this many steps of the epoch (default: the whole epoch)")
    e2e.add_argument("--no-drop-cache", action="store_true",
                     help="do not drop the page cache before the timed epoch")
    e2e.add_argument("--warmup", type=int, default=2,
                     help="untimed training steps before the timed epoch (default 2)")
    e2e.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                     help="where to run (default: CUDA when present, else CPU)")
    e2e.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch")
    e2e.add_argument("--decode", choices=("cpu", "gpu"), default="cpu",
                     help="cpu: the workers decode (default); gpu: they read JPEG bytes and the device decodes")
    e2e.add_argument("--json", action="store_true", help="print one JSON object")


def _add_summary(modes) -> None:
    """``bench summary``: ``bench train`` and ``bench e2e`` JSON in one record."""
    summary = modes.add_parser(
        "summary", help="one JSON and Markdown summary of `bench train` and `bench e2e` JSON",
        description="Combine `mienet bench train --compare --json` (and `bench e2e --json`) output "
        "into OUT.json (read by the report's efficiency table) and OUT.md.",
    )
    summary.add_argument("--train", required=True, help="JSON of `mienet bench train --compare --json`")
    summary.add_argument("--e2e", default=None, help="JSON of `mienet bench e2e --json`")
    summary.add_argument("--out", required=True, help="output path without suffix, e.g. results/bench/gpu_summary")


def _add_scale(modes) -> None:
    """``bench scale``: the frame layouts at growing dataset sizes (:mod:`mienet.bench.scale`)."""
    parser = modes.add_parser(
        "scale", help="frame layouts at growing dataset sizes: extraction, disk, DVC, snakemake -n, loader",
        description="Extract synthetic clips at SSv2-like geometry in each frame layout at several sizes; "
        "measure extraction, disk use, snakemake -n, dvc add/status/push and the loader; fit each "
        "against the clip count and project to Something-Something V2 (docs/scale.md).",
    )
    scale.add_arguments(parser)


def _add_loader(modes) -> None:
    """``bench loader``: the data loader's clips/s."""
    loader = modes.add_parser(
        "loader", help="clips/s the data loader delivers",
        description="Clips per second the training data loader delivers from a frame-list "
        "annotation file, decoded and augmented.",
    )
    _add_frame_list_arguments(loader)
    loader.add_argument("--segments", required=True, type=int, help="segments per clip (T)")
    loader.add_argument("--size", required=True, type=int, help="crop size in pixels")
    loader.add_argument("--batch", required=True, type=int, help="clips per batch")
    loader.add_argument("--workers", required=True, type=int, help="DataLoader worker processes")
    loader.add_argument(
        "--frames-per-segment", type=int, default=4, help="frames per segment (L, default 4)"
    )
    loader.add_argument(
        "--batches", type=int, default=20, help="batches to time (default 20)"
    )
    loader.add_argument(
        "--compare-train", action="store_true",
        help="also measure the default training step of the same shape and print the ratio",
    )
    loader.add_argument(
        "--variant", choices=list(VARIANTS), default=FULL_MODEL,
        help="model of --compare-train (default mienet)",
    )
    loader.add_argument(
        "--arch", choices=list(ARCHS), default="resnet50",
        help="backbone of --compare-train (default resnet50)",
    )
    loader.add_argument("--num-classes", type=int, default=10, help="classes of --compare-train")
    loader.add_argument(
        "--worker-output", choices=("uint8", "float", "both"), default="uint8",
        help="what the workers hand over: uint8 clips, normalised on the device (the data path "
        "of `mienet train`), or float32 clips normalised in the workers (the path before, for a "
        "before/after in one run); both: measure float then uint8 and print the ratio",
    )
    loader.add_argument(
        "--train-rate", type=float, default=None, metavar="CLIPS_PER_S",
        help="training clips/s one GPU takes (default: the --compare-train measurement); "
        "prints the workers that would feed it",
    )
    _add_timing_arguments(loader)
    loader.add_argument("--json", action="store_true", help="print one JSON object")


def _add_frame_list_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--list", required=True, help="annotation list, e.g. ANN/train.txt")
    parser.add_argument("--root", required=True, help="root of the frame folders")


def _add_shape_arguments(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument("--variant", required=required, choices=list(VARIANTS), help="model variant")
    parser.add_argument("--arch", required=required, choices=list(ARCHS), help="ResNet backbone")
    parser.add_argument("--segments", required=required, type=int, help="segments per clip (T)")
    parser.add_argument("--size", required=required, type=int, help="frame height and width in pixels")
    parser.add_argument("--batch", required=required, type=int, help="clips per batch")
    parser.add_argument(
        "--frames-per-segment", type=int, default=4, help="frames per segment (L, default 4)"
    )
    parser.add_argument("--num-classes", type=int, default=10, help="classes (default 10)")


def _add_timing_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=int, default=5, help="timed training steps (default 5)")
    parser.add_argument(
        "--warmup", type=int, default=2, help="untimed warm-up steps before them (default 2)"
    )
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto",
        help="where to run (default: CUDA when present, else CPU)",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads for PyTorch (default: its own choice)"
    )


def run(args: argparse.Namespace) -> int:
    if args.mode == "summary":
        return run_summary(args)
    if args.mode == "scale":
        return scale.run(args)
    if args.threads is not None:
        if args.threads < 1:
            raise MienetError(f"--threads must be positive, got {args.threads}")
        torch.set_num_threads(args.threads)
    for name in ("segments", "size", "batch", "frames_per_segment"):
        if getattr(args, name) < 1:
            raise MienetError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    device = resolve_device(args.device)
    if args.mode == "train":
        return run_train(args, device)
    if args.mode == "e2e":
        return run_e2e(args, device)
    return run_loader(args, device)
