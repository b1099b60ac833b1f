"""The training of one run (:func:`train`): the model and what updates it, the epochs, and
validation after each.

The run folder it writes, and how a run resumes, are :mod:`mienet.engine.run_state`'s. Every
epoch's randomness (sampling, augmentation, dropout) derives from (seed, epoch) only, so a run
killed at any point and resumed ends with exactly the numbers of an uninterrupted run.
"""

from __future__ import annotations

import logging
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from mienet.config import RECIPE_KEYS, TrainConfig, schema_errors, value_fits
from mienet.data.annotations import read_classes
from mienet.engine.dataset import ClipDataset, assert_disjoint, build_loader, probe_decode
from mienet.engine.jpeg import resolve_decode
from mienet.engine.performance import (SpeedConfig, autocast, default_speed_config, make_grad_scaler,
                                       prepare_model, setup_cuda_graphs, to_device)
from mienet.engine.provenance import record_training
from mienet.engine.recipe import lr_factor, parameter_groups, scaled_lr
from mienet.engine.run_state import (BEST_KEEP, Learner, LiveCurves, StartPoint, copy_atomic, dataset_hash,
                                     outside_parameters, save_best_weights, save_training_state, start_point,
                                     top5_note, write_json, write_log)
from mienet.engine.runtime import Runtime, all_sum, setup_runtime, synchronise_batchnorm, topk_correct
from mienet.errors import MienetError
from mienet.models import build_model
from mienet.models.backbone import require_imagenet_weights
from mienet.registry.variants import VARIANTS
from mienet.runlock import run_lock

log = logging.getLogger(__name__)


def check_config(cfg: TrainConfig) -> None:
    """Refuse settings out of range before any work, one line naming every bad option
    (the params schema's ranges: the same as Snakemake's check of params.yaml)."""
    values = {k: getattr(cfg, k) for k in RECIPE_KEYS}
    if values.get("pretrained") is None:
        values["pretrained"] = "none"  # the search's spelling of no pretrained weights
    if isinstance(values.get("lr_steps"), tuple):
        values["lr_steps"] = list(values["lr_steps"])
    problems = []
    if schema_errors(values, definition="recipe"):  # then each setting on its own, to name it
        for key, value in values.items():
            for message in schema_errors({key: value}, where="", definition="recipe"):
                text = message[message.find(key) + len(key):] if key in message else message
                if text.startswith("."):  # an item of a list: 'lr_steps.0: ...'
                    index, _, text = text[1:].partition(": ")
                    text = f"item {index}: {text}"
                shown = " ".join(map(str, value)) if isinstance(value, list) else value
                problems.append(f"--{key.replace('_', '-')} {shown}: {text.lstrip(': ')}")
    if not value_fits("seed", cfg.seed):
        problems.append(f"--seed {cfg.seed}: must be an integer >= 0")
    if cfg.variant not in VARIANTS:
        problems.append(f"--variant {cfg.variant}: not one of {', '.join(VARIANTS)}")
    if problems:
        raise MienetError("invalid setting(s): " + "; ".join(problems))


def check_before_start(cfg: TrainConfig) -> None:
    """Everything refused before any work: the settings (:func:`check_config`) and, for
    ``pretrained: imagenet``, the weights file (a compute node does not download)."""
    check_config(cfg)
    if cfg.pretrained_weights == "imagenet":
        require_imagenet_weights(cfg.arch)


# --------------------------------------------------------------------------- building a run

def load_classes(ann: Path) -> list[str]:
    path = ann / "classes.txt"
    if not path.exists():
        raise MienetError(f"{path} does not exist: the annotation folder needs classes.txt "
                          "(written by `mienet make-annotations`)")
    return read_classes(path)


@dataclass
class TrainData:
    """The class list, the two clip sets and their loaders; ``hash``: :func:`dataset_hash`."""

    classes: list[str]
    train_set: object
    val_set: object
    train_loader: object
    val_loader: object
    hash: str | None = None


def build_data(cfg: TrainConfig, rt: Runtime) -> TrainData:
    ann = Path(cfg.annotations)
    classes = load_classes(ann)
    common = dict(root=cfg.root, num_segments=cfg.segments, frames_per_segment=cfg.frames_per_segment,
                  size=cfg.size, template=cfg.template, skip_missing=cfg.skip_missing,
                  num_classes=len(classes))

    def sets(encoded: bool):
        cache = cfg.cache_frames and not encoded
        return (ClipDataset(ann / "train.txt", train=True, flip=cfg.flip, cache_frames=cache, encoded=encoded,
                            **common),
                ClipDataset(ann / "val.txt", train=False, cache_frames=cache, encoded=encoded, **common))

    train_set, val_set = sets(False)
    if resolve_decode(cfg.decode, rt.device, probe=lambda: probe_decode(
            train_set, sets(True)[0], rt.device, cfg.workers, cfg.batch_size)):
        train_set, val_set = sets(True)
    if len(train_set) == 0:
        raise MienetError(f"{ann / 'train.txt'} lists no clips")
    if len(val_set) == 0:
        raise MienetError(f"{ann / 'val.txt'} lists no clips: every epoch is validated on it and the "
                          "best checkpoint chosen by it (make-annotations --val-ratio above 0)")
    assert_disjoint(train_set, val_set)  # validation on training clips would measure memorisation
    per_device_batch = cfg.batch_size
    train_loader = build_loader(train_set, per_device_batch, shuffle=True, seed=cfg.seed,
                                workers=cfg.workers, device=rt.device.type, rank=rt.rank,
                                world_size=rt.world_size, drop_last=len(train_set) > per_device_batch)
    val_loader = build_loader(val_set, per_device_batch, shuffle=False, seed=cfg.seed, workers=cfg.workers,
                              device=rt.device.type, rank=rt.rank, world_size=rt.world_size)
    if len(train_loader) == 0:
        raise MienetError(f"{ann / 'train.txt'}: {len(train_set)} clip(s) make no training batch of "
                          f"{per_device_batch} on {rt.world_size} process(es)")
    return TrainData(classes, train_set, val_set, train_loader, val_loader, dataset_hash(ann))


def speed_config(cfg: TrainConfig, rt: Runtime):
    """The device's default speed path, with what ``--amp``, ``--channels-last`` and ``--compile`` ask."""
    speed = default_speed_config(rt.device)
    return SpeedConfig(
        amp=None if cfg.amp == "off" else (speed.amp if cfg.amp == "auto" else cfg.amp),
        channels_last=speed.channels_last if cfg.channels_last == "auto" else cfg.channels_last == "on",
        compile=speed.compile if cfg.compile == "auto" else cfg.compile == "on",
    )


def build_learner(cfg: TrainConfig, rt: Runtime, num_classes: int, steps_per_epoch: int, speed) -> Learner:
    """Seeded model, SGD with the recipe's parameter groups, the per-step schedule, the scaler."""
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    model = build_model(cfg.variant, cfg.arch, num_classes, cfg.segments, cfg.frames_per_segment,
                        dropout=cfg.dropout, pretrained=cfg.pretrained,
                        freeze_fusion_weights=cfg.freeze_fusion_weights, pa_init_std=cfg.pa_init_std)
    base_lr = scaled_lr(cfg.lr, cfg.batch_size, rt.world_size)
    optimizer = torch.optim.SGD(parameter_groups(model, base_lr, cfg.weight_decay), lr=base_lr,
                                momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, steps_per_epoch, cfg.epochs, cfg.schedule, cfg.lr_steps,
                                          cfg.warmup_epochs))
    scaler = make_grad_scaler(rt.device, speed)
    return Learner(model, optimizer, scheduler, scaler, [p for _, p in outside_parameters(model)])


# --------------------------------------------------------------------------- the loop

@dataclass
class EpochResult:
    """One training epoch, summed over the processes: mean loss, top-1 (percent), skipped clips."""

    lr: float  # the base learning rate at the start of the epoch (without the group's multiplier)
    loss: float
    top1: float
    skipped: float
    step: int  # optimiser steps taken since the start of the run, after this epoch


class OutsideGrads:
    """Gradients of the parameters outside the optimiser (:func:`outside_parameters`), as the
    released loop leaves them: never cleared, so each step's gradient adds to them, and counted
    (and scaled) by the gradient-norm clip. With float16 loss scaling, which the released code
    did not have, a step's contribution is unscaled like the optimiser's gradients and dropped
    when the scaler skips the step."""

    def __init__(self, params: list, scaler):
        self.params = params
        self.scaled = bool(params) and scaler is not None and scaler.is_enabled()
        self.kept: list = []

    def before_backward(self) -> None:
        if self.scaled:
            self.kept = [p.grad for p in self.params]
            for p in self.params:
                p.grad = None

    def after_unscale(self, scale: float) -> None:
        if not self.scaled:
            return
        for p, kept in zip(self.params, self.kept):
            new = None if p.grad is None else p.grad / scale
            p.grad = kept if new is None else (new if kept is None else kept + new)
        self.kept = [None if g is None else g.clone() for g in self.kept]

    def after_step(self, skipped: bool) -> None:
        if self.scaled and skipped:
            for p, kept in zip(self.params, self.kept):
                p.grad = kept


def train_epoch(cfg: TrainConfig, rt: Runtime, learner: Learner, loader, speed, epoch: int, step: int,
                progress: bool = True) -> EpochResult:
    """One pass over ``loader``; every random draw of the epoch derives from (seed, epoch)."""
    model, optimizer, scheduler, scaler = learner.model, learner.optimizer, learner.scheduler, learner.scaler
    outside = OutsideGrads(learner.outside, scaler)
    last = cfg.run_dir / "checkpoints" / "last.pt"
    # Everything random in this epoch derives from (seed, epoch): resumable exactly.
    torch.manual_seed(cfg.seed * 1_000_003 + epoch)
    random.seed(cfg.seed * 1_000_003 + epoch)
    loader.sampler.set_epoch(epoch)
    model.train()
    sums = [0.0, 0.0, 0.0, 0.0]  # loss * n, top1 hits, n, skipped
    lr_now = optimizer.param_groups[0]["lr"] / optimizer.param_groups[0]["lr_mult"]
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch",
               disable=not (progress and rt.main), file=sys.stderr, leave=False)
    for clips, labels, _, skipped in bar:
        sums[3] += skipped
        if labels.numel() == 0:
            continue
        clips = to_device(clips, rt.device, speed)[:, 0]  # one view per training clip
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
        optimizer.zero_grad(set_to_none=True)  # the optimiser's parameters only, as released
        outside.before_backward()
        if scaler is not None:
            scale = scaler.get_scale() if outside.scaled else 1.0  # (a GPU sync: only when needed)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            outside.after_unscale(scale)
        else:
            loss.backward()
        if cfg.clip_grad:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
            outside.after_step(skipped=outside.scaled and scaler.get_scale() < scale)
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
    if count == 0:
        raise MienetError(f"epoch {epoch + 1} trained on no clip: all {int(skipped)} clip(s) of "
                          f"{cfg.annotations}/train.txt were skipped (missing frames, --skip-missing); "
                          f"{last if last.exists() else 'no checkpoint'} is unchanged")
    return EpochResult(lr_now, loss_sum / count, 100 * hits / count, skipped, step)


def epoch_row(epoch: int, result: EpochResult, val: dict, seconds: float) -> dict:
    """The log row (text, as in log.csv) of a finished epoch (0-based ``epoch``)."""
    return {
        "epoch": epoch + 1, "lr": f"{result.lr:.6g}",
        "train_loss": f"{result.loss:.6f}", "train_top1": f"{result.top1:.4f}",
        "val_loss": f"{val['loss']:.6f}", "val_top1": f"{val['top1']:.4f}",
        "val_top5": f"{val['top5']:.4f}", "skipped": int(result.skipped + val["skipped"]),
        "seconds": f"{seconds:.2f}",
    }


def record_epoch(cfg: TrainConfig, learner: Learner, data: TrainData, point: StartPoint, row: dict,
                 val: dict, live: LiveCurves, world_size: int = 1) -> None:
    """The main process after an epoch: the row, the best epoch, last.pt (and best.pt with its
    second name when it improved), log.csv and the curves."""
    ckpt_dir = cfg.run_dir / "checkpoints"
    epoch = int(row["epoch"])
    point.rows.append(row)
    improved = val["top1"] > point.best["val_top1"]
    if improved:
        point.best = {"val_top1": val["top1"], "val_top5": val["top5"], "epoch": epoch}
    m = learner
    save_training_state(ckpt_dir / "last.pt", m.model, m.optimizer, m.scheduler, m.scaler, epoch, point.best,
                        cfg, data.classes, point.rows, data.hash, world_size)
    if improved:
        save_best_weights(ckpt_dir / "best.pt", m.model, epoch, point.best, cfg, data.classes, data.hash)
        copy_atomic(ckpt_dir / "best.pt", ckpt_dir / BEST_KEEP)
    write_log(cfg.run_dir / "log.csv", point.rows)
    live.log(row)
    log.info("epoch %d/%d: train loss %s top-1 %s; val loss %s top-1 %s top-5 %s%s (%ss)",
             epoch, cfg.epochs, row["train_loss"], row["train_top1"], row["val_loss"],
             row["val_top1"], row["val_top5"], top5_note(len(data.classes)), row["seconds"])


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True,
          on_epoch: Callable[[int, dict], None] | None = None, restart_if_changed: bool = False,
          take_over_lock: bool = False) -> dict:
    """Train one model; returns the final summary (also written to RUN_DIR/summary.json).

    ``on_epoch(epoch, row)`` is called after every epoch (1-based) with the log row (floats);
    an exception it raises (an Optuna ``TrialPruned``, say) ends the run after the epoch's
    checkpoints are written. The run folder is held (:func:`mienet.runlock.run_lock`) from
    before anything in it is read until the end: a second writer is refused with the holder
    named. ``take_over_lock``: a lock left by another machine is taken over too (a search's
    retry of a trial whose worker the study declared dead).
    """
    check_before_start(cfg)
    rt = setup_runtime(cfg.device)
    if cfg.gpus > 1 and rt.world_size != cfg.gpus:
        raise MienetError(f"the recipe asks for gpus: {cfg.gpus} but this training runs {rt.world_size} "
                          f"process(es): start it with `mienet train` (which launches torchrun with "
                          f"--nproc-per-node {cfg.gpus}) or torchrun --nproc-per-node {cfg.gpus}")
    with run_lock(cfg.run_dir, "run folder", take_over_foreign=take_over_lock, enabled=rt.main):
        return _train_locked(cfg, rt, resume, progress, on_epoch, restart_if_changed)


def _train_locked(cfg: TrainConfig, rt, resume: bool, progress: bool,
                  on_epoch: Callable[[int, dict], None] | None, restart_if_changed: bool) -> dict:
    run_dir = cfg.run_dir
    data = build_data(cfg, rt)
    speed = speed_config(cfg, rt)
    steps_per_epoch = max(len(data.train_loader), 1)
    learner = build_learner(cfg, rt, len(data.classes), steps_per_epoch, speed)
    point = start_point(cfg, rt, learner, resume, restart_if_changed, data.hash)
    if rt.world_size > 1 and cfg.sync_bn:  # before compiling; the optimiser keeps its parameters
        learner.model = synchronise_batchnorm(learner.model, rt.device)
    learner.model = prepare_model(learner.model, rt.device, speed)
    graphs = setup_cuda_graphs(learner.model, rt.device, speed, cfg.cuda_graphs,  # CPU: nothing happens
                               (cfg.batch_size, cfg.segments, cfg.frames_per_segment, 3, cfg.size, cfg.size),
                               len(data.classes), rt.world_size, accumulating=bool(learner.outside))
    if rt.world_size > 1:
        learner.model = torch.nn.parallel.DistributedDataParallel(
            learner.model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None)
    if rt.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / "config.json", {**asdict(cfg), "dataset_hash": data.hash})
        write_log(run_dir / "log.csv", point.rows)
        # environment.json: precision, threads, machine
        record_training(run_dir, point.start_epoch, rt.device, speed, rt.world_size)
        log.info("training %s/%s on %s (world size %d), %d train / %d val clips, speed %s, CUDA graphs %s (%s)",
                 cfg.variant, cfg.arch, rt.device, rt.world_size, len(data.train_set), len(data.val_set), speed,
                 "on" if graphs["cuda_graphs"] else "off", graphs["reason"])
    live = LiveCurves(run_dir, resume=point.start_epoch > 0, enabled=rt.main)
    step = point.start_epoch * steps_per_epoch
    try:
        for epoch in range(point.start_epoch, cfg.epochs):
            t0 = time.perf_counter()
            result = train_epoch(cfg, rt, learner, data.train_loader, speed, epoch, step, progress)
            step = result.step
            val = validate(learner.model, data.val_loader, rt, speed, where=Path(cfg.annotations) / "val.txt",
                           epoch=epoch)
            row = epoch_row(epoch, result, val, time.perf_counter() - t0)
            if rt.main:
                record_epoch(cfg, learner, data, point, row, val, live, rt.world_size)
            if rt.world_size > 1:
                dist.barrier()
            if on_epoch is not None:
                on_epoch(epoch + 1, {k: float(v) for k, v in row.items()})
    finally:
        live.close()
    summary = {"run_dir": str(run_dir), "epochs": cfg.epochs, "best": point.best,
               "final": point.rows[-1] if point.rows else None}
    if rt.main:
        write_json(run_dir / "summary.json", summary)
    if rt.world_size > 1:
        dist.destroy_process_group()
    return summary


@torch.no_grad()
def validate(model, loader, rt: Runtime, speed, where: Path | None = None, epoch: int | None = None) -> dict:
    model.eval()
    sums = [0.0, 0.0, 0.0, 0.0, 0.0]  # loss * n, top1, top5, n, skipped
    for clips, labels, _, skipped in loader:
        sums[4] += skipped
        if labels.numel() == 0:
            continue
        labels = labels.to(rt.device)
        with autocast(rt.device, speed):
            logits = model(to_device(clips, rt.device, speed)[:, 0]).float()
        sums[0] += F.cross_entropy(logits, labels, reduction="sum").item()
        top1, top5 = topk_correct(logits, labels)
        sums[1] += top1
        sums[2] += top5
        sums[3] += labels.numel()
    loss, top1, top5, n, skipped = all_sum(sums, rt)
    if n == 0:
        when = f" after epoch {epoch + 1}" if epoch is not None else ""
        raise MienetError(f"no clip of {where or 'the validation list'} could be validated{when}: all "
                          f"{int(skipped)} were skipped (missing frames, --skip-missing); no metric or "
                          "best checkpoint is recorded from nothing")
    return {"loss": loss / n, "top1": 100 * top1 / n, "top5": 100 * top5 / n, "skipped": skipped}
