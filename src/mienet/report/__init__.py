"""``mienet report``: the paper's tables and figures, regenerated from the measured results.

Reads ``<results>/<dataset>/<variant>/seed<k>/`` (metrics, training log, per-class accuracy,
confusion), ``<dataset>/<variant>/tuned/``, ``<dataset>/search/<variant>/summary.json`` and
``bench/*.json``, and writes under ``<out>``:

    tables/ablation_<dataset>.{md,tex,csv}     one row per ablation variant, checks for RGB/PA/AFM/DPTAM,
                                               top-1 with its 95 % CI and the variant's ceiling
    tables/comparison_<dataset>.{md,tex,csv}   published rows (docs/mie-net.md) beside measured ones
    tables/effects_<dataset>.{md,tex,csv}      the module effects (:data:`EFFECTS`): paired differences, CIs
    tables/factors_<dataset>.{md,tex,csv}      accuracy per factor of the dataset's design, with ceilings
    tables/search.{md,tex,csv}                 Optuna studies and the tuned models
    tables/efficiency.{md,tex,csv}             parameters, GFLOPs, training clips/s
    plots/<figure>_<dataset>.{png,pdf}          ablation bars, curves, confusion, per-class, accuracy/GFLOPs
    plots/search_<dataset>_<variant>_<name>.png Optuna's plots, copied (only where a search ran)
    README.md                                  every table and figure with a generated sentence

Every mean over seeds carries a 95 % confidence interval: a hierarchical bootstrap over seeds
and test clips from ``predictions.csv`` (:mod:`mienet.report.stats`, :mod:`mienet.report.analysis`).

The set of files is fixed by the dataset names alone (:func:`expected_outputs`): a table
without data is written with dashes and a figure without data as a placeholder. This module
imports nothing heavy, so a Snakefile can call :func:`expected_outputs` at parse time.
"""

from __future__ import annotations

from pathlib import Path

TABLE_FORMATS = ("md", "tex", "csv")
FIGURE_FORMATS = ("png", "pdf")
DATASET_TABLES = ("ablation", "comparison", "effects", "factors")  # tables/<name>_<dataset>.*
GLOBAL_TABLES = ("search", "efficiency")  # tables/<name>.*
FIGURES = ("ablation_bars", "curves", "confusion", "per_class", "accuracy_gflops")  # plots/<name>_<dataset>.*
README = "README.md"

# The module effects the effects table answers, each a paired difference ``variant_a - variant_b``
# over the seeds and test clips both have: (module, variant_a, variant_b, what changes).
EFFECTS: tuple[tuple[str, str, str, str], ...] = (
    ("PA", "pa", "tsn", "PA image instead of the RGB frame"),
    ("PA", "naive_fusion", "tsn", "PA added to RGB (plain concatenation)"),
    ("AFM", "afm", "naive_fusion", "AFM instead of plain concatenation"),
    ("DPTAM", "dptam", "tsn", "DPTAM on the RGB baseline"),
    ("DPTAM", "mienet", "afm", "DPTAM on AFM (MIE-Net against AFM)"),
    ("DPTAM", "fusion_dptam", "naive_fusion", "DPTAM on concatenated RGB and PA"),
)


def expected_outputs(datasets: list[str], figures: bool = True) -> list[str]:
    """Every file ``mienet report --datasets ...`` writes, relative to its ``--out`` folder, in a
    fixed order; it depends only on the dataset names (the copied Optuna plots are not in it)."""
    out = []
    for dataset in datasets:
        out += [f"tables/{table}_{dataset}.{ext}" for table in DATASET_TABLES for ext in TABLE_FORMATS]
        if figures:
            out += [f"plots/{fig}_{dataset}.{ext}" for fig in FIGURES for ext in FIGURE_FORMATS]
    out += [f"tables/{table}.{ext}" for table in GLOBAL_TABLES for ext in TABLE_FORMATS]
    out.append(README)
    return out


def write_report(results_dir: str | Path, out_dir: str | Path | None = None, datasets: list[str] | None = None,
                 published: str = "builtin", figures: bool = True, params: dict | None = None,
                 params_name: str = "params.yaml") -> dict:
    """Write every table, figure and the results page; see :func:`mienet.report.build.write_report`."""
    from mienet.report.build import write_report as _write_report

    return _write_report(results_dir, out_dir, datasets=datasets, published=published, figures=figures,
                         params=params, params_name=params_name)


__all__ = ["expected_outputs", "write_report", "EFFECTS", "FIGURES", "TABLE_FORMATS", "FIGURE_FORMATS"]
