"""What the report's tables and sentences share: names, cells of numbers and intervals, and the
words for seeds, splits and ceilings.

Every number has a fixed format (accuracies two decimals), rows come in a fixed order (the
seven ablation variants in the order of ``docs/mie-net.md``, datasets in the paper's order)
and nothing depends on time or machine: the same results give the same bytes (the bootstrap
has a fixed random seed). A run that is absent is a dash with a footnote, never a dropped row.
A mean over seeds is written ``mean [low, high]`` with its 95 % CI (:mod:`mienet.report.analysis`).
A cell is Markdown text (:mod:`mienet.report.table` writes its LaTeX).
"""

from __future__ import annotations

from mienet.registry.variants import VARIANTS
from mienet.report.analysis import Effect, accuracy_interval, at_ceiling
from mienet.report.collect import ResultsTree, SeedStats
from mienet.report.stats import CLIPS, NONE, REPLICATES, T, Interval
from mienet.report.table import DASH, Table

VARIANT_NAMES = {name: v.label for name, v in VARIANTS.items()}


def variant_name(variant: str) -> str:
    return VARIANT_NAMES.get(variant, variant)


# --------------------------------------------------------------------------- cells

def code(name: str) -> str:
    return f"`{name}`"


def fmt(x: float | None, digits: int = 2) -> str:
    """Fixed-point text of a number; '' for None (CSV). Never ``-0.00``."""
    if x is None:
        return ""
    return f"{0.0 if round(x, digits) == 0 else x:.{digits}f}"


def num(x: float | None, digits: int = 2) -> str:
    return DASH if x is None else fmt(x, digits)


def signed(x: float | None, digits: int = 2) -> str:
    """A difference with its sign (``+3.75``, never ``-0.00``); a dash for None."""
    if x is None:
        return DASH
    return f"{0.0 if round(x, digits) == 0 else x:+.{digits}f}"


def ci(mean: float | None, interval: Interval | None, sign: bool = False) -> str:
    """``mean [low, high]`` (two decimals); just the mean without an interval; a dash without a mean.
    ``sign``: a difference, written with its sign (``+3.75 [-1.25, 8.75]``)."""
    if mean is None:
        return DASH
    head = signed(mean) if sign else fmt(mean)
    if interval is None or not interval.has_ci:
        return head
    return f"{head} [{fmt(interval.low)}, {fmt(interval.high)}]"


def ceiling_text(x: float | None) -> str:
    """A ceiling without trailing zeros: ``100``, ``25``, ``33.33``; '' for None."""
    return "" if x is None else fmt(x).rstrip("0").rstrip(".")


def signed_ceiling_text(x: float) -> str:
    """A difference of ceilings with its sign: ``+50``, ``-25``, ``±0``."""
    c = ceiling_text(x)
    return c if c.startswith("-") else ("±0" if c == "0" else f"+{c}")


def with_ceiling(cell: str, ceiling: float | None, sign: bool = False) -> str:
    """``cell / ceiling`` (``+50`` for a difference of ceilings); the cell alone without one."""
    if ceiling is None or cell == DASH:
        return cell
    return f"{cell} / {signed_ceiling_text(ceiling) if sign else ceiling_text(ceiling)}"


def ci_bounds(interval: Interval | None) -> tuple[str, str]:
    """(low, high) for a CSV (four decimals), empty without an interval."""
    if interval is None or not interval.has_ci:
        return "", ""
    return fmt(interval.low, 4), fmt(interval.high, 4)


def shown_mean(stats: SeedStats, interval: Interval | None, metric: str) -> float | None:
    """The mean a table shows: over the seeds' ``metrics.json`` values, else the interval's estimate."""
    if stats.metric_values(metric):
        return stats.metric_mean(metric)
    return interval.estimate if interval is not None else None


FACTOR_COLUMNS = ("top1", "ci95_low", "ci95_high", "ceiling")  # a factor's CSV columns, after its name


def factor_columns(factors: list[str]) -> list[str]:
    return [f"{f}_{col}" for f in factors for col in FACTOR_COLUMNS]


def accuracy_values(stats: SeedStats, interval: Interval | None, metric: str) -> tuple[str, str, str, str]:
    """(mean, CI low, CI high, ceiling) of ``metric`` for a CSV, four decimals."""
    return (fmt(shown_mean(stats, interval, metric), 4), *ci_bounds(interval), fmt(stats.ceiling(metric), 4))


INTERVAL_MARKS = {  # a variant's interval that is not the hierarchical bootstrap: (note key, note)
    CLIPS: ("single", "one seed: the 95 % CI is a bootstrap over test clips only (no seed-to-seed variation)."),
    T: ("tci", "no usable `predictions.csv`: the 95 % CI is a t-interval over the seeds' accuracies."),
    NONE: ("noci", "one seed and no usable `predictions.csv`: no interval."),
}


def accuracy_cells(t: Table, tree: ResultsTree, dataset: str, variant: str, label: str, missing: str,
                   metrics: tuple[str, ...] = ("top1", "top5"),
                   ceilings: bool = False) -> tuple[str, list[str], str, dict]:
    """(label, one cell per metric, CSV note, intervals by metric) of a variant's row: a variant
    without runs gets the ``missing`` footnote on its label; an interval that is not the
    hierarchical bootstrap (one seed, no predictions.csv) a footnote on its cells.
    ``ceilings``: each cell is ``mean [CI] / ceiling`` where the runs give a ceiling."""
    stats = tree.stats(dataset, variant)
    intervals = {m: accuracy_interval(tree, dataset, variant, m) for m in metrics}
    cells = [ci(shown_mean(stats, intervals[m], m), intervals[m]) for m in metrics]
    if ceilings:
        cells = [with_ceiling(c, stats.ceiling(m)) for c, m in zip(cells, metrics)]
    if stats.n == 0:
        return label + t.notes.mark("missing", missing), cells, "not run", intervals
    out = []
    for m, cell in zip(metrics, cells):
        method = intervals[m].method if intervals[m] is not None else NONE
        out.append(cell + t.notes.mark(*INTERVAL_MARKS[method]) if method in INTERVAL_MARKS and cell != DASH
                   else cell)
    note = "one seed" if stats.n == 1 else ""
    if any(iv is not None and iv.method in (T, NONE) for iv in intervals.values()):
        note = "; ".join(x for x in (note, "no predictions") if x)
    return label, out, note, intervals


def variant_cell(variant: str) -> str:
    """``MIE-Net (`mienet`)``; just the code name for a variant without a display name."""
    return f"{variant_name(variant)} ({code(variant)})" if variant in VARIANT_NAMES else code(variant)


def frames_label(variant: str, segments, frames_per_segment) -> str:
    """The paper's frame notation: ``T+T*L`` for variants that compute PA, ``T`` for RGB only."""
    if segments in (None, ""):
        return ""
    v = VARIANTS.get(variant)
    if v is not None and not v.uses_pa:
        return f"{segments}"
    return f"{segments}+{segments}*{frames_per_segment if frames_per_segment not in (None, '') else '?'}"


def stats_frames(stats: SeedStats, variant: str) -> str:
    labels = sorted({frames_label(variant, r.metrics.get("segments"), r.metrics.get("frames_per_segment"))
                     for r in stats.runs} - {""})
    return " / ".join(labels)


def protocol_note(tree: ResultsTree, dataset: str) -> str | None:
    """The split, views and shapes the accuracies of ``dataset`` come from (None without runs)."""
    runs = [r for (d, _), rs in tree.runs.items() if d == dataset for r in rs]
    if not runs:
        return None
    splits = sorted({str(r.metrics.get("split", "?")) for r in runs})
    views = sorted({str(r.metrics.get("views", "?")) for r in runs})
    shapes = sorted({f"{r.metrics.get('segments', '?')} segments of {r.metrics.get('size', '?')} px"
                     for r in runs})
    view_text = f"{' / '.join(views)} view{'' if views == ['1'] else 's'} per clip"
    return (f"Accuracy in percent on the `{'`, `'.join(splits)}` split ({view_text}); "
            f"parameters in millions; GFLOPs per clip ({'; '.join(shapes)}).")


# --------------------------------------------------------------------------- words

CI_WORDS = f"95 % CI: hierarchical bootstrap over seeds and test clips ({REPLICATES} replicates)"


def _single_seeds(tree: ResultsTree, dataset: str) -> bool:
    """Whether every variant run on ``dataset`` has exactly one seed."""
    return {tree.stats(dataset, v).n for v in tree.variants(dataset)} - {0} == {1}


def ci_how(tree: ResultsTree, dataset: str) -> str:
    """How the intervals of ``dataset`` are computed: over seeds and clips, or over clips only
    when every variant run has a single seed."""
    if _single_seeds(tree, dataset):
        return "bootstrap over test clips; one seed, no seed-to-seed variation"
    return "hierarchical bootstrap over seeds and test clips"


def ci_words(tree: ResultsTree, dataset: str) -> str:
    """:data:`CI_WORDS`, or its clip-only form when every variant run has a single seed."""
    if _single_seeds(tree, dataset):
        return f"95 % CI: bootstrap over test clips ({REPLICATES} replicates; one seed, no seed-to-seed variation)"
    return CI_WORDS


def seeds_phrase(tree: ResultsTree, dataset: str) -> str:
    """``mean over 3 seeds`` when every variant run has that many, else ``mean over each variant's seeds``."""
    counts = {tree.stats(dataset, v).n for v in tree.variants(dataset)} - {0}
    if len(counts) == 1:
        n = counts.pop()
        return "a single seed per variant" if n == 1 else f"mean over {n} seeds"
    return "mean over each variant's seeds (column seeds)"


def split_text(tree: ResultsTree, dataset: str) -> str:
    """``checkpoint selected on `val`; scored on `test``` from the runs' metrics ('' without runs).

    A selection split starting with ``none`` (``mienet evaluate`` on ``last.pt``) is the last
    epoch; a run scored on the split it was selected on is said to be optimistic."""
    runs = [r for (d, _), rs in sorted(tree.runs.items()) if d == dataset for r in rs]
    if not runs:
        return ""
    scored_splits = sorted({r.split for r in runs} - {None})
    scored = "`, `".join(scored_splits) or "?"
    chosen = sorted({r.selection_split for r in runs} - {None})
    if not chosen:
        return f"scored on `{scored}`; the checkpoint's selection split is not recorded"
    selected = [c for c in chosen if not c.startswith("none")]
    how = []
    if selected:
        how.append(f"checkpoint selected on `{'`, `'.join(selected)}`")
    if len(selected) < len(chosen):
        how.append("last epoch's checkpoint (no selection)" if selected else
                   "the last epoch's checkpoint (no selection)")
    partly = "" if all(r.selection_split for r in runs) else " (not recorded for every run)"
    text_ = f"{' or '.join(how)}{partly}; scored on `{scored}`"
    if any(r.selection_split == r.split for r in runs):
        text_ += " (runs scored on the split their checkpoint was selected on: optimistically biased)"
    return text_


def as_sentence(text_: str) -> str:
    return text_[:1].upper() + text_[1:] + "." if text_ else ""


def split_clause(tree: ResultsTree, dataset: str) -> str:
    """`` (checkpoint selected on `val`; scored on `test`)`` or '' without runs."""
    text = split_text(tree, dataset)
    return f" ({text})" if text else ""


def seeds_text(n: int) -> str:
    return "one seed" if n == 1 else f"{n} seeds"


def ci_text(interval: Interval | None) -> str:
    """`` [low, high]`` or '' without an interval."""
    return f" [{interval.low:.2f}, {interval.high:.2f}]" if interval is not None and interval.has_ci else ""


def describe(tree: ResultsTree, dataset: str, variant: str, metric: str = "top1", label: str = "top-1") -> str:
    """``83.40 [80.10, 86.50] top-1 over 3 seeds`` (mean with its 95 % CI) or ``... from one seed``."""
    stats = tree.stats(dataset, variant)
    iv = accuracy_interval(tree, dataset, variant, metric)
    m = shown_mean(stats, iv, metric)
    how = "from one seed" if stats.n == 1 else f"over {seeds_text(stats.n)}"
    return f"{m:.2f}{ci_text(iv)} {label} {how}"


def paired_text(e: Effect) -> str:
    """``paired 95 % CI [1.20, 5.30], resolved`` of an effect (over the seeds both ran)."""
    if e.interval is None or not e.interval.has_ci:
        return "no interval for the difference"
    seeds = "one shared seed" if len(e.seeds) == 1 else f"{len(e.seeds)} shared seeds"
    verdict = "resolved" if e.resolved else "not resolved: the CI includes 0"
    return f"paired 95 % CI{ci_text(e.interval)} over {seeds}, {verdict}"


def points_text(diff: float, than: str) -> str:
    return f"{abs(diff):.2f} points {'above' if diff >= 0 else 'below'} {than}"


def ran_variants(tree: ResultsTree, dataset: str) -> list[str]:
    return [v for v in tree.variants(dataset) if tree.stats(dataset, v).n > 0]


def best_variant(tree: ResultsTree, dataset: str) -> str | None:
    ran = ran_variants(tree, dataset)
    if not ran:
        return None
    return min(ran, key=lambda v: (-tree.stats(dataset, v).mean("top1"), ran.index(v)))


def ceiling_split(tree: ResultsTree, dataset: str, variants: list[str], metric: str = "top1"):
    """([(variant, mean, ceiling)] at their ceiling, [...] below it) of the variants with a ceiling."""
    at, below = [], []
    for v in variants:
        stats = tree.stats(dataset, v)
        ceiling, iv = stats.ceiling(metric), accuracy_interval(tree, dataset, v, metric)
        reached = at_ceiling(iv, ceiling)
        if reached is None:
            continue
        (at if reached else below).append((v, shown_mean(stats, iv, metric), ceiling))
    return at, below


def ceiling_sentence(at, below) -> str:
    def items(rows):
        return ", ".join(f"{variant_name(v)} ({m:.2f} of {ceiling_text(c)})" for v, m, c in rows)

    parts = []
    if at:
        parts.append(f"At their top-1 ceiling (the 95 % CI reaches what the design allows): {items(at)}")
    if below:
        parts.append(f"{'b' if at else 'B'}elow it: {items(below)}")
    return "; ".join(parts) + "."
