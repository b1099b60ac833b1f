"""``mienet bench train``: clips per second of a full training step (forward, cross-entropy,
backward, SGD with momentum) on random input, for the project's default path on this device
(:func:`~mienet.engine.performance.default_speed_config`) and for plain eager float32 in the
channels-first layout with PA convolving every frame (how the released code runs), measured in
the same run, interleaved step by step so that other load on the machine hits both alike.

``--compare`` measures every speed lever on its own and together (:func:`compare_configs`: TF32,
channels-last, bf16, ``torch.compile``, CUDA graphs; the CUDA-only ones reported as skipped, with
the reason, elsewhere); ``--fill-batch B`` measures them again at a batch that fills the GPU.
Every row has its ratio to the released path of the same batch, the achieved model TFLOP/s (3 x
the forward's FlopCounterMode FLOPs per clip, times clips/s) and, on a GPU of
:data:`BF16_PEAK_TFLOPS`, the share of its dense bf16 peak.

Each figure is ``batch / median step time`` over the timed steps, after warm-up steps (which
also absorb ``torch.compile``'s compilation; CUDA-graph capture is counted in the warm-up time).
The shape, device and environment helpers here serve ``bench loader`` and ``bench e2e`` too.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import statistics
import time
from dataclasses import dataclass, field

import torch

from mienet.engine.performance import (EAGER_FP32, SpeedConfig, capture_cuda_graphs, cpu_has_native_bf16,
                                       default_speed_config, make_grad_scaler, precision_flags, prepare_model,
                                       synchronize, to_device, train_step)
from mienet.errors import MienetError
from mienet.models import build_model
from mienet.models.flops import model_stats


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


def shape_of(args: argparse.Namespace) -> TrainShape:
    """The shape of a ``bench train``, ``bench loader`` or ``bench e2e`` command line."""
    return TrainShape(
        args.variant, args.arch, args.segments, args.size, args.batch,
        args.frames_per_segment, args.num_classes,
    )


def device_environment(device) -> dict:
    """The device, its name, PyTorch's versions and threads: part of every bench record."""
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
    stats = model_stats(shape.variant, shape.arch, shape.segments, shape.size,
                        shape.frames_per_segment, shape.num_classes)
    return 3.0 * float(stats["flops"])


def annotate_runs(timings: list, flops_per_clip: float, peak_tflops: float | None) -> list[dict]:
    """Each run as a dict with ``vs_released`` (clips/s over the released eager float32 path's,
    measured in the same run), ``tflops`` (achieved model TFLOP/s) and ``share_of_peak``
    (over ``peak_tflops``; None when the peak is unknown)."""
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
    default = default_speed_config(device)
    configs = (compare_configs(device, with_compile) if compare
               else {"default": default, "eager fp32": EAGER_FP32})
    if compare and default not in configs.values():
        configs["default"] = default
    timings = measure_train_steps(configs, shape, device, steps, warmup)
    environment = device_environment(device)
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
    shape = shape_of(args)
    result = train_speed(shape, device, args.steps, args.warmup, compare=args.compare,
                         with_compile=not args.no_compile, fill_batch=args.fill_batch)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_train(result, tables=args.compare or args.fill_batch)
    return 0


def print_train(result: dict, tables: bool) -> None:
    """`mienet bench train`'s printed figures for ``result`` (what ``--json`` prints); with
    ``tables``, each batch's table of the speed levers."""
    print(_shape_line(result))
    peak = result["peak_bf16_tflops"]
    print(f"model FLOPs per training clip: {result['train_flops_per_clip'] / 1e9:.2f} G (3 x forward); "
          f"bf16 dense peak of {result['device_name']}: {f'{peak:g} TFLOP/s' if peak else 'unknown (not shown)'}")
    if tables:
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

