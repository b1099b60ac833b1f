"""The dataset formats, one :class:`DatasetFormat` each: the one table that says what a format is.

``datasets.<name>.format`` in params.yaml names one of :data:`FORMATS`. The configuration model
(its allowed values), :mod:`mienet.layout` (where the files are), :mod:`mienet.pipeline` (the
stages and their commands), ``mienet make-annotations`` (the list reader and its options),
``mienet sizing`` (the published size) and the report (the display name, the split it reports)
all ask this table; none tests a format's name.

Adding a format: an entry here, and its list reader (a function ``read(options) -> Labels`` in
any module, named by ``reader``; :mod:`mienet.data.readers` holds the built-in ones).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# Where a format's videos come from: written by `mienet synth`, the dataset's ``videos`` key, or
# none (the frames come ready).
Videos = Literal["synthesized", "given", "none"]


@dataclass(frozen=True)
class Published:
    """A dataset's published size, used by `mienet sizing` before its lists exist."""

    train: int
    val: int
    classes: int
    source: str
    test: int | None = None
    frames: int | None = None  # mean frames per clip, where known


@dataclass(frozen=True)
class DatasetFormat:
    """What a dataset format is, for every part of the project."""

    name: str  # the value of datasets.<name>.format
    summary: str  # one line for the schema and the docs
    videos: Videos
    reader: str  # "module:function" of its list reader (make-annotations)
    # The dataset keys the format requires (besides format) and the options of `make-annotations`
    # the workflow passes from the dataset's layout (videos, frames, source, root).
    requires: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    standard_split: str = "test"  # the split it reports (`evaluate.split: standard`): the field's protocol
    # The lists are drawn from the videos by the `annotations` settings (val_ratio, test_ratio,
    # seed); else they come with the dataset (its source, root and classes keys).
    split_by_settings: bool = False
    root_from_source: bool = False  # the lists' root: the dataset's `root`, else the parent of `source`
    dataset: str | None = None  # the dataset name params.yaml gives it by convention (report order)
    title: str | None = None  # how the report names that dataset
    published: Published | None = None
    source_help: str = field(default="", compare=False)

    @property
    def extracted(self) -> bool:
        """Whether `mienet extract-frames` makes its frames (else they come ready)."""
        return self.videos != "none"

    @property
    def synthesized(self) -> bool:
        return self.videos == "synthesized"


FORMATS: dict[str, DatasetFormat] = {f.name: f for f in (
    DatasetFormat(
        "synth", "the synthetic diagnostic videos `mienet synth` writes (three factors, known ceilings)",
        videos="synthesized", reader="mienet.data.readers:read_folder", options=("videos", "frames"),
        split_by_settings=True, dataset="synthetic", title="Synthetic factors"),
    DatasetFormat(
        "folder", "your own videos, one folder a class (datasets.<name>.videos)",
        videos="given", reader="mienet.data.readers:read_folder", requires=("videos",),
        options=("videos", "frames"), split_by_settings=True),
    DatasetFormat(
        "sljd", "the standing-long-jump dataset's TSN lists (frames come extracted)",
        videos="none", reader="mienet.data.readers:read_sljd", requires=("source",), options=("source", "root"),
        root_from_source=True, dataset="sljd", title="SLJD",
        published=Published(train=800, val=100, test=100, classes=10,
                            source="authors' README: ~1,000 clips, 10 classes; 80/10/10 split assumed"),
        source_help="the folder with train.txt, val.txt, test.txt"),
    DatasetFormat(
        "diving48", "Diving48 V2: videos and its JSON label files",
        videos="given", reader="mienet.data.readers:read_diving48", requires=("videos", "source"),
        options=("source", "frames"), standard_split="val", dataset="diving48", title="Diving48",
        published=Published(train=15027, val=1970, classes=48,
                            source="Diving48 V2: 15,027 train / 1,970 test videos"),
        source_help="the folder with the JSON files"),
    DatasetFormat(
        "sthv2", "Something-Something V2: videos and its JSON label files",
        videos="given", reader="mienet.data.readers:read_sthv2", requires=("videos", "source"),
        options=("source", "frames"), standard_split="val", dataset="sthv2", title="Something-Something V2",
        published=Published(train=168913, val=24777, test=27157, classes=174, frames=45,
                            source="Something-Something V2: 168,913 / 24,777 / 27,157 videos, ~45 frames each"),
        source_help="the folder with the JSON files"),
)}

def dataset_title(dataset: str) -> str:
    """How the report names a dataset: its format's title for the conventional name, else the name."""
    return next((f.title for f in FORMATS.values() if f.dataset == dataset and f.title), dataset)


def conventional_datasets() -> tuple[str, ...]:
    """The conventional dataset names, in the order of the table (the report's order)."""
    return tuple(f.dataset for f in FORMATS.values() if f.dataset)
