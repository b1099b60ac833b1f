"""``mienet train``: the released recipe on CPU, one GPU or many (``torchrun``).

A run folder holds everything about one training::

    RUN_DIR/config.json               what was asked for (the model is rebuilt from it), with
                                      dataset_hash: the identity of the lists it trains on
    RUN_DIR/log.csv                   one row per epoch: lr, train and validation loss/accuracy
    RUN_DIR/dvclive/                  the same curves for ``dvc plots`` (when dvclive is installed)
    RUN_DIR/checkpoints/last.pt       end of the latest epoch: model, optimiser, scheduler, scaler,
                                      RNG, log rows: what ``--resume`` continues from
    RUN_DIR/checkpoints/best.pt       the weights of the epoch with the best validation top-1,
                                      with the settings and classes (no optimiser state)
    RUN_DIR/checkpoints/.best.pt      a copy of best.pt, the same size

Checkpoints are written atomically: a crash or a full disk leaves the previous file intact.
``--resume`` continues from ``last.pt``, only with the settings the run was started with
(epochs may grow; where and how it runs may change) and on the same lists (``dataset_hash``);
anything else is an error naming each difference, or with ``--restart-if-changed`` a fresh
start. A workflow that re-runs an interrupted job deletes its declared outputs (``best.pt``,
``log.csv``) first; a resumed run restores ``best.pt`` from ``.best.pt`` (or from ``last.pt``
when the best epoch is the last one) and the log from ``last.pt``, which carries the rows of
every epoch. Every epoch's randomness (sampling, augmentation, dropout) derives from
(seed, epoch) only, so a run killed at any point and resumed ends with exactly the numbers
of an uninterrupted run.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

from mienet.data.annotations import read_classes
from mienet.errors import MienetError
from mienet.io import atomic_path, write_text_atomic
from mienet.engine.runtime import (Runtime, all_sum, claim_gpu, setup_runtime, synchronise_batchnorm,  # noqa: F401
                                   topk_correct)  # (re-exported: they lived here)
from mienet.config import TUNABLE, TrainConfig  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)


# TrainConfig (every setting of a run, its defaults and ranges) lives in mienet.config.


def check_config(cfg: TrainConfig) -> None:
    """Refuse settings out of range before any work, one line naming every bad option
    (the params schema's ranges: the same as Snakemake's check of params.yaml)."""
    from mienet.config import RECIPE_KEYS, schema_errors, value_fits
    from mienet.registry.variants import VARIANTS

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
        from mienet.models.backbone import require_imagenet_weights

        require_imagenet_weights(cfg.arch)


# --------------------------------------------------------------------------- checkpoints

def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def outside_parameters(model) -> list[tuple[str, torch.nn.Parameter]]:
    """Parameters that take a gradient but are in none of the optimiser's groups: AFM's ``w``
    under ``freeze_fusion_weights``, as in the released model. Their gradient counts in the
    clip norm and, since ``optimizer.zero_grad()`` never clears it, adds up over the steps."""
    from mienet.engine.recipe import parameter_groups

    module = getattr(model, "module", model)
    module = getattr(module, "_orig_mod", module)
    optimised = {id(p) for g in parameter_groups(module, 1.0, 0.0) for p in g["params"]}
    return [(n, p) for n, p in module.named_parameters() if p.requires_grad and id(p) not in optimised]


def save_training_state(path: Path, model, optimizer, scheduler, scaler, epoch: int, best: dict,
                        cfg: TrainConfig, classes: list[str], rows: list[dict] | None = None,
                        dataset_hash: str | None = None, world_size: int = 1) -> None:
    from mienet.models import save_checkpoint

    module = getattr(model, "module", model)
    grads = {n: p.grad.detach().clone() for n, p in outside_parameters(module) if p.grad is not None}
    save_checkpoint(
        module, path,
        optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
        scaler=scaler.state_dict() if scaler is not None else {},
        rng=rng_state(), epoch=epoch, best=best, config=asdict(cfg), classes=classes,
        log=list(rows or []), dataset_hash=dataset_hash, outside_grads=grads, world_size=world_size,
        format="mienet-train-1",
    )


def save_best_weights(path: Path, model, epoch: int, best: dict, cfg: TrainConfig, classes: list[str],
                      dataset_hash: str | None = None) -> None:
    """best.pt: the weights with what evaluation and prediction need (settings, classes, epoch),
    no optimiser state: only last.pt is resumed from."""
    from mienet.models import save_checkpoint

    save_checkpoint(getattr(model, "module", model), path, epoch=epoch, best=best, config=asdict(cfg),
                    classes=classes, dataset_hash=dataset_hash, format="mienet-weights-1")


BEST_KEEP = ".best.pt"  # a second name of best.pt that survives a workflow deleting its outputs


def _copy_atomic(src: Path, dst: Path) -> None:
    """``dst`` becomes a copy of ``src``, atomically. A copy, not a hard link: DVC rewrites
    hard-linked files of an output when it commits, which would make them newer than
    what was computed from them."""
    import shutil

    with atomic_path(dst) as tmp:  # an OSError inside names dst
        shutil.copy2(src, tmp)


def restore_best(ckpt_dir: Path, best_epoch: int, last_state: dict | None = None) -> bool:
    """Make sure ``best.pt`` holds epoch ``best_epoch``; False when it is gone for good.

    A missing ``best.pt`` (a workflow deleted it) or a stale one (the disk filled up between
    last.pt and best.pt) is restored from ``.best.pt``, or from ``last_state`` (last.pt's
    content) when the best epoch is its epoch."""
    from mienet.models.checkpoint import read_checkpoint_file, save_state

    def epoch_of(path: Path) -> int:
        return int(read_checkpoint_file(path).get("epoch", -1)) if path.exists() else -1

    best, keep = ckpt_dir / "best.pt", ckpt_dir / BEST_KEEP
    if best_epoch <= 0 or epoch_of(best) == best_epoch:
        return True
    if epoch_of(keep) == best_epoch:
        _copy_atomic(keep, best)
        log.info("restored %s (epoch %d) from %s", best, best_epoch, keep.name)
        return True
    if last_state is not None and int(last_state.get("epoch", -1)) == best_epoch:
        meta = {k: last_state.get(k) for k in ("epoch", "best", "config", "classes", "dataset_hash")}
        save_state(last_state["model"], best, **meta, format="mienet-weights-1")
        _copy_atomic(best, keep)
        log.info("restored %s (epoch %d) from last.pt", best, best_epoch)
        return True
    return False


# Settings that may differ when a run is resumed: where and how it runs, not what it computes.
RUN_ONLY = {"out", "workers", "device", "gpus", "channels_last", "compile", "cuda_graphs", "debug_nan_at_step",
            "debug_exit_at_step", "annotations", "root"}  # the lists are compared by their hash


def dataset_hash(annotations: Path) -> str:
    """The identity of a dataset's annotations: sha256 of classes.txt, train.txt and val.txt."""
    h = hashlib.sha256()
    for name in ("classes.txt", "train.txt", "val.txt"):
        data = (Path(annotations) / name).read_bytes()
        h.update(f"{name}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def run_differences(state: dict, cfg: TrainConfig, data_hash: str | None,
                    extending: bool = True, world_size: int = 1) -> list[str]:
    """Every difference between the run saved in ``state`` (last.pt) and ``cfg`` that changes
    what the run computes, as 'name: saved -> now'. ``extending``: ``epochs`` may grow (not
    below the epochs already trained). The lists are compared by ``dataset_hash``; a checkpoint
    written before the hash was stored is accepted with a warning."""
    from mienet.config import TRAIN_DEFAULTS

    saved = dict(state.get("config") or {})
    saved["pretrained"] = saved.get("pretrained") or "none"  # older runs saved None
    now = asdict(cfg)
    now["pretrained"] = now.get("pretrained") or "none"
    diff = []
    for key, value in now.items():
        if key in RUN_ONLY:
            continue
        old = saved.get(key, getattr(TRAIN_DEFAULTS, key))  # a setting newer than the run: its default
        if key == "epochs" and extending:
            trained = int(state.get("epoch", 0))
            if value < trained:
                diff.append(f"epochs: {old!r} -> {value!r} (fewer than the {trained} epochs trained)")
            continue
        if isinstance(old, tuple):
            old = list(old)
        if old != value:
            diff.append(f"{key}: {old!r} -> {value!r}")
    started = state.get("world_size")  # None: a run saved before the count was recorded
    if started is not None and int(started) != world_size:
        # Not exact on another count: the global batch (and with it lr) and BatchNorm's
        # per-process statistics change; the sampler's order would not (mienet.engine.data).
        diff.append(f"processes (gpus): {int(started)} -> {world_size} (global batch "
                    f"{int(started) * cfg.batch_size} -> {world_size * cfg.batch_size})")
    old_hash = state.get("dataset_hash")
    if data_hash is not None and old_hash is not None and old_hash != data_hash:
        diff.append(f"dataset (train.txt, val.txt, classes.txt): {saved.get('annotations')} "
                    f"(sha256 {old_hash[:12]}) -> {cfg.annotations} (sha256 {data_hash[:12]})")
    return sorted(diff)


def _check_resumable(state: dict, cfg: TrainConfig, path: Path, data_hash: str | None = None,
                     world_size: int = 1) -> None:
    diff = run_differences(state, cfg, data_hash, world_size=world_size)
    if diff:
        raise MienetError(f"cannot resume from {path}: the run was started with other settings ("
                          + "; ".join(diff) + "). Resume with the run's own settings, pass "
                          "--restart-if-changed to train again from scratch with the new ones, "
                          "or choose another --out")


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


def _write_json(path: Path, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def top5_note(num_classes: int) -> str:
    """What to add to a printed top-5 when it says nothing: with 5 classes or fewer it is 100."""
    return f" (not informative: {num_classes} classes)" if num_classes <= 5 else ""


def _atomic_dvclive_summary() -> None:
    """dvclive writes its summary, dvclive/metrics.json, in place (``open(..., "w")``): on a full
    disk that leaves a 0-byte file, which DVC then reads as broken metrics. Its module's writer is
    replaced once by one that writes a temporary file and renames it (the old summary or the new
    one, never half of one). The plots' TSV files are appended to, and stay as they are."""
    import dvclive.live as live_module

    if getattr(live_module.dump_json, "mienet_atomic", False):
        return

    def dump_json(content, output_file, indent=4, **kwargs):
        from mienet.io import write_text_atomic

        Path(output_file).parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(output_file, json.dumps(content, indent=indent, **kwargs) + "\n")

    dump_json.mienet_atomic = True
    live_module.dump_json = dump_json


class LiveCurves:
    """dvclive's metrics and plots, if dvclive is installed and works here; the CSV log is the
    reference, so a dvclive failure (an empty git repository, say) only costs the curves."""

    def __init__(self, run_dir: Path, resume: bool, enabled: bool):
        self.live = None
        if not enabled:
            return
        try:
            from dvclive import Live

            _atomic_dvclive_summary()
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
    from mienet.engine.data import ClipDataset, assert_disjoint, build_loader
    from mienet.engine.jpeg import probe_decode, resolve_decode

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
    from mienet.engine.performance import SpeedConfig, default_speed_config

    speed = default_speed_config(rt.device)
    return SpeedConfig(
        amp=None if cfg.amp == "off" else (speed.amp if cfg.amp == "auto" else cfg.amp),
        channels_last=speed.channels_last if cfg.channels_last == "auto" else cfg.channels_last == "on",
        compile=speed.compile if cfg.compile == "auto" else cfg.compile == "on",
    )


@dataclass
class Learner:
    """The model and what updates it; ``model`` becomes the prepared (and DDP-wrapped) one.
    ``outside``: parameters with a gradient outside the optimiser (:func:`outside_parameters`)."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    scaler: object | None
    outside: list = field(default_factory=list)


def build_learner(cfg: TrainConfig, rt: Runtime, num_classes: int, steps_per_epoch: int, speed) -> Learner:
    """Seeded model, SGD with the recipe's parameter groups, the per-step schedule, the scaler."""
    from mienet.engine.performance import make_grad_scaler
    from mienet.engine.recipe import lr_factor, parameter_groups, scaled_lr
    from mienet.models import build_model

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


# --------------------------------------------------------------------------- resuming

@dataclass
class StartPoint:
    """Where the epoch loop starts: the first epoch to train (0-based), the best epoch so far
    (``val_top1``, ``val_top5``, 1-based ``epoch``; epoch 0: none yet) and the log rows of the
    epochs already trained. The loop updates ``best`` and ``rows``."""

    start_epoch: int
    best: dict
    rows: list[dict]


def _start_over(cfg: TrainConfig, rt: Runtime, changed: list[str]) -> None:
    """Remove a finished or interrupted run's files so that it trains again from scratch."""
    import shutil

    run_dir, ckpt_dir = cfg.run_dir, cfg.run_dir / "checkpoints"
    if rt.main:
        log.info("%s was trained with other settings (%s): starting over", run_dir, "; ".join(changed))
        for old in (ckpt_dir / "last.pt", ckpt_dir / "best.pt", ckpt_dir / BEST_KEEP, run_dir / "log.csv",
                    run_dir / "summary.json"):
            old.unlink(missing_ok=True)
        shutil.rmtree(run_dir / "dvclive", ignore_errors=True)
    if rt.world_size > 1:
        dist.barrier()


def _note_moved_or_unknown(state: dict, cfg: TrainConfig, last: Path, rt: Runtime) -> None:
    if not rt.main:
        return
    saved = state.get("config") or {}
    if state.get("dataset_hash") is None:
        log.warning("%s was written before runs recorded their dataset: cannot check that %s holds "
                    "the lists the run started with (unknown); resuming", last, cfg.annotations)
    for key in ("annotations", "root"):
        if saved.get(key) not in (None, getattr(cfg, key)):
            log.info("%s is now %s (the run started with %s)", key, getattr(cfg, key), saved.get(key))


def start_point(cfg: TrainConfig, rt: Runtime, learner: Learner, resume: bool,
                restart_if_changed: bool, data_hash: str | None = None) -> StartPoint:
    """Decide where training starts, restoring ``learner`` from ``last.pt`` when it resumes.

    Without ``resume``: from scratch, an error when the run folder already holds a run. With
    ``resume``: after the epoch of ``last.pt`` (its settings and dataset must match, else an
    error naming every difference; with ``restart_if_changed``, other settings or an
    unrecoverable ``best.pt`` start over instead), ``best.pt`` restored from its second name,
    the log rows from ``log.csv`` or ``last.pt``.
    """
    from mienet.models.checkpoint import read_checkpoint_file

    run_dir = cfg.run_dir
    ckpt_dir = run_dir / "checkpoints"
    last = ckpt_dir / "last.pt"
    rows = read_log(run_dir / "log.csv")
    if resume and last.exists() and restart_if_changed:
        state = read_checkpoint_file(last)
        changed = run_differences(state, cfg, data_hash, extending=False, world_size=rt.world_size)
        if not changed and not restore_best(ckpt_dir, int((state.get("best") or {}).get("epoch", 0)), state):
            # best.pt was removed (a workflow re-running the job) and its second name is gone
            # too: the best epoch cannot be recovered from last.pt, so train again.
            changed = ["best.pt is missing and cannot be restored"]
        if changed:
            _start_over(cfg, rt, changed)
            resume = False
    if resume and last.exists():
        state = read_checkpoint_file(last)
        _check_resumable(state, cfg, last, data_hash, rt.world_size)
        _note_moved_or_unknown(state, cfg, last, rt)
        learner.model.load_state_dict(state["model"])
        learner.optimizer.load_state_dict(state["optimizer"])
        learner.scheduler.load_state_dict(state["scheduler"])
        if learner.scaler is not None and state.get("scaler"):
            learner.scaler.load_state_dict(state["scaler"])
        grads = state.get("outside_grads") or {}
        for name, p in outside_parameters(learner.model):
            p.grad = grads[name].to(p.device).clone() if name in grads else None
        start_epoch, best = int(state["epoch"]), dict(state["best"])
        if rt.main and not restore_best(ckpt_dir, int(best.get("epoch", 0)), state):
            log.warning("%s is missing or older than the best epoch %d, which cannot be restored; it "
                        "will hold the best epoch from now on", ckpt_dir / "best.pt", best.get("epoch", 0))
            best = {"val_top1": -1.0, "epoch": 0}
        if len(rows) < start_epoch and state.get("log"):
            rows = [dict(r) for r in state["log"]]  # log.csv was removed: last.pt has the rows
        rows = [r for r in rows if int(r["epoch"]) <= start_epoch]
        if rt.main:
            log.info("resuming %s after epoch %d", run_dir, start_epoch)
        return StartPoint(start_epoch, best, rows)
    if resume:
        log.info("no checkpoint at %s: starting from scratch", last)
    elif last.exists() and rt.main:
        raise MienetError(f"{run_dir} already holds a training run (checkpoints/last.pt); "
                          "pass --resume to continue it or choose another --out")
    return StartPoint(0, {"val_top1": -1.0, "epoch": 0}, [])


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
    from tqdm import tqdm

    from mienet.engine.performance import autocast, to_device

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
        _copy_atomic(ckpt_dir / "best.pt", ckpt_dir / BEST_KEEP)
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
    from mienet.runlock import run_lock

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
    from mienet.engine.performance import prepare_model, setup_cuda_graphs

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
        _write_json(run_dir / "config.json", {**asdict(cfg), "dataset_hash": data.hash})
        write_log(run_dir / "log.csv", point.rows)
        from mienet.engine.provenance import record_training  # environment.json: precision, threads, machine

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
        _write_json(run_dir / "summary.json", summary)
    if rt.world_size > 1:
        dist.destroy_process_group()
    return summary


@torch.no_grad()
def validate(model, loader, rt: Runtime, speed, where: Path | None = None, epoch: int | None = None) -> dict:
    from mienet.engine.performance import autocast, to_device

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


# --------------------------------------------------------------------------- command line

def add_arguments(parser) -> None:
    """Options of ``mienet train``: defaults and help texts from :class:`mienet.config.TrainConfig`."""
    from mienet.config import name_arg

    import argparse
    import typing

    from mienet.config import TRAIN_DEFAULTS
    from mienet.registry.variants import VARIANTS

    unset = argparse.SUPPRESS  # only options given on the command line reach the namespace
    meta = {f.name: f for f in fields(TrainConfig)}
    hints = typing.get_type_hints(TrainConfig)

    def opt(group, flag, help_text=None, **kw):
        name = kw.pop("field", flag.lstrip("-").replace("-", "_"))
        help_text = help_text or meta[name].metadata.get("help", "")
        choices = typing.get_args(hints[name]) if typing.get_origin(hints[name]) is typing.Literal else None
        if choices and "action" not in kw:
            kw.setdefault("choices", choices)
        default = getattr(TRAIN_DEFAULTS, name, None)
        if kw.get("action") not in ("store_true", "store_false") and default not in (None, ""):
            help_text += f" (default: {' '.join(map(str, default)) if isinstance(default, list) else default})"
        group.add_argument(flag, default=unset, help=help_text, **kw)

    g = parser.add_argument_group("data")
    g.add_argument("--annotations", type=Path,
                   help="folder with train.txt, val.txt and classes.txt (default with --params: the "
                        "dataset's, see mienet.layout)")
    g.add_argument("--root", type=Path, help="dataset root of the lists' paths (default with --params: the "
                                             "dataset's; else the parent of --annotations)")
    opt(g, "--dataset", "dataset name; with --params also selects datasets.<name>: recipe and files",
        type=name_arg)
    opt(g, "--template")
    opt(g, "--skip-missing", action="store_true")
    opt(g, "--no-flip", "no horizontal flip (SSv2)", action="store_false", field="flip", dest="flip")
    opt(g, "--workers", type=int)
    opt(g, "--cache-frames", action="store_true")
    g = parser.add_argument_group("model")
    opt(g, "--variant", ", ".join(VARIANTS), choices=list(VARIANTS))
    opt(g, "--arch", choices=list(TrainConfig.__dataclass_fields__["arch"].metadata["schema"]["enum"]))
    opt(g, "--segments", type=int)
    opt(g, "--frames-per-segment", type=int)
    opt(g, "--size", type=int)
    opt(g, "--dropout", type=float)
    opt(g, "--pretrained")
    opt(g, "--freeze-fusion-weights", action="store_true")
    opt(g, "--pa-init-std", type=float)
    g = parser.add_argument_group("optimisation")
    opt(g, "--epochs", type=int)
    opt(g, "--batch-size", type=int)
    opt(g, "--gpus", type=int)
    opt(g, "--no-sync-bn", "BatchNorm statistics of each process's own share of the batch",
        action="store_false", field="sync_bn", dest="sync_bn")
    opt(g, "--lr", type=float)
    opt(g, "--lr-steps", type=int, nargs="*")
    opt(g, "--schedule")
    opt(g, "--warmup-epochs", type=float)
    opt(g, "--momentum", type=float)
    opt(g, "--weight-decay", type=float)
    opt(g, "--clip-grad", type=float)
    opt(g, "--seed", type=int)
    g.add_argument("--params", type=Path,
                   help="params.yaml (checked against its schema): the recipe datasets.<--dataset>.train "
                        "and the dataset's files (options given here win)")
    g.add_argument("--hparams", type=Path,
                   help="YAML mapping of settings (lr, weight_decay, dropout, batch_size, ...) that "
                        "override the recipe, e.g. the best_params.yaml of `mienet search`")
    g = parser.add_argument_group("run")
    g.add_argument("--out", required=True, type=Path, help="run folder (checkpoints, logs)")
    g.add_argument("--resume", action="store_true", help="continue the run in --out from checkpoints/last.pt")
    g.add_argument("--restart-if-changed", action="store_true",
                   help="with --resume: start over (not an error) when the run in --out has other settings")
    opt(g, "--device")
    opt(g, "--amp")
    opt(g, "--channels-last")
    opt(g, "--compile")
    opt(g, "--cuda-graphs")
    opt(g, "--decode")
    g.add_argument("--threads", type=int, help="CPU threads for PyTorch (default: PyTorch's choice)")
    g.add_argument("--no-progress", action="store_true")
    g.add_argument("--debug-nan-at-step", type=int, default=unset, help=unset)
    g.add_argument("--debug-exit-at-step", type=int, default=unset, help=unset)


def recipe_from_params(path: Path, dataset: str):
    """(``datasets.<dataset>.train`` of a params.yaml, the dataset's :class:`~mienet.layout.DatasetLayout`);
    the file is checked against the params schema first, errors name the file and the key."""
    from mienet.layout import from_params_file

    params, lay = from_params_file(path, dataset)
    return dict(params["datasets"][dataset].get("train") or {}), lay


def config_from_args(args) -> TrainConfig:
    """TrainConfig defaults < params.yaml recipe < --hparams file < options given on the command line.

    With ``--params`` and ``--dataset``, the annotations and the frame root are the dataset's
    (:mod:`mienet.layout`); ``--annotations``/``--root`` override them."""
    values: dict = {}
    dataset = getattr(args, "dataset", None)
    lay = None
    if getattr(args, "params", None):
        if not dataset:
            raise MienetError("--params needs --dataset to know which recipe to take")
        recipe, lay = recipe_from_params(args.params, dataset)
        values.update(recipe)
    if getattr(args, "hparams", None):
        values.update(read_hparams(args.hparams))
    explicit = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    values.update(explicit)
    from mienet.layout import data_paths

    annotations, root = data_paths(args.annotations, args.root, lay=lay)
    values["annotations"] = str(annotations)
    values["root"] = str(root)
    values["out"] = str(args.out)
    if "lr_steps" in values:
        values["lr_steps"] = list(values["lr_steps"])
    return TrainConfig(**values)


def read_hparams(path: Path) -> dict:
    """Settings from a YAML mapping (best_params.yaml); unknown keys or values out of range are
    an error naming them."""
    import yaml

    from mienet.config import value_fits

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
    bad = [f"{k}: {v!r}" for k, v in data.items() if not value_fits(k, v)]
    if bad:
        raise MienetError(f"{path}: value(s) out of range or of the wrong type: {'; '.join(bad)}")
    return data


def run_under_torchrun(gpus: int, argv: list[str]) -> int:
    """The ``mienet`` command line ``argv`` under ``torchrun --standalone --nproc-per-node gpus``
    (one node), as a child: its exit status. A SLURM job's signals reach every process of the
    job; Ctrl-C reaches the terminal's process group, torchrun included."""
    import subprocess

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(gpus),
           "-m", "mienet", *argv]
    log.info("gpus: %d: starting %d processes with torchrun", gpus, gpus)
    sys.stdout.flush()
    sys.stderr.flush()
    return subprocess.run(cmd).returncode


def run(args) -> int:
    cfg = config_from_args(args)
    if cfg.gpus > 1 and "LOCAL_RANK" not in os.environ:
        check_before_start(cfg)  # what can be refused at once is refused here, not by every process
        return run_under_torchrun(cfg.gpus, getattr(args, "_argv", sys.argv[1:]))
    if args.threads:
        torch.set_num_threads(args.threads)
    summary = train(cfg, resume=args.resume, progress=not args.no_progress,
                    restart_if_changed=args.restart_if_changed)
    best = summary["best"]
    print(f"train: {cfg.variant}/{cfg.arch} {cfg.epochs} epochs -> {cfg.out}; best val top-1 "
          f"{best['val_top1']:.2f} at epoch {best['epoch']}")
    return 0
