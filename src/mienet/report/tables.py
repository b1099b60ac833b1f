"""The paper's tables from the collected results, each as Markdown, LaTeX (booktabs) and CSV.

Every number has a fixed format (accuracies two decimals), rows come in a fixed order (the
seven ablation variants in the order of ``docs/mie-net.md``, datasets in the paper's order)
and nothing depends on time or machine: the same results give the same bytes (the bootstrap
has a fixed random seed). A run that is absent is a dash with a footnote, never a dropped row.
A mean over seeds is written ``mean [low, high]`` with its 95 % CI (:mod:`mienet.report.analysis`).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from mienet.registry.variants import VARIANTS
from mienet.report.analysis import (
    Effect,
    accuracy_interval,
    at_ceiling,
    ceiling_delta,
    effect,
    method_text,
    module_effects,
)
from mienet.report.collect import ResultsTree, SeedStats, as_number
from mienet.registry.published import SOURCE, PublishedRow
from mienet.report.stats import CLIPS, NONE, REPLICATES, T, Interval

DATASET_NAMES = {
    "synthetic": "Synthetic factors",
    "sljd": "SLJD",
    "diving48": "Diving48",
    "sthv2": "Something-Something V2",
}
VARIANT_NAMES = {name: v.label for name, v in VARIANTS.items()}
REPORTED = "reported (paper/README)"
MEASURED = "measured (this project)"


def dataset_name(dataset: str) -> str:
    return DATASET_NAMES.get(dataset, dataset)


def variant_name(variant: str) -> str:
    return VARIANT_NAMES.get(variant, variant)


# --------------------------------------------------------------------------- cells and notes

_TEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}",
                "±": r"$\pm$", "×": r"$\times$", "—": "--", "Δ": r"$\Delta$", "−": r"$-$"}


def tex_escape(text: str) -> str:
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in str(text))


def md_escape(text: str) -> str:
    return str(text).replace("|", r"\|")


@dataclass(frozen=True)
class Cell:
    """One table cell, written for Markdown and for LaTeX."""

    md: str
    tex: str

    def __add__(self, other: Cell) -> Cell:
        return Cell(self.md + other.md, self.tex + other.tex)


def text(value) -> Cell:
    return Cell(md_escape(value), tex_escape(value))


def code(name: str) -> Cell:
    return Cell(f"`{name}`", rf"\texttt{{{tex_escape(name)}}}")


DASH = Cell("—", "--")
CHECK = Cell("✓", r"$\checkmark$")
CROSS = Cell("✗", r"$\times$")


def fmt(x: float | None, digits: int = 2) -> str:
    """Fixed-point text of a number; '' for None (CSV). Never ``-0.00``."""
    if x is None:
        return ""
    return f"{0.0 if round(x, digits) == 0 else x:.{digits}f}"


def num(x: float | None, digits: int = 2) -> Cell:
    return DASH if x is None else text(fmt(x, digits))


def signed(x: float | None, digits: int = 2) -> Cell:
    if x is None:
        return DASH
    s = f"{0.0 if round(x, digits) == 0 else x:+.{digits}f}"
    return Cell(s, s.replace("-", "$-$", 1) if s.startswith("-") else s)


def _minus(cell_text: str) -> Cell:
    """A number's text; LaTeX gets a proper minus sign."""
    return Cell(md_escape(cell_text), tex_escape(cell_text).replace("-", "$-$"))


def ci(mean: float | None, interval: Interval | None, sign: bool = False) -> Cell:
    """``mean [low, high]`` (two decimals); just the mean without an interval; a dash without a mean.
    ``sign``: a difference, written with its sign (``+3.75 [-1.25, 8.75]``)."""
    if mean is None:
        return DASH
    head = (f"{0.0 if round(mean, 2) == 0 else mean:+.2f}" if sign else fmt(mean))
    if interval is None or not interval.has_ci:
        return _minus(head)
    return _minus(f"{head} [{fmt(interval.low)}, {fmt(interval.high)}]")


def ceiling_text(x: float | None) -> str:
    """A ceiling without trailing zeros: ``100``, ``25``, ``33.33``; '' for None."""
    return "" if x is None else fmt(x).rstrip("0").rstrip(".")


def signed_ceiling_text(x: float) -> str:
    """A difference of ceilings with its sign: ``+50``, ``-25``, ``±0``."""
    c = ceiling_text(x)
    return c if c.startswith("-") else ("±0" if c == "0" else f"+{c}")


def with_ceiling(cell: Cell, ceiling: float | None, sign: bool = False) -> Cell:
    """``cell / ceiling`` (``+50`` for a difference of ceilings); the cell alone without one."""
    if ceiling is None or cell == DASH:
        return cell
    return cell + _minus(f" / {signed_ceiling_text(ceiling) if sign else ceiling_text(ceiling)}")


def ci_bounds(interval: Interval | None) -> list[str]:
    """``[low, high]`` for a CSV (four decimals), empty without an interval."""
    if interval is None or not interval.has_ci:
        return ["", ""]
    return [fmt(interval.low, 4), fmt(interval.high, 4)]


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


def _sentence(text_: str) -> str:
    return text_[:1].upper() + text_[1:] + "." if text_ else ""


def shown_mean(stats: SeedStats, interval: Interval | None, metric: str) -> float | None:
    """The mean a table shows: over the seeds' ``metrics.json`` values, else the interval's estimate."""
    if stats.metric_values(metric):
        return stats.metric_mean(metric)
    return interval.estimate if interval is not None else None


def accuracy_cells(t, tree: ResultsTree, dataset: str, variant: str, label: Cell, missing: str,
                   metrics: tuple[str, ...] = ("top1", "top5"),
                   ceilings: bool = False) -> tuple[Cell, list[Cell], str, dict]:
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
    marks = {
        CLIPS: ("single", "one seed: the 95 % CI is a bootstrap over test clips only (no seed-to-seed "
                          "variation)."),
        T: ("tci", "no usable `predictions.csv`: the 95 % CI is a t-interval over the seeds' accuracies."),
        NONE: ("noci", "one seed and no usable `predictions.csv`: no interval."),
    }
    out = []
    for m, cell in zip(metrics, cells):
        iv = intervals[m]
        method = iv.method if iv is not None else NONE
        out.append(cell + t.notes.mark(*marks[method]) if method in marks and cell != DASH else cell)
    note = "one seed" if stats.n == 1 else ""
    if any(iv is not None and iv.method in (T, NONE) for iv in intervals.values()):
        note = "; ".join(x for x in (note, "no predictions") if x)
    return label, out, note, intervals


class Notes:
    """Footnotes: a marker per kind, in order of first use, then plain notes."""

    SYMBOLS = (("†", r"\textdagger"), ("‡", r"\textdaggerdbl"), ("§", r"\S"), ("¶", r"\P"),
               ("‖", r"\textbardbl"))

    def __init__(self) -> None:
        self.marked: dict[str, tuple[int, str]] = {}
        self.plain: list[str] = []

    def mark(self, key: str, note: str) -> Cell:
        if key not in self.marked:
            self.marked[key] = (len(self.marked), note)
        i = self.marked[key][0]
        md, tex = self.SYMBOLS[i] if i < len(self.SYMBOLS) else (f"[{i + 1}]", f"[{i + 1}]")
        return Cell(md, rf"\textsuperscript{{{tex}}}")

    def add(self, note: str) -> None:
        if note not in self.plain:
            self.plain.append(note)

    def lines(self) -> list[tuple[Cell, str]]:
        """(marker, text) in order: marked notes first, then the plain ones (empty marker)."""
        out = []
        for key, (i, note) in sorted(self.marked.items(), key=lambda kv: kv[1][0]):
            out.append((self.mark(key, note), note))
        return out + [(Cell("", ""), note) for note in self.plain]


def _tex_inline(note: str) -> str:
    """A note's text for LaTeX: `code` spans become \\texttt, the rest is escaped."""
    parts = note.split("`")
    return "".join(tex_escape(p) if i % 2 == 0 else rf"\texttt{{{tex_escape(p)}}}" for i, p in enumerate(parts))


# --------------------------------------------------------------------------- the table

@dataclass
class Table:
    stem: str  # file name without extension, e.g. "ablation_synthetic"
    caption: str  # plain text; `code` spans allowed
    header: list[Cell]
    align: str  # one of l/c/r per column
    rows: list[list[Cell]] = field(default_factory=list)
    notes: Notes = field(default_factory=Notes)
    csv_header: list[str] = field(default_factory=list)
    csv_rows: list[list[str]] = field(default_factory=list)
    rule_before: set[int] = field(default_factory=set)  # row indices that start a group (LaTeX \midrule)
    generator: str = "mienet report"  # the command named in the LaTeX file's first line

    def _body(self) -> list[list[Cell]]:
        if self.rows:
            return self.rows
        return [[DASH] * len(self.header)]

    def markdown(self) -> str:
        cells = [[c.md for c in self.header]] + [[c.md for c in row] for row in self._body()]
        widths = [max(len(r[i]) for r in cells) for i in range(len(self.header))]
        rule = {"l": lambda w: "-" * w, "c": lambda w: ":" + "-" * (w - 2) + ":",
                "r": lambda w: "-" * (w - 1) + ":"}

        def line(row):
            return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |"

        out = [self.caption, "", line(cells[0]),
               "| " + " | ".join(rule[a](max(w, 3)) for a, w in zip(self.align, widths)) + " |"]
        out += [line(r) for r in cells[1:]]
        notes = self.notes.lines()
        for m, n in notes:  # a paragraph each: no trailing-space line breaks
            out += ["", f"{m.md} {n}".strip()]
        return "\n".join(out) + "\n"

    def latex(self) -> str:
        out = [
            f"% Generated by `{self.generator}`; needs \\usepackage{{booktabs,amssymb}}.",
            "\\begin{table}[t]",
            "  \\centering",
            "  \\small",
            f"  \\caption{{{_tex_inline(self.caption)}}}",
            f"  \\label{{tab:{self.stem.replace('_', '-')}}}",
            f"  \\begin{{tabular}}{{{self.align}}}",
            "    \\toprule",
            "    " + " & ".join(c.tex for c in self.header) + " \\\\",
            "    \\midrule",
        ]
        for i, row in enumerate(self._body()):
            if i in self.rule_before and i > 0:
                out.append("    \\midrule")
            out.append("    " + " & ".join(c.tex for c in row) + " \\\\")
        out += ["    \\bottomrule", "  \\end{tabular}"]
        notes = self.notes.lines()
        if notes:
            out.append("  \\par\\smallskip")
            out.append("  {\\footnotesize")
            out += [f"  {m.tex}{_tex_inline(n)}\\par" for m, n in notes]
            out.append("  }")
        out.append("\\end{table}")
        return "\n".join(out) + "\n"

    def csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.csv_header)
        writer.writerows(self.csv_rows)
        return buf.getvalue()

    def write(self, tables_dir: str | Path) -> dict[str, Path]:
        """``<tables_dir>/<stem>.{md,tex,csv}``, each written atomically; the paths by extension."""
        from mienet.io import write_text_atomic
        from mienet.report import TABLE_FORMATS

        paths = {}
        for ext, body in zip(TABLE_FORMATS, (self.markdown(), self.latex(), self.csv())):
            paths[ext] = Path(tables_dir) / f"{self.stem}.{ext}"
            write_text_atomic(paths[ext], body)
        return paths


# --------------------------------------------------------------------------- helpers

def switches(variant: str) -> dict[str, bool] | None:
    """RGB / PA / AFM / DPTAM of a variant, from :data:`mienet.registry.variants.VARIANTS`."""
    v = VARIANTS.get(variant)
    if v is None:
        return None
    return {
        "rgb": v.backbone_input in ("rgb", "concat", "afm"),
        "pa": v.uses_pa,
        "afm": v.backbone_input == "afm",
        "dptam": v.dptam,
    }


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


def variant_cell(variant: str) -> Cell:
    """``MIE-Net (`mienet`)``; just the code name for a variant without a display name."""
    if variant not in VARIANT_NAMES:
        return code(variant)
    return text(f"{variant_name(variant)} (") + code(variant) + text(")")


def _protocol_note(tree: ResultsTree, dataset: str) -> str | None:
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


# --------------------------------------------------------------------------- ablation

def ablation_table(tree: ResultsTree, dataset: str) -> Table:
    name = dataset_name(dataset)
    factors = list(tree.factor_design(dataset))
    shown = [v for v in tree.variants(dataset) if v in VARIANTS or tree.stats(dataset, v).n]
    has_ceiling = any(tree.stats(dataset, v).ceiling() is not None for v in shown)
    splits = split_text(tree, dataset)
    t = Table(
        stem=f"ablation_{dataset}",
        caption=f"Ablation on {name}: top-1 and top-5 accuracy, {seeds_phrase(tree, dataset)}; "
                f"{ci_words(tree, dataset)}." + (f" {_sentence(splits)}" if splits else ""),
        header=[text("variant"), text("RGB"), text("PA"), text("AFM"), text("DPTAM"), text("seeds"),
                text("top-1 (%) [95 % CI]"), *([text("ceiling (%)")] if has_ceiling else []),
                text("top-5 (%) [95 % CI]"), text("params (M)"), text("GFLOPs")],
        align="lccccrr" + ("r" if has_ceiling else "") + "rrr",
        csv_header=["dataset", "variant", "model", "rgb", "pa", "afm", "dptam", "seeds", "n_seeds",
                    "top1_mean", "top1_std", "top1_ci95_low", "top1_ci95_high", "ceiling_top1",
                    "top5_mean", "top5_std", "top5_ci95_low", "top5_ci95_high", "params_m", "gflops",
                    "split", "selection_split", "ci_method",
                    *[f"{f}_{col}" for f in factors for col in ("top1", "ci95_low", "ci95_high", "ceiling")],
                    "note"],
    )
    for variant in shown:
        stats = tree.stats(dataset, variant)
        sw = switches(variant)
        flags = [CHECK if sw[k] else CROSS for k in ("rgb", "pa", "afm", "dptam")] if sw else [text("?")] * 4
        label, (top1, top5), note, iv = accuracy_cells(
            t, tree, dataset, variant, variant_cell(variant),
            missing=f"not run: no `{dataset}/<variant>/seed<k>/metrics.json` for this variant; shown as a dash.")
        if sw is None:
            label = label + t.notes.mark("unknown", "not one of the seven ablation variants of `docs/mie-net.md`; "
                                                    "switches unknown (?).")
        params, gflops = as_number(stats.first("params_m")), as_number(stats.first("gflops"))
        ceiling = stats.ceiling()
        seeds = " ".join(str(r.seed) for r in stats.runs)
        scored, chosen = stats.splits()
        t.rows.append([label, *flags, text(stats.n) if stats.n else DASH, top1,
                       *([text(ceiling_text(ceiling)) if ceiling is not None else DASH] if has_ceiling else []),
                       top5, num(params), num(gflops)])
        factor_cols = []
        for f in factors:
            fi = accuracy_interval(tree, dataset, variant, f)
            factor_cols += [fmt(shown_mean(stats, fi, f), 4), *ci_bounds(fi), fmt(stats.ceiling(f), 4)]
        t.csv_rows.append([
            dataset, variant, variant_name(variant),
            *([str(int(sw[k])) for k in ("rgb", "pa", "afm", "dptam")] if sw else [""] * 4),
            seeds, str(stats.n), fmt(stats.mean("top1"), 4), fmt(stats.std("top1"), 4), *ci_bounds(iv["top1"]),
            fmt(ceiling, 4), fmt(stats.mean("top5"), 4), fmt(stats.std("top5"), 4), *ci_bounds(iv["top5"]),
            fmt(params, 4), fmt(gflops, 4), " ".join(scored), " ".join(chosen),
            method_text(iv["top1"].method) if iv["top1"] is not None else "", *factor_cols, note,
        ])
    if has_ceiling:
        t.notes.add("Ceiling: the best top-1 the variant can reach on this dataset's design, by construction "
                    "(`ceiling` of `metrics.json`; the factor table breaks it down).")
    protocol = _protocol_note(tree, dataset)
    if protocol:
        t.notes.add(protocol)
    else:
        t.notes.add(f"No runs of {name} found: every row is a dash.")
    return t


# --------------------------------------------------------------------------- module effects

def effects_table(tree: ResultsTree, dataset: str) -> Table:
    """:data:`mienet.report.EFFECTS` on ``dataset``: paired top-1 differences with their 95 % CI,
    and, with a factor design, the difference of the ceilings and the per-factor differences."""
    name = dataset_name(dataset)
    factors = list(tree.factor_design(dataset))
    effects = module_effects(tree, dataset)
    margin = tree.machine_margins.get(dataset)
    splits = split_text(tree, dataset)
    header = [text("module"), text("a − b"), text("what changes"), text("seeds"),
              text("Δ top-1 (points) [95 % CI]"), text("resolved")]
    if factors:
        header += [text("Δ ceiling"), *[text(f"Δ {f} [95 % CI] / Δ ceiling") for f in factors]]
    t = Table(
        stem=f"effects_{dataset}",
        caption=f"Module effects on {name}: Δ = top-1 of variant a minus variant b in points, paired by seed "
                f"and test clip (the seeds both ran); 95 % CI: hierarchical bootstrap over the shared seeds and "
                f"test clips ({REPLICATES} replicates); resolved: the CI excludes 0."
                + (f" {_sentence(splits)}" if splits else ""),
        header=header,
        align="lllcrc" + ("r" * (1 + len(factors)) if factors else ""),
        csv_header=["effect", "variant_a", "variant_b", "delta_top1", "ci95_low", "ci95_high", "resolved",
                    "machine_sensitive", "n_seeds", "split",
                    *(["delta_ceiling"] if factors else []),
                    *[f"{f}_{col}" for f in factors
                      for col in ("delta", "ci95_low", "ci95_high", "resolved", "delta_ceiling")],
                    "seeds", "n_clips", "ci_method", "explanation", "note"],
    )
    previous = None
    for e in effects:
        if e.effect != previous and previous is not None:
            t.rule_before.add(len(t.rows))
        previous = e.effect
        label = code(e.variant_a) + text(" − ") + code(e.variant_b)
        note = ""
        if e.missing:
            label = label + t.notes.mark("missing", "a variant of the pair has no seed runs on this dataset: "
                                                    "no effect (dashes).")
            note = "not run: " + " ".join(e.missing)
        elif not e.seeds:
            label = label + t.notes.mark("noshared", "the two variants share no seed: no paired effect.")
            note = "no shared seed"
        delta = _effect_cell(t, e)
        runs = [r for v in (e.variant_a, e.variant_b) for r in tree.runs.get((dataset, v), []) if r.seed in e.seeds]
        scored = sorted({r.split for r in runs} - {None})
        verdict = _resolved_cell(e.resolved)
        sensitive = e.machine_sensitive(margin)
        if sensitive:
            verdict = verdict + t.notes.mark(
                "machine", f"machine-sensitive: an end of the CI lies within {margin:g} points of 0, and "
                           f"another CPU, thread count or precision moved a mean effect of this recipe by up to "
                           f"{margin:g} points (params.yaml `datasets.{dataset}.machine_margin`, measured with "
                           "`workflow/scripts/repro_matrix.py`): the verdict may differ on another machine.")
        row = [text(e.effect), label, text(e.explanation), text(len(e.seeds)) if e.seeds else DASH, delta,
               verdict]
        csv_row = [e.effect, e.variant_a, e.variant_b, fmt(e.delta, 4), *ci_bounds(e.interval),
                   _resolved_text(e.resolved), _resolved_text(sensitive), str(len(e.seeds)), " ".join(scored)]
        if factors:
            dc = ceiling_delta(tree, dataset, e.variant_a, e.variant_b)
            row.append(_signed_ceiling(dc))
            csv_row.append(fmt(dc, 4))
            for f in factors:
                fe = module_effect(tree, dataset, e, f)
                fdc = ceiling_delta(tree, dataset, e.variant_a, e.variant_b, f)
                row.append(with_ceiling(_effect_cell(t, fe), fdc, sign=True))
                csv_row += [fmt(fe.delta, 4), *ci_bounds(fe.interval), _resolved_text(fe.resolved), fmt(fdc, 4)]
        iv = e.interval
        csv_row += [" ".join(map(str, e.seeds)), str(iv.n_clips) if iv is not None and iv.n_clips else "",
                    method_text(iv.method) if iv is not None else "", e.explanation, note]
        t.rows.append(row)
        t.csv_rows.append(csv_row)
    if factors:
        t.notes.add("Δ ceiling: the ceiling of a minus that of b, the largest difference the dataset's design "
                    "allows; a factor's cell: its paired Δ [95 % CI] / Δ of its ceilings.")
    if not any(e.interval is not None for e in effects):
        t.notes.add(f"No effect can be computed on {name} yet: every row is a dash.")
    protocol = _protocol_note(tree, dataset)
    if protocol:
        t.notes.add(protocol)
    return t


def module_effect(tree: ResultsTree, dataset: str, e: Effect, metric: str) -> Effect:
    """The effect ``e`` on another metric (a factor)."""
    return effect(tree, dataset, e.variant_a, e.variant_b, metric, e.effect, e.explanation)


def _effect_cell(t: Table, e: Effect) -> Cell:
    cell = ci(e.delta, e.interval, sign=True)
    iv = e.interval
    if iv is None or cell == DASH:
        return cell
    if iv.method == CLIPS:
        cell = cell + t.notes.mark("single", "one shared seed: the 95 % CI is a bootstrap over test clips only.")
    elif iv.method == T:
        cell = cell + t.notes.mark("tci", "no usable `predictions.csv`: the 95 % CI is a paired t-interval over "
                                          "the shared seeds.")
    elif iv.method == NONE:
        cell = cell + t.notes.mark("noci", "one shared seed and no usable `predictions.csv`: no interval.")
    return cell


def _resolved_text(resolved: bool | None) -> str:
    return "" if resolved is None else ("yes" if resolved else "no")


def _resolved_cell(resolved: bool | None) -> Cell:
    if resolved is None:
        return DASH
    return Cell("**resolved**", r"\textbf{resolved}") if resolved else text("unresolved")


def _signed_ceiling(x: float | None) -> Cell:
    return DASH if x is None else _minus(signed_ceiling_text(x))


# --------------------------------------------------------------------------- per-factor breakdown

def factors_table(tree: ResultsTree, dataset: str) -> Table:
    """Per variant: top-1 and the accuracy of every factor of the dataset's design, each with its
    95 % CI and ceiling; a one-line table when no run has a factor design."""
    name = dataset_name(dataset)
    design = tree.factor_design(dataset)
    factors = list(design)
    splits = split_text(tree, dataset)
    base_csv = ["dataset", "variant", "n_seeds", "split", "selection_split", "top1_mean", "top1_ci95_low",
                "top1_ci95_high", "ceiling_top1"]
    if not factors:
        t = Table(
            stem=f"factors_{dataset}",
            caption=f"Per-factor accuracy on {name}: no factor design for this dataset.",
            header=[text("variant"), text("top-1 (%) [95 % CI] / ceiling"), text("factors")],
            align="lrl",
            csv_header=[*base_csv, "ci_method", "note"],
        )
        t.notes.add(f"No factor design for this dataset: no run of {name} has `factor_design` or `factors` "
                    "in its `metrics.json`.")
        return t
    t = Table(
        stem=f"factors_{dataset}",
        caption=f"Per-factor accuracy on {name}: a factor counts as right when the predicted class has the true "
                f"class's level of it; {seeds_phrase(tree, dataset)}; {ci_words(tree, dataset)}; after the slash the "
                "variant's ceiling." + (f" {_sentence(splits)}" if splits else ""),
        header=[text("variant"), text("seeds"), text("top-1 (%) [95 % CI] / ceiling"),
                *[text(f"{f} (%) [95 % CI] / ceiling") for f in factors]],
        align="lr" + "r" * (1 + len(factors)),
        csv_header=[*base_csv, *[f"{f}_{col}" for f in factors for col in ("top1", "ci95_low", "ci95_high",
                                                                            "ceiling")],
                    "ci_method", "note"],
    )
    metrics = ("top1", *factors)
    for variant in tree.variants(dataset):
        stats = tree.stats(dataset, variant)
        if variant not in VARIANTS and stats.n == 0:
            continue
        label, cells, note, iv = accuracy_cells(
            t, tree, dataset, variant, variant_cell(variant), metrics=metrics, ceilings=True,
            missing=f"not run: no `{dataset}/<variant>/seed<k>/metrics.json` for this variant; shown as a dash.")
        row, csv_cols = [label, text(stats.n) if stats.n else DASH], []
        for m, cell in zip(metrics, cells):
            ceiling = stats.ceiling(m)
            if at_ceiling(iv[m], ceiling):
                cell = cell + t.notes.mark("at", "at the ceiling: the 95 % CI reaches what the design allows "
                                                 "this variant.")
            row.append(cell)
            csv_cols += [fmt(shown_mean(stats, iv[m], m), 4), *ci_bounds(iv[m]), fmt(ceiling, 4)]
        scored, chosen = stats.splits()
        t.rows.append(row)
        t.csv_rows.append([dataset, variant, str(stats.n), " ".join(scored), " ".join(chosen), *csv_cols,
                           method_text(iv["top1"].method) if iv["top1"] is not None else "", note])
    for f, desc in design.items():
        if desc:
            t.notes.add(f"`{f}`: {desc.rstrip('.')}.")
    t.notes.add("Ceiling: the best accuracy the variant can reach on this design by construction (`ceiling` of "
                "`metrics.json`); chance on a factor the variant cannot see.")
    protocol = _protocol_note(tree, dataset)
    if protocol:
        t.notes.add(protocol)
    return t


# --------------------------------------------------------------------------- comparison

def comparison_table(tree: ResultsTree, dataset: str, published: tuple[PublishedRow, ...]) -> Table:
    name = dataset_name(dataset)
    t = Table(
        stem=f"comparison_{dataset}",
        caption=f"{name}: the published numbers next to what this project measured.",
        header=[text("source"), text("model"), text("variant"), text("frames"), text("seeds"),
                text("top-1 (%) [95 % CI]"), text("top-5 (%) [95 % CI]"), text("Δ top-1 vs reported")],
        align="lllcrrrr",
        csv_header=["dataset", "source", "model", "variant", "frames", "n_seeds", "top1", "top1_std",
                    "top1_ci95_low", "top1_ci95_high", "top5", "top5_std", "top5_ci95_low", "top5_ci95_high",
                    "delta_top1_vs_reported", "note"],
    )
    reported = [p for p in published if p.dataset == dataset]
    for p in reported:
        variant = DASH
        if p.counterpart:
            variant = code(p.counterpart)
            if p.model == "DPTAM" and p.counterpart == "fusion_dptam":
                variant = variant + t.notes.mark(
                    "dptam", "The model zoo's DPTAM rows take T+T*4 frames, so they consume the PA frames: "
                             "most likely `fusion_dptam` (MIE-Net without AFM), not `dptam` "
                             "(working assumption of `docs/mie-net.md`).")
        source = REPORTED if p.source == "paper/README" else f"reported ({p.source})"
        t.rows.append([text(source), text(p.model), variant, text(p.frames), DASH, text(p.top1),
                       text(p.top5) if p.top5 else DASH, DASH])
        t.csv_rows.append([dataset, source, p.model, p.counterpart or "", p.frames, "", p.top1, "", "", "",
                           p.top5, "", "", "", "", ""])
    t.rule_before.add(len(t.rows))
    wanted = {p.counterpart for p in reported if p.counterpart} | {"mienet"}
    for variant in tree.variants(dataset):
        stats = tree.stats(dataset, variant)
        if stats.n == 0 and variant not in wanted:
            continue
        ref = next((p for p in reported if p.counterpart == variant), None)
        m1 = stats.mean("top1")
        delta = m1 - float(ref.top1) if ref is not None and m1 is not None else None
        label, (top1, top5), note, iv = accuracy_cells(
            t, tree, dataset, variant, code(variant),
            missing=f"not run: no `{dataset}/<variant>/seed<k>/metrics.json` for this variant.")
        frames = stats_frames(stats, variant)
        t.rows.append([text(MEASURED), text(variant_name(variant)), label, text(frames) if frames else DASH,
                       text(stats.n) if stats.n else DASH, top1, top5, signed(delta)])
        t.csv_rows.append([dataset, MEASURED, variant_name(variant), variant, frames, str(stats.n),
                           fmt(m1, 4), fmt(stats.std("top1"), 4), *ci_bounds(iv["top1"]),
                           fmt(stats.mean("top5"), 4), fmt(stats.std("top5"), 4), *ci_bounds(iv["top5"]),
                           fmt(delta, 4), note])
    measured = (f"Measured rows: {seeds_phrase(tree, dataset)}; {ci_words(tree, dataset)}"
                + (f"; {split_text(tree, dataset)}" if split_text(tree, dataset) else "") + ".")
    if reported:
        t.notes.add(f"Reported rows: {SOURCE}. {measured} Δ is the measured mean minus the reported top-1 of "
                    "the same variant.")
    else:
        t.notes.add(f"No published numbers exist for {name}: only this project's measurements are shown. "
                    + measured)
    t.notes.add("Frames in the paper's notation: T+T*L is T RGB frames plus the T×L frames PA looks at; "
                "a variant without PA shows T.")
    protocol = _protocol_note(tree, dataset)
    if protocol:
        t.notes.add(protocol)
    return t


# --------------------------------------------------------------------------- search

def format_params(params: dict) -> str:
    def one(v):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return str(v)
        if isinstance(v, int):
            return str(v)
        return f"{v:.4g}"
    return ", ".join(f"{k}={one(params[k])}" for k in sorted(params))


def search_table(tree: ResultsTree, datasets: list[str]) -> Table:
    t = Table(
        stem="search",
        caption="Hyper-parameter search (Optuna): the best trial, the trials' fate, the epochs pruning saved, "
                "and the final training with the best parameters against the untuned seed runs.",
        header=[text("dataset"), text("variant"), text("trials (complete/pruned/failed)"), text("best value"),
                text("best parameters"), text("epochs saved (%)"), text("default top-1 [95 % CI]"),
                text("tuned top-1"), text("Δ top-1")],
        align="llrrlrrrr",
        csv_header=["dataset", "variant", "study", "n_trials", "complete", "pruned", "failed", "best_value",
                    "default_value", "best_params", "epochs_trained", "epochs_without_pruning",
                    "epochs_saved_pct", "default_top1_mean", "default_top1_ci95_low",
                    "default_top1_ci95_high", "default_n_seeds", "tuned_top1", "delta_top1"],
    )
    for dataset, variant, search, tuned in tree.searched(datasets):
        s = search.summary if search else {}
        stats = tree.stats(dataset, variant)
        default, tuned_top1 = stats.mean("top1"), tuned.top1 if tuned else None
        delta = tuned_top1 - default if tuned_top1 is not None and default is not None else None
        label = code(variant)
        if search is None:
            label = label + t.notes.mark("nosummary", f"a tuned run without "
                                                      f"`search/<variant>/summary.json`.")
        counts = [s.get(k) for k in ("n_trials", "complete", "pruned", "failed")]
        trials = (f"{counts[0]} ({counts[1]}/{counts[2]}/{counts[3]})"
                  if all(isinstance(c, int) for c in counts) else None)
        best = as_number(s.get("best_value"))
        params = s.get("best_params") if isinstance(s.get("best_params"), dict) else None
        saved = as_number(s.get("epochs_saved_pct"))
        default_iv = accuracy_interval(tree, dataset, variant)
        if stats.n:
            _, (default_cell,), _, _ = accuracy_cells(t, tree, dataset, variant, label, "", metrics=("top1",))
        else:
            default_cell = DASH
        if default is None and tuned_top1 is not None:
            default_cell = default_cell + t.notes.mark(
                "nodefault", "no seed runs with the default parameters to compare with.")
        t.rows.append([text(dataset_name(dataset)), label, text(trials) if trials else DASH, num(best),
                       text(format_params(params)) if params else DASH, num(saved, 1), default_cell,
                       num(tuned_top1), signed(delta)])
        t.csv_rows.append([
            dataset, variant, str(s.get("study_name") or s.get("study") or ""),
            *["" if c is None else str(c) for c in counts],
            fmt(best, 4), fmt(as_number(s.get("default_value")), 4),
            json.dumps(params, sort_keys=True) if params else "",
            str(s.get("epochs_trained", "")), str(s.get("epochs_without_pruning", "")), fmt(saved, 2),
            fmt(default, 4), *ci_bounds(default_iv), str(stats.n), fmt(tuned_top1, 4), fmt(delta, 4),
        ])
    if not t.rows:
        t.notes.add("No search results found (`<dataset>/search/<variant>/summary.json`).")
    else:
        metrics = sorted({str(tree.searches[k].summary.get("metric") or "val_top1") for k in tree.searches
                          if k[0] in datasets})
        t.notes.add(f"Best value: the study's objective (`{'`, `'.join(metrics or ['val_top1'])}`, validation "
                    "top-1 in percent) of its best trial. Default top-1: "
                    f"top-1 of the seed runs with the default parameters (mean over seeds; {CI_WORDS}); "
                    "tuned top-1: "
                    "the final training with the best parameters (`<variant>/tuned`). Epochs saved: epochs pruning "
                    "did not train, out of the epochs every trial would have trained unpruned.")
    return t


# --------------------------------------------------------------------------- efficiency

BENCH_MATCH = ("variant", "arch", "segments", "size", "frames_per_segment")


def bench_order(record: dict) -> tuple:
    return (
        list(VARIANTS).index(record["variant"]) if record.get("variant") in VARIANTS else len(VARIANTS),
        str(record.get("variant")), str(record.get("arch")), int(as_number(record.get("segments")) or 0),
        int(as_number(record.get("size")) or 0), int(as_number(record.get("batch")) or 0),
        str(record.get("device")), record.get("_file", ""),
    )


def efficiency_table(tree: ResultsTree, datasets: list[str]) -> Table:
    t = Table(
        stem="efficiency",
        caption="Efficiency: parameters and GFLOPs per clip of the evaluated models, and training clips per "
                "second from `mienet bench train` where it was run.",
        header=[text("dataset"), text("variant"), text("frames"), text("size"), text("params (M)"),
                text("GFLOPs"), text("device"), text("batch"), text("train clips/s"),
                text("eager fp32 clips/s"), text("speedup"), text("TFLOP/s"), text("data wait"),
                text("inference clips/s")],
        align="llcrrrlrrrrrrr",
        csv_header=["dataset", "variant", "arch", "frames", "size", "params_m", "gflops", "device",
                    "device_name", "speed_name", "batch", "clips_per_s", "eager_fp32_clips_per_s", "speedup",
                    "tflops", "data_wait_share", "inference_clips_per_s", "bench_file", "note"],
    )
    bench = sorted(tree.bench, key=bench_order)
    used: set[str] = set()

    def add(dataset_cell: Cell, dataset: str, variant: str, arch, frames: str, size, params, gflops,
            record: dict | None, label: Cell, note: str = ""):
        if record is not None:
            used.add(record["_file"])
        r = record or {}
        clips, eager = as_number(r.get("clips_per_s")), as_number(r.get("eager_fp32_clips_per_s"))
        speedup, infer = as_number(r.get("speedup")), as_number(r.get("inference_clips_per_s"))
        tflops, wait = as_number(r.get("tflops")), as_number(r.get("data_wait_share"))  # gpu_summary.json
        device = str(r.get("device_name") or r.get("device") or "")
        t.rows.append([dataset_cell, label, text(frames) if frames else DASH,
                       text(size) if size not in (None, "") else DASH, num(params), num(gflops),
                       text(device) if device else DASH, text(r["batch"]) if r.get("batch") else DASH,
                       num(clips), num(eager), Cell(f"{speedup:.2f}×", rf"{speedup:.2f}$\times$")
                       if speedup is not None else DASH, num(tflops),
                       Cell(f"{100 * wait:.1f} %", rf"{100 * wait:.1f}\,\%") if wait is not None else DASH,
                       num(infer)])
        t.csv_rows.append([dataset, variant, str(arch or ""), frames, "" if size in (None, "") else str(size),
                           fmt(params, 4), fmt(gflops, 4), str(r.get("device", "")), str(r.get("device_name", "")),
                           str(r.get("speed_name", "")), str(r.get("batch", "")), fmt(clips, 2), fmt(eager, 2),
                           fmt(speedup, 3), fmt(tflops, 3), fmt(wait, 4), fmt(infer, 2), r.get("_file", ""), note])

    for dataset in datasets:
        for variant in tree.variants(dataset):
            stats = tree.stats(dataset, variant)
            if variant not in VARIANTS and stats.n == 0:
                continue
            label = code(variant)
            if stats.n == 0:
                label = label + t.notes.mark("missing", "not run: no metrics for this dataset, so no parameters "
                                                        "or GFLOPs at its shape.")
                add(text(dataset_name(dataset)), dataset, variant, None, "", None, None, None, None, label,
                    "not run")
                continue
            shape = {k: stats.first(k) for k in BENCH_MATCH[1:]}
            matches = [b for b in bench if b.get("variant") == variant
                       and all(str(b.get(k)) == str(shape[k]) for k in BENCH_MATCH[1:])]
            for record in matches or [None]:
                add(text(dataset_name(dataset)), dataset, variant, shape["arch"],
                    frames_label(variant, shape["segments"], shape["frames_per_segment"]), shape["size"],
                    as_number(stats.first("params_m")), as_number(stats.first("gflops")), record, label)
    for record in bench:
        if record["_file"] in used:
            continue
        label = code(str(record["variant"])) + t.notes.mark(
            "benchonly", "a benchmark whose shape (variant, backbone, segments, size) matches no evaluated run: "
                         "no parameters or GFLOPs from `metrics.json`.")
        add(DASH, "", str(record["variant"]), record.get("arch"),
            frames_label(str(record["variant"]), record.get("segments"), record.get("frames_per_segment")),
            record.get("size"), None, None, record, label, "benchmark only")
    notes = ("Clips per second: batch over the median training-step time of `mienet bench train` "
             "(forward, backward, SGD) on the default speed path; eager fp32: the released code's plain "
             "float32 path measured in the same run; speedup: their ratio. TFLOP/s: achieved model FLOPs "
             "(3 x forward per clip) per second on the default path. Data wait: the share of an end-to-end "
             "training epoch spent waiting for the loader (`mienet bench e2e`, in `gpu_summary.json`). "
             "Inference clips/s: a dash unless a benchmark reports it.")
    t.notes.add(notes)
    if not tree.bench:
        t.notes.add("No training benchmarks found (`bench/*.json`): the speed columns are dashes.")
    if tree.bench_skipped:
        t.notes.add(f"Not training-step benchmarks, left out: {', '.join(sorted(tree.bench_skipped))}.")
    return t
