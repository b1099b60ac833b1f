"""The registry of the report: every table and figure, one :class:`mienet.report.spec.Output`
each, in the order of the results page.

Each module below defines its outputs (``OUTPUTS``) next to their builders and sentences.
Everything else asks this registry: ``mienet report`` (:mod:`mienet.report.build`), the results
page (:mod:`mienet.report.page`), the workflow's outputs (:func:`expected_outputs`, for the
Snakefile and dvc.yaml) and the captions of ``snakemake --report`` (:func:`write_captions`).

Adding a table or figure: its ``Output`` beside its builder and sentence in one of these modules
(a table next to those it belongs with; a new module is one more name below), plus, for a table,
its golden files in tests/data/report/golden (``MIENET_UPDATE_GOLDEN=1 pytest tests/test_report.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mienet.io import write_text_atomic
from mienet.report import ablation, comparison, effects, efficiency, factors, figures, tuning
from mienet.report.spec import DATASET, FIGURE, GLOBAL, TABLE, Output

README = "README.md"  # the results page
OUTPUTS: tuple[Output, ...] = (*ablation.OUTPUTS, *effects.OUTPUTS, *factors.OUTPUTS, *comparison.OUTPUTS,
                               *figures.OUTPUTS, *tuning.OUTPUTS, *efficiency.OUTPUTS)


def of(kind: str, scope: str) -> list[Output]:
    """The outputs of a kind (TABLE, FIGURE) and scope (DATASET, GLOBAL), in page order."""
    return [o for o in OUTPUTS if o.kind == kind and o.scope == scope]


@dataclass(frozen=True)
class File:
    """A file the report writes: its path relative to the report's folder, the output that
    writes it (None for the results page) and its dataset ('' for a global output)."""

    path: str
    output: Output | None = None
    dataset: str = ""

    @property
    def shown(self) -> bool:
        """Whether ``snakemake --report`` shows it (a table's Markdown, a figure's PNG)."""
        return self.output is not None and self.path.endswith(f".{self.output.shown}")


def output_files(datasets: list[str], figures: bool = True) -> list[File]:
    """Every file ``mienet report --datasets ...`` writes, in a fixed order that depends on the
    dataset names only: per dataset its tables (by name: the order dvc.yaml lists them in), then
    its figures; then the global tables; then the results page. The copied Optuna plots are not
    in it (they exist only where a search ran)."""
    out = []
    for dataset in datasets:
        per_dataset = sorted(of(TABLE, DATASET), key=lambda o: o.name) + (of(FIGURE, DATASET) if figures else [])
        out += [File(path, o, dataset) for o in per_dataset for path in o.files(dataset)]
    out += [File(path, o) for o in of(TABLE, GLOBAL) for path in o.files()]
    return out + [File(README)]


def expected_outputs(datasets: list[str], figures: bool = True) -> list[str]:
    """The paths of :func:`output_files`, relative to the report's folder."""
    return [f.path for f in output_files(datasets, figures)]


def write_captions(folder: str | Path) -> dict[str, str]:
    """``<folder>/<name>.rst``: the caption of each output for ``snakemake --report``, written
    when it changed; the absolute paths by output name."""
    paths = {}
    for o in OUTPUTS:
        path = Path(folder, f"{o.name}.rst").resolve()
        text = o.caption + "\n"
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(path, text)
        paths[o.name] = str(path)
    return paths
