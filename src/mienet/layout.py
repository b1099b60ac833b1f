"""Where everything lives, derived from params.yaml: the one place that knows a dataset's layout.

The Snakefile, dvc.yaml (written by ``mienet generate``), ``mienet train``, ``search``,
``evaluate``, ``zoo`` and ``predict`` all ask this module; none builds a path itself.

Per dataset format (what a format is: :data:`mienet.registry.formats.FORMATS`)::

    videos of the format   videos              frames                     annotations               list root
    synthesized (synth)    DATA/<name>/videos  DATA/<name>/frames         DATA/<name>/annotations   DATA/<name>
    given (folder, ...)    <videos>            DATA/<name>/frames         DATA/<name>/annotations   DATA/<name>
    none (sljd)            -                   <root> (frames come ready) DATA/<name>/annotations   <root>

``DATA`` is ``data_root``; ``<videos>``, ``<root>`` and ``<source>`` are the dataset's keys (those a
format requires: its ``requires``). With ``root_from_source`` (SLJD), ``root`` defaults to the parent
of ``source`` (lists in ``SLJD/lists``, root ``SLJD``).
Runs go to ``RUNS/<dataset>/<variant>/<run>`` and their results to ``RESULTS/<dataset>/<variant>/<run>``
(``run`` is ``seed<N>`` or ``tuned``); searches to ``RESULTS/<dataset>/search/<variant>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mienet.config import load_params
from mienet.errors import MienetError
from mienet.registry.formats import FORMATS, DatasetFormat

ANNOTATION_FILES = ("train.txt", "val.txt", "classes.txt")
SELECTION_SPLIT = "val"  # the list `mienet train` picks its best epoch on
SYNTH_DONE = ".mienet-synth-done.json"  # written last by `mienet synth` into its videos folder
# A factor design (`mienet synth` writes it beside its videos; `make-annotations` copies it beside
# the lists; `evaluate` scores each factor and the variant's ceiling from it).
FACTORS_FILE = "factors.json"
RESULT_FILES = ("metrics.json", "predictions.csv", "per_class.csv", "confusion.csv", "train_log.csv")


@dataclass(frozen=True)
class DatasetLayout:
    """The files of one dataset (paths as strings, relative to the project folder unless absolute)."""

    name: str
    format: str
    annotations: str  # train.txt, val.txt, (test.txt,) classes.txt
    root: str  # the lists' paths are relative to it
    frames: str  # frame folders (sljd: the root)
    videos: str | None  # None for sljd
    source: str | None  # sljd lists; diving48/sthv2 JSON files
    classes: str | None
    short_side: int | None

    @property
    def spec(self) -> DatasetFormat:
        return FORMATS[self.format]

    @property
    def extracted(self) -> bool:
        """Whether frames are made by `mienet extract-frames` (else they come ready: SLJD)."""
        return self.spec.extracted

    @property
    def videos_ready(self) -> str:
        """What the extraction waits for: the synth run's completion file (an interrupted synth is
        resumed, not deleted), or the videos folder itself."""
        return f"{self.videos}/{SYNTH_DONE}" if self.spec.synthesized else self.videos

    @property
    def manifest(self) -> str:
        return f"{self.frames}/manifest.csv"

    @property
    def annotation_files(self) -> list[str]:
        return [f"{self.annotations}/{f}" for f in ANNOTATION_FILES]

    def list_file(self, split: str) -> str:
        return f"{self.annotations}/{split}.txt"

    @property
    def standard_split(self) -> str:
        """The split this dataset reports (its format's ``standard_split``: the field's protocol).
        Checkpoints are selected on val, so a format that reports val is scored with its last epoch."""
        return self.spec.standard_split


def data_root(params: dict) -> str:
    """``data_root`` of a params mapping (``datasets`` when absent), without a trailing slash."""
    return str(params.get("data_root", "datasets")).rstrip("/") or "."


def dataset_dir(root: str | Path, name: str) -> str:
    """``DATA/<name>``: where the project writes a dataset's frames and annotations."""
    return f"{str(root).rstrip('/') or '.'}/{name}"


def annotations_dir(root: str | Path, name: str) -> str:
    """``DATA/<name>/annotations`` (``name`` may be a DVC placeholder such as ``${item.dataset}``)."""
    return f"{dataset_dir(root, name)}/annotations"


def data_paths(annotations, root, params_file=None, dataset: str | None = None,
               lay: DatasetLayout | None = None) -> tuple[Path, Path]:
    """(annotations, root) of a command: ``--annotations`` (``--root`` defaulting to its parent),
    else the files of ``--dataset`` in ``--params`` (or the layout given); ``--root`` wins."""
    if annotations is not None:
        annotations = Path(annotations)
        return annotations, Path(root) if root else annotations.parent
    if lay is None:
        if params_file is None or not dataset:
            raise MienetError("--annotations is required (or --params with --dataset)")
        lay = from_params_file(params_file, dataset)[1]
    return Path(lay.annotations), Path(root or lay.root)


def _where(params_file: str | None) -> str:
    return f"{params_file}: " if params_file else "params.yaml: "


def dataset_layout(params: dict, name: str, params_file: str | None = None) -> DatasetLayout:
    """The layout of ``datasets.<name>``; a missing key is an error naming it."""
    datasets = params.get("datasets") or {}
    if name not in datasets:
        raise MienetError(f"{_where(params_file)}no datasets.{name} (known: {', '.join(datasets) or 'none'})")
    ds = datasets[name] or {}
    fmt = ds.get("format")
    base = dataset_dir(data_root(params), name)

    def need(key: str) -> str:
        value = ds.get(key)
        if not value:
            raise MienetError(f"{_where(params_file)}datasets.{name}.{key} is required for format {fmt!r}")
        return str(value).rstrip("/") or "/"

    if fmt not in FORMATS:
        raise MienetError(f"{_where(params_file)}datasets.{name}.format {fmt!r} is not one of {', '.join(FORMATS)}")
    spec = FORMATS[fmt]
    given = {key: need(key) for key in spec.requires}
    source = given.get("source")
    if spec.root_from_source:
        root = str(ds.get("root") or Path(source).parent).rstrip("/")
    else:
        root = base
    videos = {"synthesized": f"{base}/videos", "given": given.get("videos"), "none": None}[spec.videos]
    frames = f"{base}/frames" if spec.extracted else root
    return DatasetLayout(name=name, format=fmt, annotations=annotations_dir(data_root(params), name), root=root,
                         frames=frames,
                         videos=videos, source=source, classes=ds.get("classes"),
                         short_side=ds.get("short_side"))


def profile_datasets(params: dict, params_file: str | None = None) -> list[str]:
    """The datasets of the active profile, each checked to exist."""
    profiles = params.get("profiles") or {}
    profile = params.get("profile")
    if profile not in profiles:
        raise MienetError(f"{_where(params_file)}profile {profile!r} is not a key of profiles "
                          f"({', '.join(profiles)})")
    names = list(profiles[profile])
    for name in names:
        if name not in (params.get("datasets") or {}):
            raise MienetError(f"{_where(params_file)}profiles.{profile} names dataset {name!r}, "
                              "which is not a key of datasets")
    return names


@dataclass(frozen=True)
class Roots:
    """Where runs and results go (``runs_root``, ``results_root``)."""

    runs: str
    results: str

    @classmethod
    def of(cls, params: dict) -> Roots:
        return cls(str(params.get("runs_root", "runs")).rstrip("/"),
                   str(params.get("results_root", "results")).rstrip("/"))

    def run_dir(self, dataset: str, variant: str, run: str) -> str:
        return f"{self.runs}/{dataset}/{variant}/{run}"

    def result_dir(self, dataset: str, variant: str, run: str) -> str:
        return f"{self.results}/{dataset}/{variant}/{run}"

    def result_files(self, dataset: str, variant: str, run: str) -> list[str]:
        return [f"{self.result_dir(dataset, variant, run)}/{f}" for f in RESULT_FILES]

    def search_dir(self, dataset: str, variant: str) -> str:
        return f"{self.results}/{dataset}/search/{variant}"

    def search_worker_record(self, dataset: str, variant: str, worker) -> str:
        """What worker job ``worker`` of a study spread over jobs (``search.jobs`` > 1) ran."""
        return f"{self.search_dir(dataset, variant)}/workers/worker{worker}.json"

    def trials_dir(self, dataset: str, variant: str) -> str:
        return f"{self.runs}/{dataset}/search/{variant}"

    def bench_file(self, dataset: str, variant: str) -> str:
        return f"{self.results}/bench/train_{dataset}_{variant}.json"

    def zoo_tables(self) -> list[str]:
        """The zoo table `mienet zoo` writes (:func:`mienet.zoo.write_tables`) and the report waits for."""
        return [f"{self.results}/tables/zoo.{ext}" for ext in ("md", "csv", "tex")]


def from_params_file(path: str | Path, dataset: str) -> tuple[dict, DatasetLayout]:
    """(the validated params, the dataset's layout) of a params.yaml."""

    params = load_params(path, partial=True)
    return params, dataset_layout(params, dataset, str(path))
