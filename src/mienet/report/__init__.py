"""``mienet report``: the paper's tables and figures, regenerated from the measured results.

Reads ``<results>/<dataset>/<variant>/seed<k>/`` (metrics, training log, per-class accuracy,
confusion), ``<dataset>/<variant>/tuned/``, ``<dataset>/search/<variant>/summary.json`` and
``bench/*.json``, and writes under ``<out>`` every output of the registry
(:data:`mienet.report.outputs.OUTPUTS`, one :class:`mienet.report.spec.Output` per table or figure):

    tables/<table>_<dataset>.{md,tex,csv}       per dataset: ablation, effects, factors, comparison
    tables/<table>.{md,tex,csv}                 once: search, efficiency
    plots/<figure>_<dataset>.{png,pdf}          ablation bars, curves, confusion, per-class, accuracy/GFLOPs
    plots/search_<dataset>_<variant>_<name>.png Optuna's plots, copied (only where a search ran)
    README.md                                   every table and figure with a generated sentence

Every mean over seeds carries a 95 % confidence interval: a hierarchical bootstrap over seeds
and test clips from ``predictions.csv`` (:mod:`mienet.report.stats`, :mod:`mienet.report.analysis`).

The set of files is fixed by the dataset names alone (:func:`expected_outputs`): a table
without data is written with dashes and a figure without data as a placeholder.

``expected_outputs``, ``OUTPUTS`` and ``write_report`` are imported on first use (PEP 562): with
them at the top, ``mienet report --help`` (which imports this package) takes 1.1 s instead of
0.3 s (measured; the registry and the writer import pandas and numpy).
"""

from __future__ import annotations

from importlib import import_module

_LAZY = {"expected_outputs": "mienet.report.outputs", "OUTPUTS": "mienet.report.outputs",
         "write_report": "mienet.report.build"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["OUTPUTS", "expected_outputs", "write_report"]
