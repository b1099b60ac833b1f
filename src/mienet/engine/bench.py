"""``mienet bench``: how fast the training step and the data loader run.

- ``mienet bench train``: clips per second of a full training step (forward,
  cross-entropy, backward, SGD with momentum) on random input, for the project's
  default path on this device (:func:`~mienet.engine.performance.default_speed_config`)
  and for plain eager float32 in the channels-first layout with PA convolving every
  frame (how the released code runs), measured in the same run, interleaved step by
  step so that other load on the machine hits both alike. ``--compare`` measures
  every speed lever on its own and together.
- ``mienet bench loader``: clips per second the data loader delivers
  (:func:`mienet.engine.data.measure_loader`); ``--compare-train`` also measures the
  training step of the same shape, since the loader should deliver at least twice
  what the step consumes.

Each figure is ``batch / median step time`` over the timed steps, after warm-up
steps (which also absorb ``torch.compile``'s compilation).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from dataclasses import dataclass, field

from mienet.errors import MienetError
from mienet.models.backbone import ARCHS
from mienet.models.variants import VARIANTS

LOADER_GOAL = 2.0  # the loader should deliver this many times what the training step consumes


@dataclass(frozen=True)
class TrainShape:
    """The model and batch a training-step benchmark runs."""

    variant: str
    arch: str
    segments: int
    size: int
    batch: int
    frames_per_segment: int = 4
    num_classes: int = 10


@dataclass
class StepTiming:
    """Timed steps of one speed configuration."""

    name: str
    speed: object  # SpeedConfig
    batch: int
    step_times_s: list[float] = field(default_factory=list)
    warmup_s: float = 0.0

    @property
    def median_step_s(self) -> float:
        return statistics.median(self.step_times_s)

    @property
    def clips_per_s(self) -> float:
        return self.batch / self.median_step_s

    @property
    def best_clips_per_s(self) -> float:
        """From the fastest step: the least disturbed by other load on the machine."""
        return self.batch / min(self.step_times_s)

    @property
    def spread(self) -> float:
        """Slowest over fastest timed step; well above 1 means other load interfered."""
        return max(self.step_times_s) / min(self.step_times_s)

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "speed": self.speed.as_dict(),
            "speed_name": self.speed.describe(),
            "clips_per_s": self.clips_per_s,
            "best_clips_per_s": self.best_clips_per_s,
            "median_step_s": self.median_step_s,
            "spread": self.spread,
            "step_times_s": self.step_times_s,
            "warmup_s": self.warmup_s,
        }


def resolve_device(name: str):
    """``auto`` (CUDA when present, else CPU), ``cpu`` or ``cuda``."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise MienetError("--device cuda was asked for, but PyTorch sees no CUDA GPU; use --device cpu")
    return torch.device(name)


def compare_configs(device, with_compile: bool = True) -> dict:
    """Every lever on its own and together: name -> SpeedConfig. The first entry is the
    released code's eager float32 path; the lighter PA is on in every other row.
    ``with_compile=False`` leaves out the two ``torch.compile`` rows (minutes of compiling)."""
    from mienet.engine.performance import EAGER_FP32, SpeedConfig, default_speed_config

    amp = "bf16" if device.type == "cpu" else (default_speed_config(device).amp or "bf16")
    configs = {
        "eager fp32 (released)": EAGER_FP32,
        "+lighter PA": SpeedConfig(),
        "+channels-last": SpeedConfig(channels_last=True),
        f"+{amp} autocast": SpeedConfig(amp=amp),
        "+compile": SpeedConfig(compile=True),
        f"{amp}+channels-last": SpeedConfig(amp=amp, channels_last=True),
        "all": SpeedConfig(amp=amp, channels_last=True, compile=True),
    }
    return {name: c for name, c in configs.items() if with_compile or not c.compile}


def measure_train_steps(
    configs: dict,
    shape: TrainShape,
    device,
    steps: int,
    warmup: int,
    seed: int = 0,
) -> list[StepTiming]:
    """Time ``steps`` training steps of every configuration in ``configs`` (name ->
    SpeedConfig) on one random batch, after ``warmup`` untimed steps each.

    All models start from the same weights; the timed steps are interleaved (one
    step of each configuration in turn), so a burst of other load on the machine
    slows all of them rather than one.
    """
    import torch

    from mienet.engine.performance import make_grad_scaler, prepare_model, synchronize, to_device, train_step
    from mienet.models import build_model

    if steps < 1 or warmup < 0:
        raise MienetError(f"--steps must be positive and --warmup not negative, got {steps}, {warmup}")
    generator = torch.Generator().manual_seed(seed)
    clips = torch.randn(
        shape.batch, shape.segments, shape.frames_per_segment, 3, shape.size, shape.size,
        generator=generator,
    )
    labels = torch.randint(0, shape.num_classes, (shape.batch,), generator=generator)
    if device.type == "cuda":
        clips = clips.pin_memory()
    runs = []
    for name, speed in configs.items():
        torch.manual_seed(seed)
        model = build_model(
            shape.variant, shape.arch, shape.num_classes, shape.segments,
            frames_per_segment=shape.frames_per_segment,
        ).train()
        model = prepare_model(model, device, speed)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
        scaler = make_grad_scaler(device, speed)
        timing = StepTiming(name, speed, shape.batch)
        runs.append((timing, model, optimizer, scaler))

    def one_step(timing, model, optimizer, scaler) -> float:
        synchronize(device)
        start = time.perf_counter()
        batch = to_device(clips, device, timing.speed)
        train_step(model, optimizer, scaler, batch, labels.to(device), device, timing.speed)
        synchronize(device)
        return time.perf_counter() - start

    for run in runs:
        run[0].warmup_s = sum(one_step(*run) for _ in range(warmup))
    for _ in range(steps):
        for run in runs:
            run[0].step_times_s.append(one_step(*run))
    return [run[0] for run in runs]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    modes = parser.add_subparsers(dest="mode", metavar="MODE")
    modes.required = True

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
    train.add_argument("--json", action="store_true", help="print one JSON object")

    loader = modes.add_parser(
        "loader", help="clips/s the data loader delivers",
        description="Clips per second the training data loader delivers from a frame-list "
        "annotation file, decoded and augmented.",
    )
    loader.add_argument("--list", required=True, help="annotation list, e.g. ANN/train.txt")
    loader.add_argument("--root", required=True, help="root of the frame folders")
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
        "--variant", choices=list(VARIANTS), default="mienet",
        help="model of --compare-train (default mienet)",
    )
    loader.add_argument(
        "--arch", choices=list(ARCHS), default="resnet50",
        help="backbone of --compare-train (default resnet50)",
    )
    loader.add_argument("--num-classes", type=int, default=10, help="classes of --compare-train")
    _add_timing_arguments(loader)
    loader.add_argument("--json", action="store_true", help="print one JSON object")


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
    import torch

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
    return run_loader(args, device)


def _shape(args: argparse.Namespace) -> TrainShape:
    return TrainShape(
        args.variant, args.arch, args.segments, args.size, args.batch,
        args.frames_per_segment, args.num_classes,
    )


def _environment(device) -> dict:
    import torch

    from mienet.engine.performance import cpu_has_native_bf16

    return {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
        "cpu_native_bf16": cpu_has_native_bf16(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def train_speed(shape: TrainShape, device, steps: int, warmup: int, compare: bool = False,
                with_compile: bool = True) -> dict:
    """The ``bench train`` measurement as a JSON-ready dict (see :func:`run_train`)."""
    from mienet.engine.performance import EAGER_FP32, default_speed_config

    default = default_speed_config(device)
    configs = (compare_configs(device, with_compile) if compare
               else {"default": default, "eager fp32": EAGER_FP32})
    if compare and default not in configs.values():
        configs["default"] = default
    timings = measure_train_steps(configs, shape, device, steps, warmup)
    by_speed = {t.speed: t for t in reversed(timings)}  # first name wins for a repeated config
    default_timing, eager_timing = by_speed[default], by_speed[EAGER_FP32]
    result = {
        "clips_per_s": default_timing.clips_per_s,
        "eager_fp32_clips_per_s": eager_timing.clips_per_s,
        "speedup": default_timing.clips_per_s / eager_timing.clips_per_s,
        "best_clips_per_s": default_timing.best_clips_per_s,
        "eager_fp32_best_clips_per_s": eager_timing.best_clips_per_s,
        "best_speedup": default_timing.best_clips_per_s / eager_timing.best_clips_per_s,
        "load_average_1min": _load_average(),
        **_environment(device),
        "speed": default.as_dict(),
        "speed_name": default.describe(),
        **shape.__dict__,
        "steps": steps,
        "warmup": warmup,
        "statistic": "batch / median step time (best_*: batch / fastest step time)",
        "runs": [t.as_dict() for t in timings],
    }
    return result


def run_train(args: argparse.Namespace, device) -> int:
    shape = _shape(args)
    result = train_speed(shape, device, args.steps, args.warmup, compare=args.compare,
                         with_compile=not args.no_compile)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(_shape_line(result))
    if args.compare:
        eager = result["eager_fp32_clips_per_s"]
        width = max(len(r["name"]) for r in result["runs"])
        best_eager = result["eager_fp32_best_clips_per_s"]
        print(
            f"{'configuration':<{width}}  {'clips/s':>8}  {'vs eager':>8}  {'best':>7}  "
            f"{'vs eager':>8}  {'spread':>6}  warm-up s"
        )
        for r in result["runs"]:
            mark = "  <- default" if r["speed"] == result["speed"] else ""
            print(
                f"{r['name']:<{width}}  {r['clips_per_s']:8.2f}  {r['clips_per_s'] / eager:7.2f}x  "
                f"{r['best_clips_per_s']:7.2f}  {r['best_clips_per_s'] / best_eager:7.2f}x  "
                f"{r['spread']:6.2f}  {r['warmup_s']:9.1f}{mark}"
            )
    print(
        f"default path ({result['speed_name']}): {result['clips_per_s']:.2f} clips/s "
        f"(fastest step: {result['best_clips_per_s']:.2f})"
    )
    print(
        f"eager float32, channels-first (released): {result['eager_fp32_clips_per_s']:.2f} clips/s "
        f"(fastest step: {result['eager_fp32_best_clips_per_s']:.2f})"
    )
    print(f"speedup: {result['speedup']:.2f}x (fastest steps: {result['best_speedup']:.2f}x)")
    worst = max(r["spread"] for r in result["runs"])
    if worst > 1.5:
        print(
            f"note: step times varied up to {worst:.1f}x (load average {result['load_average_1min']}); "
            "other work on the machine disturbed the timing, rerun when it is quiet"
        )
    return 0


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:  # not available on this platform
        return None


def _shape_line(result: dict) -> str:
    return (
        f"{result['variant']}/{result['arch']}: batch {result['batch']} x {result['segments']} "
        f"segments x {result['frames_per_segment']} frames of {result['size']} px; "
        f"{result['device']} ({result['device_name']}, {result['threads']} threads), "
        f"torch {result['torch']}; {result['steps']} timed steps after {result['warmup']} warm-up"
    )


def run_loader(args: argparse.Namespace, device) -> int:
    try:
        from mienet.engine.data import ClipDataset, measure_loader
    except ImportError as exc:
        raise MienetError(
            f"the data loader is not available ({exc}); mienet.engine.data must provide "
            "ClipDataset and measure_loader"
        ) from exc
    if args.workers < 0 or args.batches < 1:
        raise MienetError(
            f"--workers must not be negative and --batches must be positive, got "
            f"{args.workers}, {args.batches}"
        )
    dataset = ClipDataset(
        args.list, root=args.root, num_segments=args.segments,
        frames_per_segment=args.frames_per_segment, size=args.size, train=True,
    )
    measured = measure_loader(dataset, args.batch, args.workers, args.batches)
    clips_per_s = float(measured["clips_per_s"] if isinstance(measured, dict) else measured)
    result = {
        "loader_clips_per_s": clips_per_s,
        "clips_per_s": clips_per_s,
        "list": str(args.list),
        "root": str(args.root),
        "segments": args.segments,
        "frames_per_segment": args.frames_per_segment,
        "size": args.size,
        "batch": args.batch,
        "workers": args.workers,
        "batches": args.batches,
        **_environment(device),
    }
    if isinstance(measured, dict):
        result["loader"] = measured
    if args.compare_train:
        shape = TrainShape(
            args.variant, args.arch, args.segments, args.size, args.batch,
            args.frames_per_segment, args.num_classes,
        )
        train = train_speed(shape, device, args.steps, args.warmup)
        result["train_clips_per_s"] = train["clips_per_s"]
        result["train_speed_name"] = train["speed_name"]
        result["train_variant"], result["train_arch"] = args.variant, args.arch
        result["loader_over_train"] = clips_per_s / train["clips_per_s"]
        result["goal_loader_over_train"] = LOADER_GOAL
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"loader: {clips_per_s:.2f} clips/s ({args.workers} workers, batch {args.batch}, "
        f"{args.segments} x {args.frames_per_segment} frames at {args.size} px, {args.batches} batches)"
    )
    if args.compare_train:
        print(
            f"training step ({args.variant}/{args.arch}, {result['train_speed_name']} on "
            f"{result['device']}): {result['train_clips_per_s']:.2f} clips/s"
        )
        ratio = result["loader_over_train"]
        verdict = "meets" if ratio >= LOADER_GOAL else "misses"
        print(f"loader / training step: {ratio:.2f}x ({verdict} the goal of {LOADER_GOAL:g}x)")
    return 0
