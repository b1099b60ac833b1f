"""The paper's tables from the collected results, each as Markdown, LaTeX (booktabs) and CSV.

Every number has a fixed format (accuracies two decimals), rows come in a fixed order (the
seven ablation variants in the order of ``docs/mie-net.md``, datasets in the paper's order)
and nothing depends on time or machine: the same results give the same bytes. A run that is
absent is a dash with a footnote, never a dropped row.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from mienet.models.variants import VARIANTS
from mienet.report.collect import ResultsTree, SeedStats, as_number
from mienet.report.published import SOURCE, PublishedRow

DATASET_NAMES = {
    "synthetic": "Synthetic SLJ",
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
                "±": r"$\pm$", "×": r"$\times$", "—": "--", "Δ": r"$\Delta$"}


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


def mean_std(stats: SeedStats, key: str) -> Cell:
    """``mean ± std`` over seeds; just the mean for one seed; a dash for none."""
    m, s = stats.mean(key), stats.std(key)
    if m is None:
        return DASH
    if s is None:
        return text(fmt(m))
    return Cell(f"{m:.2f} ± {s:.2f}", rf"{m:.2f} $\pm$ {s:.2f}")


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


def mark_seeds(t, stats: SeedStats, label: Cell, missing: str, single: str) -> tuple[Cell, Cell, Cell, str]:
    """(label, top-1, top-5, CSV note) of a variant's row: a variant without runs gets the
    ``missing`` footnote on its label, one with a single seed the ``single`` one on its accuracies."""
    top1, top5 = mean_std(stats, "top1"), mean_std(stats, "top5")
    if stats.n == 0:
        return label + t.notes.mark("missing", missing), top1, top5, "not run"
    if stats.n == 1:
        mark = t.notes.mark("single", single)
        return label, top1 + mark, top5 + mark, "one seed"
    return label, top1, top5, ""


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
    """RGB / PA / AFM / DPTAM of a variant, from :data:`mienet.models.variants.VARIANTS`."""
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
    t = Table(
        stem=f"ablation_{dataset}",
        caption=f"Ablation on {name}: top-1 and top-5 accuracy, mean ± sample standard deviation over seeds.",
        header=[text("variant"), text("RGB"), text("PA"), text("AFM"), text("DPTAM"), text("seeds"),
                text("top-1 (%)"), text("top-5 (%)"), text("params (M)"), text("GFLOPs")],
        align="lccccrrrrr",
        csv_header=["dataset", "variant", "model", "rgb", "pa", "afm", "dptam", "seeds", "n_seeds",
                    "top1_mean", "top1_std", "top5_mean", "top5_std", "params_m", "gflops", "note"],
    )
    for variant in tree.variants(dataset):
        stats = tree.stats(dataset, variant)
        sw = switches(variant)
        flags = [CHECK if sw[k] else CROSS for k in ("rgb", "pa", "afm", "dptam")] if sw else [text("?")] * 4
        if variant not in VARIANTS and stats.n == 0:
            continue  # a folder with only a search or a tuned run of an unknown variant
        label, top1, top5, note = mark_seeds(
            t, stats, variant_cell(variant),
            missing=f"not run: no `{dataset}/<variant>/seed<k>/metrics.json` for this variant; shown as a dash.",
            single="one seed: the mean of a single run, no standard deviation.")
        if sw is None:
            label = label + t.notes.mark("unknown", "not one of the seven ablation variants of `docs/mie-net.md`; "
                                                    "switches unknown (?).")
        params, gflops = as_number(stats.first("params_m")), as_number(stats.first("gflops"))
        seeds = " ".join(str(r.seed) for r in stats.runs)
        t.rows.append([label, *flags, text(stats.n) if stats.n else DASH, top1, top5, num(params), num(gflops)])
        t.csv_rows.append([
            dataset, variant, variant_name(variant),
            *([str(int(sw[k])) for k in ("rgb", "pa", "afm", "dptam")] if sw else [""] * 4),
            seeds, str(stats.n), fmt(stats.mean("top1"), 4), fmt(stats.std("top1"), 4),
            fmt(stats.mean("top5"), 4), fmt(stats.std("top5"), 4), fmt(params, 4), fmt(gflops, 4), note,
        ])
    protocol = _protocol_note(tree, dataset)
    if protocol:
        t.notes.add(protocol)
    else:
        t.notes.add(f"No runs of {name} found: every row is a dash.")
    return t


# --------------------------------------------------------------------------- comparison

def comparison_table(tree: ResultsTree, dataset: str, published: tuple[PublishedRow, ...]) -> Table:
    name = dataset_name(dataset)
    t = Table(
        stem=f"comparison_{dataset}",
        caption=f"{name}: the published numbers next to what this project measured.",
        header=[text("source"), text("model"), text("variant"), text("frames"), text("seeds"),
                text("top-1 (%)"), text("top-5 (%)"), text("Δ top-1 vs reported")],
        align="lllcrrrr",
        csv_header=["dataset", "source", "model", "variant", "frames", "n_seeds", "top1", "top1_std",
                    "top5", "top5_std", "delta_top1_vs_reported", "note"],
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
        t.csv_rows.append([dataset, source, p.model, p.counterpart or "", p.frames, "", p.top1, "",
                           p.top5, "", "", ""])
    t.rule_before.add(len(t.rows))
    wanted = {p.counterpart for p in reported if p.counterpart} | {"mienet"}
    for variant in tree.variants(dataset):
        stats = tree.stats(dataset, variant)
        if stats.n == 0 and variant not in wanted:
            continue
        ref = next((p for p in reported if p.counterpart == variant), None)
        m1 = stats.mean("top1")
        delta = m1 - float(ref.top1) if ref is not None and m1 is not None else None
        label, top1, top5, note = mark_seeds(
            t, stats, code(variant),
            missing=f"not run: no `{dataset}/<variant>/seed<k>/metrics.json` for this variant.",
            single="one seed: no standard deviation.")
        frames = stats_frames(stats, variant)
        t.rows.append([text(MEASURED), text(variant_name(variant)), label, text(frames) if frames else DASH,
                       text(stats.n) if stats.n else DASH, top1, top5, signed(delta)])
        t.csv_rows.append([dataset, MEASURED, variant_name(variant), variant, frames, str(stats.n),
                           fmt(m1, 4), fmt(stats.std("top1"), 4), fmt(stats.mean("top5"), 4),
                           fmt(stats.std("top5"), 4), fmt(delta, 4), note])
    if reported:
        t.notes.add(f"Reported rows: {SOURCE}. Measured rows: mean ± sample standard deviation over seeds; "
                    "Δ is the measured mean minus the reported top-1 of the same variant.")
    else:
        t.notes.add(f"No published numbers exist for {name}: only this project's measurements are shown.")
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
                text("best parameters"), text("epochs saved (%)"), text("default top-1"),
                text("tuned top-1"), text("Δ top-1")],
        align="llrrlrrrr",
        csv_header=["dataset", "variant", "study", "n_trials", "complete", "pruned", "failed", "best_value",
                    "default_value", "best_params", "epochs_trained", "epochs_without_pruning",
                    "epochs_saved_pct", "default_top1_mean", "default_n_seeds", "tuned_top1", "delta_top1"],
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
        default_cell = mean_std(stats, "top1")
        if default is not None and stats.n == 1:
            default_cell = default_cell + t.notes.mark("single", "one seed: no standard deviation.")
        elif default is None and tuned_top1 is not None:
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
            fmt(default, 4), str(stats.n), fmt(tuned_top1, 4), fmt(delta, 4),
        ])
    if not t.rows:
        t.notes.add("No search results found (`<dataset>/search/<variant>/summary.json`).")
    else:
        metrics = sorted({str(tree.searches[k].summary.get("metric") or "val_top1") for k in tree.searches
                          if k[0] in datasets})
        t.notes.add(f"Best value: the study's objective (`{'`, `'.join(metrics or ['val_top1'])}`, validation "
                    "top-1 in percent) of its best trial. Default top-1: "
                    "top-1 of the seed runs with the default parameters (mean ± sample std); tuned top-1: "
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
                text("eager fp32 clips/s"), text("speedup"), text("inference clips/s")],
        align="llcrrrlrrrrr",
        csv_header=["dataset", "variant", "arch", "frames", "size", "params_m", "gflops", "device",
                    "device_name", "speed_name", "batch", "clips_per_s", "eager_fp32_clips_per_s", "speedup",
                    "inference_clips_per_s", "bench_file", "note"],
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
        device = str(r.get("device_name") or r.get("device") or "")
        t.rows.append([dataset_cell, label, text(frames) if frames else DASH,
                       text(size) if size not in (None, "") else DASH, num(params), num(gflops),
                       text(device) if device else DASH, text(r["batch"]) if r.get("batch") else DASH,
                       num(clips), num(eager), Cell(f"{speedup:.2f}×", rf"{speedup:.2f}$\times$")
                       if speedup is not None else DASH, num(infer)])
        t.csv_rows.append([dataset, variant, str(arch or ""), frames, "" if size in (None, "") else str(size),
                           fmt(params, 4), fmt(gflops, 4), str(r.get("device", "")), str(r.get("device_name", "")),
                           str(r.get("speed_name", "")), str(r.get("batch", "")), fmt(clips, 2), fmt(eager, 2),
                           fmt(speedup, 3), fmt(infer, 2), r.get("_file", ""), note])

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
             "float32 path measured in the same run; speedup: their ratio. Inference clips/s: a dash "
             "unless a benchmark reports it.")
    t.notes.add(notes)
    if not tree.bench:
        t.notes.add("No training benchmarks found (`bench/*.json`): the speed columns are dashes.")
    if tree.bench_skipped:
        t.notes.add(f"Not training-step benchmarks, left out: {', '.join(sorted(tree.bench_skipped))}.")
    return t
