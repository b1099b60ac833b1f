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
- CUDA graphs (``mienet train --cuda-graphs auto|on|off``, default ``auto``): the training
  forward and backward recorded once and replayed (:func:`setup_cuda_graphs`), against the
  kernel-launch cost that dominates small batches on a fast GPU. ``auto`` is off on CPU,
  with ``torch.compile``, under DistributedDataParallel and above
  :data:`AUTO_GRAPH_MAX_BATCH` clips per device; otherwise it captures the graphs and
  keeps them only if a few timed forward+backward passes are faster than eager ones.
  Training batches keep their static shape by drop-last (see the CUDA-graphs section).
- TF32 (``SpeedConfig(tf32=True)``) is measured by ``bench train --compare`` only.

PA always runs in float32 (see :class:`~mienet.models.modules.PersistenceOfAppearance`).
"""

from __future__ import annotations

import contextlib
import functools
import statistics
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mienet.engine.dataset import EncodedBatch
from mienet.engine.transforms import normalise_clips
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
      same map, always on except to reproduce the released arithmetic;
    - ``tf32`` (CUDA only): float32 matrix products and convolutions in TensorFloat-32
      (:func:`precision_flags`); off means strict float32;
    - ``cuda_graphs`` (CUDA only): the training forward and backward replayed as CUDA
      graphs (:func:`capture_cuda_graphs`), for launch-bound small batches.
    """

    amp: str | None = None
    channels_last: bool = False
    compile: bool = False
    lighter_pa: bool = True
    tf32: bool = False
    cuda_graphs: bool = False

    def __post_init__(self) -> None:
        if self.amp is not None and self.amp not in AMP_DTYPES:
            raise MienetError(
                f"unknown mixed-precision mode {self.amp!r}; use one of "
                f"{', '.join(AMP_DTYPES)} or none for float32"
            )

        if self.compile and self.cuda_graphs:
            raise MienetError("torch.compile and CUDA graphs are exclusive here: choose one")

    def describe(self) -> str:
        """A short name such as ``bf16+channels-last+compile`` (``fp32`` when none)."""
        parts = [self.amp or "fp32"]
        if self.channels_last:
            parts.append("channels-last")
        if self.tf32:
            parts.append("tf32")
        if self.compile:
            parts.append("compile")
        if self.cuda_graphs:
            parts.append("cuda-graphs")
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


def to_device(clips: torch.Tensor | EncodedBatch, device: torch.device | str, speed: SpeedConfig) -> torch.Tensor:
    """Move a batch of clips to ``device``, asynchronously from pinned memory on CUDA, and
    normalise uint8 clips there (:func:`mienet.engine.transforms.normalise_clips`, float32: the
    model's first operations, PA's frame differences among them, see the input in float32 as
    they always did; autocast casts it at the first convolution).

    No layout change: the clips are 6-D and channels-last is a 4-D layout. The
    ``(N * T, C, H, W)`` images the backbone sees are formed inside the model, and its
    first convolution, with channels-last weights, returns channels-last activations
    (converting its 3- or 6-channel input costs one small copy). ``speed`` is taken
    for symmetry with the other helpers and future levers.
    """
    del speed
    device = torch.device(device)
    if isinstance(clips, EncodedBatch):  # decode: gpu, JPEG bytes decoded on the device
        return normalise_clips(clips.decode(device))
    return normalise_clips(clips.to(device, non_blocking=device.type == "cuda"))


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
    if (speed.tf32 or speed.cuda_graphs) and device.type != "cuda":
        raise MienetError(f"TF32 and CUDA graphs are for CUDA devices, not {device.type}")
    if speed.amp == "fp16" and device.type != "cuda":
        raise MienetError(
            f"float16 mixed precision is for CUDA; on {device.type} use 'bf16' or none"
        )
    if speed.amp == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise MienetError("this GPU does not support bfloat16; use 'fp16' mixed precision")


@contextlib.contextmanager
def precision_flags(device: torch.device | str, speed: SpeedConfig):
    """On CUDA, TF32 for float32 matrix products and cuDNN convolutions exactly when
    ``speed.tf32`` (off: strict float32, though PyTorch's own default lets cuDNN use TF32),
    restored on exit. Nothing on other devices."""
    device = torch.device(device)
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = speed.tf32
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


# --------------------------------------------------------------------------- CUDA graphs
#
# A training step of a small batch is launch-bound on a fast GPU: hundreds of small kernels
# whose launch costs more than their work. CUDA graphs record the kernels of the forward and
# the backward once and replay them with one launch. A graph has fixed shapes, so:
#
# - Training keeps drop-last (``build_loader(..., drop_last=True)`` whenever the set is larger
#   than a batch): every training batch has the static shape. Padding the last partial batch
#   with a per-sample loss mask (:func:`pad_batch`, :func:`masked_cross_entropy`) gives the
#   unpadded loss and gradients only for a model whose samples do not interact; MIE-Net's
#   BatchNorm layers in training mode compute their statistics over the whole batch, padding
#   included, so for it padding would change the numbers. A batch of another shape (a set no
#   larger than one batch) therefore runs eagerly (:class:`GraphedForward`), exactly as before;
#   a per-sample model may be padded instead (``pad_partial``).
# - Evaluation (``model.eval()``) always runs eagerly.
# - The optimiser step stays eager (a few foreach kernels; the learning-rate schedule changes
#   a Python float the graph could not see).

AUTO_GRAPH_MAX_BATCH = 16  # `auto` tries CUDA graphs at per-device batches up to this
AUTO_GRAPH_STEPS = 8  # forward+backward passes of each path timed by `auto`


def pad_batch(clips: torch.Tensor, labels: torch.Tensor, batch: int):
    """``(clips, labels, mask)`` padded with zeros to ``batch`` rows; ``mask`` is 1.0 for the
    real rows and 0.0 for the padding (float32, on the clips' device)."""
    n = clips.shape[0]
    if n > batch:
        raise MienetError(f"cannot pad a batch of {n} clips to {batch}")
    mask = torch.zeros(batch, device=clips.device)
    mask[:n] = 1.0
    if n == batch:
        return clips, labels, mask
    pad_clips = clips.new_zeros((batch - n, *clips.shape[1:]))
    pad_labels = labels.new_zeros((batch - n,))
    return torch.cat([clips, pad_clips]), torch.cat([labels, pad_labels]), mask


def masked_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mean cross-entropy over the rows where ``mask`` is 1: the loss of the unpadded
    batch, and zero gradient for the padded rows."""
    per_sample = F.cross_entropy(logits.float(), labels, reduction="none")
    return (per_sample * mask).sum() / mask.sum()


def has_batch_coupling(model: nn.Module) -> bool:
    """Whether samples of a batch interact in ``model``'s training forward (BatchNorm in
    training mode): then padding a batch changes the real samples' outputs and gradients."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training for m in model.modules())


class GraphedForward:
    """``model.forward`` after :func:`capture_cuda_graphs`: the CUDA-graph replay for a
    training batch of the static shape, the original eager forward for anything else
    (evaluation, another batch size or dtype). With ``pad_partial`` (only for models without
    batch coupling, :func:`has_batch_coupling`) a smaller training batch is padded to the
    static shape and the padding's rows cut from the output."""

    def __init__(self, model: nn.Module, graphed, eager, static_shape: torch.Size,
                 static_dtype: torch.dtype, pad_partial: bool = False):
        self.model, self.graphed, self.eager = model, graphed, eager
        self.static_shape, self.static_dtype = tuple(static_shape), static_dtype
        self.pad_partial = pad_partial
        self.replays = 0
        self.eager_calls = 0

    def __call__(self, clips: torch.Tensor) -> torch.Tensor:
        if self.model.training and clips.dtype == self.static_dtype:
            if tuple(clips.shape) == self.static_shape:
                self.replays += 1
                return self.graphed(clips)
            if (self.pad_partial and tuple(clips.shape[1:]) == self.static_shape[1:]
                    and clips.shape[0] < self.static_shape[0]):
                n = clips.shape[0]
                padded = torch.cat([clips, clips.new_zeros((self.static_shape[0] - n, *clips.shape[1:]))])
                self.replays += 1
                return self.graphed(padded)[:n]
        self.eager_calls += 1
        return self.eager(clips)


@contextlib.contextmanager
def preserved_state(model: nn.Module, device: torch.device | str):
    """Whatever a trial forward/backward changes, put back on exit: the buffers (BatchNorm's
    running statistics), the parameters' gradients and the random number generators."""
    device = torch.device(device)
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    grads = [(p, None if p.grad is None else p.grad.detach().clone()) for p in model.parameters()]
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    try:
        yield
    finally:
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)
        for p, saved in grads:
            p.grad = saved
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state(cuda_rng, device)


def capture_cuda_graphs(model: nn.Module, device: torch.device | str, speed: SpeedConfig,
                        input_shape: tuple, pad_partial: bool = False) -> GraphedForward:
    """Record the training forward and backward of ``model`` (prepared, in training mode,
    not compiled) as CUDA graphs for float32 clips of ``input_shape`` (``(N, T, L, 3, H, W)``)
    under ``speed``'s autocast, with :func:`torch.cuda.make_graphed_callables`; replaces
    ``model.forward`` by a :class:`GraphedForward` and returns it. The warm-up and capture
    passes leave the buffers, gradients and random state as they were (:func:`preserved_state`).
    """
    device = torch.device(device)
    if device.type != "cuda":
        raise MienetError(f"CUDA graphs need a CUDA device, not {device.type}")
    if speed.compile:
        raise MienetError("CUDA graphs and torch.compile are exclusive here: choose one")
    if pad_partial and has_batch_coupling(model):
        raise MienetError("padding partial batches would change this model's numbers (BatchNorm "
                          "in training mode): use drop-last for training")
    model.train()
    eager = model.forward
    with preserved_state(model, device):
        static = torch.randn(input_shape, device=device)
        if speed.amp is not None:
            cast = torch.autocast(device.type, dtype=AMP_DTYPES[speed.amp], cache_enabled=False)
        else:
            cast = contextlib.nullcontext()
        with cast, precision_flags(device, speed):
            torch.cuda.make_graphed_callables(model, (static,), num_warmup_iters=3, allow_unused_input=True)
        torch.cuda.synchronize(device)
    graphed = GraphedForward(model, model.forward, eager, static.shape, static.dtype, pad_partial)
    model.forward = graphed
    return graphed


def release_cuda_graphs(model: nn.Module) -> None:
    """Undo :func:`capture_cuda_graphs`: ``model.forward`` is the eager one again."""
    if isinstance(model.__dict__.get("forward"), GraphedForward):
        model.forward = model.__dict__["forward"].eager
        if model.forward == getattr(type(model), "forward").__get__(model):
            del model.forward


def choose_cuda_graphs(switch: str, device: torch.device | str, speed: SpeedConfig, batch: int,
                       world_size: int = 1, accumulating: bool = False) -> tuple[bool | None, str]:
    """The first half of the ``cuda_graphs`` switch's rule, before any measurement:
    ``(True, why)`` capture them, ``(False, why)`` do not, ``(None, why)`` capture and keep
    them only when measured faster (:func:`setup_cuda_graphs`).

    - ``off``: never; ``on``: always on CUDA, an error elsewhere, with ``torch.compile``,
      under DistributedDataParallel or with ``accumulating`` gradients;
    - ``auto``: off on CPU, with ``torch.compile``, under DistributedDataParallel (several
      processes), with ``accumulating`` gradients (parameters outside the optimiser whose
      gradient is never cleared, ``freeze_fusion_weights``: a replay overwrites the graph's
      gradient buffer, which such a ``.grad`` would share) and above :data:`AUTO_GRAPH_MAX_BATCH` clips per device (compute-bound: the
      launches are hidden); otherwise measured.
    """
    device = torch.device(device)
    if switch == "off":
        return False, "off"
    reasons = []
    if device.type != "cuda":
        reasons.append(f"no CUDA device ({device.type})")
    if speed.compile:
        reasons.append("torch.compile is on")
    if world_size > 1:
        reasons.append(f"{world_size} processes (DistributedDataParallel)")
    if accumulating:
        reasons.append("gradients that accumulate over steps (freeze_fusion_weights)")
    if switch == "on":
        if reasons:
            raise MienetError("--cuda-graphs on cannot be honoured: " + "; ".join(reasons))
        return True, "on"
    if switch != "auto":
        raise MienetError(f"unknown cuda_graphs setting {switch!r}: use auto, on or off")
    if reasons:
        return False, "auto: " + "; ".join(reasons)
    if batch > AUTO_GRAPH_MAX_BATCH:
        return False, f"auto: batch {batch} > {AUTO_GRAPH_MAX_BATCH} is compute-bound"
    return None, f"auto: batch {batch} <= {AUTO_GRAPH_MAX_BATCH}, measured"


def _time_forward_backward(model: nn.Module, device: torch.device, speed: SpeedConfig, clips: torch.Tensor,
                           labels: torch.Tensor, steps: int) -> float:
    times = []
    for _ in range(steps):
        torch.cuda.synchronize(device)
        start = time.perf_counter()
        with autocast(device, speed), precision_flags(device, speed):
            loss = F.cross_entropy(model(clips).float(), labels)
        loss.backward()
        torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:] if steps > 2 else times)


def setup_cuda_graphs(model: nn.Module, device: torch.device | str, speed: SpeedConfig, switch: str,
                      input_shape: tuple, num_classes: int, world_size: int = 1,
                      accumulating: bool = False) -> dict:
    """Apply the ``cuda_graphs`` switch to a prepared ``model`` before training (before any
    DistributedDataParallel wrapping); returns ``{"cuda_graphs": bool, "reason": str, ...}``.

    On CPU, and whenever the switch says no, it returns at once and touches nothing. ``auto``
    at a small batch on CUDA captures the graphs, then times :data:`AUTO_GRAPH_STEPS`
    forward+backward passes of the eager and the graphed path on random clips (the model's
    buffers, gradients and random state put back afterwards) and keeps the graphs only when
    their median is faster: never slower than eager. A failed capture under ``auto`` falls
    back to eager with the reason.
    """
    device = torch.device(device)
    decision, reason = choose_cuda_graphs(switch, device, speed, input_shape[0], world_size, accumulating)
    if decision is False:
        return {"cuda_graphs": False, "reason": reason}
    try:
        graphed = capture_cuda_graphs(model, device, speed, input_shape)
    except Exception as exc:  # noqa: BLE001 - auto falls back to eager
        if decision:
            raise
        release_cuda_graphs(model)
        return {"cuda_graphs": False, "reason": f"auto: capture failed ({type(exc).__name__}: {exc})"}
    if decision:
        return {"cuda_graphs": True, "reason": reason}
    generator = torch.Generator().manual_seed(0)
    clips = torch.randn(input_shape, generator=generator).to(device)
    labels = torch.randint(0, num_classes, (input_shape[0],), generator=generator).to(device)
    with preserved_state(model, device):
        graphed_s = _time_forward_backward(model, device, speed, clips, labels, AUTO_GRAPH_STEPS)
        model.forward = graphed.eager
        eager_s = _time_forward_backward(model, device, speed, clips, labels, AUTO_GRAPH_STEPS)
        model.forward = graphed
    keep = graphed_s < eager_s
    if not keep:
        release_cuda_graphs(model)
    return {"cuda_graphs": keep, "reason": f"{reason}: graphed {graphed_s * 1e3:.2f} ms vs eager "
            f"{eager_s * 1e3:.2f} ms per forward+backward", "graphed_s": graphed_s, "eager_s": eager_s}
