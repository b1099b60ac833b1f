"""The run folder of ``mienet train``: checkpoints, log and curves, and the rules of resuming it.

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
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import dvclive.live as dvclive_live
import torch
import torch.distributed as dist
from dvclive import Live

from mienet.config import TRAIN_DEFAULTS, TrainConfig
from mienet.engine.recipe import parameter_groups
from mienet.engine.runtime import Runtime
from mienet.errors import MienetError
from mienet.io import atomic_path, write_text_atomic
from mienet.models import save_checkpoint
from mienet.models.checkpoint import read_checkpoint_file, save_state

log = logging.getLogger(__name__)


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
    module = getattr(model, "module", model)
    module = getattr(module, "_orig_mod", module)
    optimised = {id(p) for g in parameter_groups(module, 1.0, 0.0) for p in g["params"]}
    return [(n, p) for n, p in module.named_parameters() if p.requires_grad and id(p) not in optimised]


def save_training_state(path: Path, model, optimizer, scheduler, scaler, epoch: int, best: dict,
                        cfg: TrainConfig, classes: list[str], rows: list[dict] | None = None,
                        dataset_hash: str | None = None, world_size: int = 1) -> None:
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
    save_checkpoint(getattr(model, "module", model), path, epoch=epoch, best=best, config=asdict(cfg),
                    classes=classes, dataset_hash=dataset_hash, format="mienet-weights-1")


BEST_KEEP = ".best.pt"  # a second name of best.pt that survives a workflow deleting its outputs


def copy_atomic(src: Path, dst: Path) -> None:
    """``dst`` becomes a copy of ``src``, atomically. A copy, not a hard link: DVC rewrites
    hard-linked files of an output when it commits, which would make them newer than
    what was computed from them."""
    with atomic_path(dst) as tmp:  # an OSError inside names dst
        shutil.copy2(src, tmp)


def restore_best(ckpt_dir: Path, best_epoch: int, last_state: dict | None = None) -> bool:
    """Make sure ``best.pt`` holds epoch ``best_epoch``; False when it is gone for good.

    A missing ``best.pt`` (a workflow deleted it) or a stale one (the disk filled up between
    last.pt and best.pt) is restored from ``.best.pt``, or from ``last_state`` (last.pt's
    content) when the best epoch is its epoch."""
    def epoch_of(path: Path) -> int:
        return int(read_checkpoint_file(path).get("epoch", -1)) if path.exists() else -1

    best, keep = ckpt_dir / "best.pt", ckpt_dir / BEST_KEEP
    if best_epoch <= 0 or epoch_of(best) == best_epoch:
        return True
    if epoch_of(keep) == best_epoch:
        copy_atomic(keep, best)
        log.info("restored %s (epoch %d) from %s", best, best_epoch, keep.name)
        return True
    if last_state is not None and int(last_state.get("epoch", -1)) == best_epoch:
        meta = {k: last_state.get(k) for k in ("epoch", "best", "config", "classes", "dataset_hash")}
        save_state(last_state["model"], best, **meta, format="mienet-weights-1")
        copy_atomic(best, keep)
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
        # per-process statistics change; the sampler's order would not (mienet.engine.sampling).
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


def write_json(path: Path, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def top5_note(num_classes: int) -> str:
    """What to add to a printed top-5 when it says nothing: with 5 classes or fewer it is 100."""
    return f" (not informative: {num_classes} classes)" if num_classes <= 5 else ""


def _atomic_dvclive_summary() -> None:
    """dvclive writes its summary, dvclive/metrics.json, in place (``open(..., "w")``): on a full
    disk that leaves a 0-byte file, which DVC then reads as broken metrics. Its module's writer is
    replaced once by one that writes a temporary file and renames it (the old summary or the new
    one, never half of one). The plots' TSV files are appended to, and stay as they are."""
    if getattr(dvclive_live.dump_json, "mienet_atomic", False):
        return

    def dump_json(content, output_file, indent=4, **kwargs):
        Path(output_file).parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(output_file, json.dumps(content, indent=indent, **kwargs) + "\n")

    dump_json.mienet_atomic = True
    dvclive_live.dump_json = dump_json


class LiveCurves:
    """dvclive's metrics and plots, if dvclive is installed and works here; the CSV log is the
    reference, so a dvclive failure (an empty git repository, say) only costs the curves."""

    def __init__(self, run_dir: Path, resume: bool, enabled: bool):
        self.live = None
        if not enabled:
            return
        try:
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


@dataclass
class Learner:
    """The model and what updates it; ``model`` becomes the prepared (and DDP-wrapped) one.
    ``outside``: parameters with a gradient outside the optimiser (:func:`outside_parameters`)."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    scaler: object | None
    outside: list = field(default_factory=list)



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
