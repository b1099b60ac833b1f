"""Where and how a number was computed: the machine, the threads and the precision.

Training on CPU is bit-identical only on the same machine with the same thread count and
the same precision (README, "The default run"); a bfloat16 run and a float32 run, or a
1-thread and a 2-thread run, are different runs from the first epoch on. So every training
records what it ran with in ``RUN_DIR/environment.json`` (:func:`record_training`), and
``mienet evaluate`` copies it, with its own, into ``metrics.json`` (:func:`describe`), where
the results page shows it.

``environment.json`` is a list of segments, one per training process that trained epochs of
the run (a resumed run on another machine adds one): ``from_epoch`` (1-based) and the record
of :func:`describe`.
"""

from __future__ import annotations

import functools
import json
import os
import platform
from pathlib import Path

from mienet.io import write_text_atomic

ENVIRONMENT_FILE = "environment.json"
# The CPU flags that decide which kernels oneDNN/MKL and ATen pick (and so the rounding).
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile")
# Environment variables that change the kernels or the threads, recorded when set.
KERNEL_ENV = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS",
              "MKL_CBWR", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
NOT_RECORDED = "not recorded"


@functools.cache
def _cpuinfo() -> tuple[str, tuple[str, ...], str]:
    """(model name, the :data:`ISA_FLAGS` it has, 'family F model M stepping S') from
    /proc/cpuinfo; the platform's name elsewhere. Two CPUs with the same flags may still
    differ (oneDNN sizes its blocks by the caches), hence the family, model and caches."""
    fields: dict[str, str] = {}
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if not key:  # the end of the first processor's block
                    break
                if key in ("flags", "Features"):
                    flags = set(value.split())
                else:
                    fields.setdefault(key, value.strip())
    except OSError:
        pass
    model = fields.get("model name") or platform.processor() or platform.machine()
    ident = " ".join(f"{k} {fields[k]}" for k in ("cpu family", "model", "stepping") if fields.get(k))
    return model, tuple(f for f in ISA_FLAGS if f in flags), ident


@functools.cache
def _caches() -> dict[str, str]:
    """Cache sizes of CPU 0 ('L1d', 'L2', 'L3' -> '2048K') from sysfs; {} where unavailable."""
    out = {}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        if kind != "Instruction":
            out[f"L{level}{'d' if kind == 'Data' else ''}"] = size
    return out


def machine(device=None) -> dict:
    """The machine's identity as far as the arithmetic goes: CPU model and ISA flags, ATen's CPU
    capability, the GPU of ``device`` (None on CPU), torch's version and the kernel variables set."""
    # torch here, not at the top: `mienet report` reads records (summary) without it, and starts
    # faster for that (measured 2026-12-06: 5.5 s with torch at the top, 3.9 s without)
    import torch

    cpu, isa, ident = _cpuinfo()
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except (AttributeError, RuntimeError):
        capability = None
    device = torch.device(device) if device is not None else None
    gpu = torch.cuda.get_device_name(device) if device is not None and device.type == "cuda" else None
    env = {k: os.environ[k] for k in KERNEL_ENV if os.environ.get(k)}
    return {"cpu": cpu, "cpu_id": ident, "caches": _caches(), "cores": os.cpu_count(), "isa": list(isa),
            "cpu_capability": capability, "gpu": gpu, "torch": torch.__version__, "env": env}


def precision_of(speed) -> str:
    """``bf16``, ``fp16`` or ``fp32``: what the autocast of a :class:`SpeedConfig` computes in."""
    return getattr(speed, "amp", None) or "fp32"


def describe(device, speed) -> dict:
    """What a process computes with: device type, precision, PyTorch's CPU threads and the machine."""
    import torch  # as in machine()

    device = torch.device(device)
    return {"device": device.type, "precision": precision_of(speed), "threads": torch.get_num_threads(),
            "channels_last": bool(getattr(speed, "channels_last", False)), "machine": machine(device)}


def record_training(run_dir: Path, start_epoch: int, device, speed, world_size: int = 1) -> list[dict]:
    """Write ``RUN_DIR/environment.json`` for a training process that trains from epoch
    ``start_epoch + 1``: the segments of earlier processes that the run keeps (those that began
    at or before ``start_epoch``) and this one. Returns the segments."""
    path = Path(run_dir) / ENVIRONMENT_FILE
    segments = read_training(path) if start_epoch > 0 else []
    segments = [s for s in (segments or []) if int(s.get("from_epoch", 1)) <= start_epoch]
    now = {"from_epoch": start_epoch + 1, **describe(device, speed), "world_size": world_size}
    if not segments or {k: v for k, v in segments[-1].items() if k != "from_epoch"} != \
            {k: v for k, v in now.items() if k != "from_epoch"}:
        segments.append(now)

    write_text_atomic(path, json.dumps(segments, indent=2) + "\n")
    return segments


def read_training(path: Path) -> list[dict] | None:
    """The segments of an ``environment.json``; None when it is missing or unreadable."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return [s for s in data if isinstance(s, dict)] if isinstance(data, list) else None


def summary(record) -> str:
    """One line of a record, or of a training's segments: 'bf16, 1 thread, AMD EPYC (family 25
    model 17; avx512_bf16)'; :data:`NOT_RECORDED` for anything else."""
    if isinstance(record, list):
        lines = [summary(seg) for seg in record]
        if len(lines) == 1:
            return lines[0]
        return "; ".join(f"from epoch {seg.get('from_epoch', '?')}: {line}" for seg, line in zip(record, lines)) \
            or NOT_RECORDED
    if not isinstance(record, dict):
        return NOT_RECORDED
    m = record.get("machine") or {}
    threads = record.get("threads")
    if record.get("device") == "cuda" and m.get("gpu"):
        where = m["gpu"]
    else:
        isa = m.get("isa") or []
        best = next((f for f in ("amx_bf16", "avx512_bf16", "avx512f", "avx2") if f in isa), None)
        ident = (m.get("cpu_id") or "").replace("cpu family", "family").replace(" stepping ", ", stepping ")
        detail = "; ".join(x for x in (ident, best) if x)
        where = f"{m.get('cpu') or '?'}" + (f" ({detail})" if detail else "")
    env = m.get("env") or {}
    limited = ", ".join(f"{k}={v}" for k, v in env.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"))
    text = f"{record.get('precision', '?')}, {threads} thread{'' if threads == 1 else 's'}, {where}"
    return text + (f" [{limited}]" if limited else "")
