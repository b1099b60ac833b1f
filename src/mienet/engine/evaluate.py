"""``mienet evaluate``: the test protocol on a frame list, with metrics a table can read.

Writes to ``--out`` (default ``RUN_DIR/eval-<split>``)::

    metrics.json       dataset, variant, arch, seed, top1, top5, mean_class_acc (percent),
                       params_m, gflops (per view), epochs, views, split, clips ...; and what
                       they were made with: evaluate_settings (split asked for, clips, crops),
                       train_environment (the run's environment.json: precision, threads,
                       machine; "not recorded" for older runs) and evaluate_environment
    predictions.csv    one row per clip: path, label, prediction, probability, top-5
    train_log.csv      the run's per-epoch log, when the checkpoint sits in a run folder
    per_class.csv      accuracy of every class
    confusion.csv      confusion matrix, rows = true class, columns = predicted

Scores of the ``clips x crops`` views of a video are averaged after the softmax. The precision
(``--amp auto``) is the one the run was trained with where it recorded it on the same kind of
device (a float32 training is scored in float32 on a bfloat16 CPU too), else the device's default.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from tqdm import tqdm

from mienet.config import name_arg
from mienet.data.annotations import read_classes
from mienet.data.synth_design import read_design
from mienet.engine.dataset import ClipDataset, build_loader
from mienet.engine.loading import LoadedModel, load_model
from mienet.engine.performance import autocast, default_speed_config, prepare_model, to_device
from mienet.engine.provenance import ENVIRONMENT_FILE, NOT_RECORDED, describe, read_training
from mienet.engine.runtime import setup_runtime
from mienet.errors import MienetError
from mienet.io import write_text_atomic
from mienet.layout import FACTORS_FILE, SELECTION_SPLIT, data_paths, from_params_file
from mienet.models import model_stats

log = logging.getLogger(__name__)


def view_scores(model, clips: torch.Tensor, device, speed) -> torch.Tensor:
    """Average softmax over views: clips ``(B, V, T, L, 3, S, S)`` -> probabilities ``(B, K)``."""
    clips = to_device(clips, device, speed)
    b, v = clips.shape[:2]
    with torch.no_grad(), autocast(device, speed):
        logits = model(clips.flatten(0, 1)).float()
    return logits.softmax(dim=1).view(b, v, -1).mean(dim=1)


def check_views(num_clips: int, num_crops: int) -> None:
    if num_crops not in (1, 3):
        raise MienetError(f"--crops must be 1 or 3, not {num_crops}")
    if num_clips < 1:
        raise MienetError(f"--clips must be at least 1, not {num_clips}")


AMP_CHOICES = ("auto", "bf16", "fp16", "off")


def eval_speed(device, amp: str = "auto", trained: list[dict] | None = None):
    """The device's default speed path with the precision ``amp`` asks for: ``off`` float32,
    ``bf16``/``fp16`` that autocast, ``auto`` the precision of the training (``trained``: its
    environment.json segments, the last one counts) when it ran on this kind of device, else
    the device's default."""
    if amp not in AMP_CHOICES:
        raise MienetError(f"--amp must be one of {', '.join(AMP_CHOICES)}, not {amp!r}")
    device = torch.device(device)
    speed = default_speed_config(device)
    if amp == "auto" and trained and trained[-1].get("device") == device.type:
        amp = {"fp32": "off"}.get(trained[-1].get("precision"), trained[-1].get("precision") or "auto")
    if amp == "auto":
        return speed
    return replace(speed, amp=None if amp == "off" else amp)


def evaluate_model(loaded: LoadedModel, list_file: str | Path, root: str | Path, num_clips: int = 1,
                   num_crops: int = 1, dense: bool = False, batch_size: int = 8, workers: int = 2,
                   device: str = "auto", progress: bool = True, desc: str = "evaluate",
                   amp: str = "auto", trained: list[dict] | None = None) -> tuple[dict, ScoredClips]:
    """The test protocol on ``list_file`` (frames under ``root``): metrics.json's dict and the scored clips.

    The same path for a trained and a released model (:func:`mienet.engine.loading.load_model`);
    the caller adds its own keys to the metrics and writes them with :func:`write_outputs`.
    ``amp`` and ``trained`` (the run's environment.json segments): :func:`eval_speed`.
    """
    check_views(num_clips, num_crops)
    cfg, meta, classes = loaded.config, loaded.meta, loaded.classes
    list_file = Path(list_file)
    rt = setup_runtime(device, exclusive_gpu=False)
    dataset = ClipDataset(list_file, root, cfg["segments"], cfg["frames_per_segment"], cfg["size"],
                          train=False, num_clips=num_clips, num_crops=num_crops, dense=dense,
                          template=cfg["template"], num_classes=len(classes))
    loader = build_loader(dataset, batch_size, shuffle=False, seed=cfg["seed"] or 0, workers=workers,
                          device=rt.device.type)
    speed = eval_speed(rt.device, amp, trained)
    model = prepare_model(loaded.model, rt.device, speed)
    k = len(classes)
    scored = score_clips(model, loader, dataset, classes, rt.device, speed, desc=desc,
                         progress=progress, list_file=list_file)
    stats = model_stats(cfg["variant"], cfg["arch"], cfg["segments"], cfg["size"],
                        frames_per_segment=cfg["frames_per_segment"], num_classes=k)
    metrics = {
        "dataset": cfg["dataset"], "variant": cfg["variant"], "arch": cfg["arch"],
        "seed": cfg["seed"], "split": list_file.stem,
        **scored.accuracy, "num_classes": k, "views": num_clips * num_crops, "test_clips": num_clips,
        "test_crops": num_crops, "segments": cfg["segments"], "frames_per_segment": cfg["frames_per_segment"],
        "size": cfg["size"], "params_m": round(stats["params_m"], 4), "gflops": round(stats["gflops"], 4),
        "epochs": cfg["epochs"], "trained_epochs": meta.get("epoch"),
        "best_epoch": (meta.get("best") or {}).get("epoch"), "checkpoint": meta["checkpoint"],
        "evaluate_environment": describe(rt.device, speed),
    }
    return metrics, scored


def choose_checkpoint(checkpoint: str | Path, split: str) -> tuple[Path, str]:
    """The checkpoint file to score ``split`` with, and what it was selected on.

    A file is taken as given: ``best*.pt`` was selected on val, any other file is taken as
    selected on nothing (say, ``last.pt``: the last epoch). A run's ``checkpoints`` folder
    picks for itself: ``best.pt`` unless the scored split is the selection split (val), where
    choosing the epoch on the very clips reported would bias the number upwards; then
    ``last.pt``.
    """
    path = Path(checkpoint)
    if path.is_dir() and any((path / n).is_file() for n in ("best.pt", "last.pt")):
        name = "last.pt" if split == SELECTION_SPLIT else "best.pt"
        path = path / name
        if not path.is_file():
            raise MienetError(f"{path} does not exist: is {checkpoint} the checkpoints folder of a finished "
                              "`mienet train` run?")
        log.info("scoring %s with %s", split, path)
    # any other folder: load_model names it and suggests the run's checkpoint
    selection = SELECTION_SPLIT if path.name.startswith("best") else "none (last epoch)"
    if selection == split:
        log.warning("%s was selected on %s and is scored on %s: the number is optimistically biased; "
                    "score another split, or pass the run's checkpoints folder to score %s with last.pt",
                    path, split, split, split)
    return path, selection


def score_factors(design: dict, rows: list[dict], classes: list[str], variant: str, where) -> dict:
    """Per-factor accuracy of ``rows`` (a ``<factor>_correct`` column each) and ``variant``'s ceiling
    from a factor design (``factors.json`` of :mod:`mienet.data.synth_design`); metrics.json's keys."""
    names = [c["name"] for c in design["classes"]]
    if names != list(classes):
        raise MienetError(f"{where} describes the classes {names}, the model has {classes}")
    factors = [f["name"] for f in design["factors"]]
    levels = [c["levels"] for c in design["classes"]]
    accuracy = {}
    for f in factors:
        for r in rows:
            r[f"{f}_correct"] = int(levels[r["label"]][f] == levels[r["prediction"]][f])
        accuracy[f] = round(100 * sum(r[f"{f}_correct"] for r in rows) / len(rows), 4)
    out = {"factors": accuracy, "factor_design": {f["name"]: f["description"] for f in design["factors"]}}
    if variant in design.get("ceilings", {}):
        out["ceiling"] = design["ceilings"][variant]
    return out


def evaluate(checkpoint: str | Path, annotations: str | Path, split: str = "val", list_file=None,
             root=None, num_clips: int = 1, num_crops: int = 1, out=None, batch_size: int = 8,
             workers: int = 2, device: str = "auto", dense: bool = False, progress: bool = True,
             amp: str = "auto", requested_split: str | None = None) -> dict:
    """Evaluate a ``mienet train`` checkpoint on a split of ``annotations``; returns metrics.json's dict.

    ``checkpoint`` is a file, or a run's checkpoints folder (:func:`choose_checkpoint`). With a
    factor design beside the lists (``factors.json``), each factor is scored too.
    ``requested_split``: the split as asked for (``standard``), recorded in ``evaluate_settings``
    (default ``split``) for the report's check against params.yaml."""
    check_views(num_clips, num_crops)
    checkpoint, selection = choose_checkpoint(checkpoint, Path(list_file).stem if list_file else split)
    loaded = load_model(checkpoint)
    trained = read_training(Path(checkpoint).parent.parent / ENVIRONMENT_FILE)
    classes = loaded.classes
    annotations = Path(annotations)
    list_file = Path(list_file) if list_file else annotations / f"{split}.txt"
    root = Path(root) if root else annotations.parent
    ann_classes = annotations / "classes.txt"
    names_match = None
    if ann_classes.exists():
        names = read_classes(ann_classes)
        if len(names) != len(classes):
            raise MienetError(f"{checkpoint} was trained on {len(classes)} classes, {ann_classes} lists "
                              f"{len(names)}")
        names_match = class_name_differences(classes, names, checkpoint, ann_classes)
    metrics, scored = evaluate_model(loaded, list_file, root, num_clips=num_clips, num_crops=num_crops,
                                     dense=dense, batch_size=batch_size, workers=workers, device=device,
                                     progress=progress, desc="evaluate", amp=amp, trained=trained)
    metrics["evaluate_settings"] = {"split": requested_split or split, "list": str(list_file) if list_file
                                    != annotations / f"{split}.txt" else None,
                                    "clips": num_clips, "crops": num_crops, "dense": dense}
    metrics["train_environment"] = trained if trained else NOT_RECORDED
    if names_match is not None:
        metrics["class_names_match"] = names_match
    metrics["selection_split"] = selection

    design_path = annotations / FACTORS_FILE
    if design_path.is_file():
        metrics.update(score_factors(read_design(design_path), scored.rows, classes, metrics["variant"],
                                     design_path))
    out = Path(out) if out else Path(checkpoint).parent.parent / f"eval-{list_file.stem}"
    train_log = Path(checkpoint).parent.parent / "log.csv"
    extra = {"train_log.csv": train_log.read_text()} if train_log.is_file() else {}  # the curves
    write_outputs(out, metrics, scored, classes, extra)  # travel with the metrics into results/
    return metrics


def class_name_differences(model_classes: list[str], list_classes: list[str], checkpoint, where,
                           shown: int = 3) -> bool:
    """Whether the checkpoint's class names are those of the annotation's class list (same
    count assumed); a warning names the first differences when they are not: the labels are
    then read with the list's meaning but reported with the checkpoint's names."""
    diff = [(i, a, b) for i, (a, b) in enumerate(zip(model_classes, list_classes)) if a != b]
    if not diff:
        return True
    first = "; ".join(f"label {i}: {a!r} in the checkpoint, {b!r} in the list" for i, a, b in diff[:shown])
    more = f" and {len(diff) - shown} more" if len(diff) > shown else ""
    log.warning("%s and %s name %d of %d classes differently (%s%s): is it the dataset the model was "
                "trained on? The outputs use the checkpoint's names", checkpoint, where, len(diff),
                len(model_classes), first, more)
    return False


def top5_text(metrics: dict) -> str:
    """'top-5 98.20', or with 5 classes or fewer 'top-5 100.00 (not informative: 4 classes)'."""
    k = metrics.get("num_classes") or 0
    note = f" (not informative: {k} classes)" if k and k <= 5 else ""
    return f"top-5 {metrics['top5']:.2f}{note}"


@dataclass
class ScoredClips:
    """What scoring a list gives: per-clip rows, the confusion matrix, per-class rows, accuracy."""

    rows: list[dict]
    confusion: torch.Tensor
    per_class: list[dict]
    accuracy: dict  # top1, top5, mean_class_acc (percent), clips


def score_clips(model, loader, dataset, classes: list[str], device, speed, desc: str = "evaluate",
                progress: bool = True, list_file=None) -> ScoredClips:
    """Run ``model`` over every clip of ``loader`` (views averaged) and tally the results."""
    k = len(classes)
    confusion = torch.zeros(k, k, dtype=torch.long)
    rows = []
    for clips, labels, indices, _ in tqdm(loader, desc=desc, unit="batch", disable=not progress,
                                          file=sys.stderr):
        probs = view_scores(model, clips, device, speed).cpu()
        top = probs.topk(min(5, k), dim=1)
        for i in range(labels.numel()):
            y, p = int(labels[i]), int(top.indices[i, 0])
            confusion[y, p] += 1
            rows.append({"path": dataset.clips[int(indices[i])].path, "label": y, "prediction": p,
                         "correct": int(y == p), "probability": f"{float(top.values[i, 0]):.6f}",
                         "top5": " ".join(str(int(j)) for j in top.indices[i]),
                         "in_top5": int(y in top.indices[i].tolist())})
    n = len(rows)
    if n == 0:
        raise MienetError(f"{list_file or 'the list'} lists no clips to evaluate")
    per_class = []
    for c in range(k):
        total = int(confusion[c].sum())
        per_class.append({"label": c, "class": classes[c], "clips": total, "correct": int(confusion[c, c]),
                          "accuracy": f"{100 * int(confusion[c, c]) / total:.4f}" if total else ""})
    present = [float(r["accuracy"]) for r in per_class if r["accuracy"] != ""]
    accuracy = {"top1": round(100 * sum(r["correct"] for r in rows) / n, 4),
                "top5": round(100 * sum(r["in_top5"] for r in rows) / n, 4),
                "mean_class_acc": round(sum(present) / len(present), 4), "clips": n}
    return ScoredClips(rows, confusion, per_class, accuracy)


def write_outputs(out: Path, metrics: dict, scored: ScoredClips, classes: list[str],
                  extra: dict[str, str] | None = None) -> None:
    """predictions.csv, per_class.csv, confusion.csv, the ``extra`` text files and last
    metrics.json, each written atomically. An old metrics.json goes first, so a folder with a
    metrics.json is complete: an interrupted write (a full disk) leaves none."""
    (Path(out) / "metrics.json").unlink(missing_ok=True)
    _write_csv(out / "predictions.csv", scored.rows)
    _write_csv(out / "per_class.csv", scored.per_class)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["true \\ predicted", *classes])
    for c, name in enumerate(classes):
        w.writerow([name, *scored.confusion[c].tolist()])
    write_text_atomic(out / "confusion.csv", buf.getvalue())
    for name, text in (extra or {}).items():
        write_text_atomic(out / name, text)
    write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")


def _write_csv(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    write_text_atomic(path, buf.getvalue())


def add_arguments(parser) -> None:
    parser.add_argument("--checkpoint", required=True, type=Path,
                        help="a checkpoint of `mienet train`, or a run's checkpoints folder: best.pt (selected "
                             "on val), or last.pt when the scored split is val")
    parser.add_argument("--annotations", type=Path,
                        help="annotation folder (classes.txt and the split's list); default with --params: "
                             "the dataset's")
    parser.add_argument("--params", type=Path,
                        help="params.yaml (checked against its schema): the files of --dataset (mienet.layout)")
    parser.add_argument("--dataset", type=name_arg, help="with --params: the dataset whose annotations and frames to use")
    parser.add_argument("--split", default="val",
                        help="list to evaluate: val, test, or with --params/--dataset 'standard': the "
                             "dataset's protocol (test for synth, folder and SLJD; val for Diving48 and SSv2) "
                             "(default val)")
    parser.add_argument("--list", dest="list_file", type=Path, help="another frame list instead of --split")
    parser.add_argument("--root", type=Path, help="dataset root (default with --params: the dataset's; "
                                                  "else the parent of --annotations)")
    parser.add_argument("--clips", type=int, default=1, help="clips per video (2: 'twice' sampling)")
    parser.add_argument("--crops", type=int, default=1, choices=(1, 3), help="crops per clip")
    parser.add_argument("--dense", action="store_true", help="dense sampling instead of TSN centres")
    parser.add_argument("--out", type=Path, help="output folder (default RUN_DIR/eval-<split>)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", default="auto", choices=AMP_CHOICES,
                        help="precision: auto (the run's training precision where recorded, else the "
                             "device's default), bf16, fp16 (CUDA), off (float32) (default auto)")
    parser.add_argument("--threads", type=int, help="CPU threads for PyTorch (default: PyTorch's choice)")
    parser.add_argument("--no-progress", action="store_true")


def resolve_split(split: str, lay) -> str:
    """``standard`` -> the split the dataset's layout reports (its format's ``standard_split``,
    :data:`mienet.registry.formats.FORMATS`)."""
    if split != "standard":
        return split
    if lay is None:
        raise MienetError("--split standard needs --params and --dataset (the protocol is the dataset's)")
    return lay.standard_split


def run(args) -> int:
    # the params file is read (and validated) once, and only when something needs it
    lay = None
    if args.params is not None and args.dataset and (args.annotations is None or args.split == "standard"):
        lay = from_params_file(args.params, args.dataset)[1]
    annotations, root = data_paths(args.annotations, args.root, args.params, args.dataset, lay=lay)
    requested = args.split
    args.split = resolve_split(args.split, lay)
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    m = evaluate(args.checkpoint, annotations, split=args.split, list_file=args.list_file,
                 root=root, num_clips=args.clips, num_crops=args.crops, out=args.out,
                 batch_size=args.batch_size, workers=args.workers, device=args.device, dense=args.dense,
                 progress=not args.no_progress, amp=getattr(args, "amp", "auto"), requested_split=requested)
    print(f"evaluate: {m['dataset']} {m['split']} ({m['clips']} clips, {m['views']} view(s)): "
          f"top-1 {m['top1']:.2f}  {top5_text(m)}  mean class {m['mean_class_acc']:.2f}")
    return 0
