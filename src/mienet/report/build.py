"""Collect the results, write every table, figure and the results page."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

from mienet.errors import MienetError
from mienet.io import atomic_path, write_text_atomic
from mienet.registry.published import load_published
from mienet.report.collect import check_evaluate_settings, collect
from mienet.report.figures import write_figures
from mienet.report.outputs import OUTPUTS, README, expected_outputs
from mienet.report.page import render
from mienet.report.spec import DATASET, TABLE, Inputs

log = logging.getLogger(__name__)

DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def check_datasets(datasets: list[str]) -> list[str]:
    """Dataset names as given, without repeats; a name that cannot be a folder is an error."""
    out = []
    for name in datasets:
        if not DATASET_NAME.match(name):
            raise MienetError(f"dataset name {name!r} is not a folder name (letters, digits, '_', '.', '-')")
        if name not in out:
            out.append(name)
    return out


def copy_search_plots(tree, datasets: list[str], out_dir: Path) -> dict[tuple[str, str], list[str]]:
    """Optuna's PNGs to ``plots/search_<dataset>_<variant>_<name>.png``; relative paths per search."""
    copied = {}
    for (dataset, variant), search in sorted(tree.searches.items()):
        if dataset not in datasets:
            continue
        paths = []
        for src in search.plots:
            rel = f"plots/search_{dataset}_{variant}_{src.name}"
            dst = out_dir / rel
            if src.resolve() != dst.resolve():
                with atomic_path(dst) as tmp:
                    shutil.copyfile(src, tmp)
            paths.append(rel)
        copied[(dataset, variant)] = paths
    return copied


def write_report(results_dir: str | Path, out_dir: str | Path | None = None, datasets: list[str] | None = None,
                 published: str = "builtin", figures: bool = True, params: dict | None = None,
                 params_name: str = "params.yaml") -> dict:
    """Write the report of ``results_dir`` into ``out_dir`` (default: ``results_dir``).

    ``datasets``: the datasets to report, in that order (default: those found). ``params``: the
    params.yaml (``params_name``) the results should have been evaluated with; a run evaluated
    otherwise is an error before anything is written (:func:`check_evaluate_settings`). Returns
    ``{"datasets": [...], "files": [...], "search_plots": [...], "problems": [...]}`` with paths
    relative to ``out_dir``; ``files`` is exactly :func:`mienet.report.expected_outputs`.
    """
    results_dir = Path(results_dir)
    out_dir = Path(out_dir) if out_dir is not None else results_dir
    rows = load_published(published)
    tree = collect(results_dir)
    if not results_dir.is_dir():
        log.warning("%s does not exist: writing a report with dashes only", results_dir)
    datasets = check_datasets(list(datasets)) if datasets is not None else list(tree.datasets)
    if params is not None:
        check_evaluate_settings(tree, params, datasets, params_name)
        tree.machine_margins = {d: ds["machine_margin"] for d, ds in (params.get("datasets") or {}).items()
                                if (ds or {}).get("machine_margin") is not None}
    not_reported = [d for d in tree.datasets if d not in datasets]
    if not_reported:
        log.info("results found for %s, not reported (not in --datasets)", ", ".join(not_reported))

    inputs = Inputs(tree, tuple(datasets), rows, copy_search_plots(tree, datasets, out_dir))
    tables = {}
    for output in (o for o in OUTPUTS if o.kind == TABLE):
        for each in [inputs.of(d) for d in datasets] if output.scope == DATASET else [inputs]:
            table = output.build(each)
            table.write(out_dir / "tables")
            tables[table.stem] = table
    for dataset in datasets if figures else []:
        write_figures(inputs.of(dataset), out_dir / "plots")
    write_text_atomic(out_dir / README, render(inputs, tables, figures, not_reported))

    files = expected_outputs(datasets, figures=figures)
    missing = [f for f in files if not (out_dir / f).is_file()]
    if missing:  # a bug, not bad input: the output set is promised to the workflow
        raise RuntimeError(f"report did not write {', '.join(missing)}")
    return {
        "datasets": datasets,
        "files": files,
        "search_plots": [p for paths in inputs.search_plots.values() for p in paths],
        "problems": sorted(set(tree.problems)),
    }
