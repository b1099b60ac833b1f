"""``mienet model-info``: parameters and GFLOPs per clip of a model variant."""

from __future__ import annotations

import argparse
import json

from mienet.errors import MienetError
from mienet.models.backbone import ARCHS
from mienet.models.flops import model_stats
from mienet.registry.variants import VARIANTS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", required=True, choices=list(VARIANTS), help="model variant")
    parser.add_argument("--arch", required=True, choices=list(ARCHS), help="ResNet backbone")
    parser.add_argument("--segments", required=True, type=int, help="segments per clip (T)")
    parser.add_argument("--size", required=True, type=int, help="frame height and width in pixels")
    parser.add_argument(
        "--frames-per-segment", type=int, default=4, help="frames per segment (L, default 4)"
    )
    parser.add_argument("--num-classes", type=int, default=10, help="classes (default 10)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    if args.size < 1:
        raise MienetError(f"--size must be positive, got {args.size}")
    stats = model_stats(
        args.variant,
        args.arch,
        args.segments,
        args.size,
        frames_per_segment=args.frames_per_segment,
        num_classes=args.num_classes,
    )
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    print(
        f"{stats['variant']} on {stats['arch']}: {stats['segments']} segments x "
        f"{stats['frames_per_segment']} frames of {stats['size']}x{stats['size']} px, "
        f"{stats['num_classes']} classes"
    )
    print(
        f"parameters: {stats['params_m']:.4f} M "
        f"(released layout, with its unused parameters: {stats['params_released_layout_m']:.4f} M)"
    )
    print(
        f"GFLOPs per clip: {stats['gflops']:.2f} "
        f"(FlopCounterMode, 1 multiply-accumulate = 2 FLOPs; GMACs: {stats['gmacs']:.2f})"
    )
    return 0
