"""What a table or figure of the report is: :class:`Output`, one per table or figure, and the
:class:`Inputs` its builder and its sentence read. The registry is :mod:`mienet.report.outputs`."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Literal

from mienet.registry.published import PublishedRow
from mienet.report.collect import ResultsTree

TABLE, FIGURE = "table", "figure"
DATASET, GLOBAL = "dataset", "global"
TABLE_FORMATS = ("md", "tex", "csv")
FIGURE_FORMATS = ("png", "pdf")
# kind -> (folder, formats written, the format the Snakemake report shows, its category there)
KINDS = {
    TABLE: ("tables", TABLE_FORMATS, "md", "Tables"),
    FIGURE: ("plots", FIGURE_FORMATS, "png", "Figures"),
}


@dataclass(frozen=True)
class Inputs:
    """What a builder or a sentence reads: the collected results, the datasets reported, the
    published numbers, the copied Optuna plots; ``dataset`` is set for a per-dataset output."""

    tree: ResultsTree
    datasets: tuple[str, ...] = ()
    published: tuple[PublishedRow, ...] = ()
    search_plots: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    dataset: str = ""

    def of(self, dataset: str) -> Inputs:
        return replace(self, dataset=dataset)


@dataclass(frozen=True)
class Output:
    """One table or figure: written per dataset (``tables/<name>_<dataset>.*``) or once
    (``tables/<name>.*``), built by ``build`` (a :class:`mienet.report.table.Table` or a
    matplotlib figure), introduced on the results page under ``heading`` by ``sentence`` and
    described in the Snakemake report by ``caption`` (reStructuredText)."""

    name: str
    kind: Literal["table", "figure"]
    scope: Literal["dataset", "global"]
    heading: str
    caption: str
    build: Callable[[Inputs], object]
    sentence: Callable[[Inputs], str]
    # more Markdown lines after the section on the results page (the search's Optuna plots)
    after: Callable[[Inputs], list[str]] | None = None

    def stem(self, dataset: str = "") -> str:
        return f"{self.name}_{dataset}" if self.scope == DATASET else self.name

    def files(self, dataset: str = "") -> list[str]:
        """The files written, relative to the report's folder, in the order of ``KINDS``."""
        folder, formats, _, _ = KINDS[self.kind]
        return [f"{folder}/{self.stem(dataset)}.{ext}" for ext in formats]

    @property
    def shown(self) -> str:
        """The format the Snakemake report shows (the others stay in the results folder)."""
        return KINDS[self.kind][2]

    @property
    def category(self) -> str:
        return KINDS[self.kind][3]
