"""``mienet train``: the released recipe on CPU, one GPU or many (``torchrun``).

A run folder holds everything about one training::

    RUN_DIR/config.json               what was asked for (the model is rebuilt from it)
    RUN_DIR/log.csv                   one row per epoch: lr, train and validation loss/accuracy
    RUN_DIR/dvclive/                  the same curves for ``dvc plots`` (when dvclive is installed)
    RUN_DIR/checkpoints/last.pt       end of the latest epoch: model, optimiser, scheduler, scaler, RNG
    RUN_DIR/checkpoints/best.pt       the epoch with the best validation top-1
    RUN_DIR/checkpoints/.best.pt      a copy of best.pt

Checkpoints are written atomically. ``--resume`` continues from ``last.pt``. A workflow
that re-runs an interrupted job deletes its declared outputs (``best.pt``, ``log.csv``)
first; a resumed run restores ``best.pt`` from ``.best.pt`` and the log from ``last.pt``,
which carries the rows of every epoch. Every epoch's
randomness (sampling, augmentation, dropout) derives from (seed, epoch) only, so a run
killed at any point and resumed ends with exactly the numbers of an uninterrupted run.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import random
import sys
import time
from contextlib import nullcontext
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

from mienet.data.annotations import read_classes
from mienet.errors import MienetError
from mienet.io import atomic_path, write_text_atomic
from mienet.models.modules import PAN_INIT_STD

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Everything a training run depends on; saved in config.json and in every checkpoint."""

    annotations: str
    root: str
    out: str
    dataset: str = "custom"
    variant: str = "mienet"
    arch: str = "resnet50"
    segments: int = 3
    frames_per_segment: int = 4
    size: int = 224
    epochs: int = 60
    batch_size: int = 8
    lr: float = 0.0025  # at batch 8 on one device; scaled linearly
    lr_steps: list[int] = field(default_factory=lambda: [36, 50])
    schedule: str = "step"
    warmup_epochs: float = 0.0
    momentum: float = 0.9
    weight_decay: float = 1e-4
    clip_grad: float = 20.0
    dropout: float = 0.6
    flip: bool = True
    pretrained: str | None = None
    freeze_fusion_weights: bool = False
    pa_init_std: float = PAN_INIT_STD
    seed: int = 0
    workers: int = 2
    device: str = "auto"
    template: str = "img_{:05d}.jpg"
    skip_missing: bool = False
    amp: str = "auto"  # auto | bf16 | fp16 | off
    channels_last: str = "auto"  # auto | on | off
    compile: str = "auto"  # auto | on | off
    debug_nan_at_step: int | None = None  # fault injection for the tests: a NaN loss here
    debug_exit_at_step: int | None = None  # fault injection: the process dies here, like a kill

    @property
    def run_dir(self) -> Path:
        return Path(self.out)


# --------------------------------------------------------------------------- distributed set-up

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


_GPU_CLAIM: tuple | None = None  # (open lock file, device index) of the GPU this process holds


def claim_gpu(poll_s: float = 5.0, count: int | None = None) -> int:
    """The index of a GPU no other `mienet` process on this machine is using.

    Each process holds an exclusive lock on one file per GPU for its lifetime, so that
    several trainings started at once (Snakemake with ``--resources gpu=N``, or two
    commands typed on a one-GPU workstation) each get their own device, never two on
    one. Waits while every GPU is taken. A process that already holds one (the trials
    of a search run one after another in one process) gets the same one again.
    ``count``: the number of GPUs (default: what PyTorch sees).
    """
    global _GPU_CLAIM
    import fcntl
    import socket
    import tempfile

    if _GPU_CLAIM is not None:
        return _GPU_CLAIM[1]
    count = torch.cuda.device_count() if count is None else count
    lock_dir = Path(os.environ.get("MIENET_GPU_LOCK_DIR", Path(tempfile.gettempdir()) / "mienet-gpu-locks"))
    lock_dir.mkdir(parents=True, exist_ok=True)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    waited = False
    while True:
        for i in range(count):
            physical = visible.split(",")[i] if visible else str(i)
            fh = open(lock_dir / f"{socket.gethostname()}-gpu{physical}.lock", "w")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                continue
            _GPU_CLAIM = (fh, i)
            if waited:
                log.info("GPU %s is free now; training on it", physical)
            return i
        if not waited:
            log.info("all %d GPUs are in use by other mienet processes; waiting", count)
            waited = True
        time.sleep(poll_s)


def all_sum(values: list[float], rt: Runtime) -> list[float]:
    if rt.world_size == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=rt.device)
    dist.all_reduce(t)
    return t.tolist()


# --------------------------------------------------------------------------- checkpoints

def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def save_training_state(path: Path, model, optimizer, scheduler, scaler, epoch: int, best: dict,
                        cfg: TrainConfig, classes: list[str], rows: list[dict] | None = None) -> None:
    from mienet.models import save_checkpoint

    module = getattr(model, "module", model)
    save_checkpoint(
        module, path,
        optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
        scaler=scaler.state_dict() if scaler is not None else {},
        rng=rng_state(), epoch=epoch, best=best, config=asdict(cfg), classes=classes,
        log=list(rows or []), format="mienet-train-1",
    )


BEST_KEEP = ".best.pt"  # a second name of best.pt that survives a workflow deleting its outputs


def _copy_atomic(src: Path, dst: Path) -> None:
    """``dst`` becomes a copy of ``src``, atomically. A copy, not a hard link: DVC rewrites
    hard-linked files of an output when it commits, which would make them newer than
    what was computed from them."""
    import shutil

    with atomic_path(dst) as tmp:
        shutil.copy2(src, tmp)


def restore_best(ckpt_dir: Path, best_epoch: int) -> bool:
    """Make sure ``best.pt`` holds epoch ``best_epoch``; False when it is gone for good."""
    from mienet.models.checkpoint import read_checkpoint_file

    best, keep = ckpt_dir / "best.pt", ckpt_dir / BEST_KEEP
    if best.exists() or best_epoch <= 0:
        return True
    if keep.exists() and int(read_checkpoint_file(keep).get("epoch", -1)) == best_epoch:
        _copy_atomic(keep, best)
        log.info("restored %s (epoch %d) from %s", best, best_epoch, keep.name)
        return True
    return False


# --------------------------------------------------------------------------- logs

LOG_FIELDS = ["epoch", "lr", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5",
              "skipped", "seconds"]


def read_log(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def write_log(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=LOG_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buf.getvalue())


class LiveCurves:
    """dvclive's metrics and plots, if dvclive is installed and works here; the CSV log is the
    reference, so a dvclive failure (an empty git repository, say) only costs the curves."""

    def __init__(self, run_dir: Path, resume: bool, enabled: bool):
        self.live = None
        if not enabled:
            return
        try:
            from dvclive import Live

            self.live = Live(str(run_dir / "dvclive"), resume=resume, save_dvc_exp=False,
                             dvcyaml=None, report=None)
        except Exception as exc:  # noqa: BLE001 - optional extra, never fatal
            self._disable(exc)

    def _disable(self, exc: Exception) -> None:
        log.warning("dvclive disabled (%s: %s); curves are in log.csv", type(exc).__name__, exc)
        self.live = None

    def log(self, row: dict) -> None:
        if self.live is None:
            return
        try:
            self.live.step = int(row["epoch"])
            for key in LOG_FIELDS[1:-2]:
                if row.get(key) not in (None, ""):
                    self.live.log_metric(key, float(row[key]))
            self.live.next_step()
        except Exception as exc:  # noqa: BLE001
            self._disable(exc)

    def close(self) -> None:
        if self.live is not None:
            try:
                self.live.end()
            except Exception as exc:  # noqa: BLE001
                self._disable(exc)


# --------------------------------------------------------------------------- the loop

def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks=(1, 5)) -> list[int]:
    k_max = min(max(ks), logits.shape[1])
    top = logits.topk(k_max, dim=1).indices
    hits = top.eq(labels[:, None])
    return [int(hits[:, : min(k, k_max)].any(dim=1).sum()) for k in ks]


def load_classes(ann: Path) -> list[str]:
    path = ann / "classes.txt"
    if not path.exists():
        raise MienetError(f"{path} does not exist: the annotation folder needs classes.txt "
                          "(written by `mienet make-annotations`)")
    return read_classes(path)


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True,
          on_epoch: Callable[[int, dict], None] | None = None, restart_if_changed: bool = False) -> dict:
    """Train one model; returns the final summary (also written to RUN_DIR/summary.json).

    ``on_epoch(epoch, row)`` is called after every epoch (1-based) with the log row (floats);
    an exception it raises (an Optuna ``TrialPruned``, say) ends the run after the epoch's
    checkpoints are written.
    """
    from tqdm import tqdm

    from mienet.engine.data import ClipDataset, build_loader
    from mienet.engine.performance import (SpeedConfig, autocast, default_speed_config,
                                           make_grad_scaler, prepare_model, to_device)
    from mienet.engine.recipe import lr_factor, parameter_groups, scaled_lr
    from mienet.models import build_model
    from mienet.models.checkpoint import read_checkpoint_file

    rt = setup_runtime(cfg.device)
    run_dir = cfg.run_dir
    ckpt_dir = run_dir / "checkpoints"
    ann = Path(cfg.annotations)
    classes = load_classes(ann)
    common = dict(root=cfg.root, num_segments=cfg.segments, frames_per_segment=cfg.frames_per_segment,
                  size=cfg.size, template=cfg.template, skip_missing=cfg.skip_missing,
                  num_classes=len(classes))
    train_set = ClipDataset(ann / "train.txt", train=True, flip=cfg.flip, **common)
    val_set = ClipDataset(ann / "val.txt", train=False, **common)
    if len(train_set) == 0:
        raise MienetError(f"{ann / 'train.txt'} lists no clips")
    per_device_batch = cfg.batch_size
    train_loader = build_loader(train_set, per_device_batch, shuffle=True, seed=cfg.seed,
                                workers=cfg.workers, device=rt.device.type, rank=rt.rank,
                                world_size=rt.world_size, drop_last=len(train_set) > per_device_batch)
    val_loader = build_loader(val_set, per_device_batch, shuffle=False, seed=cfg.seed, workers=cfg.workers,
                              device=rt.device.type, rank=rt.rank, world_size=rt.world_size)

    speed = default_speed_config(rt.device)
    speed = SpeedConfig(
        amp=None if cfg.amp == "off" else (speed.amp if cfg.amp == "auto" else cfg.amp),
        channels_last=speed.channels_last if cfg.channels_last == "auto" else cfg.channels_last == "on",
        compile=speed.compile if cfg.compile == "auto" else cfg.compile == "on",
    )
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    model = build_model(cfg.variant, cfg.arch, len(classes), cfg.segments, cfg.frames_per_segment,
                        dropout=cfg.dropout, pretrained=cfg.pretrained,
                        freeze_fusion_weights=cfg.freeze_fusion_weights, pa_init_std=cfg.pa_init_std)
    base_lr = scaled_lr(cfg.lr, per_device_batch, rt.world_size)
    optimizer = torch.optim.SGD(parameter_groups(model, base_lr, cfg.weight_decay), lr=base_lr,
                                momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    steps_per_epoch = max(len(train_loader), 1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, steps_per_epoch, cfg.epochs, cfg.schedule, cfg.lr_steps,
                                          cfg.warmup_epochs))
    scaler = make_grad_scaler(rt.device, speed)

    start_epoch, best = 0, {"val_top1": -1.0, "epoch": 0}
    rows = read_log(run_dir / "log.csv")
    last = ckpt_dir / "last.pt"
    if resume and last.exists() and restart_if_changed:
        state = read_checkpoint_file(last)
        changed = _changed_settings(state.get("config") or {}, cfg)
        if not changed and not restore_best(ckpt_dir, int((state.get("best") or {}).get("epoch", 0))):
            # best.pt was removed (a workflow re-running the job) and its second name is gone
            # too: the best epoch cannot be recovered from last.pt, so train again.
            changed = ["best.pt is missing and cannot be restored"]
        if changed:
            if rt.main:
                log.info("%s was trained with other settings (%s): starting over", run_dir, "; ".join(changed))
                for old in (last, ckpt_dir / "best.pt", ckpt_dir / BEST_KEEP, run_dir / "log.csv",
                            run_dir / "summary.json"):
                    old.unlink(missing_ok=True)
                import shutil

                shutil.rmtree(run_dir / "dvclive", ignore_errors=True)
            if rt.world_size > 1:
                dist.barrier()
            resume = False
    if resume and last.exists():
        state = read_checkpoint_file(last)
        _check_resumable(state, cfg, last)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start_epoch, best = int(state["epoch"]), dict(state["best"])
        if rt.main and not restore_best(ckpt_dir, int(best.get("epoch", 0))):
            log.warning("%s is missing; it will hold the best epoch from now on", ckpt_dir / "best.pt")
            best = {"val_top1": -1.0, "epoch": 0}
        if len(rows) < start_epoch and state.get("log"):
            rows = [dict(r) for r in state["log"]]  # log.csv was removed: last.pt has the rows
        rows = [r for r in rows if int(r["epoch"]) <= start_epoch]
        if rt.main:
            log.info("resuming %s after epoch %d", run_dir, start_epoch)
    elif resume:
        log.info("no checkpoint at %s: starting from scratch", last)
        rows = []
    else:
        if last.exists() and rt.main:
            raise MienetError(f"{run_dir} already holds a training run (checkpoints/last.pt); "
                              "pass --resume to continue it or choose another --out")
        rows = []
    model = prepare_model(model, rt.device, speed)
    if rt.world_size > 1:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None)
    if rt.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run_dir / "config.json", json.dumps(asdict(cfg), indent=2) + "\n")
        write_log(run_dir / "log.csv", rows)
        log.info("training %s/%s on %s (world size %d), %d train / %d val clips, speed %s",
                 cfg.variant, cfg.arch, rt.device, rt.world_size, len(train_set), len(val_set), speed)
    live = LiveCurves(run_dir, resume=start_epoch > 0, enabled=rt.main)
    step = start_epoch * steps_per_epoch
    try:
        for epoch in range(start_epoch, cfg.epochs):
            # Everything random in this epoch derives from (seed, epoch): resumable exactly.
            torch.manual_seed(cfg.seed * 1_000_003 + epoch)
            random.seed(cfg.seed * 1_000_003 + epoch)
            train_loader.sampler.set_epoch(epoch)
            model.train()
            t0 = time.perf_counter()
            sums = [0.0, 0.0, 0.0, 0.0]  # loss * n, top1 hits, n, skipped
            lr_now = optimizer.param_groups[0]["lr"] / optimizer.param_groups[0]["lr_mult"]
            bar = tqdm(train_loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch",
                       disable=not (progress and rt.main), file=sys.stderr, leave=False)
            for clips, labels, _, skipped in bar:
                sums[3] += skipped
                if labels.numel() == 0:
                    continue
                clips = to_device(clips[:, 0], rt.device, speed)  # one view per training clip
                labels = labels.to(rt.device, non_blocking=True)
                with autocast(rt.device, speed):
                    logits = model(clips)
                    loss = F.cross_entropy(logits.float(), labels)
                if cfg.debug_exit_at_step is not None and step == cfg.debug_exit_at_step:
                    os._exit(137)  # no clean-up, no checkpoint: what SIGKILL leaves behind
                if cfg.debug_nan_at_step is not None and step == cfg.debug_nan_at_step:
                    loss = loss * float("nan")
                if not torch.isfinite(loss):
                    raise MienetError(
                        f"the loss became {loss.item()} at epoch {epoch + 1}, step {step + 1} "
                        f"(batch {bar.n + 1} of the epoch); training stopped. The last good "
                        f"checkpoint, {last if last.exists() else 'none yet'}, is intact. Try a lower "
                        "--lr or --amp off")
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.unscale_(optimizer)
                else:
                    loss.backward()
                if cfg.clip_grad:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                scheduler.step()
                step += 1
                n = labels.numel()
                sums[0] += loss.item() * n
                sums[1] += topk_correct(logits.detach().float(), labels, ks=(1,))[0]
                sums[2] += n
                bar.set_postfix(loss=f"{sums[0] / sums[2]:.3f}", top1=f"{100 * sums[1] / sums[2]:.1f}")
            bar.close()
            loss_sum, hits, count, skipped = all_sum(sums, rt)
            val = validate(model, val_loader, rt, speed)
            row = {
                "epoch": epoch + 1, "lr": f"{lr_now:.6g}",
                "train_loss": f"{loss_sum / max(count, 1):.6f}",
                "train_top1": f"{100 * hits / max(count, 1):.4f}",
                "val_loss": f"{val['loss']:.6f}", "val_top1": f"{val['top1']:.4f}",
                "val_top5": f"{val['top5']:.4f}", "skipped": int(skipped + val["skipped"]),
                "seconds": f"{time.perf_counter() - t0:.2f}",
            }
            if rt.main:
                rows.append(row)
                improved = val["top1"] > best["val_top1"]
                if improved:
                    best = {"val_top1": val["top1"], "val_top5": val["top5"], "epoch": epoch + 1}
                save_training_state(last, model, optimizer, scheduler, scaler, epoch + 1, best, cfg, classes,
                                    rows)
                if improved:
                    save_training_state(ckpt_dir / "best.pt", model, optimizer, scheduler, scaler,
                                        epoch + 1, best, cfg, classes, rows)
                    _copy_atomic(ckpt_dir / "best.pt", ckpt_dir / BEST_KEEP)
                write_log(run_dir / "log.csv", rows)
                live.log(row)
                log.info("epoch %d/%d: train loss %s top-1 %s; val loss %s top-1 %s top-5 %s (%ss)",
                         epoch + 1, cfg.epochs, row["train_loss"], row["train_top1"], row["val_loss"],
                         row["val_top1"], row["val_top5"], row["seconds"])
            if rt.world_size > 1:
                dist.barrier()
            if on_epoch is not None:
                on_epoch(epoch + 1, {k: float(v) for k, v in row.items()})
    finally:
        live.close()
    summary = {"run_dir": str(run_dir), "epochs": cfg.epochs, "best": best,
               "final": rows[-1] if rows else None}
    if rt.main:
        write_text_atomic(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    if rt.world_size > 1:
        dist.destroy_process_group()
    return summary


RUN_ONLY = {"out", "workers", "device", "debug_nan_at_step", "debug_exit_at_step"}


def _changed_settings(saved: dict, cfg: TrainConfig) -> list[str]:
    """Every setting but where and how the run is executed that differs from the saved run's."""
    now = asdict(cfg)
    return [f"{k}: {saved.get(k)!r} -> {v!r}" for k, v in sorted(now.items())
            if k not in RUN_ONLY and saved.get(k) != v]


def _check_resumable(state: dict, cfg: TrainConfig, path: Path) -> None:
    saved = state.get("config") or {}
    keys = ("variant", "arch", "segments", "frames_per_segment", "size", "batch_size", "lr", "seed",
            "schedule", "lr_steps")  # epochs may grow: a run can be extended
    diff = [f"{k}: checkpoint {saved.get(k)!r}, now {getattr(cfg, k)!r}" for k in keys
            if saved.get(k) != getattr(cfg, k)]
    if diff:
        raise MienetError(f"cannot resume from {path}: the run was started with other settings ("
                          + "; ".join(diff) + ")")


@torch.no_grad()
def validate(model, loader, rt: Runtime, speed) -> dict:
    from mienet.engine.performance import autocast, to_device

    model.eval()
    sums = [0.0, 0.0, 0.0, 0.0, 0.0]  # loss * n, top1, top5, n, skipped
    for clips, labels, _, skipped in loader:
        sums[4] += skipped
        if labels.numel() == 0:
            continue
        labels = labels.to(rt.device)
        with autocast(rt.device, speed):
            logits = model(to_device(clips[:, 0], rt.device, speed)).float()
        sums[0] += F.cross_entropy(logits, labels, reduction="sum").item()
        top1, top5 = topk_correct(logits, labels)
        sums[1] += top1
        sums[2] += top5
        sums[3] += labels.numel()
    loss, top1, top5, n, skipped = all_sum(sums, rt)
    n = max(n, 1)
    return {"loss": loss / n, "top1": 100 * top1 / n, "top5": 100 * top5 / n, "skipped": skipped}


# --------------------------------------------------------------------------- command line

def add_arguments(parser) -> None:
    import argparse

    d = TrainConfig(annotations="", root="", out="")
    unset = argparse.SUPPRESS  # only options given on the command line reach the namespace

    def opt(group, flag, help_text, **kw):
        name = flag.lstrip("-").replace("-", "_")
        default = getattr(d, kw.pop("field", name), None)
        if kw.get("action") not in ("store_true", "store_false") and default not in (None, ""):
            help_text += f" (default: {default})"
        group.add_argument(flag, default=unset, help=help_text, **kw)

    g = parser.add_argument_group("data")
    g.add_argument("--annotations", type=Path,
                   help="folder with train.txt, val.txt and classes.txt (default with --params: "
                        "<data_root>/<dataset>/annotations)")
    g.add_argument("--root", type=Path, help="dataset root of the lists' paths (default: parent of --annotations)")
    opt(g, "--dataset", "dataset name; with --params also selects datasets.<name>.train")
    opt(g, "--template", "frame file name template (1-based)")
    opt(g, "--skip-missing", "skip clips with missing frames, counting them", action="store_true")
    opt(g, "--no-flip", "no horizontal flip (SSv2)", action="store_false", dest="flip", field="flip")
    opt(g, "--workers", "data-loading processes per device", type=int)
    g = parser.add_argument_group("model")
    opt(g, "--variant", "tsn, dptam, pa, naive_fusion, fusion_dptam, afm or mienet")
    opt(g, "--arch", "resnet10 (no ImageNet weights), resnet18, resnet34, resnet50 or resnet101")
    opt(g, "--segments", "T segments per clip", type=int)
    opt(g, "--frames-per-segment", "L frames per segment", type=int)
    opt(g, "--size", "crop size in pixels", type=int)
    opt(g, "--dropout", "dropout before the classifier", type=float)
    opt(g, "--pretrained", "backbone initialisation", choices=("none", "imagenet"))
    opt(g, "--freeze-fusion-weights", "keep AFM's w at (1, 1) as the released code did (exact reproduction)",
        action="store_true")
    opt(g, "--pa-init-std", "std of the normal initialisation of PA's filters (PAN: 0.001)", type=float)
    g = parser.add_argument_group("optimisation")
    opt(g, "--epochs", "epochs", type=int)
    opt(g, "--batch-size", "clips per device", type=int)
    opt(g, "--lr", "learning rate at batch 8 on one device, scaled linearly", type=float)
    opt(g, "--lr-steps", "epochs where the step schedule multiplies lr by 0.1", type=int, nargs="*")
    opt(g, "--schedule", "learning-rate schedule", choices=("step", "cosine"))
    opt(g, "--warmup-epochs", "linear warm-up", type=float)
    opt(g, "--momentum", "SGD momentum", type=float)
    opt(g, "--weight-decay", "weight decay", type=float)
    opt(g, "--clip-grad", "gradient-norm clip, 0 for none", type=float)
    opt(g, "--seed", "seed of everything random", type=int)
    g.add_argument("--params", type=Path,
                   help="params.yaml: take the recipe from datasets.<--dataset>.train (options given here win)")
    g.add_argument("--hparams", type=Path,
                   help="YAML mapping of settings (lr, weight_decay, dropout, batch_size, ...) that "
                        "override the recipe, e.g. the best_params.yaml of `mienet search`")
    g = parser.add_argument_group("run")
    g.add_argument("--out", required=True, type=Path, help="run folder (checkpoints, logs)")
    g.add_argument("--resume", action="store_true", help="continue the run in --out from checkpoints/last.pt")
    g.add_argument("--restart-if-changed", action="store_true",
                   help="with --resume: start over (not an error) when the run in --out has other settings")
    opt(g, "--device", "auto (CUDA when present), cpu or cuda")
    opt(g, "--amp", "mixed precision", choices=("auto", "bf16", "fp16", "off"))
    opt(g, "--channels-last", "channels-last memory layout", choices=("auto", "on", "off"))
    opt(g, "--compile", "torch.compile", choices=("auto", "on", "off"))
    g.add_argument("--threads", type=int, help="CPU threads for PyTorch (default: PyTorch's choice)")
    g.add_argument("--no-progress", action="store_true")
    g.add_argument("--debug-nan-at-step", type=int, default=unset, help=unset)
    g.add_argument("--debug-exit-at-step", type=int, default=unset, help=unset)


def recipe_from_params(path: Path, dataset: str) -> tuple[dict, str]:
    """(``datasets.<dataset>.train`` of a params.yaml, the data root) with errors naming the key."""
    import yaml

    if not Path(path).is_file():
        raise MienetError(f"--params file {path} does not exist")
    params = yaml.safe_load(Path(path).read_text()) or {}
    ds = (params.get("datasets") or {}).get(dataset)
    if ds is None:
        raise MienetError(f"{path}: no datasets.{dataset} (known: {', '.join(params.get('datasets') or {})})")
    recipe = dict(ds.get("train") or {})
    unknown = sorted(set(recipe) - TUNABLE)
    if unknown:
        raise MienetError(f"{path}: datasets.{dataset}.train has unknown key(s) {', '.join(unknown)}")
    return recipe, str(params.get("data_root", "datasets"))


def config_from_args(args) -> TrainConfig:
    """TrainConfig defaults < params.yaml recipe < --hparams file < options given on the command line."""
    values: dict = {}
    dataset = getattr(args, "dataset", None)
    data_root = None
    if getattr(args, "params", None):
        if not dataset:
            raise MienetError("--params needs --dataset to know which recipe to take")
        recipe, data_root = recipe_from_params(args.params, dataset)
        values.update(recipe)
    if getattr(args, "hparams", None):
        values.update(read_hparams(args.hparams))
    explicit = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    values.update(explicit)
    annotations = args.annotations
    if annotations is None:
        if data_root is None:
            raise MienetError("--annotations is required (or --params with --dataset)")
        annotations = Path(data_root) / dataset / "annotations"
    values["annotations"] = str(annotations)
    values["root"] = str(args.root if args.root else Path(annotations).parent)
    values["out"] = str(args.out)
    if values.get("pretrained") == "none":
        values["pretrained"] = None
    if "lr_steps" in values:
        values["lr_steps"] = list(values["lr_steps"])
    return TrainConfig(**values)


# Settings a search may tune or a best_params.yaml may set (not what names the run).
TUNABLE = {f.name for f in fields(TrainConfig)} - {
    "annotations", "root", "out", "dataset", "variant", "debug_nan_at_step", "debug_exit_at_step"}


def read_hparams(path: Path) -> dict:
    """Settings from a YAML mapping (best_params.yaml); unknown keys are an error naming them."""
    import yaml

    if not Path(path).is_file():
        raise MienetError(f"--hparams file {path} does not exist")
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as exc:
        raise MienetError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise MienetError(f"{path}: expected a mapping of setting -> value")
    data = data.get("params", data)  # best_params.yaml keeps them under `params`
    unknown = sorted(set(data) - TUNABLE)
    if unknown:
        raise MienetError(f"{path}: unknown training setting(s) {', '.join(unknown)}; "
                          f"known: {', '.join(sorted(TUNABLE))}")
    return data


def run(args) -> int:
    cfg = config_from_args(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    summary = train(cfg, resume=args.resume, progress=not args.no_progress,
                    restart_if_changed=args.restart_if_changed)
    best = summary["best"]
    print(f"train: {cfg.variant}/{cfg.arch} {cfg.epochs} epochs -> {cfg.out}; best val top-1 "
          f"{best['val_top1']:.2f} at epoch {best['epoch']}")
    return 0
