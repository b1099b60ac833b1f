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

import importlib
import json
import logging
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mienet.data.frames import clip_frames, read_manifest
from mienet.data.pack import PackError, pack_path
from mienet.errors import MienetError
from mienet.io import write_files_atomic
from mienet.layout import FACTORS_FILE
from mienet.registry.formats import FORMATS, DatasetFormat

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

# --------------------------------------------------------------------------- writing

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


@dataclass(frozen=True)
class ListOptions:
    """What a list reader gets: the options of `make-annotations` (paths as given, root resolved)."""

    fmt: DatasetFormat
    root: Path
    videos: Path | None = None
    frames: Path | None = None
    source: Path | None = None
    classes_file: Path | None = None
    num_classes: int | None = None
    val_ratio: float = 0.2
    test_ratio: float = 0.0
    seed: int = 0

    def need(self, option: str) -> Path:
        """An option the reader needs, or an error naming the flag (and what it holds)."""
        value = getattr(self, option)
        if value is None:
            what = self.fmt.source_help if option == "source" and self.fmt.source_help else ""
            raise MienetError(f"--format {self.fmt.name} needs --{option}" + (f" ({what})" if what else ""))
        return Path(value)


@dataclass(frozen=True)
class Labels:
    """What a list reader found: the class names, the clips of each split before they are looked up
    on disk, the frames folder they are in (None: paths are relative to the root only) and a factor
    design to copy beside the lists."""

    classes: list[str]
    splits: dict[str, list[Candidate]]
    frames: Path | None = None
    factors: str | None = None


def list_reader(fmt: DatasetFormat):
    """The function ``fmt.reader`` names ("module:function"), imported when a format is read."""
    module, _, name = fmt.reader.partition(":")
    return getattr(importlib.import_module(module), name)


def make_annotations(fmt: str, output: Path, *, videos: Path | None = None, frames: Path | None = None,
                     source: Path | None = None, root: Path | None = None, classes_file: Path | None = None,
                     num_classes: int | None = None, val_ratio: float = 0.2, test_ratio: float = 0.0,
                     seed: int = 0, skip_missing: bool = False) -> dict:
    if fmt not in FORMATS:
        raise MienetError(f"unknown --format {fmt!r}: choose {', '.join(FORMATS)}")
    spec = FORMATS[fmt]
    if root is None:
        base = source if spec.root_from_source else frames
        root = Path(base).parent if base is not None else None
    options = ListOptions(spec, Path(root) if root is not None else Path("."), videos=videos, frames=frames,
                          source=source, classes_file=classes_file, num_classes=num_classes,
                          val_ratio=val_ratio, test_ratio=test_ratio, seed=seed)
    for option in spec.options:
        if option != "root":
            options.need(option)
    labels = list_reader(spec)(options)
    classes = read_classes(classes_file) if classes_file else labels.classes
    clips, skipped = resolve(labels.splits, len(classes), FrameFolders(options.root, labels.frames), skip_missing)
    return write_annotations(Path(output), classes, clips, skipped, labels.factors)


def add_arguments(parser) -> None:
    parser.add_argument("--format", required=True, choices=tuple(FORMATS),
                        help="where the labels come from: " + "; ".join(f"{f.name}: {f.summary}"
                                                                      for f in FORMATS.values()))
    parser.add_argument("-o", "--output", type=Path, required=True, help="annotation folder to write")
    parser.add_argument("--videos", type=Path, help="folder, synth: the class-per-folder videos")
    parser.add_argument("--frames", type=Path, help="the extracted frames folder")
    parser.add_argument("--source", type=Path, help="; ".join(f"{f.name}: {f.source_help}"
                                                              for f in FORMATS.values() if f.source_help))
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
