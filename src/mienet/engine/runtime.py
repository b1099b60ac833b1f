"""Where a command runs: the device, the process group under ``torchrun``, one GPU per process.

Shared by training, evaluation and prediction; importing it does not import the training
module. :func:`all_sum` and :func:`topk_correct` are the two reductions every loop needs.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.nn.functional import all_reduce

from mienet.engine.performance import default_speed_config
from mienet.errors import MienetError
from mienet.slurm import describe_slurm_job, slurm_job

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_runtime(requested: str, exclusive_gpu: bool = True) -> Runtime:
    """Device and process group: CUDA when present (or asked for), else CPU; DDP under torchrun.

    ``exclusive_gpu``: a single-process run on CUDA holds one GPU for its lifetime
    (:func:`claim_gpu`), as training does; evaluation and prediction pass ``False`` and
    take the first visible GPU without waiting, since they are short and light.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda":
        if not torch.cuda.is_available():
            raise MienetError("--device cuda was asked for, but PyTorch sees no CUDA device")
        # Under torchrun: GPU = local rank (modulo the GPUs, so that a one-GPU machine can
        # run 2 processes with MIENET_DIST_BACKEND=gloo; NCCL refuses two ranks on one GPU).
        index = local % torch.cuda.device_count() if world > 1 else (claim_gpu() if exclusive_gpu else 0)
        device = torch.device("cuda", index)
        torch.cuda.set_device(device)
    elif requested == "cpu":
        device = torch.device("cpu")
    else:
        raise MienetError(f"--device must be auto, cpu or cuda, not {requested!r}")
    if world > 1 and not dist.is_initialized():
        backend = os.environ.get("MIENET_DIST_BACKEND") or ("nccl" if device.type == "cuda" else "gloo")
        dist.init_process_group(backend)
    return Runtime(device, rank, world, local)


_GPU_CLAIM: tuple | None = None  # (open lock file, device index, physical id) of the GPU this process holds


def _visible_devices() -> list[str]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    return [d.strip() for d in visible.split(",") if d.strip()] if visible else []


def claim_gpu(poll_s: float = 5.0, count: int | None = None) -> int:
    """The index of a GPU no other `mienet` process is using.

    Each process holds an exclusive lock on one file per GPU for its lifetime, so that
    several trainings started at once (Snakemake with ``--resources gpu=N``, or two
    commands typed on a one-GPU workstation) each get their own device, never two on
    one. Waits while every GPU is taken. A process that already holds one (the trials
    of a search run one after another in one process) gets the same one again.
    ``count``: the number of GPUs (default: what PyTorch sees, i.e. ``CUDA_VISIBLE_DEVICES``).

    The index is among the visible devices; the lock is named after the physical GPU
    (the entry of ``CUDA_VISIBLE_DEVICES``). In a SLURM job the devices are the job's own:
    SLURM has already given them to this job alone, so the locks are the job's too
    (``slurm<job id>-gpu<N>``). Two jobs on one node then never wait for each other, even
    where SLURM's device cgroups make every job see its GPU as ``CUDA_VISIBLE_DEVICES=0``.
    """
    global _GPU_CLAIM

    if _GPU_CLAIM is not None:
        return _GPU_CLAIM[1]
    count = torch.cuda.device_count() if count is None else count
    if count < 1:
        raise MienetError("no GPU to claim: CUDA_VISIBLE_DEVICES is empty or PyTorch sees no CUDA device")
    lock_dir = Path(os.environ.get("MIENET_GPU_LOCK_DIR", Path(tempfile.gettempdir()) / "mienet-gpu-locks"))
    lock_dir.mkdir(parents=True, exist_ok=True)
    visible = _visible_devices()
    job = slurm_job()
    owner = f"slurm{job['job_id']}" if job else socket.gethostname()
    waited = False
    while True:
        for i in range(count):
            physical = visible[i] if i < len(visible) else str(i)
            fh = open(lock_dir / f"{owner}-gpu{physical}.lock", "w")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                continue
            _GPU_CLAIM = (fh, i, physical)
            log.info("GPU claim: cuda:%d = GPU %s of CUDA_VISIBLE_DEVICES=%s%s", i, physical,
                     ",".join(visible) or "(unset)", f" (SLURM job {job['job_id']})" if job else "")
            if waited:
                log.info("GPU %s is free now; training on it", physical)
            return i
        if not waited:
            log.info("all %d GPUs are in use by other mienet processes; waiting", count)
            waited = True
        time.sleep(poll_s)


def claimed_gpu() -> tuple[int, str] | None:
    """(index, physical id) of the GPU this process holds, or None."""
    return None if _GPU_CLAIM is None else (_GPU_CLAIM[1], _GPU_CLAIM[2])


def add_arguments(parser) -> None:
    parser.add_argument("--claim", action="store_true",
                        help="claim a GPU as a training would, and say which (without CUDA: among CUDA_VISIBLE_DEVICES)")
    parser.add_argument("--hold", type=float, default=0.0, metavar="S", help="keep the claim S seconds before exiting")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _training_device(cuda: int) -> str:
    """What ``mienet train --device auto`` would use, in words."""

    if cuda:
        speed = default_speed_config("cuda")
        return f"cuda:0 ({torch.cuda.get_device_name(0)}), precision {speed.amp} (--amp auto)"
    speed = default_speed_config("cpu")
    precision = "bfloat16 (this CPU has AVX512-BF16 or AMX)" if speed.amp == "bf16" else "float32"
    return (f"the CPU (no CUDA device): {os.cpu_count()} cores, {torch.get_num_threads()} PyTorch threads, "
            f"precision {precision} (--amp auto)")


def run(args) -> int:
    """``mienet devices``: what a training here would run on (PyTorch's devices, the SLURM job,
    the GPU it would claim)."""

    visible = _visible_devices()
    cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    info = {"torch_cuda_devices": cuda, "cuda_visible_devices": ",".join(visible), "slurm": slurm_job(),
            "device_names": [torch.cuda.get_device_name(i) for i in range(cuda)]}
    if args.claim:
        count = cuda or len(visible)
        if not count:
            raise MienetError("no GPU to claim: PyTorch sees no CUDA device and CUDA_VISIBLE_DEVICES is unset")
        started = time.monotonic()
        index = claim_gpu(poll_s=0.5, count=count)
        info["claim"] = {"index": index, "physical": claimed_gpu()[1],
                         "waited_s": round(time.monotonic() - started, 3), "torch_sees_it": bool(cuda)}
        time.sleep(max(0.0, args.hold))
    info["training_device"] = _training_device(cuda)
    if args.json:
        print(json.dumps(info))
    else:
        print(f"PyTorch CUDA devices: {cuda} {info['device_names'] or ''}".rstrip())
        print(f"training runs on: {info['training_device']}")
        print(f"CUDA_VISIBLE_DEVICES: {info['cuda_visible_devices'] or '(unset)'}")
        print(f"SLURM: {describe_slurm_job() or 'not in a SLURM job'}")
        if args.claim:
            c = info["claim"]
            print(f"claimed: cuda:{c['index']} = GPU {c['physical']} (waited {c['waited_s']} s)")
    return 0


def all_sum(values: list[float], rt: Runtime) -> list[float]:
    """``values`` summed over the processes of a distributed run (as they are in a single one)."""
    if rt.world_size == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=rt.device)
    dist.all_reduce(t)
    return t.tolist()


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks=(1, 5)) -> list[int]:
    """How many rows of ``logits`` have their label among the top ``k`` scores, for each ``k``."""
    k_max = min(max(ks), logits.shape[1])
    top = logits.topk(k_max, dim=1).indices
    hits = top.eq(labels[:, None])
    return [int(hits[:, : min(k, k_max)].any(dim=1).sum()) for k in ks]


# --------------------------------------------------------------------------- BatchNorm across processes

class CrossProcessBatchNorm(torch.nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of the global batch, summed over the
    processes (on any device; PyTorch's SyncBatchNorm runs on CUDA only). Its gradient flows
    through the sums (``torch.distributed.nn.functional.all_reduce``), so a run of N processes
    with DDP computes what one process computes on the global batch, up to float rounding."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-D input (got {x.dim()}-D)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)

        channels = x.shape[1]
        dims = [0, *range(2, x.dim())]
        local = x.float()
        count = torch.tensor([local.numel() / channels], dtype=local.dtype, device=x.device)
        sums = all_reduce(torch.cat([local.sum(dims), (local * local).sum(dims), count]))
        n = sums[-1]
        mean = sums[:channels] / n
        var = (sums[channels:2 * channels] / n - mean * mean).clamp_min(0)
        if self.track_running_stats:
            with torch.no_grad():
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked + 1)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * n / (n - 1).clamp_min(1), alpha=m)
                self.num_batches_tracked.add_(1)
        shape = [1, channels] + [1] * (x.dim() - 2)
        y = (local - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def synchronise_batchnorm(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Every BatchNorm of ``model`` with the global batch's statistics in a distributed run:
    PyTorch's SyncBatchNorm on CUDA, :class:`CrossProcessBatchNorm` elsewhere (gloo on CPU).
    Parameters and buffers are kept, and with them the checkpoints' names."""
    if device.type == "cuda":
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)

    def convert(module: torch.nn.Module) -> torch.nn.Module:
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and not isinstance(module, CrossProcessBatchNorm):
            new = CrossProcessBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                        module.track_running_stats)
            # the same Parameter and buffer objects: the optimiser already holds the parameters
            for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
                setattr(new, name, getattr(module, name))
            new.train(module.training)
            return new
        for name, child in module.named_children():
            module.add_module(name, convert(child))
        return module

    return convert(model)
