"""``mienet bench``: how fast the training step and the data loader run.

- ``mienet bench train``: clips per second of a full training step (forward,
  cross-entropy, backward, SGD with momentum) on random input, for the project's
  default path on this device (:func:`~mienet.engine.performance.default_speed_config`)
  and for plain eager float32 in the channels-first layout with PA convolving every
  frame (how the released code runs), measured in the same run, interleaved step by
  step so that other load on the machine hits both alike. ``--compare`` measures
  every speed lever on its own and together (:func:`compare_configs`: TF32,
  channels-last, bf16, ``torch.compile``, CUDA graphs; the CUDA-only ones reported as
  skipped, with the reason, elsewhere); ``--fill-batch B`` measures them again at a batch
  that fills the GPU. Every row has its ratio to the released path of the same batch,
  the achieved model TFLOP/s (3 x the forward's FlopCounterMode FLOPs per clip, times
  clips/s) and, on a GPU of :data:`BF16_PEAK_TFLOPS`, the share of its dense bf16 peak.
- ``mienet bench loader``: clips per second the data loader delivers
  (:func:`mienet.engine.data.measure_loader`); ``--compare-train`` also measures the
  training step of the same shape, since the loader should deliver at least twice
  what the step consumes.
- ``mienet bench e2e``: training with the real loader on a frame-list dataset
  (:func:`end_to_end`): workers and pinned memory chosen by measuring, the page cache
  dropped (root) before one timed epoch; clips/s and the shares of the time spent
  waiting for data and computing (GPU busy time from CUDA events on a GPU).
- ``mienet bench scale``: what the frame layout of ``extract-frames`` (packed or folders) costs
  as a dataset grows: extraction, disk, ``snakemake -n``, ``dvc add/status/push`` and the
  loader, fitted against the clip count and projected to SSv2 (:mod:`mienet.data.scale`).
- ``mienet bench summary``: ``bench train`` and ``bench e2e`` JSON combined into
  ``gpu_summary.json`` / ``.md`` (``workflow/scripts/gpu_checks.sh``), which the
  report's efficiency table reads.

Each figure is ``batch / median step time`` over the timed steps, after warm-up
steps (which also absorb ``torch.compile``'s compilation; CUDA-graph capture is
counted in the warm-up time).
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
from mienet.registry.variants import VARIANTS
from mienet.sizing import workers_needed

LOADER_GOAL = 2.0  # the loader should deliver this many times what the training step consumes
E2E_WORKERS = (0, 2, 4, 8)  # loader worker counts `bench e2e` tries
DROP_CACHES = "/proc/sys/vm/drop_caches"


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
    """Timed steps of one speed configuration; ``skipped``: why it did not run here."""

    name: str
    speed: object  # SpeedConfig
    batch: int
    step_times_s: list[float] = field(default_factory=list)
    warmup_s: float = 0.0
    skipped: str | None = None

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
        if self.skipped is not None:
            return {"name": self.name, "speed": self.speed.as_dict(), "speed_name": self.speed.describe(),
                    "batch": self.batch, "skipped": self.skipped, "clips_per_s": None}
        return {
            "name": self.name,
            "speed": self.speed.as_dict(),
            "speed_name": self.speed.describe(),
            "batch": self.batch,
            "clips_per_s": self.clips_per_s,
            "best_clips_per_s": self.best_clips_per_s,
            "median_step_s": self.median_step_s,
            "spread": self.spread,
            "step_times_s": self.step_times_s,
            "warmup_s": self.warmup_s,
        }


# Dense bfloat16 tensor-core peaks (TFLOP/s, without sparsity), by a pattern of the device's
# name (torch.cuda.get_device_name), first match wins.
BF16_PEAK_TFLOPS = (
    (r"\bH200\b", 989.0),
    (r"\bH100\b.*\bPCIe\b", 756.0),
    (r"\bH100\b.*\b(SXM|HBM3)\b", 989.0),  # the SXM part reports itself as "H100 80GB HBM3"
    (r"\bA100\b", 312.0),
    (r"\bL4\b", 121.0),
)


def bf16_peak_tflops(device_name: str) -> float | None:
    """The device's dense bfloat16 peak from :data:`BF16_PEAK_TFLOPS`; None when unknown."""
    import re

    for pattern, peak in BF16_PEAK_TFLOPS:
        if re.search(pattern, str(device_name), flags=re.IGNORECASE):
            return peak
    return None


def unavailable_reason(speed, device) -> str | None:
    """Why ``speed`` cannot run on ``device`` (None when it can)."""
    if device.type != "cuda":
        if speed.tf32:
            return "CUDA only: TF32 is an NVIDIA tensor-core format"
        if speed.cuda_graphs:
            return "CUDA only: CUDA graphs replay GPU kernels"
        if speed.amp == "fp16":
            return "CUDA only: float16 autocast with loss scaling"
    return None


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
    released code's eager float32 path (strict float32, channels-first, PA convolving every
    frame); the lighter PA is on in every other row. The TF32 and CUDA-graph rows are kept
    on every device and reported as skipped where they cannot run (:func:`unavailable_reason`).
    ``with_compile=False`` leaves out the ``torch.compile`` rows (minutes of compiling)."""
    from mienet.engine.performance import EAGER_FP32, SpeedConfig, default_speed_config

    amp = "bf16" if device.type == "cpu" else (default_speed_config(device).amp or "bf16")
    configs = {
        "eager fp32 (released)": EAGER_FP32,
        "+lighter PA": SpeedConfig(),
        "+TF32": SpeedConfig(tf32=True),
        "+channels-last": SpeedConfig(channels_last=True),
        f"+{amp} autocast": SpeedConfig(amp=amp),
        "+compile": SpeedConfig(compile=True),
        "+CUDA graphs": SpeedConfig(cuda_graphs=True),
        f"{amp}+channels-last": SpeedConfig(amp=amp, channels_last=True),
        f"{amp}+channels-last+CUDA graphs": SpeedConfig(amp=amp, channels_last=True, cuda_graphs=True),
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

    from mienet.engine.performance import (EAGER_FP32, capture_cuda_graphs, make_grad_scaler, precision_flags,
                                           prepare_model, synchronize, to_device, train_step)
    from mienet.models import build_model

    if steps < 1 or warmup < 0:
        raise MienetError(f"--steps must be positive and --warmup not negative, got {steps}, {warmup}")
    generator = torch.Generator().manual_seed(seed)
    # uint8 as the loader hands it over: each step pays for the normalisation on the device
    clips = torch.randint(
        0, 256, (shape.batch, shape.segments, shape.frames_per_segment, 3, shape.size, shape.size),
        generator=generator, dtype=torch.uint8,
    )
    labels = torch.randint(0, shape.num_classes, (shape.batch,), generator=generator)
    if device.type == "cuda":
        clips = clips.pin_memory()
    runs, skipped = [], {}
    for name, speed in configs.items():
        reason = unavailable_reason(speed, device)
        if reason is not None:
            skipped[name] = StepTiming(name, speed, shape.batch, skipped=reason)
            continue
        torch.manual_seed(seed)
        model = build_model(
            shape.variant, shape.arch, shape.num_classes, shape.segments,
            frames_per_segment=shape.frames_per_segment,
        ).train()
        model = prepare_model(model, device, speed)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
        scaler = make_grad_scaler(device, speed)
        timing = StepTiming(name, speed, shape.batch)
        if speed.cuda_graphs:
            start = time.perf_counter()
            try:
                capture_cuda_graphs(model, device, speed, tuple(clips.shape))
            except Exception as exc:  # noqa: BLE001 - reported in its row, the others still measured
                skipped[name] = StepTiming(name, speed, shape.batch, skipped=_failure(exc))
                continue
            timing.warmup_s += time.perf_counter() - start
        runs.append((timing, model, optimizer, scaler))

    def one_step(timing, model, optimizer, scaler) -> float:
        synchronize(device)
        start = time.perf_counter()
        with precision_flags(device, timing.speed):
            batch = to_device(clips, device, timing.speed)
            train_step(model, optimizer, scaler, batch, labels.to(device), device, timing.speed)
        synchronize(device)
        return time.perf_counter() - start

    for run in list(runs):
        try:  # the warm-up also compiles: a lever that fails here is reported, not fatal
            run[0].warmup_s += sum(one_step(*run) for _ in range(warmup))
        except Exception as exc:  # noqa: BLE001
            if run[0].speed == EAGER_FP32 or not (run[0].speed.compile or run[0].speed.cuda_graphs):
                raise
            skipped[run[0].name] = StepTiming(run[0].name, run[0].speed, shape.batch, skipped=_failure(exc))
            runs.remove(run)
    for _ in range(steps):
        for run in runs:
            run[0].step_times_s.append(one_step(*run))
    measured = {run[0].name: run[0] for run in runs}
    return [measured.get(name) or skipped[name] for name in configs]


def _failure(exc: Exception) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"failed: {type(exc).__name__}: {first[:300]}"


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
    train.add_argument("--fill-batch", type=int, default=None,
                       help="measure the same configurations again at this batch (one that fills the GPU, "
                            "e.g. 64), in the same run")
    train.add_argument("--json", action="store_true", help="print one JSON object")

    e2e = modes.add_parser(
        "e2e", help="clips/s of training with the real data loader, and its data-wait share",
        description="End-to-end training throughput on a frame-list dataset: the loader's worker "
        "count (and pinned memory on CUDA) chosen by measuring, the page cache dropped where "
        "permitted (root), then one timed epoch of the default training path: clips/s, the share "
        "of the time spent waiting for data and the device's busy share.",
    )
    e2e.add_argument("--list", required=True, help="annotation list, e.g. ANN/train.txt")
    e2e.add_argument("--root", required=True, help="root of the frame folders")
    _add_shape_arguments(e2e, required=False)
    e2e.set_defaults(variant="mienet", arch="resnet50", segments=3, size=224, batch=8)
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

    summary = modes.add_parser(
        "summary", help="one JSON and Markdown summary of `bench train` and `bench e2e` JSON",
        description="Combine `mienet bench train --compare --json` (and `bench e2e --json`) output "
        "into OUT.json (read by the report's efficiency table) and OUT.md.",
    )
    summary.add_argument("--train", required=True, help="JSON of `mienet bench train --compare --json`")
    summary.add_argument("--e2e", default=None, help="JSON of `mienet bench e2e --json`")
    summary.add_argument("--out", required=True, help="output path without suffix, e.g. results/bench/gpu_summary")

    scale = modes.add_parser(
        "scale", help="frame layouts at growing dataset sizes: extraction, disk, DVC, snakemake -n, loader",
        description="Extract synthetic clips at SSv2-like geometry in each frame layout at several sizes; "
        "measure extraction, disk use, snakemake -n, dvc add/status/push and the loader; fit each "
        "against the clip count and project to Something-Something V2 (docs/scale.md).",
    )
    from mienet.data import scale as scale_module

    scale_module.add_arguments(scale)

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
        from mienet.data.scale import run as run_scale

        return run_scale(args)
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
    if args.mode == "e2e":
        return run_e2e(args, device)
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
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
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


def train_flops_per_clip(shape: TrainShape) -> float:
    """Model FLOPs of one training clip: 3 x the forward's (backward ~ 2 x forward), from
    :func:`mienet.models.flops.model_stats` (FLOPs = 2 x multiply-accumulates)."""
    from mienet.models.flops import model_stats

    stats = model_stats(shape.variant, shape.arch, shape.segments, shape.size,
                        shape.frames_per_segment, shape.num_classes)
    return 3.0 * float(stats["flops"])


def annotate_runs(timings: list, flops_per_clip: float, peak_tflops: float | None) -> list[dict]:
    """Each run as a dict with ``vs_released`` (clips/s over the released eager float32 path's,
    measured in the same run), ``tflops`` (achieved model TFLOP/s) and ``share_of_peak``
    (over ``peak_tflops``; None when the peak is unknown)."""
    from mienet.engine.performance import EAGER_FP32

    released = next((t for t in timings if t.skipped is None and t.speed == EAGER_FP32), None)
    rows = []
    for t in timings:
        row = t.as_dict()
        if t.skipped is None:
            row["vs_released"] = t.clips_per_s / released.clips_per_s if released else None
            row["tflops"] = t.clips_per_s * flops_per_clip / 1e12
            row["share_of_peak"] = row["tflops"] / peak_tflops if peak_tflops else None
        else:
            row.update(vs_released=None, tflops=None, share_of_peak=None)
        rows.append(row)
    return rows


def train_speed(shape: TrainShape, device, steps: int, warmup: int, compare: bool = False,
                with_compile: bool = True, fill_batch: int | None = None) -> dict:
    """The ``bench train`` measurement as a JSON-ready dict (see :func:`run_train`).
    ``fill_batch``: the same configurations again at that batch (``fill``)."""
    import dataclasses

    import torch

    from mienet.engine.performance import EAGER_FP32, default_speed_config

    default = default_speed_config(device)
    configs = (compare_configs(device, with_compile) if compare
               else {"default": default, "eager fp32": EAGER_FP32})
    if compare and default not in configs.values():
        configs["default"] = default
    timings = measure_train_steps(configs, shape, device, steps, warmup)
    environment = _environment(device)
    flops = train_flops_per_clip(shape)
    peak = bf16_peak_tflops(environment["device_name"]) if device.type == "cuda" else None
    by_speed = {t.speed: t for t in reversed(timings) if t.skipped is None}  # first name wins
    default_timing, eager_timing = by_speed[default], by_speed[EAGER_FP32]
    result = {
        "clips_per_s": default_timing.clips_per_s,
        "eager_fp32_clips_per_s": eager_timing.clips_per_s,
        "speedup": default_timing.clips_per_s / eager_timing.clips_per_s,
        "best_clips_per_s": default_timing.best_clips_per_s,
        "eager_fp32_best_clips_per_s": eager_timing.best_clips_per_s,
        "best_speedup": default_timing.best_clips_per_s / eager_timing.best_clips_per_s,
        "load_average_1min": _load_average(),
        **environment,
        "speed": default.as_dict(),
        "speed_name": default.describe(),
        **shape.__dict__,
        "steps": steps,
        "warmup": warmup,
        "statistic": "batch / median step time (best_*: batch / fastest step time)",
        "train_flops_per_clip": flops,
        "flops_note": "3 x forward model FLOPs (FlopCounterMode, FLOPs = 2 x MACs) per clip",
        "peak_bf16_tflops": peak,
        "tflops": default_timing.clips_per_s * flops / 1e12,
        "runs": annotate_runs(timings, flops, peak),
    }
    if fill_batch:
        if fill_batch < 1:
            raise MienetError(f"--fill-batch must be positive, got {fill_batch}")
        if device.type == "cuda":
            torch.cuda.empty_cache()
        fill = measure_train_steps(configs, dataclasses.replace(shape, batch=fill_batch), device, steps, warmup)
        result["fill"] = {"batch": fill_batch, "runs": annotate_runs(fill, flops, peak)}
    return result


def _print_runs(runs: list[dict], default_speed: dict | None = None) -> None:
    width = max(len(r["name"]) for r in runs)
    print(f"{'configuration':<{width}}  {'clips/s':>8}  {'vs rel.':>7}  {'best':>7}  {'spread':>6}  "
          f"{'TFLOP/s':>8}  {'of peak':>7}  warm-up s")
    for r in runs:
        if r.get("skipped"):
            print(f"{r['name']:<{width}}  skipped: {r['skipped']}")
            continue
        mark = "  <- default" if default_speed is not None and r["speed"] == default_speed else ""
        vs = f"{r['vs_released']:6.2f}x" if r.get("vs_released") else "      -"
        share = f"{100 * r['share_of_peak']:6.1f}%" if r.get("share_of_peak") is not None else "      -"
        print(f"{r['name']:<{width}}  {r['clips_per_s']:8.2f}  {vs}  {r['best_clips_per_s']:7.2f}  "
              f"{r['spread']:6.2f}  {r['tflops']:8.3f}  {share}  {r['warmup_s']:9.1f}{mark}")


def run_train(args: argparse.Namespace, device) -> int:
    shape = _shape(args)
    result = train_speed(shape, device, args.steps, args.warmup, compare=args.compare,
                         with_compile=not args.no_compile, fill_batch=args.fill_batch)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(_shape_line(result))
    peak = result["peak_bf16_tflops"]
    print(f"model FLOPs per training clip: {result['train_flops_per_clip'] / 1e9:.2f} G (3 x forward); "
          f"bf16 dense peak of {result['device_name']}: {f'{peak:g} TFLOP/s' if peak else 'unknown (not shown)'}")
    if args.compare or args.fill_batch:
        print(f"batch {result['batch']}:")
        _print_runs(result["runs"], result["speed"])
        if "fill" in result:
            print(f"batch {result['fill']['batch']}:")
            _print_runs(result["fill"]["runs"], result["speed"])
    print(
        f"default path ({result['speed_name']}): {result['clips_per_s']:.2f} clips/s "
        f"(fastest step: {result['best_clips_per_s']:.2f})"
    )
    print(
        f"eager float32, channels-first (released): {result['eager_fp32_clips_per_s']:.2f} clips/s "
        f"(fastest step: {result['eager_fp32_best_clips_per_s']:.2f})"
    )
    print(f"speedup: {result['speedup']:.2f}x (fastest steps: {result['best_speedup']:.2f}x)")
    measured = [r for r in result["runs"] + result.get("fill", {}).get("runs", []) if not r.get("skipped")]
    worst = max(r["spread"] for r in measured)
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


class FloatInWorkers:
    """A :class:`~mienet.engine.data.ClipDataset` whose workers normalise, as before the uint8
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
        from mienet.engine.data import normalise_clips, one_intra_op_thread

        out = self.dataset[item]
        if out is None:
            return None
        clips, label, index = out
        with one_intra_op_thread():
            return normalise_clips(clips), label, index


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
    if args.train_rate is not None and args.train_rate <= 0:
        raise MienetError(f"--train-rate must be positive, got {args.train_rate}")
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
    measured = by_output[outputs[-1]]
    clips_per_s = float(measured["clips_per_s"])
    per_worker = measured["clips_per_s_per_worker"]
    result = {
        "loader_clips_per_s": clips_per_s,
        "clips_per_s": clips_per_s,
        "clips_per_s_per_worker": per_worker,
        "worker_output": outputs[-1],
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
    result["loader"] = measured
    if len(by_output) == 2:
        result["float_path"] = by_output["float"]
        result["uint8_over_float"] = round(by_output["uint8"]["clips_per_s"] / by_output["float"]["clips_per_s"], 2)
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
    rate = args.train_rate if args.train_rate is not None else result.get("train_clips_per_s")
    if rate is not None:
        result["train_rate"] = rate
        result["workers_per_gpu"] = workers_needed(rate, per_worker)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    shape = (f"batch {args.batch}, {args.segments} x {args.frames_per_segment} frames at {args.size} px, "
             f"{args.batches} batches")
    for output, m in by_output.items():
        print(f"loader ({output} from the workers): {m['clips_per_s']:.2f} clips/s with {args.workers} "
              f"workers, {m['clips_per_s_per_worker']:.2f} clips/s per worker ({shape})")
    if "uint8_over_float" in result:
        print(f"uint8 / float workers: {result['uint8_over_float']:.2f}x")
    if rate is not None:
        print(f"workers one GPU needs at {rate:.1f} training clips/s: {result['workers_per_gpu']} "
              f"(at {per_worker:.2f} clips/s per worker)")
    if args.compare_train:
        print(
            f"training step ({args.variant}/{args.arch}, {result['train_speed_name']} on "
            f"{result['device']}): {result['train_clips_per_s']:.2f} clips/s"
        )
        ratio = result["loader_over_train"]
        verdict = "meets" if ratio >= LOADER_GOAL else "misses"
        print(f"loader / training step: {ratio:.2f}x ({verdict} the goal of {LOADER_GOAL:g}x)")
    return 0


# --------------------------------------------------------------------------- end to end

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
    import torch

    from mienet.engine.data import build_loader

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
    import torch

    from mienet.engine.data import ClipDataset, build_loader, measure_loader
    from mienet.engine.jpeg import resolve_decode
    from mienet.engine.performance import (default_speed_config, make_grad_scaler, prepare_model,
                                           setup_cuda_graphs, synchronize, to_device, train_step)
    from mienet.models import build_model

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
    trials = []
    for w in workers:
        measured = measure_loader(dataset, shape.batch, w, trial_batches)
        trials.append({"workers": w, "clips_per_s": measured["clips_per_s"]})
    best_workers = max(trials, key=lambda t: t["clips_per_s"])["workers"]
    pin, pin_trial = _choose_pin_memory(dataset, shape.batch, best_workers, device, trial_batches)

    num_classes = max(shape.num_classes, dataset.num_classes)
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
    loader = build_loader(dataset, shape.batch, shuffle=True, seed=0, workers=best_workers,
                          device="cuda" if pin else "cpu", drop_last=True)

    def step(clips, labels):
        train_step(model, optimizer, scaler, to_device(clips, device, speed)[:, 0],
                   labels.to(device, non_blocking=pin), device, speed)

    loader.sampler.set_epoch(0)
    done = 0
    for clips, labels, _, _ in loader:  # warm-up: workers started, kernels chosen
        if done >= warmup:
            break
        step(clips, labels)
        done += 1
    synchronize(device)
    dropped, cache_note = drop_page_cache() if drop_cache else (False, "not asked (--no-drop-cache)")

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
    if steps == 0:
        raise MienetError(f"{list_file}: no timed step (one batch of {shape.batch} per epoch, used by the warm-up)")
    busy = sum(b.elapsed_time(e) for b, e in events) / 1e3 if events else None
    return {
        "mode": "e2e",
        "decode": "gpu" if encoded else "cpu",
        "clips_per_s": clips_done / seconds,
        "data_wait_share": wait_s / seconds,
        "compute_share": compute_s / seconds,
        "gpu_busy_share": busy / seconds if busy is not None else None,
        "clips": clips_done,
        "steps": steps,
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
        **_environment(device),
    }


def run_e2e(args: argparse.Namespace, device) -> int:
    shape = _shape(args)
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


# --------------------------------------------------------------------------- summary

def gpu_summary(train: dict, e2e: dict | None = None) -> dict:
    """One record of a GPU check: ``bench train --compare [--fill-batch]`` and ``bench e2e``.
    Its top level is a ``bench train`` record (the report's efficiency table reads it), plus
    ``configurations``: every configuration at every batch with clips/s, the ratio to the
    released path of the same batch, TFLOP/s and the share of the bf16 peak."""
    keep = ("variant", "arch", "segments", "frames_per_segment", "size", "batch", "num_classes", "device",
            "device_name", "torch", "cuda", "cudnn", "clips_per_s", "eager_fp32_clips_per_s", "speedup",
            "speed_name", "speed", "tflops", "peak_bf16_tflops", "train_flops_per_clip", "steps", "warmup")
    out = {k: train.get(k) for k in keep}
    out["kind"] = "gpu_summary"
    configurations = []
    for runs in (train.get("runs", []), train.get("fill", {}).get("runs", [])):
        for r in runs:
            configurations.append({k: r.get(k) for k in ("name", "batch", "speed_name", "clips_per_s",
                                                         "vs_released", "tflops", "share_of_peak", "skipped")})
    out["configurations"] = configurations
    measured = [c for c in configurations if c["clips_per_s"] is not None]
    if measured:
        best = max(measured, key=lambda c: c["clips_per_s"])
        out["fastest"] = {"name": best["name"], "batch": best["batch"], "clips_per_s": best["clips_per_s"],
                          "vs_released": best["vs_released"], "tflops": best["tflops"]}
    if e2e is not None:
        out["e2e"] = {k: e2e.get(k) for k in ("clips_per_s", "data_wait_share", "compute_share", "gpu_busy_share",
                                              "workers", "pin_memory", "page_cache_dropped", "page_cache",
                                              "arch", "size", "batch", "steps",
                                              "speed_name", "cuda_graphs")}
        out["data_wait_share"] = e2e.get("data_wait_share")
    return out


def _cell(value, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def gpu_summary_markdown(summary: dict) -> str:
    lines = [
        f"# Training throughput on {summary.get('device_name')}",
        "",
        f"{summary.get('variant')}/{summary.get('arch')}, {summary.get('segments')} segments x "
        f"{summary.get('frames_per_segment')} frames of {summary.get('size')} px; torch {summary.get('torch')}, "
        f"CUDA {summary.get('cuda')}, cuDNN {summary.get('cudnn')}; bf16 dense peak "
        f"{_cell(summary.get('peak_bf16_tflops'), '{:g} TFLOP/s')}; model FLOPs per training clip "
        f"{_cell((summary.get('train_flops_per_clip') or 0) / 1e9 or None, '{:.1f} G')} (3 x forward).",
        "",
        "| configuration | batch | clips/s | vs released | TFLOP/s | of peak |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for c in summary.get("configurations", []):
        if c.get("skipped"):
            lines.append(f"| {c['name']} | {c['batch']} | skipped: {c['skipped']} | | | |")
            continue
        lines.append(f"| {c['name']} | {c['batch']} | {c['clips_per_s']:.1f} | {_cell(c['vs_released'], '{:.2f}x')} "
                     f"| {_cell(c['tflops'], '{:.3g}')} | {_cell(c['share_of_peak'], '{:.1%}')} |")
    e2e = summary.get("e2e")
    if e2e:
        lines += ["", f"End to end with the real loader (batch {e2e.get('batch')}, {e2e.get('workers')} workers, "
                      f"pin_memory {e2e.get('pin_memory')}, page cache dropped: {e2e.get('page_cache_dropped')}): "
                      f"{_cell(e2e.get('clips_per_s'), '{:.1f}')} clips/s, waiting for data "
                      f"{_cell(e2e.get('data_wait_share'), '{:.1%}')}, "
                      + (f"GPU busy {e2e['gpu_busy_share']:.1%}." if e2e.get("gpu_busy_share") is not None
                         else f"computing {_cell(e2e.get('compute_share'), '{:.1%}')} (no GPU).")]
    return "\n".join(lines) + "\n"


def run_summary(args: argparse.Namespace) -> int:
    from pathlib import Path

    def read(path):
        try:
            return json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise MienetError(f"cannot read the benchmark JSON {path}: {exc}") from None

    summary = gpu_summary(read(args.train), read(args.e2e) if args.e2e else None)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    markdown = gpu_summary_markdown(summary)
    out.with_suffix(".md").write_text(markdown)
    print(markdown, end="")
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return 0
