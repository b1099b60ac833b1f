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
        # optional: list, root, classes, split (val), frames_per_segment (4), size (224),
        #           template, source (where to get the file)

The reported top-1/top-5 are not in the entry: they come from the one table of reported numbers,
:data:`mienet.registry.published.BUILTIN`, by the entry's dataset and variant. The dataset's
annotations and frames are found by :mod:`mienet.layout` when params.yaml describes the dataset.

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

import logging
from pathlib import Path

from mienet.data.annotations import read_classes
from mienet.errors import MienetError
from mienet.released import REQUIRED, class_names, entry_paths, load_zoo  # noqa: F401 (public here too)
from mienet.report.table import Table
from mienet.report.tables import fmt, num, signed

log = logging.getLogger(__name__)

GET_FILES = "the model-zoo download links of the authors' README (seed repository)"

# ``load_zoo`` (the entries of params.yaml), ``class_names`` and ``entry_paths`` (an entry's files)
# live in :mod:`mienet.released`, which ``mienet predict --zoo`` reads too without importing this
# module; the model is built and checked by :func:`mienet.engine.loading.load_model`. PyTorch is
# imported only when an entry is evaluated: a zoo with no checkpoint in pretrained/ (a clone's,
# every test pipeline's) writes its table without it.


# ---------------------------------------------------------------- evaluation


def evaluate_entry(name: str, entry: dict, paths: dict[str, Path], out: Path, num_crops: int = 1,
                   batch_size: int = 8, workers: int = 0, device: str = "auto",
                   progress: bool = False) -> dict:
    """Evaluate one released checkpoint with the released test protocol; returns metrics.json's dict."""
    from mienet.engine.evaluate import check_views, evaluate_model, write_outputs
    from mienet.engine.loading import load_model

    check_views(1, num_crops)
    k = int(entry["num_classes"])
    classes = read_classes(paths["classes"])
    if len(classes) != k:
        raise MienetError(f"zoo entry {name!r} has {k} classes, {paths['classes']} lists {len(classes)}")
    loaded = load_model(paths["checkpoint"], zoo_entry=entry, classes=classes, name=name)
    metrics, scored = evaluate_model(loaded, paths["list"], paths["root"], num_clips=1, num_crops=num_crops,
                                     batch_size=batch_size, workers=workers, device=device, progress=progress,
                                     desc=f"zoo {name}")
    metrics.update({
        "name": name, "source": "released",
        "reported_top1": entry["reported_top1"], "reported_top5": entry["reported_top5"],
        "best_prec1": loaded.meta.get("best_prec1"),
    })
    write_outputs(out, metrics, scored, loaded.classes)
    return metrics


def error_kind(exc: MienetError) -> str:
    """The zoo table's status of an entry that failed: what kind of failure, in a few words."""
    from mienet.models.checkpoint import CheckpointReadError

    if isinstance(exc, CheckpointReadError):
        return exc.kind
    if "does not fit" in str(exc):  # check_fit and load_checkpoint: names or shapes of no variant
        return "does not fit"
    return "failed"


# ---------------------------------------------------------------- table

HEADER = ["checkpoint", "dataset", "variant", "reported top-1", "reported top-5", "measured top-1",
          "measured top-5", "diff top-1", "diff top-5", "status"]
CAPTION = ("Released checkpoints: numbers reported by the authors (seed README) beside those measured "
           "here (released test protocol; diff = measured - reported, percentage points).")


def _shown(x) -> str:
    return "-" if x is None else f"{float(x):.2f}"


def _number(x) -> float | None:
    return None if x is None else float(x)


def _difference(measured, reported) -> float | None:
    return None if measured is None or reported is None else float(measured) - float(reported)


def zoo_table(results: list[dict]) -> Table:
    """The zoo table: one row per entry, evaluated or not."""
    table = Table(stem="zoo", caption=CAPTION, header=HEADER, align="lllrrrrrrl",
                  csv_columns=[h.replace(" ", "_").replace("-", "") for h in HEADER], generator="mienet zoo")
    for r in results:
        m = r.get("metrics") or {}
        numbers = [_number(r["reported_top1"]), _number(r["reported_top5"]), _number(m.get("top1")),
                   _number(m.get("top5"))]
        diffs = [_difference(m.get("top1"), r["reported_top1"]), _difference(m.get("top5"), r["reported_top5"])]
        table.add([r["name"], r["dataset"], r["variant"], *map(num, numbers), *map(signed, diffs), r["status"]],
                  dict(zip(table.csv_columns, [r["name"], r["dataset"], r["variant"], *map(fmt, numbers),
                                               *("" if d is None else signed(d) for d in diffs), r["status"]])))
    return table


def write_tables(results: list[dict], out_dir: Path) -> dict[str, Path]:
    """``<out_dir>/tables/zoo.{md,tex,csv}``; the paths by extension."""
    return zoo_table(results).write(Path(out_dir) / "tables")


# ---------------------------------------------------------------- the command


def run_zoo(params: str | Path, pretrained_dir: str | Path = "pretrained", results: str | Path = "results",
            crops: int = 1, only: list[str] | None = None, batch_size: int = 8, workers: int = 0,
            device: str = "auto", progress: bool = False, echo=print) -> list[dict]:
    """Evaluate every present entry; skip absent ones with a line; write the zoo table.

    Raises :class:`MienetError` after the table is written when an entry fails (its checkpoint
    is refused as unsafe, cannot be read or fits no variant): one message naming each such entry,
    whose status in the table says what kind of failure it was."""
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
                 f"{', '.join(map(str, absent))}; prepare it as docs/your-own-dataset.md says "
                 f"(or give `list`/`root` in the zoo entry)")
            continue
        try:
            m = evaluate_entry(name, entry, paths, results / "zoo" / name, num_crops=crops,
                               batch_size=batch_size, workers=workers, device=device, progress=progress)
        except MienetError as exc:  # said once, by the error raised after the table
            row["status"] = f"error: {error_kind(exc)}"
            errors.append(f"zoo {name}: {exc}")
            continue
        from mienet.engine.evaluate import top5_text

        row["metrics"], row["status"] = m, "evaluated"
        echo(f"zoo {name}: {m['clips']} clips, {m['views']} view(s): top-1 {m['top1']:.2f} "
             f"(reported {_shown(entry['reported_top1'])})  {top5_text(m)} "
             f"(reported {_shown(entry['reported_top5'])})")
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
