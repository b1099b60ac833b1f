"""Confidence intervals and module effects of a results tree: :mod:`mienet.report.stats` on the runs.

* :func:`accuracy_interval`: a variant's mean accuracy (``top1``, ``top5`` or a factor) over its
  seed runs with a 95 % CI: the hierarchical bootstrap over seeds and the clips of
  ``predictions.csv`` (matched by path); one seed: over clips only; runs without
  ``predictions.csv`` (or without the column): a t-interval over the seeds' ``metrics.json``
  values, cut to [0, 100]; one seed without predictions: no interval.
* :func:`effect`: the paired difference ``a - b`` over the seeds both ran and the clips they
  all scored, with the same bootstrap; without predictions a paired t-interval over the seeds.
* :func:`module_effects`: :data:`EFFECTS`, in order.

Everything is in percent (points for differences) and computed once per tree (``tree.cache``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mienet.report.collect import ResultsTree, prediction_column
from mienet.report.stats import (
    BOOTSTRAP,
    CLIPS,
    NONE,
    REPLICATES,
    T,
    Interval,
    align,
    hierarchical_bootstrap,
    t_interval,
)

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

METHOD_TEXT = {
    BOOTSTRAP: "hierarchical bootstrap over seeds and test clips",
    CLIPS: "bootstrap over test clips (one seed)",
    T: "t-interval over seeds (no predictions.csv)",
    NONE: "",
}


def method_text(method: str) -> str:
    """The interval's method in words, as the CSV files' ``ci_method`` column says it."""
    return METHOD_TEXT.get(method, method)


def _outcomes(tree: ResultsTree, runs, metric: str):
    """(paths, 0/1 values) of every run's ``predictions.csv`` column for ``metric``; None if a
    run has no predictions or lacks the column."""
    column = prediction_column(metric)
    out = []
    for run in runs:
        preds = tree.predictions(run)
        values = preds.column(column) if preds is not None else None
        if values is None:
            return None
        out.append((preds.paths, values))
    return out


def accuracy_interval(tree: ResultsTree, dataset: str, variant: str, metric: str = "top1",
                      replicates: int = REPLICATES) -> Interval | None:
    """Mean ``metric`` (percent) of the seed runs of ``variant`` with its 95 % CI; None without runs
    or values. The estimate is the mean over seeds on the clips every seed scored."""
    key = ("accuracy", dataset, variant, metric, replicates)
    if key in tree.cache:
        return tree.cache[key]
    runs = tree.runs.get((dataset, variant), [])
    result = None
    outcomes = _outcomes(tree, runs, metric) if runs else None
    if outcomes:
        _, matrix = align(outcomes)
        if matrix.shape[1]:
            result = hierarchical_bootstrap(matrix, replicates).scaled(100)
    if result is None:
        result = t_interval([v for v in (r.metric(metric) for r in runs) if v is not None])
        result = result.clipped(0.0, 100.0) if result is not None else None
    tree.cache[key] = result
    return result


@dataclass(frozen=True)
class Effect:
    """``variant_a - variant_b`` on one dataset: the paired difference over ``seeds`` (those both
    ran) in points, with its 95 % CI (``interval`` None when it cannot be computed: a variant
    without runs, listed in ``missing``, or no seed run by both)."""

    effect: str
    variant_a: str
    variant_b: str
    explanation: str
    seeds: tuple[int, ...]
    interval: Interval | None
    missing: tuple[str, ...] = ()

    @property
    def delta(self) -> float | None:
        return self.interval.estimate if self.interval is not None else None

    @property
    def resolved(self) -> bool | None:
        """True when the 95 % CI excludes 0, False when it includes it, None without a CI."""
        return self.interval.excludes(0.0) if self.interval is not None else None

    def machine_sensitive(self, margin: float | None) -> bool | None:
        """Whether another machine could flip the verdict: a shift of the CI by ``margin`` points
        (the most another CPU, thread count or precision moved a mean effect of the recipe,
        ``datasets.<name>.machine_margin``) would bring an end of it across 0. None without a
        CI or a margin."""
        iv = self.interval
        if margin is None or iv is None or not iv.has_ci:
            return None
        return min(abs(iv.low), abs(iv.high)) < margin


def effect(tree: ResultsTree, dataset: str, variant_a: str, variant_b: str, metric: str = "top1",
           name: str = "", explanation: str = "", replicates: int = REPLICATES) -> Effect:
    """The paired effect ``variant_a - variant_b`` of ``metric``, by seed and by clip path."""
    key = ("effect", dataset, variant_a, variant_b, metric, replicates)
    if key not in tree.cache:
        runs_a = {r.seed: r for r in tree.runs.get((dataset, variant_a), [])}
        runs_b = {r.seed: r for r in tree.runs.get((dataset, variant_b), [])}
        missing = tuple(v for v, runs in ((variant_a, runs_a), (variant_b, runs_b)) if not runs)
        seeds = tuple(sorted(set(runs_a) & set(runs_b)))
        interval = None
        if seeds:
            outcomes = _outcomes(tree, [runs_a[s] for s in seeds] + [runs_b[s] for s in seeds], metric)
            if outcomes:
                _, matrix = align(outcomes)
                if matrix.shape[1]:
                    n = len(seeds)
                    interval = hierarchical_bootstrap(matrix[:n] - matrix[n:], replicates).scaled(100)
            if interval is None:
                pairs = [(runs_a[s].metric(metric), runs_b[s].metric(metric)) for s in seeds]
                interval = t_interval([a - b for a, b in pairs if a is not None and b is not None])
                interval = interval.clipped(-100.0, 100.0) if interval is not None else None
        tree.cache[key] = (seeds, interval, missing)
    seeds, interval, missing = tree.cache[key]
    return Effect(name, variant_a, variant_b, explanation, seeds, interval, missing)


def module_effects(tree: ResultsTree, dataset: str, metric: str = "top1",
                   replicates: int = REPLICATES) -> list[Effect]:
    """Every effect of :data:`EFFECTS` on ``dataset``, in that order."""
    return [effect(tree, dataset, a, b, metric, name, why, replicates) for name, a, b, why in EFFECTS]


def ceiling_delta(tree: ResultsTree, dataset: str, variant_a: str, variant_b: str,
                  metric: str = "top1") -> float | None:
    """Ceiling of ``variant_a`` minus that of ``variant_b`` (what the design allows the effect to be)."""
    a, b = tree.stats(dataset, variant_a).ceiling(metric), tree.stats(dataset, variant_b).ceiling(metric)
    return a - b if a is not None and b is not None else None


def at_ceiling(interval: Interval | None, ceiling: float | None) -> bool | None:
    """Whether an accuracy sits at its ceiling: its CI reaches it (its mean, without a CI)."""
    if interval is None or ceiling is None:
        return None
    if interval.has_ci:
        return interval.reaches(ceiling)
    return bool(np.isclose(interval.estimate, ceiling) or interval.estimate >= ceiling)
