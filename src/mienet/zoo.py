"""``mienet zoo``: evaluate the authors' released checkpoints, reported numbers beside measured ones.

The ``zoo:`` section of ``params.yaml`` lists one entry per released checkpoint::

    zoo:
      sljd_mienet:
        dataset: sljd             # annotations at <data_root>/<dataset>/annotations/{val.txt,classes.txt}
        variant: mienet
        arch: resnet50
        segments: 3
        num_classes: 10
        file: sljd_mienet.pth.tar # under --pretrained-dir
        reported_top1: 94.48
        reported_top5: 99.65
        # optional: list, root, classes, split (val), frames_per_segment (4), size (224),
        #           template, source (where to get the file)

Released files carry no config and no class list (``epoch, arch, state_dict, optimizer,
best_prec1``), so the model is built from the entry. Released test protocol: one crop
(``--crops 3`` optional), T segments, centre sampling, one clip per video.

Writes ``<results>/zoo/<name>/`` (metrics.json with evaluate's keys plus ``reported_top1``,
``reported_top5``, ``source: released``; predictions.csv, per_class.csv, confusion.csv)
and ``<results>/tables/zoo.{md,csv,tex}``. An entry whose checkpoint or dataset is absent is
skipped with one line and shown as "not evaluated"; the command still exits 0. A checkpoint
whose names or shapes fit no variant is an error naming the closest variant and the keys.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import logging
from pathlib import Path

import torch

from mienet.engine.evaluate import score_clips, write_outputs
from mienet.errors import MienetError
from mienet.io import write_text_atomic

log = logging.getLogger(__name__)

GET_FILES = "the model-zoo download links of the authors' README (seed repository)"
REQUIRED = ("dataset", "variant", "arch", "segments", "num_classes", "file", "reported_top1",
            "reported_top5")
MAX_KEYS = 12


# ---------------------------------------------------------------- params


def load_zoo(params: str | Path) -> tuple[dict[str, dict], Path]:
    """The ``zoo`` entries of a params file and its ``data_root`` (relative to the working folder)."""
    import yaml

    params = Path(params)
    if not params.is_file():
        raise MienetError(f"params file {params} does not exist")
    data = yaml.safe_load(params.read_text(encoding="utf-8")) or {}
    zoo = data.get("zoo")
    if not isinstance(zoo, dict) or not zoo:
        raise MienetError(f"{params} has no `zoo:` section (one entry per released checkpoint)")
    for name, entry in zoo.items():
        if not isinstance(entry, dict):
            raise MienetError(f"zoo entry {name!r} in {params} is not a mapping")
        missing = [k for k in REQUIRED if k not in entry]
        if missing:
            raise MienetError(f"zoo entry {name!r} in {params} lacks {', '.join(missing)}")
    return zoo, Path(data.get("data_root", "datasets"))


def class_names(entry: dict, data_root: Path) -> list[str]:
    """Class names of a zoo entry's dataset: its annotations' classes.txt, else the packaged list
    (Diving48, SSv2), else ``class_00`` ... ."""
    from mienet.data.annotations import packaged_classes, read_classes

    k = int(entry["num_classes"])
    path = Path(entry["classes"]) if entry.get("classes") else data_root / entry["dataset"] / "annotations" / "classes.txt"
    if path.is_file():
        names = read_classes(path)
        if len(names) == k:
            return names
    if entry["dataset"] in ("diving48", "sthv2"):
        names = packaged_classes(entry["dataset"])
        if len(names) == k:
            return names
    return [f"class_{i:02d}" for i in range(k)]


def load_zoo_model(checkpoint: str | Path, name: str, params: str | Path):
    """A released checkpoint as a ready model, for `mienet predict`: (model, {config, classes})."""
    from mienet.models import build_model, load_checkpoint

    entries, data_root = load_zoo(params)
    if name not in entries:
        raise MienetError(f"no zoo entry {name!r} in {params} (entries: {', '.join(entries)})")
    entry = entries[name]
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise MienetError(f"checkpoint {checkpoint} does not exist")
    check_fit(checkpoint, entry, name)
    fps = int(entry.get("frames_per_segment", 4))
    model = build_model(entry["variant"], entry["arch"], int(entry["num_classes"]), int(entry["segments"]), fps)
    load_checkpoint(model, checkpoint)
    model.eval()
    config = {"segments": int(entry["segments"]), "frames_per_segment": fps, "size": int(entry.get("size", 224)),
              "variant": entry["variant"], "arch": entry["arch"]}
    return model, {"config": config, "classes": class_names(entry, data_root)}


def entry_paths(entry: dict, data_root: Path, pretrained_dir: Path) -> dict[str, Path]:
    """Checkpoint, frame list, class list and frame root of an entry."""
    ds_root = Path(data_root) / entry["dataset"]
    ann = ds_root / "annotations"
    list_file = Path(entry["list"]) if entry.get("list") else ann / f"{entry.get('split', 'val')}.txt"
    classes = Path(entry["classes"]) if entry.get("classes") else (
        list_file.parent / "classes.txt" if entry.get("list") else ann / "classes.txt")
    root = Path(entry["root"]) if entry.get("root") else (
        list_file.parent.parent if entry.get("list") else ds_root)
    return {"checkpoint": Path(pretrained_dir) / entry["file"], "list": list_file, "classes": classes,
            "root": root}


# ---------------------------------------------------------------- fitting a released file


def _released_state(path: Path) -> dict[str, torch.Tensor]:
    from mienet.models.checkpoint import RELEASED_UNUSED_PATTERNS, read_checkpoint_file

    ckpt = read_checkpoint_file(path)
    if isinstance(ckpt, dict) and isinstance(ckpt.get("state_dict"), dict):
        state = ckpt["state_dict"]
    elif isinstance(ckpt, dict) and isinstance(ckpt.get("model"), dict):
        state = ckpt["model"]
    elif isinstance(ckpt, dict) and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        state = ckpt
    else:
        raise MienetError(f"{path} holds no state_dict (expected epoch, arch, state_dict, optimizer, "
                          "best_prec1)")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    return {k: v for k, v in state.items()
            if not any(fnmatch.fnmatchcase(k, p) for p in RELEASED_UNUSED_PATTERNS)}


def _differences(state: dict, expected: dict) -> dict[str, list[str]]:
    return {
        "missing": [k for k in expected if k not in state],
        "unexpected": [k for k in state if k not in expected],
        "mis-shaped": [f"{k} {tuple(state[k].shape)} (model: {tuple(expected[k].shape)})"
                       for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)],
    }


def _some(keys: list[str]) -> str:
    more = f", ... (+{len(keys) - MAX_KEYS} more)" if len(keys) > MAX_KEYS else ""
    return ", ".join(keys[:MAX_KEYS]) + more


def check_fit(path: Path, entry: dict, name: str = "") -> None:
    """Raise a :class:`MienetError` naming the closest variant and the differing keys when the
    released file does not fit the entry's variant (arch, segments and classes of the entry)."""
    from mienet.models import build_model
    from mienet.models.variants import VARIANTS

    state = _released_state(path)
    fps = int(entry.get("frames_per_segment", 4))

    def diff(variant):
        model = build_model(variant, entry["arch"], int(entry["num_classes"]), int(entry["segments"]), fps)
        return _differences(state, {k: v for k, v in model.state_dict().items()})

    declared = diff(entry["variant"])
    if not any(declared.values()):
        return
    scores = {entry["variant"]: declared}
    for variant in VARIANTS:
        if variant not in scores:
            scores[variant] = diff(variant)
    closest = min(scores, key=lambda v: (sum(len(x) for x in scores[v].values()), v != entry["variant"]))

    def described(d):
        return "; ".join(f"{len(keys)} {what}: {_some(keys)}" for what, keys in d.items() if keys)

    head = (f"zoo entry {name or entry['file']!r}: {path} does not fit variant {entry['variant']!r} "
            f"(arch {entry['arch']}, {entry['segments']} segments, {entry['num_classes']} classes): "
            f"{described(declared)}")
    n = sum(len(x) for x in scores[closest].values())
    if n == 0:
        raise MienetError(f"{head}. It fits variant {closest!r} exactly: the closest variant is "
                          f"{closest!r}; set `variant: {closest}` in the entry")
    raise MienetError(f"{head}. It fits no variant; the closest is {closest!r} ({n} key(s) differ: "
                      f"{described(scores[closest])})")


# ---------------------------------------------------------------- evaluation


def evaluate_entry(name: str, entry: dict, paths: dict[str, Path], out: Path, num_crops: int = 1,
                   batch_size: int = 8, workers: int = 0, device: str = "auto",
                   progress: bool = False) -> dict:
    """Evaluate one released checkpoint with the released test protocol; returns metrics.json's dict."""
    from mienet.data.annotations import read_classes
    from mienet.engine.data import ClipDataset, build_loader
    from mienet.engine.performance import default_speed_config, prepare_model
    from mienet.engine.train import setup_runtime
    from mienet.models import build_model, load_checkpoint, model_stats
    from mienet.models.checkpoint import read_checkpoint_file

    if num_crops not in (1, 3):
        raise MienetError(f"--crops must be 1 or 3, not {num_crops}")
    variant, arch = entry["variant"], entry["arch"]
    k, t = int(entry["num_classes"]), int(entry["segments"])
    fps, size = int(entry.get("frames_per_segment", 4)), int(entry.get("size", 224))
    classes = read_classes(paths["classes"])
    if len(classes) != k:
        raise MienetError(f"zoo entry {name!r} has {k} classes, {paths['classes']} lists {len(classes)}")
    ckpt_path = paths["checkpoint"]
    check_fit(ckpt_path, entry, name)
    meta = read_checkpoint_file(ckpt_path)
    meta = meta if isinstance(meta, dict) else {}
    model = build_model(variant, arch, k, t, fps, dropout=0.0)
    load_checkpoint(model, ckpt_path)
    model.eval()
    rt = setup_runtime(device, exclusive_gpu=False)
    speed = default_speed_config(rt.device)
    model = prepare_model(model, rt.device, speed)
    dataset = ClipDataset(paths["list"], paths["root"], t, fps, size, train=False, num_clips=1,
                          num_crops=num_crops, template=entry.get("template", "img_{:05d}.jpg"),
                          num_classes=k)
    loader = build_loader(dataset, batch_size, shuffle=False, workers=workers, device=rt.device.type)
    scored = score_clips(model, loader, dataset, classes, rt.device, speed, desc=f"zoo {name}",
                         progress=progress, list_file=paths["list"])
    stats = model_stats(variant, arch, t, size, frames_per_segment=fps, num_classes=k)
    metrics = {
        "dataset": entry["dataset"], "variant": variant, "arch": arch, "seed": None,
        "split": Path(paths["list"]).stem,
        **scored.accuracy, "num_classes": k, "views": num_crops, "test_clips": 1, "test_crops": num_crops,
        "segments": t, "frames_per_segment": fps, "size": size,
        "params_m": round(stats["params_m"], 4), "gflops": round(stats["gflops"], 4),
        "epochs": None, "trained_epochs": meta.get("epoch"), "best_epoch": None,
        "checkpoint": str(ckpt_path), "name": name, "source": "released",
        "reported_top1": float(entry["reported_top1"]), "reported_top5": float(entry["reported_top5"]),
        "best_prec1": meta.get("best_prec1"),
    }
    write_outputs(out, metrics, scored, classes)
    return metrics


# ---------------------------------------------------------------- table

HEADER = ["checkpoint", "dataset", "variant", "reported top-1", "reported top-5", "measured top-1",
          "measured top-5", "diff top-1", "diff top-5", "status"]


def _fmt(x) -> str:
    return "" if x is None else f"{float(x):.2f}"


def _diff(m, r) -> str:
    return "" if m is None or r is None else f"{float(m) - float(r):+.2f}"


def table_rows(results: list[dict]) -> list[list[str]]:
    rows = []
    for r in results:
        m = r.get("metrics") or {}
        rows.append([r["name"], r["dataset"], r["variant"], _fmt(r["reported_top1"]), _fmt(r["reported_top5"]),
                     _fmt(m.get("top1")), _fmt(m.get("top5")), _diff(m.get("top1"), r["reported_top1"]),
                     _diff(m.get("top5"), r["reported_top5"]), r["status"]])
    return rows


def _tex(s: str) -> str:
    for a, b in (("&", "\\&"), ("%", "\\%"), ("_", "\\_"), ("#", "\\#"),
                 ("$", "\\$")):
        s = s.replace(a, b)
    return s


def write_tables(results: list[dict], out_dir: Path) -> dict[str, Path]:
    rows = table_rows(results)
    caption = ("Released checkpoints: numbers reported by the authors (seed README) beside those measured "
               "here (released test protocol; diff = measured - reported, percentage points).")
    cells = [HEADER] + [[c or "-" for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(HEADER))]
    md = [caption, ""]
    md += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in cells[:1]]
    md += ["| " + " | ".join(("-" * w if i < 3 or i == 9 else "-" * (w - 1) + ":")
                             for i, w in enumerate(widths)) + " |"]
    md += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in cells[1:]]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([h.replace(" ", "_").replace("-", "") for h in HEADER])
    w.writerows(rows)
    tex = ["% Generated by `mienet zoo`; needs \\usepackage{booktabs}.", "\\begin{table}[t]", "  \\centering",
           "  \\small", f"  \\caption{{{_tex(caption)}}}", "  \\label{tab:zoo}", "  \\begin{tabular}{lllrrrrrrl}",
           "    \\toprule", "    " + " & ".join(_tex(h) for h in HEADER) + " \\\\", "    \\midrule"]
    tex += ["    " + " & ".join(_tex(c) for c in r) + " \\\\" for r in cells[1:]]
    tex += ["    \\bottomrule", "  \\end{tabular}", "\\end{table}"]
    paths = {ext: Path(out_dir) / "tables" / f"zoo.{ext}" for ext in ("md", "csv", "tex")}
    write_text_atomic(paths["md"], "\n".join(md) + "\n")
    write_text_atomic(paths["csv"], buf.getvalue())
    write_text_atomic(paths["tex"], "\n".join(tex) + "\n")
    return paths


# ---------------------------------------------------------------- the command


def run_zoo(params: str | Path, pretrained_dir: str | Path = "pretrained", results: str | Path = "results",
            crops: int = 1, only: list[str] | None = None, batch_size: int = 8, workers: int = 0,
            device: str = "auto", progress: bool = False, echo=print) -> list[dict]:
    """Evaluate every present entry; skip absent ones with a line; write the zoo table.

    Raises :class:`MienetError` after the table is written when a checkpoint fits no variant."""
    zoo, data_root = load_zoo(params)
    if only:
        unknown = [n for n in only if n not in zoo]
        if unknown:
            raise MienetError(f"--only names no zoo entry: {', '.join(unknown)} (entries: {', '.join(zoo)})")
        zoo = {n: zoo[n] for n in zoo if n in only}
    results = Path(results)
    out, errors = [], []
    for name, entry in zoo.items():
        paths = entry_paths(entry, data_root, Path(pretrained_dir))
        row = {"name": name, "dataset": entry["dataset"], "variant": entry["variant"],
               "reported_top1": entry["reported_top1"], "reported_top5": entry["reported_top5"],
               "metrics": None, "status": "not evaluated"}
        out.append(row)
        if not paths["checkpoint"].is_file():
            where = entry.get("source") or GET_FILES
            echo(f"zoo {name}: not evaluated: checkpoint {paths['checkpoint']} is missing; get "
                 f"{entry['file']} from {where} and put it in {Path(pretrained_dir)}/")
            continue
        absent = [p for p in (paths["list"], paths["classes"]) if not p.is_file()]
        if absent:
            echo(f"zoo {name}: not evaluated: dataset {entry['dataset']} is missing "
                 f"{', '.join(map(str, absent))}; prepare it as the README's data section says "
                 f"(or give `list`/`root` in the zoo entry)")
            continue
        try:
            m = evaluate_entry(name, entry, paths, results / "zoo" / name, num_crops=crops,
                               batch_size=batch_size, workers=workers, device=device, progress=progress)
        except MienetError as exc:
            row["status"] = "error: does not fit"
            errors.append(str(exc))
            echo(f"zoo {name}: error: {exc}")
            continue
        row["metrics"], row["status"] = m, "evaluated"
        echo(f"zoo {name}: {m['clips']} clips, {m['views']} view(s): top-1 {m['top1']:.2f} "
             f"(reported {float(entry['reported_top1']):.2f})  top-5 {m['top5']:.2f} "
             f"(reported {float(entry['reported_top5']):.2f})")
    paths = write_tables(out, results)
    echo(f"zoo: table in {paths['md']}")
    if errors:
        raise MienetError("; ".join(errors))
    return out


def add_arguments(parser) -> None:
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file with `zoo:`")
    parser.add_argument("--pretrained-dir", type=Path, default=Path("pretrained"),
                        help="folder of the released .pth.tar files (default pretrained)")
    parser.add_argument("--results", type=Path, default=Path("results"), help="results folder")
    parser.add_argument("--crops", type=int, default=1, choices=(1, 3), help="crops per clip (released: 1)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="evaluate only these entries")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    run_zoo(args.params, args.pretrained_dir, args.results, crops=args.crops, only=args.only,
            batch_size=args.batch_size, workers=args.workers, device=args.device,
            progress=not args.no_progress)
    return 0
