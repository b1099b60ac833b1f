"""The authors' released checkpoints as ``params.yaml`` lists them: its ``zoo:`` section.

Reading the entries, their class names and the files they point to, for ``mienet zoo``
(:mod:`mienet.zoo`, which evaluates them) and ``mienet predict --zoo NAME`` alike; this module
imports neither the engine nor :mod:`mienet.zoo`. The section's keys are described in
:mod:`mienet.zoo`.
"""

from __future__ import annotations

from pathlib import Path

from mienet.config import load_params
from mienet.data.annotations import packaged_classes, read_classes
from mienet.errors import MienetError
from mienet.layout import annotations_dir, dataset_dir, dataset_layout
from mienet.layout import data_root as default_data_root
from mienet.registry.published import BUILTIN

REQUIRED = ("dataset", "variant", "arch", "segments", "num_classes", "file")


def reported(dataset: str, variant: str) -> tuple[float | None, float | None]:
    """The authors' top-1/top-5 for a dataset and variant: the one table of reported numbers,
    :data:`mienet.registry.published.BUILTIN` ((None, None) when nothing was reported)."""
    for row in BUILTIN:
        if row.dataset == dataset and row.counterpart == variant:
            return float(row.top1), (float(row.top5) if row.top5 else None)
    return None, None


def load_zoo(params: str | Path) -> tuple[dict[str, dict], Path]:
    """The ``zoo`` entries of a params file and its ``data_root`` (relative to the working folder)."""
    params = Path(params)
    data = load_params(params, partial=True)  # checked against the params schema (its sections)
    zoo = data.get("zoo")
    if not isinstance(zoo, dict) or not zoo:
        raise MienetError(f"{params} has no `zoo:` section (one entry per released checkpoint)")
    datasets = data.get("datasets") or {}
    for name, entry in zoo.items():
        if not isinstance(entry, dict):
            raise MienetError(f"zoo entry {name!r} in {params} is not a mapping")
        missing = [k for k in REQUIRED if k not in entry]
        if missing:
            raise MienetError(f"zoo entry {name!r} in {params} lacks {', '.join(missing)}")
        entry["reported_top1"], entry["reported_top5"] = reported(entry["dataset"], entry["variant"])
        if isinstance(datasets.get(entry["dataset"]), dict) and datasets[entry["dataset"]].get("format"):
            lay = dataset_layout(data, entry["dataset"], str(params))  # the dataset's files, one place
            entry.setdefault("_annotations", lay.annotations)
            entry.setdefault("_root", lay.root)
    return zoo, Path(default_data_root(data))


def find_entry(params: str | Path, name: str) -> tuple[dict, Path]:
    """(the zoo entry ``name`` of a params file, its ``data_root``); an unknown name is an error."""
    entries, data_root = load_zoo(params)
    if name not in entries:
        raise MienetError(f"no zoo entry {name!r} in {params} (entries: {', '.join(entries)})")
    return entries[name], data_root


def class_names(entry: dict, data_root: Path) -> list[str]:
    """Class names of a zoo entry's dataset: its annotations' classes.txt, else the packaged list
    (Diving48, SSv2), else ``class_00`` ... ."""
    k = int(entry["num_classes"])
    ann = Path(entry.get("_annotations") or annotations_dir(data_root, entry["dataset"]))
    path = Path(entry["classes"]) if entry.get("classes") else ann / "classes.txt"
    if path.is_file():
        names = read_classes(path)
        if len(names) == k:
            return names
    try:  # the lists the package ships (Diving48, SSv2)
        names = packaged_classes(entry["dataset"])
    except FileNotFoundError:
        names = []
    if len(names) == k:
        return names
    return [f"class_{i:02d}" for i in range(k)]


def entry_paths(entry: dict, data_root: Path, pretrained_dir: Path) -> dict[str, Path]:
    """Checkpoint, frame list, class list and frame root of an entry."""
    ds_root = Path(entry.get("_root") or dataset_dir(data_root, entry["dataset"]))
    ann = Path(entry.get("_annotations") or annotations_dir(data_root, entry["dataset"]))
    list_file = Path(entry["list"]) if entry.get("list") else ann / f"{entry.get('split', 'val')}.txt"
    classes = Path(entry["classes"]) if entry.get("classes") else (
        list_file.parent / "classes.txt" if entry.get("list") else ann / "classes.txt")
    root = Path(entry["root"]) if entry.get("root") else (
        list_file.parent.parent if entry.get("list") else ds_root)
    return {"checkpoint": Path(pretrained_dir) / entry["file"], "list": list_file, "classes": classes,
            "root": root}
