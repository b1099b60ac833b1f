"""A table of the report: a pandas DataFrame, one row added at a time, written by pandas.

Each row is added once (:meth:`Table.add`) with its shown cells (Markdown text: ``code`` spans,
``**bold**`` and footnote markers allowed) and its CSV values; :attr:`Table.frame` holds both,
under the column groups ``shown`` and ``csv``. The Markdown comes from
``DataFrame.to_markdown`` (tabulate), the LaTeX tabular from ``Styler.to_latex(hrules=True)``
(booktabs) and the CSV from ``DataFrame.to_csv``.

Two things pandas does not do are done here: the LaTeX of a shown cell (:func:`latex`: its
``escape="latex"`` leaves the Unicode signs of the tables (✓ − Δ ± × †) as they are, which
pdflatex refuses, and knows no ``code`` spans), and the float around the tabular, with the
table's footnotes under it (Styler has no footnotes and puts ``\\small`` after the caption).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mienet.io import write_text_atomic
from mienet.report.spec import TABLE_FORMATS

SHOWN, CSV = "shown", "csv"  # the column groups of Table.frame
DASH, CHECK, CROSS = "—", "✓", "✗"
MARKERS = ("†", "‡", "§", "¶", "‖")  # footnote markers, in order of first use; then [6], [7], ...
ALIGN = {"l": "left", "c": "center", "r": "right"}

_TEX = str.maketrans({
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
    "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}",
    ">": r"\textgreater{}", "|": r"\textbar{}", "±": r"$\pm$", "×": r"$\times$", "—": "--", "Δ": r"$\Delta$",
    "−": r"$-$", "✓": r"$\checkmark$", "✗": r"$\times$",
    **{m: rf"\textsuperscript{{{tex}}}" for m, tex in zip(MARKERS, (
        r"\textdagger", r"\textdaggerdbl", r"\S", r"\P", r"\textbardbl"))},
})
# A code span, bold, a numbered footnote marker, or the minus sign of a number.
_MARKUP = re.compile(r"`([^`]*)`|\*\*(.+?)\*\*|\[(\d+)\]|(?<![\w.])-(?=\d)")


def latex(text: str) -> str:
    """The LaTeX of a shown cell, caption or note: ``code`` is ``\\texttt``, ``**x**`` bold, a
    marker a superscript, the sign of a negative number a minus; the rest escaped."""
    out, pos = [], 0
    for m in _MARKUP.finditer(text):
        code, bold, number = m.groups()
        out.append(text[pos:m.start()].translate(_TEX))
        if code is not None:
            out.append(rf"\texttt{{{code.translate(_TEX)}}}")
        elif bold is not None:
            out.append(rf"\textbf{{{latex(bold)}}}")
        elif number is not None:
            out.append(rf"\textsuperscript{{[{number}]}}")
        else:
            out.append("$-$")
        pos = m.end()
    return "".join(out) + text[pos:].translate(_TEX)


class Notes:
    """Footnotes: a marker per kind, in order of first use, then plain notes."""

    def __init__(self) -> None:
        self.marked: dict[str, tuple[int, str]] = {}
        self.plain: list[str] = []

    def mark(self, key: str, note: str) -> str:
        """The marker of the note ``key`` (``note`` on first use)."""
        if key not in self.marked:
            self.marked[key] = (len(self.marked), note)
        i = self.marked[key][0]
        return MARKERS[i] if i < len(MARKERS) else f"[{i + 1}]"

    def add(self, note: str | None) -> None:
        """A plain note, once; None or '' adds nothing."""
        if note and note not in self.plain:
            self.plain.append(note)

    def lines(self) -> list[tuple[str, str]]:
        """(marker, text) in order: marked notes first, then the plain ones (empty marker)."""
        marked = sorted(self.marked.items(), key=lambda kv: kv[1][0])
        return [(self.mark(key, note), note) for key, (_, note) in marked] + [("", n) for n in self.plain]


@dataclass
class Table:
    stem: str  # file name without extension, e.g. "ablation_synthetic"
    caption: str  # Markdown text: `code` spans allowed
    header: list[str]  # the shown columns
    align: str  # one of l/c/r per shown column
    csv_columns: list[str]
    generator: str = "mienet report"  # the command named in the LaTeX file's first line
    notes: Notes = field(default_factory=Notes)
    rows: list[dict] = field(default_factory=list, repr=False)  # Table.frame's records
    group_starts: set[int] = field(default_factory=set)  # rows after a LaTeX \midrule

    def add(self, cells: list[str], values: dict[str, str]) -> None:
        """One row: its shown ``cells`` (one per header column) and its CSV ``values`` by column."""
        if len(cells) != len(self.header):
            raise ValueError(f"{self.stem}: {len(cells)} cells for {len(self.header)} columns")
        if set(values) != set(self.csv_columns):
            raise ValueError(f"{self.stem}: CSV values differ from its columns in "
                             f"{sorted(set(values) ^ set(self.csv_columns))}")
        self.rows.append({**{(SHOWN, h): c for h, c in zip(self.header, cells)},
                          **{(CSV, c): values[c] for c in self.csv_columns}})

    def start_group(self) -> None:
        """The next row starts a group (a rule above it in LaTeX)."""
        self.group_starts.add(len(self.rows))

    @property
    def frame(self) -> pd.DataFrame:
        columns = pd.MultiIndex.from_tuples([(SHOWN, h) for h in self.header] + [(CSV, c) for c in self.csv_columns])
        return pd.DataFrame.from_records(self.rows, columns=columns)

    def shown(self) -> pd.DataFrame:
        """The shown cells; a table without rows shows one row of dashes."""
        if not self.rows:
            return pd.DataFrame([[DASH] * len(self.header)], columns=self.header)
        return self.frame[SHOWN]

    def markdown(self) -> str:
        body = self.shown().map(lambda cell: cell.replace("|", r"\|")).to_markdown(
            index=False, tablefmt="pipe", colalign=[ALIGN[a] for a in self.align], disable_numparse=True)
        notes = [f"{marker} {note}".strip() for marker, note in self.notes.lines()]
        return "\n\n".join([self.caption, body, *notes]) + "\n"

    def tabular(self) -> list[str]:
        """The booktabs tabular of Styler.to_latex, a rule above each group, indented."""
        styler = self.shown().style.hide(axis="index").format(latex).format_index(latex, axis=1)
        lines = styler.to_latex(hrules=True, column_format=self.align).splitlines()
        body = lines.index(r"\midrule") + 1
        for i in sorted(self.group_starts, reverse=True):
            if 0 < i < len(self.rows):
                lines.insert(body + i, r"\midrule")
        return [("  " if line.startswith(("\\begin{tabular}", "\\end{tabular}")) else "    ") + line
                for line in lines]

    def latex(self) -> str:
        out = [f"% Generated by `{self.generator}`; needs \\usepackage{{booktabs,amssymb}}.",
               "\\begin{table}[t]", "  \\centering", "  \\small", f"  \\caption{{{latex(self.caption)}}}",
               f"  \\label{{tab:{self.stem.replace('_', '-')}}}", *self.tabular()]
        notes = self.notes.lines()
        if notes:
            out += ["  \\par\\smallskip", "  {\\footnotesize"]
            out += [f"  {latex(marker)}{latex(note)}\\par" for marker, note in notes]
            out.append("  }")
        out.append("\\end{table}")
        return "\n".join(out) + "\n"

    def csv(self) -> str:
        return self.frame[CSV].to_csv(index=False, lineterminator="\n")

    def write(self, tables_dir: str | Path) -> dict[str, Path]:
        """``<tables_dir>/<stem>.{md,tex,csv}``, each written atomically; the paths by extension."""
        paths = {}
        for ext, body in zip(TABLE_FORMATS, (self.markdown(), self.latex(), self.csv())):
            paths[ext] = Path(tables_dir) / f"{self.stem}.{ext}"
            write_text_atomic(paths[ext], body)
        return paths
