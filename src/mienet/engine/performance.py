"""The speed levers of the training engine: mixed precision, channels-last, ``torch.compile``
and the lighter PA computation, and the default choice of them per device.

The model takes ``(N, T, L, 3, H, W)`` clips; the backbone sees ``(N * T, C, H, W)``
images, formed inside :meth:`MIENet.backbone_input` (after PA and AFM). Channels-last
is a 4-D layout, so it is applied to the model's weights only: a convolution whose
weight is channels-last returns a channels-last output whatever its input's layout,
so the backbone's first convolution converts its small 3- or 6-channel input once
and every activation after it stays channels-last. The clips themselves travel in
their ordinary layout (:func:`to_device`).

Default path (:func:`default_speed_config`), chosen by measuring a full training step
with ``mienet bench train --compare`` (MIE-Net, ResNet-50, 3 segments, 112 px, batch 8,
on a 2-core AMD EPYC with AVX512-BF16 and no AMX; eager float32 = 1.00x):
lighter PA alone ~1.0-1.07x, channels-last ~1.3x, bfloat16 autocast ~1.5x,
``torch.compile`` ~1.25x, bfloat16 + channels-last ~1.9-2.2x, all of them ~1.85x.

- CPU: channels-last and the lighter PA; bfloat16 autocast only where the CPU computes
  bfloat16 in hardware (AVX512-BF16 or AMX, :func:`cpu_has_native_bf16`). Without it
  bfloat16 is emulated and loses: on the same CPU restricted with ``ONEDNN_MAX_CPU_ISA``,
  bfloat16 + channels-last ran at 0.76x eager float32 on plain AVX-512 and 0.09x on
  AVX2, while channels-last alone gave 1.50x and 1.31x. No ``torch.compile``: it added
  nothing on top of bfloat16 + channels-last and costs minutes of compilation per process.
- CUDA: bfloat16 autocast (float16 with a :class:`torch.amp.GradScaler` where the GPU
  has no bfloat16), channels-last, ``cudnn.benchmark``, the lighter PA. No GPU was
  available to measure this, so ``torch.compile`` stays off by default there too;
  ``SpeedConfig(compile=True)`` (``mienet train --compile on``) turns it on, and
  ``mienet bench train --compare`` on the GPU says whether it pays.

PA always runs in float32 (see :class:`~mienet.models.modules.PersistenceOfAppearance`).
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mienet.errors import MienetError
from mienet.models.modules import PersistenceOfAppearance

AMP_DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class SpeedConfig:
    """How the model runs; none of it changes what it computes beyond rounding.

    - ``amp``: autocast dtype, ``"bf16"``, ``"fp16"`` (CUDA only, with loss scaling)
      or ``None`` for float32;
    - ``channels_last``: the model's 4-D weights, and so its activations, in NHWC;
    - ``compile``: ``torch.compile`` the model (in place; state-dict keys unchanged);
    - ``lighter_pa``: PA convolves the ``L - 1`` frame differences instead of the
      ``L`` frames (:class:`~mienet.models.modules.PersistenceOfAppearance`); the
      same map, always on except to reproduce the released arithmetic.
    """

    amp: str | None = None
    channels_last: bool = False
    compile: bool = False
    lighter_pa: bool = True

    def __post_init__(self) -> None:
        if self.amp is not None and self.amp not in AMP_DTYPES:
            raise MienetError(
                f"unknown mixed-precision mode {self.amp!r}; use one of "
                f"{', '.join(AMP_DTYPES)} or none for float32"
            )

    def describe(self) -> str:
        """A short name such as ``bf16+channels-last+compile`` (``fp32`` when none)."""
        parts = [self.amp or "fp32"]
        if self.channels_last:
            parts.append("channels-last")
        if self.compile:
            parts.append("compile")
        parts.append("lighter-PA" if self.lighter_pa else "direct-PA")
        return "+".join(parts)

    def as_dict(self) -> dict:
        return asdict(self)


# How the released code runs: eager float32, channels-first, PA convolving every frame.
EAGER_FP32 = SpeedConfig(amp=None, channels_last=False, compile=False, lighter_pa=False)


def default_speed_config(device: torch.device | str) -> SpeedConfig:
    """The project's default path on ``device`` (see the module docstring for why)."""
    device = torch.device(device)
    if device.type == "cuda":
        amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return SpeedConfig(amp=amp, channels_last=True, compile=False)
    return SpeedConfig(amp="bf16" if cpu_has_native_bf16() else None, channels_last=True, compile=False)


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this x86 CPU computes bfloat16 in hardware (AVX512-BF16 or AMX-BF16).

    oneDNN also runs bfloat16 on plain AVX-512 by emulation, slower than float32 (see
    the module docstring), so ``torch.ops.mkldnn._is_mkldnn_bf16_supported()`` does not
    answer this. Read from ``/proc/cpuinfo``; ``False`` where that is missing (not Linux).
    """
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def prepare_model(model: nn.Module, device: torch.device | str, speed: SpeedConfig) -> nn.Module:
    """Move ``model`` to ``device`` and apply ``speed``; returns the same module.

    Switches PA to the lighter computation (or back), converts 4-D weights to
    channels-last, turns on ``cudnn.benchmark`` on CUDA (the input shape is fixed),
    and compiles in place (``nn.Module.compile``), so ``model.state_dict()`` keeps its
    keys. Load checkpoints before or after; wrap in DistributedDataParallel after.
    """
    device = torch.device(device)
    _check_device(device, speed)
    for module in model.modules():
        if isinstance(module, PersistenceOfAppearance):
            module.convolve_differences = speed.lighter_pa
    memory_format = torch.channels_last if speed.channels_last else torch.contiguous_format
    model.to(device=device, memory_format=memory_format)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if speed.compile:
        model.compile()
    return model


def autocast(device: torch.device | str, speed: SpeedConfig) -> contextlib.AbstractContextManager:
    """The autocast context of ``speed.amp`` on ``device`` (a no-op for float32).

    Wrap the forward pass and the loss; call ``backward`` outside it.
    """
    device = torch.device(device)
    if speed.amp is None:
        return contextlib.nullcontext()
    _check_device(device, speed)
    return torch.autocast(device.type, dtype=AMP_DTYPES[speed.amp])


def make_grad_scaler(device: torch.device | str, speed: SpeedConfig) -> torch.amp.GradScaler:
    """A :class:`torch.amp.GradScaler`, enabled only for float16 on CUDA (bfloat16 has
    float32's exponent range and needs no loss scaling). A disabled scaler passes
    everything through, so a training loop may call it unconditionally."""
    device = torch.device(device)
    return torch.amp.GradScaler(device.type, enabled=device.type == "cuda" and speed.amp == "fp16")


def to_device(clips: torch.Tensor, device: torch.device | str, speed: SpeedConfig) -> torch.Tensor:
    """Move a batch of clips to ``device``, asynchronously from pinned memory on CUDA.

    No layout change: the clips are 6-D and channels-last is a 4-D layout. The
    ``(N * T, C, H, W)`` images the backbone sees are formed inside the model, and its
    first convolution, with channels-last weights, returns channels-last activations
    (converting its 3- or 6-channel input costs one small copy). ``speed`` is taken
    for symmetry with the other helpers and future levers.
    """
    del speed
    device = torch.device(device)
    return clips.to(device, non_blocking=device.type == "cuda")


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    clips: torch.Tensor,
    labels: torch.Tensor,
    device: torch.device | str,
    speed: SpeedConfig,
    max_grad_norm: float | None = None,
) -> torch.Tensor:
    """One full training step: forward and cross-entropy under autocast, backward
    (scaled for float16), optional gradient-norm clipping on the unscaled gradients,
    optimiser step. Returns the loss, detached, in float32."""
    optimizer.zero_grad(set_to_none=True)
    with autocast(device, speed):
        logits = model(clips)
    loss = F.cross_entropy(logits.float(), labels)
    scaler.scale(loss).backward()
    if max_grad_norm is not None:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    scaler.step(optimizer)
    scaler.update()
    return loss.detach()


def synchronize(device: torch.device | str) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously), for timing."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _check_device(device: torch.device, speed: SpeedConfig) -> None:
    if speed.amp == "fp16" and device.type != "cuda":
        raise MienetError(
            f"float16 mixed precision is for CUDA; on {device.type} use 'bf16' or none"
        )
    if speed.amp == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise MienetError("this GPU does not support bfloat16; use 'fp16' mixed precision")
