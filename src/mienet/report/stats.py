"""Confidence intervals for accuracies over seeds and test clips: pure numpy, deterministic.

An accuracy in the report is a mean over training seeds of each seed's accuracy on the same
test clips. Two sources of chance move it: which seeds were drawn (initialisation, data order)
and which clips happen to be in the test list. :func:`hierarchical_bootstrap` resamples both:

* each replicate draws the seeds with replacement (``S`` of ``S``) and the clips with
  replacement (``N`` of ``N``); the clip draw is the *same* for every seed of the replicate,
  because every seed was scored on the same clips (matched by path, :func:`align`);
* its value is the mean over the drawn seeds of each seed's mean on the drawn clips;
* the interval is the ``(1 - level) / 2`` and ``(1 + level) / 2`` percentiles of the
  replicates (numpy's default linear interpolation).

With one seed this is a bootstrap over clips only. A paired difference of two variants is the
same computation on the matrix ``a - b`` over the seeds and clips both have. Every call starts
its own ``numpy.random.default_rng(seed)``, so the same inputs give the same interval.

Where the per-clip outcomes are missing, :func:`t_interval` gives a Student-t interval over the
seeds' accuracies instead (two seeds at least).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import numpy as np

REPLICATES = 2000  # bootstrap replicates by default
RNG_SEED = 0  # numpy.random.default_rng seed of every bootstrap
LEVEL = 0.95

BOOTSTRAP = "bootstrap"  # seeds and clips
CLIPS = "clips"  # one seed: clips only
T = "t"  # Student t over the seeds' accuracies
NONE = ""  # a point estimate without an interval

# Two-sided 95 % quantiles of Student's t, t_{0.975, df} for df = 1..30.
_T975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
         2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
         2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423)


@dataclass(frozen=True)
class Interval:
    """A point estimate with its ``level`` confidence interval (``low``/``high`` None without one).

    ``method``: :data:`BOOTSTRAP`, :data:`CLIPS`, :data:`T` or :data:`NONE`; ``n_seeds`` and
    ``n_clips`` are what the interval was computed on (``n_clips`` 0 for a t-interval).
    """

    estimate: float
    low: float | None
    high: float | None
    method: str
    n_seeds: int
    n_clips: int = 0
    replicates: int = 0

    @property
    def has_ci(self) -> bool:
        return self.low is not None and self.high is not None

    def excludes(self, value: float = 0.0) -> bool | None:
        """Whether ``value`` lies outside the interval; None without an interval."""
        if not self.has_ci:
            return None
        return value < self.low or value > self.high

    def reaches(self, value: float) -> bool | None:
        """Whether the interval's upper end reaches ``value`` (an accuracy at its ceiling)."""
        if not self.has_ci:
            return None
        return self.high >= value - 1e-9

    def clipped(self, lowest: float, highest: float) -> Interval:
        """The interval cut to ``[lowest, highest]`` (a t-interval of accuracies can pass 100 %)."""
        if not self.has_ci:
            return self
        return Interval(self.estimate, min(max(self.low, lowest), highest), max(min(self.high, highest), lowest),
                        self.method, self.n_seeds, self.n_clips, self.replicates)

    def scaled(self, factor: float) -> Interval:
        """The same interval with every number multiplied by ``factor`` (fractions to percent)."""
        return Interval(self.estimate * factor, None if self.low is None else self.low * factor,
                        None if self.high is None else self.high * factor, self.method, self.n_seeds,
                        self.n_clips, self.replicates)


def bootstrap_replicates(values, replicates: int = REPLICATES, seed: int = RNG_SEED) -> np.ndarray:
    """The ``replicates`` values of the two-level bootstrap of ``values`` (seeds x clips).

    Replicate ``b`` draws seeds ``s_1..s_S`` and clips ``c_1..c_N`` uniformly with replacement
    and is ``mean_i mean_j values[s_i, c_j]``. Computed with the draws' counts: clip counts
    ``W`` (B x N) give every seed's mean on the drawn clips as ``W @ values.T / N``, seed counts
    ``V`` (B x S) then weight the seeds; the random numbers are drawn seeds first, then clips.
    """
    x = np.asarray(values, dtype=float)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"values must be a non-empty seeds x clips matrix, not shape {x.shape}")
    s, n = x.shape
    rng = np.random.default_rng(seed)
    seed_draws = rng.integers(0, s, size=(replicates, s))
    clip_draws = rng.integers(0, n, size=(replicates, n))
    offsets = np.arange(replicates)[:, None]
    seed_counts = np.bincount((seed_draws + offsets * s).ravel(), minlength=replicates * s).reshape(replicates, s)
    clip_counts = np.bincount((clip_draws + offsets * n).ravel(), minlength=replicates * n).reshape(replicates, n)
    per_seed = clip_counts @ x.T / n  # (B, S): each seed's mean on the replicate's clips
    return (per_seed * seed_counts).sum(axis=1) / s


def hierarchical_bootstrap(values, replicates: int = REPLICATES, seed: int = RNG_SEED,
                           level: float = LEVEL) -> Interval:
    """Mean of ``values`` (seeds x clips: 0/1 outcomes, or paired differences) with its
    percentile interval from :func:`bootstrap_replicates`; method :data:`CLIPS` for one seed."""
    x = np.asarray(values, dtype=float)
    reps = bootstrap_replicates(x, replicates, seed)
    alpha = (1 - level) / 2
    low, high = np.percentile(reps, [100 * alpha, 100 * (1 - alpha)])
    return Interval(float(x.mean()), float(low), float(high), BOOTSTRAP if x.shape[0] > 1 else CLIPS,
                    int(x.shape[0]), int(x.shape[1]), replicates)


def t_quantile(df: int) -> float:
    """``t_{0.975, df}``: a table up to 30 degrees of freedom, Cornish-Fisher beyond (error < 1e-4)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be at least 1, not {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return (z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)
            + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * df ** 3))


def t_interval(values, level: float = LEVEL) -> Interval | None:
    """Student-t interval of the mean of ``values`` (one number per seed, e.g. its top-1, or a
    paired difference): ``mean ± t * sd / sqrt(n)``. None for no values; no interval for one.
    Only ``level=0.95`` is supported."""
    if not math.isclose(level, 0.95):
        raise ValueError("t_interval supports level=0.95 only")
    vals = [float(v) for v in values]
    if not vals:
        return None
    mean = statistics.fmean(vals)
    if len(vals) < 2:
        return Interval(mean, None, None, NONE, len(vals))
    half = t_quantile(len(vals) - 1) * statistics.stdev(vals) / math.sqrt(len(vals))
    return Interval(mean, mean - half, mean + half, T, len(vals))


def align(columns: list[tuple[list[str], np.ndarray]]) -> tuple[list[str], np.ndarray]:
    """Rows of per-clip outcomes matched by key (the clip's path): ``columns`` holds one
    (keys, values) per seed run; returns the keys every run has (in the first run's order)
    and the seeds x clips matrix. A key listed twice in a run is matched by occurrence."""
    if not columns:
        return [], np.zeros((0, 0))
    keyed = []
    for keys, values in columns:
        seen: dict[str, int] = {}
        occ = []
        for k in keys:
            seen[k] = seen.get(k, 0) + 1
            occ.append((k, seen[k]))
        keyed.append(dict(zip(occ, np.asarray(values, dtype=float))))
    first = list(keyed[0])
    shared = [k for k in first if all(k in d for d in keyed[1:])]
    matrix = np.array([[d[k] for k in shared] for d in keyed], dtype=float).reshape(len(keyed), len(shared))
    return [k for k, _ in shared], matrix
