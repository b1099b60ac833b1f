"""``mienet make-annotations``: TSN frame-list annotations from videos or from a dataset's own files.

Every format ends in the same files in ``ANN_DIR``::

    train.txt  val.txt  [test.txt]   one clip a line: ``<frame folder> <num frames> <label>``
    classes.txt                      one class name a line, line number = label
    summary.json                     clips per split and class (a small DVC metric)
    skipped.txt                      only with --skip-missing: what was left out and why

The frame folder is relative to the dataset root (by default the parent of the frames
folder, so lines read ``frames/<id> 120 3``). It names the clip in either layout of
``mienet extract-frames``: the pack ``frames/<id>.frames`` (counted from its index) or the
folder ``frames/<id>/`` (its ``img_*`` images). A path may contain spaces: the last two
fields are the integers, everything before them is the path.

Every problem in the input (a clip not on disk, an empty frame folder, a label out of
range, a duplicated clip, a clip in two splits, a template missing from the labels file)
is collected and reported together, each with its file and line or entry, before
anything is written.
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mienet.data.frames import clip_frames, find_videos, read_manifest
from mienet.data.pack import PackError, pack_path
from mienet.errors import MienetError
from mienet.io import write_files_atomic

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
IMAGE_PREFIX = "img_"
MAX_REPORTED = 200


@dataclass(frozen=True)
class Clip:
    """One line of a frame list."""

    path: str  # frame folder relative to the dataset root, POSIX separators
    frames: int
    label: int
    origin: str = ""  # "file:line" or "file: entry N" where it came from

    def line(self) -> str:
        return f"{self.path} {self.frames} {self.label}"


@dataclass(frozen=True)
class Candidate:
    """A clip named by the source, before its frame folder has been looked at."""

    path: str
    label: int
    origin: str
    declared_frames: int | None = None  # SLJD lists carry their own count


class Problems:
    """Collects every problem so that the user sees all of them at once."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, origin: str, message: str) -> None:
        self.items.append(f"{origin}: {message}")

    def raise_if_any(self, what: str, hint: str = "") -> None:
        if not self.items:
            return
        if len(self.items) == 1:  # one problem: one line
            raise MienetError(f"{what}: {self.items[0]}" + (f"; {hint}" if hint else ""))
        shown = self.items[:MAX_REPORTED]
        more = len(self.items) - len(shown)
        tail = f"\n  ... and {more} more" if more else ""
        hint = f"\n{hint}" if hint else ""
        raise MienetError(f"{what}: {len(self.items)} problem(s):\n  " + "\n  ".join(shown) + tail + hint)


# --------------------------------------------------------------------------- frame lists

def check_list_path(path: str, origin: str = "") -> None:
    """A path the frame-list format can represent (spaces inside are fine)."""
    if not path or path != path.strip() or "\n" in path or "\r" in path:
        raise MienetError(f"{origin or 'frame list'}: path {path!r} cannot be written to a frame list "
                          "(empty, surrounding whitespace or a line break)")


def leaves_root(path: str) -> bool:
    """Whether a list path is absolute or climbs out of the dataset root with ``..`` (after
    ``/`` and ``\\`` are both taken as separators, as the loader takes them)."""
    posix = path.replace("\\", "/")
    if posix.startswith("/") or posix[1:3] == ":/" and posix[0].isalpha():
        return True  # /etc/x, C:/x
    depth = 0
    for part in posix.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


def parse_list_line(text: str, origin: str) -> Clip:
    parts = text.rsplit(maxsplit=2)
    if len(parts) != 3:
        raise MienetError(f"{origin}: expected '<frame folder> <num frames> <label>', got {text.strip()!r}")
    path, frames, label = parts
    try:
        n, y = int(frames), int(label)
    except ValueError:
        raise MienetError(f"{origin}: frame count and label must be integers, got {text.strip()!r}") from None
    if n < 0 or y < 0:
        raise MienetError(f"{origin}: frame count and label must not be negative, got {text.strip()!r}")
    path = path.strip()
    if leaves_root(path):
        raise MienetError(f"{origin}: path {path!r} leaves the dataset root (absolute, or '..' above it); "
                          "list paths are relative to the root, e.g. frames/<clip>")
    return Clip(path=path, frames=n, label=y, origin=origin)


def read_list_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 text list. A byte-order mark (which some Windows editors put at
    the start of a file, and which ``cat a.txt b.txt`` carries into the middle of one) is not
    part of any line: it would otherwise become an invisible first character of a path."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[:exc.start].count(b"\n") + 1
        raise MienetError(f"{path}:{line}: not UTF-8 text ({exc.reason}); save the list as UTF-8") from None
    return [line.lstrip("\ufeff") for line in text.splitlines()]


def read_frame_list(path: str | Path) -> list[Clip]:
    """Parse a frame list; every unparsable line is reported with its number."""
    path = Path(path)
    if not path.is_file():
        raise MienetError(f"frame list {path} does not exist")
    clips, problems = [], Problems()
    for no, text in enumerate(read_list_lines(path), start=1):
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        try:
            clips.append(parse_list_line(text, f"{path}:{no}"))
        except MienetError as exc:
            problems.items.append(str(exc))
    problems.raise_if_any(f"cannot read {path}")
    return clips


def read_classes(path: str | Path) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise MienetError(f"class list {path} does not exist")
    names = [line.strip() for line in read_list_lines(path)]
    while names and not names[-1]:
        names.pop()
    empty = [str(i + 1) for i, n in enumerate(names) if not n]
    if empty:
        raise MienetError(f"{path}: empty class name on line(s) {', '.join(empty)}")
    return names


def packaged_classes(dataset: str) -> list[str]:
    """Class names shipped with the package for ``diving48`` and ``sthv2``."""
    text = resources.files("mienet.data").joinpath("classes", f"{dataset}_classes.txt").read_text("utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


# --------------------------------------------------------------------------- resolving on disk

class FrameFolders:
    """Frame counts of the clips under a dataset root: a pack's index, or a folder's images."""

    def __init__(self, root: Path, frames_dir: Path | None = None):
        self.root = root
        self.manifest = read_manifest(frames_dir) if frames_dir and frames_dir.is_dir() else {}
        self.frames_dir = frames_dir
        self.damaged: dict[str, str] = {}

    def count(self, rel: str) -> int | None:
        """Frames of the clip ``rel`` (its pack first, as the loader reads it), None when it has
        neither a pack nor a folder, or its pack is damaged (:meth:`why_missing` says so)."""
        try:
            found = clip_frames(self.root / rel)
        except PackError as exc:
            self.damaged[rel] = exc.reason
            return None
        return None if found is None else found[1]

    def why_missing(self, rel: str) -> str:
        if rel in self.damaged:
            return (f"frame pack {pack_path(self.root / rel)} is damaged ({self.damaged[rel]}); "
                    "run `mienet extract-frames` again, which redoes it")
        if self.frames_dir is not None:
            try:
                vid = (self.root / rel).relative_to(self.frames_dir).as_posix()
            except ValueError:
                vid = None
            rec = self.manifest.get(vid) if vid else None
            if rec is not None and rec.status == "failed":
                return f"frame folder {self.root / rel} missing: extraction failed ({rec.error})"
        return f"frame folder {self.root / rel} does not exist (nor a frame pack {pack_path(self.root / rel)})"


def resolve(splits: dict[str, list[Candidate]], num_classes: int, folders: FrameFolders,
            skip_missing: bool) -> tuple[dict[str, list[Clip]], list[str]]:
    """Look every candidate up on disk and check the whole set; returns clips and skipped lines."""
    problems, skipped = Problems(), []
    missing_count = 0
    out: dict[str, list[Clip]] = {}
    first_seen: dict[str, tuple[str, str]] = {}  # path -> (split, origin)
    for split, candidates in splits.items():
        clips = []
        for c in candidates:
            if not 0 <= c.label < num_classes:
                problems.add(c.origin, f"label {c.label} out of range 0..{num_classes - 1} ({c.path})")
                continue
            if c.path in first_seen:
                prev_split, prev_origin = first_seen[c.path]
                if prev_split == split:
                    problems.add(c.origin, f"duplicated clip {c.path} (first at {prev_origin})")
                else:
                    problems.add(c.origin, f"clip {c.path} is in both {prev_split} ({prev_origin}) and {split}")
                continue
            first_seen[c.path] = (split, c.origin)
            n = folders.count(c.path)
            missing = None
            if n is None:
                missing = folders.why_missing(c.path)
            elif n == 0:
                missing = f"frame folder {folders.root / c.path} holds no {IMAGE_PREFIX}* images"
            if missing:
                if skip_missing:
                    skipped.append(f"{c.origin}\t{c.path}\t{missing}")
                else:
                    problems.add(c.origin, missing)
                    missing_count += 1
                continue
            if c.declared_frames is not None and c.declared_frames != n:
                problems.add(c.origin, f"{c.path}: the list says {c.declared_frames} frames, "
                                       f"the folder holds {n}")
                continue
            clips.append(Clip(c.path, n, c.label, c.origin))
        out[split] = clips
    hint = ""
    if missing_count:
        hint = (f"{missing_count} clip(s) have no frames: extract them with `mienet extract-frames`, or "
                "leave them out with --skip-missing (they are then listed in skipped.txt)")
    problems.raise_if_any("annotations not written", hint)
    return out, skipped


# --------------------------------------------------------------------------- sources

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


# --------------------------------------------------------------------------- writing

from mienet.layout import FACTORS_FILE  # noqa: E402  (a factor design, copied beside the lists)


def write_annotations(ann_dir: Path, classes: list[str], splits: dict[str, list[Clip]],
                      skipped: list[str], factors: str | None = None) -> dict:
    """Write the lists, classes.txt, summary.json (and skipped.txt, factors.json) as one change."""
    files: dict[Path, str] = {}
    factors_path = ann_dir / FACTORS_FILE
    if factors is not None:
        files[factors_path] = factors
    for split, clips in splits.items():
        for c in clips:
            check_list_path(c.path, c.origin)
        files[ann_dir / f"{split}.txt"] = "".join(c.line() + "\n" for c in clips)
    files[ann_dir / "classes.txt"] = "".join(n + "\n" for n in classes)
    skipped_path = ann_dir / "skipped.txt"
    if skipped:
        files[skipped_path] = "origin\tclip\treason\n" + "".join(s + "\n" for s in skipped)
    summary = {
        "num_classes": len(classes),
        "clips": {s: len(c) for s, c in splits.items()},
        "per_class": {s: {classes[k]: v for k, v in sorted(Counter(c.label for c in clips).items())}
                      for s, clips in splits.items()},
        "skipped": len(skipped),
    }
    files[ann_dir / "summary.json"] = json.dumps(summary, indent=2, ensure_ascii=False) + "\n"
    # One change: on a full disk every old file stays, never a new train.txt beside an old val.txt.
    write_files_atomic(files)
    # Files of an earlier run that this one does not write would be read as part of it.
    stale = [skipped_path] if not skipped else []
    stale += [factors_path] if factors is None else []
    stale += [ann_dir / f"{split}.txt" for split in SPLITS if split not in splits]
    for path in stale:
        if path.exists():
            log.info("removing %s, left by an earlier run", path)
            path.unlink()
    return summary


def make_annotations(fmt: str, output: Path, *, videos: Path | None = None, frames: Path | None = None,
                     source: Path | None = None, root: Path | None = None, classes_file: Path | None = None,
                     num_classes: int | None = None, val_ratio: float = 0.2, test_ratio: float = 0.0,
                     seed: int = 0, skip_missing: bool = False) -> dict:
    def need(value, flag):
        if value is None:
            raise MienetError(f"--format {fmt} needs {flag}")
        return Path(value)

    if fmt == "folder":
        videos, frames = need(videos, "--videos"), need(frames, "--frames")
        root = Path(root) if root else frames.parent
        classes, candidates = from_folders(videos, frames, root, val_ratio, test_ratio, seed)
        factors = folder_design(videos, classes)
    elif fmt == "sljd":
        source = need(source, "--source (the folder with train.txt, val.txt, test.txt)")
        root = Path(root) if root else source.parent
        candidates = from_lists(source, root)
        if classes_file:
            classes = read_classes(classes_file)
        elif (source / "classes.txt").exists():
            classes = read_classes(source / "classes.txt")
        else:
            classes = [f"class_{i:02d}" for i in range(num_classes or 10)]
    elif fmt in ("diving48", "sthv2"):
        source, frames = need(source, "--source (the folder with the JSON files)"), need(frames, "--frames")
        root = Path(root) if root else frames.parent
        reader = from_diving48 if fmt == "diving48" else from_sthv2
        classes, candidates = reader(source, frames, root)
    else:
        raise MienetError(f"unknown --format {fmt!r}: choose folder, sljd, diving48 or sthv2")
    if classes_file and fmt != "sljd":
        classes = read_classes(classes_file)
    frames_dir = frames if fmt != "sljd" else None
    clips, skipped = resolve(candidates, len(classes), FrameFolders(root, frames_dir), skip_missing)
    return write_annotations(Path(output), classes, clips, skipped, factors if fmt == "folder" else None)


def folder_design(videos: Path, classes: list[str]) -> str | None:
    """The text of ``<videos>/factors.json`` (``mienet synth``'s design), checked to name the same
    classes in the same order as the folders; None when there is none."""
    path = Path(videos) / FACTORS_FILE
    if not path.exists():
        return None
    from mienet.data.synth import read_design

    named = [c["name"] for c in read_design(path)["classes"]]
    if named != list(classes):
        raise MienetError(f"{path} describes the classes {named}, but {videos} holds {list(classes)}; "
                          "re-run `mienet synth` into it, or delete the stale factors.json")
    return path.read_text(encoding="utf-8")


def add_arguments(parser) -> None:
    parser.add_argument("--format", required=True, choices=("folder", "sljd", "diving48", "sthv2"),
                        help="where the labels come from")
    parser.add_argument("-o", "--output", type=Path, required=True, help="annotation folder to write")
    parser.add_argument("--videos", type=Path, help="folder: the class-per-folder videos")
    parser.add_argument("--frames", type=Path, help="the extracted frames folder")
    parser.add_argument("--source", type=Path,
                        help="sljd: folder with train/val/test.txt; diving48, sthv2: folder with the JSON files")
    parser.add_argument("--root", type=Path,
                        help="dataset root the list paths are relative to (default: parent of --frames, "
                             "or of --source for sljd)")
    parser.add_argument("--classes", dest="classes_file", type=Path, help="class names, one a line")
    parser.add_argument("--num-classes", type=int, help="sljd without a class list (default 10)")
    parser.add_argument("--val-ratio", type=float, default=0.2, help="folder: share of each class for val")
    parser.add_argument("--test-ratio", type=float, default=0.0, help="folder: share of each class for test")
    parser.add_argument("--seed", type=int, default=0, help="folder: split seed")
    parser.add_argument("--skip-missing", action="store_true",
                        help="leave out clips whose frames are missing or empty, listing them in skipped.txt")


def run(args) -> int:
    summary = make_annotations(
        args.format, args.output, videos=args.videos, frames=args.frames, source=args.source,
        root=args.root, classes_file=args.classes_file, num_classes=args.num_classes,
        val_ratio=args.val_ratio, test_ratio=args.test_ratio, seed=args.seed, skip_missing=args.skip_missing)
    counts = ", ".join(f"{s} {n}" for s, n in summary["clips"].items())
    print(f"make-annotations: {summary['num_classes']} classes; {counts} clips -> {args.output}")
    if summary["skipped"]:
        print(f"make-annotations: skipped {summary['skipped']} clips, listed in {args.output / 'skipped.txt'}")
    return 0
