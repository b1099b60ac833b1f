"""Read the results tree the workflow writes into plain records, tolerating missing pieces.

Layout read (every piece optional)::

    <results>/<dataset>/<variant>/seed<k>/metrics.json, train_log.csv, per_class.csv, confusion.csv,
                                          predictions.csv (read on demand: :meth:`ResultsTree.predictions`)
    <results>/<dataset>/<variant>/tuned/...              the final training with the searched parameters
    <results>/<dataset>/search/<variant>/summary.json    the Optuna study's summary
    <results>/<dataset>/search/<variant>/plots/*.png     Optuna's plots
    <results>/bench/*.json                               ``mienet bench train --json``

An unreadable file is skipped and named in :attr:`ResultsTree.problems` (the results page
lists them), never a crash. One thing is refused instead: a ``metrics.json`` evaluated with
other settings (split, clips, crops) than the params.yaml the report runs with
(:func:`check_evaluate_settings`), which would publish its numbers under settings they were not
made with.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from mienet.errors import MienetError
from mienet.registry.formats import FORMATS, conventional_datasets
from mienet.registry.variants import BASELINE, FULL_MODEL, VARIANTS

log = logging.getLogger(__name__)

SEED_DIR = re.compile(r"^seed(\d+)$")
# Folders of <results> that are never datasets even if they hold something dataset-like.
NOT_DATASETS = {"bench", "benchmarks", "logs", "tables", "plots", "report"}
KNOWN_DATASETS = conventional_datasets()  # the report's order: the format table's


@dataclass
class Run:
    """One evaluated training run: ``results/<dataset>/<variant>/<seed<k>|tuned>/``."""

    dataset: str
    variant: str
    seed: int | None  # None for the tuned run
    path: Path
    metrics: dict

    @property
    def top1(self) -> float | None:
        return as_number(self.metrics.get("top1"))

    @property
    def top5(self) -> float | None:
        return as_number(self.metrics.get("top5"))

    @property
    def split(self) -> str | None:
        """The split the run was scored on (``metrics.json``'s ``split``)."""
        return str(self.metrics["split"]) if self.metrics.get("split") not in (None, "") else None

    @property
    def selection_split(self) -> str | None:
        """The split its checkpoint was selected on; None in older ``metrics.json`` without it."""
        value = self.metrics.get("selection_split")
        return str(value) if value not in (None, "") else None

    @property
    def factor_design(self) -> dict[str, str]:
        """``factor_design``: factor name -> one-line description, in display order ({} without)."""
        design = self.metrics.get("factor_design")
        if isinstance(design, dict):
            return {str(k): str(v) for k, v in design.items()}
        if isinstance(design, list):  # names only
            return {str(k): "" for k in design}
        return {}

    @property
    def factors(self) -> dict[str, float]:
        """``factors``: per-factor accuracy in percent ({} without)."""
        return _numbers(self.metrics.get("factors"))

    @property
    def ceiling_top1(self) -> float | None:
        """``ceiling.top1``: the best top-1 this variant can reach on the design, by construction."""
        ceiling = self.metrics.get("ceiling")
        return as_number(ceiling.get("top1")) if isinstance(ceiling, dict) else None

    @property
    def ceiling_factors(self) -> dict[str, float]:
        """``ceiling.factors``: the same per factor ({} without)."""
        ceiling = self.metrics.get("ceiling")
        return _numbers(ceiling.get("factors")) if isinstance(ceiling, dict) else {}

    @property
    def train_environment(self):
        """The training's environment segments (``mienet.engine.provenance``), or None when
        ``metrics.json`` predates them or says "not recorded"."""
        value = self.metrics.get("train_environment")
        return value if isinstance(value, list) and value else None

    @property
    def evaluate_environment(self) -> dict | None:
        value = self.metrics.get("evaluate_environment")
        return value if isinstance(value, dict) else None

    def evaluated_with(self) -> dict:
        """The evaluate settings of ``metrics.json``: split (the list scored), clips, crops, and
        ``list`` when another list than a split's was scored; a setting not recorded is absent."""
        settings = self.metrics.get("evaluate_settings") if isinstance(self.metrics.get("evaluate_settings"),
                                                                        dict) else {}
        out = {}
        if self.split is not None:
            out["split"] = self.split
        for key, old in (("clips", "test_clips"), ("crops", "test_crops")):
            value = settings.get(key, self.metrics.get(old))
            if as_number(value) is not None:
                out[key] = int(as_number(value))
        if settings.get("list"):
            out["list"] = str(settings["list"])
        return out

    def metric(self, name: str) -> float | None:
        """``top1``, ``top5`` or a factor's accuracy (percent) from ``metrics.json``."""
        if name in ("top1", "top5"):
            return as_number(self.metrics.get(name))
        return self.factors.get(name)

    def ceiling(self, name: str) -> float | None:
        """The ceiling of ``top1`` or of a factor; None where ``metrics.json`` gives none."""
        if name == "top1":
            return self.ceiling_top1
        return self.ceiling_factors.get(name) if name != "top5" else None


@dataclass
class Predictions:
    """``predictions.csv`` of one run: the clips' paths and their 0/1 outcome columns
    (``correct``, ``in_top5``, ``<factor>_correct``) as float arrays in file order."""

    paths: list[str]
    columns: dict

    def column(self, name: str):
        return self.columns.get(name)


def prediction_column(metric: str) -> str:
    """The ``predictions.csv`` column of a metric: ``correct`` for top1, ``in_top5`` for top5,
    ``<factor>_correct`` for a factor."""
    return {"top1": "correct", "top5": "in_top5"}.get(metric, f"{metric}_correct")


@dataclass
class Search:
    """``results/<dataset>/search/<variant>/``: the summary and Optuna's plots."""

    dataset: str
    variant: str
    summary: dict
    plots: list[Path]


@dataclass
class SeedStats:
    """Accuracy over the seed runs of one (dataset, variant)."""

    runs: list[Run]

    @property
    def n(self) -> int:
        return len(self.values("top1"))

    def values(self, key: str) -> list[float]:
        return [v for v in (as_number(r.metrics.get(key)) for r in self.runs) if v is not None]

    def mean(self, key: str) -> float | None:
        vals = self.values(key)
        return statistics.fmean(vals) if vals else None

    def std(self, key: str) -> float | None:
        """Sample standard deviation; None for fewer than two seeds."""
        vals = self.values(key)
        return statistics.stdev(vals) if len(vals) >= 2 else None

    def metric_values(self, name: str) -> list[float]:
        """``top1``, ``top5`` or a factor's accuracy of every seed that has it (:meth:`Run.metric`)."""
        return [v for v in (r.metric(name) for r in self.runs) if v is not None]

    def metric_mean(self, name: str) -> float | None:
        vals = self.metric_values(name)
        return statistics.fmean(vals) if vals else None

    def ceiling(self, name: str = "top1") -> float | None:
        """The ceiling of ``top1`` or a factor of the lowest seed that gives one (:meth:`Run.ceiling`)."""
        return next((c for c in (r.ceiling(name) for r in self.runs) if c is not None), None)

    def splits(self) -> tuple[list[str], list[str]]:
        """(reported splits, checkpoint-selection splits) of the runs, sorted; a split not recorded
        is left out."""
        return (sorted({r.split for r in self.runs} - {None}),
                sorted({r.selection_split for r in self.runs} - {None}))

    def first(self, key: str):
        """The value of ``key`` of the lowest seed that has it (params, GFLOPs, shape)."""
        for r in self.runs:
            if r.metrics.get(key) not in (None, ""):
                return r.metrics[key]
        return None

    def distinct(self, key: str) -> list:
        return sorted({str(r.metrics[key]) for r in self.runs if r.metrics.get(key) not in (None, "")})


@dataclass
class ResultsTree:
    root: Path
    runs: dict[tuple[str, str], list[Run]] = field(default_factory=dict)
    tuned: dict[tuple[str, str], Run] = field(default_factory=dict)
    searches: dict[tuple[str, str], Search] = field(default_factory=dict)
    bench: list[dict] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)  # found, in display order
    problems: list[str] = field(default_factory=list)
    bench_skipped: list[str] = field(default_factory=list)  # JSON that is not `bench train` output
    # datasets.<name>.machine_margin of the params.yaml the report runs with (none without one)
    machine_margins: dict[str, float] = field(default_factory=dict)
    cache: dict = field(default_factory=dict, repr=False)  # predictions and intervals, computed once

    def stats(self, dataset: str, variant: str) -> SeedStats:
        return SeedStats(self.runs.get((dataset, variant), []))

    def predictions(self, run: Run) -> Predictions | None:
        """``predictions.csv`` of ``run`` (read once): None if absent, empty or unreadable (named
        in :attr:`problems`). Outcome columns that are not all 0/1 numbers are left out."""
        key = ("predictions", run.path)
        if key not in self.cache:
            self.cache[key] = read_predictions(run.path / "predictions.csv", self)
        return self.cache[key]

    def factor_design(self, dataset: str) -> dict[str, str]:
        """The factors of ``dataset`` in display order with their descriptions: the
        ``factor_design`` of its runs (variants in table order, seeds ascending, the first
        that has one first), then factors only named in ``factors`` or ``ceiling.factors``;
        {} when no run has a factor design."""
        design: dict[str, str] = {}
        runs = [r for v in self.variants(dataset) for r in self.runs.get((dataset, v), [])]
        for run in runs:
            for name, desc in run.factor_design.items():
                if not design.get(name):
                    design[name] = desc
        for run in runs:
            for name in [*run.factors, *run.ceiling_factors]:
                design.setdefault(name, "")
        return design

    def variants(self, dataset: str) -> list[str]:
        """The seven ablation variants, then any other variant folder found, by name."""
        extra = sorted({v for d, v in [*self.runs, *self.tuned, *self.searches] if d == dataset} - set(VARIANTS))
        return [*VARIANTS, *extra]

    def searched(self, datasets: list[str]):
        """(dataset, variant, search or None, tuned run or None) for every pair with either."""
        for dataset in datasets:
            for variant in self.variants(dataset):
                search, tuned = self.searches.get((dataset, variant)), self.tuned.get((dataset, variant))
                if search is not None or tuned is not None:
                    yield dataset, variant, search, tuned

    def rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.as_posix()

    def all_runs(self, dataset: str) -> list[Run]:
        """The seed runs of ``dataset`` (variants in table order), then its tuned runs."""
        variants = self.variants(dataset)
        return ([r for v in variants for r in self.runs.get((dataset, v), [])]
                + [self.tuned[(dataset, v)] for v in variants if (dataset, v) in self.tuned])


def expected_evaluation(params: dict, dataset: str) -> dict:
    """What params.yaml's ``evaluate`` asks of ``dataset``'s runs: the split scored (``standard``
    resolved by the dataset's format; left out when the dataset is not in params.yaml), clips, crops."""
    ev = params.get("evaluate") or {}
    out = {k: int(ev[k]) for k in ("clips", "crops") if as_number(ev.get(k)) is not None}
    split = ev.get("split")
    if split == "standard":
        fmt = ((params.get("datasets") or {}).get(dataset) or {}).get("format")
        split = FORMATS[fmt].standard_split if fmt in FORMATS else None
    if split:
        out["split"] = str(split)
    return out


def evaluation_mismatches(tree: ResultsTree, params: dict, datasets: list[str]) -> list[tuple[Run, list[str]]]:
    """The runs whose ``metrics.json`` was evaluated otherwise than ``params`` asks, each with its
    differences ('crops 3, params.yaml 1'). Settings a metrics.json does not record are not compared."""
    bad = []
    for dataset in datasets:
        want = expected_evaluation(params, dataset)
        for run in tree.all_runs(dataset):
            got = run.evaluated_with()
            diff = [f"{k} {got[k]} (params.yaml: {want[k]})" for k in ("split", "clips", "crops")
                    if k in got and k in want and got[k] != want[k]]
            if "list" in got:
                diff.append(f"list {got['list']} (params.yaml: the {want.get('split', 'split')} list)")
            if diff:
                bad.append((run, diff))
    return bad


def check_evaluate_settings(tree: ResultsTree, params: dict, datasets: list[str],
                            params_name: str = "params.yaml") -> None:
    """Refuse, in one line, results evaluated with other settings than ``params``'s ``evaluate``
    (after ``dvc repro evaluate@...`` with ``crops: 3`` and params.yaml reverted, say): the report
    would publish their numbers under settings they were not made with."""
    bad = evaluation_mismatches(tree, params, datasets)
    if not bad:
        return
    run, diff = bad[0]
    ev = params.get("evaluate") or {}
    more = f"; {len(bad) - 1} other metrics.json differ too" if len(bad) > 1 else ""
    seed = f"-{run.seed}" if run.seed is not None else ""
    stage = "evaluate" if run.seed is not None else "evaluate_tuned"
    raise MienetError(
        f"{tree.rel(run.path / 'metrics.json')} was evaluated with {', '.join(diff).replace('params.yaml', params_name)}"
        f"{more}; {params_name} asks for evaluate: split {ev.get('split')}, clips {ev.get('clips')}, crops "
        f"{ev.get('crops')}. Evaluate again with these settings (snakemake --forcerun {stage}, or dvc repro "
        f"{stage}@{run.dataset}-{run.variant}{seed}) or restore the settings the results were made with")


def as_number(value) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _numbers(mapping) -> dict[str, float]:
    """The numeric entries of a JSON object, in its order ({} for anything else)."""
    if not isinstance(mapping, dict):
        return {}
    return {str(k): x for k, x in ((k, as_number(v)) for k, v in mapping.items()) if x is not None}


def dataset_order(names) -> list[str]:
    """The known datasets in the paper's order, then the others by name."""
    names = set(names)
    return [d for d in KNOWN_DATASETS if d in names] + sorted(names - set(KNOWN_DATASETS))


def read_json(path: Path, tree: ResultsTree) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        tree.problems.append(f"{tree.rel(path)}: unreadable JSON ({exc})")
        log.warning("skipping %s: %s", path, exc)
        return None
    if not isinstance(data, dict):
        tree.problems.append(f"{tree.rel(path)}: not a JSON object")
        return None
    return data


def read_csv_rows(path: Path, tree: ResultsTree | None = None) -> list[dict]:
    """Rows of a CSV file as dicts; an unreadable file gives no rows (and a problem)."""
    if not path.is_file():
        return []
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        if tree is not None:
            tree.problems.append(f"{tree.rel(path)}: unreadable CSV ({exc})")
        return []


OUTCOME_COLUMNS = ("correct", "in_top5")  # and every <factor>_correct


def read_predictions(path: Path, tree: ResultsTree | None = None) -> Predictions | None:
    """``predictions.csv`` as :class:`Predictions`; None when absent, without rows or unreadable."""
    import numpy as np

    rows = read_csv_rows(path, tree)
    if not rows:
        return None
    if "path" not in rows[0] or "correct" not in rows[0]:
        if tree is not None:
            tree.problems.append(f"{tree.rel(path)}: no `path` or `correct` column; no confidence interval "
                                 "from its clips")
        return None
    columns = {}
    for name in rows[0]:
        if name is None or not (name in OUTCOME_COLUMNS or name.endswith("_correct")):
            continue
        try:
            values = np.array([float(r[name]) for r in rows], dtype=float)
        except (TypeError, ValueError):
            values = None
        if values is None or not np.isin(values, (0.0, 1.0)).all():
            if tree is not None:
                tree.problems.append(f"{tree.rel(path)}: column `{name}` is not all 0/1; left out")
            continue
        columns[name] = values
    if "correct" not in columns:
        return None
    return Predictions([str(r["path"]) for r in rows], columns)


def read_confusion(path: Path, tree: ResultsTree | None = None) -> tuple[list[str], list[list[int]]] | None:
    """``confusion.csv`` of ``mienet evaluate``: (class names, counts[true][predicted])."""
    if not path.is_file():
        return None
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
        classes = rows[0][1:]
        counts = [[int(float(c)) for c in row[1:]] for row in rows[1:] if row]
        if len(counts) != len(classes) or any(len(r) != len(classes) for r in counts):
            raise ValueError(f"{len(counts)} rows for {len(classes)} classes")
    except (OSError, UnicodeDecodeError, csv.Error, ValueError, IndexError) as exc:
        if tree is not None:
            tree.problems.append(f"{tree.rel(path)}: unreadable confusion matrix ({exc})")
        return None
    return classes, counts


def collect(results_dir: str | Path) -> ResultsTree:
    """Everything under ``results_dir`` a report reads; a missing folder gives an empty tree."""
    root = Path(results_dir)
    tree = ResultsTree(root)
    if not root.is_dir():
        return tree
    found = set()
    for ds_dir in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in NOT_DATASETS):
        dataset = ds_dir.name
        for var_dir in sorted(p for p in ds_dir.iterdir() if p.is_dir() and p.name != "search"):
            runs = []
            for run_dir in sorted(p for p in var_dir.iterdir() if p.is_dir()):
                m = SEED_DIR.match(run_dir.name)
                if not m and run_dir.name != "tuned":
                    continue
                metrics_path = run_dir / "metrics.json"
                if not metrics_path.is_file():
                    continue
                metrics = read_json(metrics_path, tree)
                if metrics is None:
                    continue
                run = Run(dataset, var_dir.name, int(m.group(1)) if m else None, run_dir, metrics)
                if m:
                    runs.append(run)
                else:
                    tree.tuned[(dataset, var_dir.name)] = run
                found.add(dataset)
            if runs:
                tree.runs[(dataset, var_dir.name)] = sorted(runs, key=lambda r: r.seed)
        search_dir = ds_dir / "search"
        if search_dir.is_dir():
            for var_dir in sorted(p for p in search_dir.iterdir() if p.is_dir()):
                summary_path = var_dir / "summary.json"
                if not summary_path.is_file():
                    continue
                summary = read_json(summary_path, tree)
                if summary is None:
                    continue
                plots = sorted((var_dir / "plots").glob("*.png")) if (var_dir / "plots").is_dir() else []
                tree.searches[(dataset, var_dir.name)] = Search(dataset, var_dir.name, summary, plots)
                found.add(dataset)
    bench_dir = root / "bench"
    if bench_dir.is_dir():
        for path in sorted(bench_dir.glob("*.json")):
            record = read_json(path, tree)
            if record is None:
                continue
            if not record.get("variant") or as_number(record.get("clips_per_s")) is None:
                # `bench loader` output and the like: not a training-step benchmark
                log.info("%s is not a `mienet bench train --json` record; not in the efficiency table", path)
                tree.bench_skipped.append(path.name)
                continue
            tree.bench.append({**record, "_file": path.name})
    tree.datasets = dataset_order(found)
    return tree


# --------------------------------------------------------------------------- per-run tables as data frames

def curves_frame(tree: ResultsTree, dataset: str):
    """Training logs of the seed runs in long form: variant, seed, epoch, split, metric, value."""
    import pandas as pd

    rows = []
    for variant in tree.variants(dataset):
        for run in tree.runs.get((dataset, variant), []):
            for rec in read_csv_rows(run.path / "train_log.csv", tree):
                epoch = as_number(rec.get("epoch"))
                if epoch is None:
                    continue
                for split in ("train", "val"):
                    for metric, column in (("loss", f"{split}_loss"), ("top-1 (%)", f"{split}_top1")):
                        value = as_number(rec.get(column))
                        if value is not None:
                            rows.append((variant, run.seed, int(epoch), split, metric, value))
    return pd.DataFrame(rows, columns=["variant", "seed", "epoch", "split", "metric", "value"])


def per_class_frame(tree: ResultsTree, dataset: str):
    """Per-class accuracy of the seed runs: variant, seed, label, class, accuracy."""
    import pandas as pd

    rows = []
    for variant in tree.variants(dataset):
        for run in tree.runs.get((dataset, variant), []):
            for rec in read_csv_rows(run.path / "per_class.csv", tree):
                acc, label = as_number(rec.get("accuracy")), as_number(rec.get("label"))
                if acc is not None and label is not None:
                    rows.append((variant, run.seed, int(label), str(rec.get("class", int(label))), acc))
    return pd.DataFrame(rows, columns=["variant", "seed", "label", "class", "accuracy"])


@dataclass
class Confusion:
    variant: str
    seeds: list[int]
    classes: list[str]
    counts: list[list[int]]  # summed over the seeds

    def percent(self) -> list[list[float]]:
        """Each true class's row as percent of its clips (0 for a class without clips)."""
        return [[100 * c / sum(row) if sum(row) else 0.0 for c in row] for row in self.counts]


def confusion_for(tree: ResultsTree, dataset: str) -> Confusion | None:
    """The confusion matrix of MIE-Net, or of the variant with the best mean top-1 if MIE-Net has
    none, summed over its seed runs (those with the same class list as the lowest seed)."""
    candidates = [v for v in tree.variants(dataset) if tree.runs.get((dataset, v))]
    ranked = sorted(candidates, key=lambda v: (v != FULL_MODEL, -(tree.stats(dataset, v).mean("top1") or -1.0),
                                               candidates.index(v)))
    for variant in ranked:
        total, seeds, classes = None, [], None
        for run in tree.runs[(dataset, variant)]:
            read = read_confusion(run.path / "confusion.csv", tree)
            if read is None:
                continue
            names, counts = read
            if classes is None:
                classes, total = names, counts
            elif names == classes:
                total = [[a + b for a, b in zip(r1, r2)] for r1, r2 in zip(total, counts)]
            else:
                tree.problems.append(f"{tree.rel(run.path / 'confusion.csv')}: other classes than seed "
                                     f"{seeds[0]}; left out of the summed confusion matrix")
                continue
            seeds.append(run.seed)
        if classes is not None:
            return Confusion(variant, seeds, classes, total)
    return None


def per_class_variants(tree: ResultsTree, dataset: str, available: set[str]) -> list[str]:
    """The per-class comparison's variants: TSN and MIE-Net, and the best variant by mean top-1
    if it is neither; only those in ``available``, in table order."""
    order = tree.variants(dataset)
    ranked = sorted(available, key=lambda v: (-(tree.stats(dataset, v).mean("top1") or -1.0), order.index(v)))
    chosen = {BASELINE, FULL_MODEL} | set(ranked[:1])
    return [v for v in order if v in chosen and v in available]
