"""The comparison table of a dataset: the published numbers (:mod:`mienet.registry.published`)
next to what this project measured, and the sentence that says by how much they differ."""

from __future__ import annotations

from mienet.registry.formats import dataset_title
from mienet.registry.published import SOURCE, PublishedRow
from mienet.registry.variants import FULL_MODEL
from mienet.report.spec import DATASET, TABLE, Inputs, Output
from mienet.report.table import DASH, Table
from mienet.report.tables import (
    accuracy_cells,
    ci_bounds,
    ci_words,
    code,
    describe,
    fmt,
    protocol_note,
    seeds_phrase,
    signed,
    split_clause,
    split_text,
    stats_frames,
    variant_name,
)

REPORTED = "reported (paper/README)"
MEASURED = "measured (this project)"
COLUMNS = ["dataset", "source", "model", "variant", "frames", "n_seeds", "top1", "top1_std", "top1_ci95_low",
           "top1_ci95_high", "top5", "top5_std", "top5_ci95_low", "top5_ci95_high", "delta_top1_vs_reported", "note"]


def _add_reported(t: Table, dataset: str, p: PublishedRow) -> None:
    variant = DASH
    if p.counterpart:
        variant = code(p.counterpart)
        if p.model == "DPTAM" and p.counterpart == "fusion_dptam":
            variant += t.notes.mark(
                "dptam", "The model zoo's DPTAM rows take T+T*4 frames, so they consume the PA frames: most likely "
                         "`fusion_dptam` (MIE-Net without AFM), not `dptam` (working assumption of "
                         "`docs/mie-net.md`).")
    source = REPORTED if p.source == "paper/README" else f"reported ({p.source})"
    t.add([source, p.model, variant, p.frames, DASH, p.top1, p.top5 if p.top5 else DASH, DASH],
          {**dict.fromkeys(COLUMNS, ""), "dataset": dataset, "source": source, "model": p.model,
           "variant": p.counterpart or "", "frames": p.frames, "top1": p.top1, "top5": p.top5})


def comparison_table(inputs: Inputs) -> Table:
    tree, dataset = inputs.tree, inputs.dataset
    name = dataset_title(dataset)
    t = Table(stem=f"comparison_{dataset}", caption=f"{name}: the published numbers next to what this project "
              "measured.", header=["source", "model", "variant", "frames", "seeds", "top-1 (%) [95 % CI]",
                                   "top-5 (%) [95 % CI]", "Δ top-1 vs reported"],
              align="lllcrrrr", csv_columns=COLUMNS)
    reported = [p for p in inputs.published if p.dataset == dataset]
    for p in reported:
        _add_reported(t, dataset, p)
    t.start_group()
    wanted = {p.counterpart for p in reported if p.counterpart} | {FULL_MODEL}
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
        t.add([MEASURED, variant_name(variant), label, frames or DASH, str(stats.n) if stats.n else DASH, top1, top5,
               signed(delta)],
              dict(zip(COLUMNS, [dataset, MEASURED, variant_name(variant), variant, frames, str(stats.n), fmt(m1, 4),
                                 fmt(stats.std("top1"), 4), *ci_bounds(iv["top1"]), fmt(stats.mean("top5"), 4),
                                 fmt(stats.std("top5"), 4), *ci_bounds(iv["top5"]), fmt(delta, 4), note])))
    splits = split_text(tree, dataset)
    measured = (f"Measured rows: {seeds_phrase(tree, dataset)}; {ci_words(tree, dataset)}"
                + (f"; {splits}" if splits else "") + ".")
    if reported:
        t.notes.add(f"Reported rows: {SOURCE}. {measured} Δ is the measured mean minus the reported top-1 of "
                    "the same variant.")
    else:
        t.notes.add(f"No published numbers exist for {name}: only this project's measurements are shown. "
                    + measured)
    t.notes.add("Frames in the paper's notation: T+T*L is T RGB frames plus the T×L frames PA looks at; "
                "a variant without PA shows T.")
    t.notes.add(protocol_note(tree, dataset))
    return t


def comparison_sentence(inputs: Inputs) -> str:
    tree, dataset = inputs.tree, inputs.dataset
    name = dataset_title(dataset)
    reported = [p for p in inputs.published if p.dataset == dataset]
    if not reported:
        return (f"No published numbers exist for {name}; the table shows this project's measurements only"
                + (f": {variant_name('mienet')} {describe(tree, dataset, 'mienet')}"
                   f"{split_clause(tree, dataset)}." if tree.stats(dataset, FULL_MODEL).n else "."))
    parts, absent = [], []
    for p in reported:
        if not p.counterpart:
            continue
        stats = tree.stats(dataset, p.counterpart)
        if stats.n == 0:
            absent.append(p.model)
            continue
        diff = stats.mean("top1") - float(p.top1)
        parts.append(f"{p.model} ({p.counterpart}) measures {describe(tree, dataset, p.counterpart)} against "
                     f"{p.top1} reported ({diff:+.2f} points)")
    text = "; ".join(parts) + "." if parts else f"None of the reported models has been run on {name} yet."
    if parts and absent:
        text += f" Not run yet: {', '.join(absent)}."
    return f"On {name}{split_clause(tree, dataset)}: {text}" if parts else text


OUTPUTS = (
    Output(
        "comparison", TABLE, DATASET, heading="Published and measured", build=comparison_table,
        sentence=comparison_sentence,
        caption="The numbers reported by the paper and the authors' README (model zoo), labelled \"reported\", next "
                "to what this project measured (mean over seeds with a 95 % confidence interval), with frames "
                "(T+T*L), top-1, top-5 and the difference. The zoo's \"DPTAM\" rows are taken to be "
                "``fusion_dptam`` (MIE-Net without AFM), as the method document assumes."),
)
