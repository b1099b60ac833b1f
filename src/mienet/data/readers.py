"""The built-in list readers of ``mienet make-annotations``, one per dataset format
(:data:`mienet.registry.formats.FORMATS` names each by ``reader``).

A reader takes the command's :class:`~mienet.data.annotations.ListOptions` and returns
:class:`~mienet.data.annotations.Labels`: the class names and, per split, the clips the source
names, before their frames are looked up on disk. Every problem of the source is collected and
reported together, each with its file and line or entry.
"""

from __future__ import annotations

import json
import logging
import random
from collections import defaultdict
from pathlib import Path

from mienet.data.annotations import (SPLITS, Candidate, Labels, ListOptions, Problems, packaged_classes,
                                     read_classes, read_frame_list)
from mienet.data.frames import find_videos
from mienet.data.synth_design import read_design
from mienet.errors import MienetError
from mienet.layout import FACTORS_FILE

log = logging.getLogger(__name__)


def read_folder(o: ListOptions) -> Labels:
    """synth, folder: one folder a class; the split drawn by the `annotations` settings."""
    videos, frames = o.need("videos"), o.need("frames")
    classes, splits = from_folders(videos, frames, o.root, o.val_ratio, o.test_ratio, o.seed)
    return Labels(classes, splits, frames, folder_design(videos, classes))


def read_sljd(o: ListOptions) -> Labels:
    """SLJD: its own train/val/test lists; the classes from --classes, its classes.txt, or numbered."""
    source = o.need("source")
    splits = from_lists(source, o.root)
    if o.classes_file:
        classes = read_classes(o.classes_file)
    elif (source / "classes.txt").exists():
        classes = read_classes(source / "classes.txt")
    else:
        classes = [f"class_{i:02d}" for i in range(o.num_classes or 10)]
    return Labels(classes, splits)


def read_diving48(o: ListOptions) -> Labels:
    frames = o.need("frames")
    return Labels(*from_diving48(o.need("source"), frames, o.root), frames)


def read_sthv2(o: ListOptions) -> Labels:
    frames = o.need("frames")
    return Labels(*from_sthv2(o.need("source"), frames, o.root), frames)


def _rel(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        raise MienetError(f"{path} is not inside the dataset root {root}; pass --root") from None


def from_folders(videos_dir: Path, frames_dir: Path, root: Path, val_ratio: float, test_ratio: float,
                 seed: int) -> tuple[list[str], dict[str, list[Candidate]]]:
    """Folder-per-class videos: labels from the sorted class folders, seeded stratified split."""
    if not 0 <= val_ratio < 1 or not 0 <= test_ratio < 1 or val_ratio + test_ratio >= 1:
        raise MienetError(f"--val-ratio ({val_ratio}) and --test-ratio ({test_ratio}) must be in [0, 1) "
                          "and leave clips for training")
    videos = find_videos(videos_dir)
    classes = sorted(p.name for p in videos_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise MienetError(f"{videos_dir} holds no class folders (expected {videos_dir}/<class>/<clip>.mp4)")
    by_class: dict[str, list[str]] = defaultdict(list)
    problems = Problems()
    for vid, path in videos.items():
        rel = path.relative_to(videos_dir)
        if len(rel.parts) < 2:
            problems.add(str(path), "video is not inside a class folder")
            continue
        by_class[rel.parts[0]].append(vid)
    problems.raise_if_any(f"cannot label the videos of {videos_dir}")
    rng = random.Random(seed)
    splits: dict[str, list[Candidate]] = {s: [] for s in SPLITS}
    for label, name in enumerate(classes):
        ids = sorted(by_class.get(name, []))
        if not ids:
            log.warning("class folder %s holds no videos", videos_dir / name)
        rng.shuffle(ids)
        n_test, n_val = round(len(ids) * test_ratio), round(len(ids) * val_ratio)
        chunks = {"test": ids[:n_test], "val": ids[n_test:n_test + n_val], "train": ids[n_test + n_val:]}
        for split, chunk in chunks.items():
            for vid in sorted(chunk):
                splits[split].append(Candidate(_rel(frames_dir / vid, root), label, str(videos[vid])))
    if not splits["test"]:
        del splits["test"]
    return classes, splits


def from_lists(lists_dir: Path, root: Path) -> dict[str, list[Candidate]]:
    """SLJD (and any TSN-format dataset): existing lists, checked and normalised."""
    splits = {}
    for split in SPLITS:
        path = lists_dir / f"{split}.txt"
        if not path.exists():
            if split != "test":
                raise MienetError(f"{path} does not exist (expected train.txt and val.txt in {lists_dir})")
            continue
        splits[split] = [
            Candidate(_normalise_path(c.path), c.label, c.origin, declared_frames=c.frames)
            for c in read_frame_list(path)
        ]
    return splits


def _normalise_path(path: str) -> str:
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    return "/".join(parts)


def _load_json(path: Path):
    if not path.is_file():
        raise MienetError(f"{path} does not exist")
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise MienetError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None


def _json_list(path: Path) -> list:
    data = _load_json(path)
    if not isinstance(data, list):
        raise MienetError(f"{path}: expected a JSON list of objects, got {type(data).__name__}")
    return data


def from_diving48(source: Path, frames_dir: Path, root: Path) -> tuple[list[str], dict[str, list[Candidate]]]:
    """Diving48 V2: train list -> train.txt, test list -> val.txt (the usual protocol's "val")."""
    classes = packaged_classes("diving48")
    vocab_path = source / "Diving48_vocab.json"
    if vocab_path.exists():
        vocab = _json_list(vocab_path)
        if len(vocab) != len(classes):
            raise MienetError(f"{vocab_path}: {len(vocab)} classes, expected {len(classes)}")
    problems = Problems()
    splits = {}
    for split, name in (("train", "Diving48_V2_train.json"), ("val", "Diving48_V2_test.json")):
        path = source / name
        out = []
        for i, entry in enumerate(_json_list(path)):
            origin = f"{path}: entry {i}"
            if not isinstance(entry, dict) or "vid_name" not in entry or "label" not in entry:
                problems.add(origin, "expected an object with 'vid_name' and 'label'")
                continue
            label = entry["label"]
            if not isinstance(label, int) or isinstance(label, bool):
                problems.add(origin, f"label {label!r} is not an integer")
                continue
            out.append(Candidate(_rel(frames_dir / str(entry["vid_name"]), root), label, origin))
        splits[split] = out
    problems.raise_if_any("cannot read Diving48 annotations")
    return classes, splits


SSV2_FILES = {
    "labels": "something-something-v2-labels.json",
    "train": "something-something-v2-train.json",
    "val": "something-something-v2-validation.json",
}


def from_sthv2(source: Path, frames_dir: Path, root: Path) -> tuple[list[str], dict[str, list[Candidate]]]:
    """Something-Something V2: the class is the template without brackets, looked up in the labels file.

    The test list carries no labels, so no ``test.txt`` is written for SSv2.
    """
    labels_path = source / SSV2_FILES["labels"]
    labels = _load_json(labels_path)
    if not isinstance(labels, dict):
        raise MienetError(f"{labels_path}: expected an object mapping template -> index")
    problems = Problems()
    index: dict[str, int] = {}
    for template, value in labels.items():
        try:
            index[template] = int(value)
        except (TypeError, ValueError):
            problems.add(f"{labels_path}: key {template!r}", f"index {value!r} is not an integer")
    problems.raise_if_any("cannot read the SSv2 labels")
    n = len(index)
    if sorted(index.values()) != list(range(n)):
        raise MienetError(f"{labels_path}: indices must be 0..{n - 1}, each once")
    classes = [t for t, _ in sorted(index.items(), key=lambda kv: kv[1])]
    splits = {}
    for split in ("train", "val"):
        path = source / SSV2_FILES[split]
        out = []
        for i, entry in enumerate(_json_list(path)):
            origin = f"{path}: entry {i}"
            if not isinstance(entry, dict) or "id" not in entry or "template" not in entry:
                problems.add(origin, "expected an object with 'id' and 'template'")
                continue
            template = str(entry["template"]).replace("[", "").replace("]", "")
            if template not in index:
                problems.add(origin, f"template {template!r} of clip {entry['id']} is not in {labels_path.name}")
                continue
            out.append(Candidate(_rel(frames_dir / str(entry["id"]), root), index[template], origin))
        splits[split] = out
    problems.raise_if_any("cannot read SSv2 annotations")
    return classes, splits




def folder_design(videos: Path, classes: list[str]) -> str | None:
    """The text of ``<videos>/factors.json`` (``mienet synth``'s design), checked to name the same
    classes in the same order as the folders; None when there is none."""
    path = Path(videos) / FACTORS_FILE
    if not path.exists():
        return None
    named = [c["name"] for c in read_design(path)["classes"]]
    if named != list(classes):
        raise MienetError(f"{path} describes the classes {named}, but {videos} holds {list(classes)}; "
                          "re-run `mienet synth` into it, or delete the stale factors.json")
    return path.read_text(encoding="utf-8")
