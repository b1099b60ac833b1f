"""The per-factor table of a dataset: each variant's accuracy on every factor of the dataset's
design with its 95 % CI and ceiling, and the sentence that names each variant's weakest factor."""

from __future__ import annotations

from mienet.registry.formats import dataset_title
from mienet.registry.variants import VARIANTS
from mienet.report.analysis import accuracy_interval, at_ceiling, method_text
from mienet.report.spec import DATASET, TABLE, Inputs, Output
from mienet.report.table import DASH, Table
from mienet.report.tables import (
    accuracy_cells,
    accuracy_values,
    as_sentence,
    ceiling_split,
    ceiling_text,
    ci_words,
    factor_columns,
    protocol_note,
    ran_variants,
    seeds_phrase,
    shown_mean,
    split_clause,
    split_text,
    variant_cell,
    variant_name,
)

BASE_COLUMNS = ["dataset", "variant", "n_seeds", "split", "selection_split", "top1_mean", "top1_ci95_low",
                "top1_ci95_high", "ceiling_top1"]


def factors_table(inputs: Inputs) -> Table:
    """Per variant: top-1 and the accuracy of every factor of the dataset's design, each with its
    95 % CI and ceiling; a one-line table when no run has a factor design."""
    tree, dataset = inputs.tree, inputs.dataset
    name = dataset_title(dataset)
    design = tree.factor_design(dataset)
    factors = list(design)
    if not factors:
        t = Table(stem=f"factors_{dataset}", caption=f"Per-factor accuracy on {name}: no factor design for this "
                  "dataset.", header=["variant", "top-1 (%) [95 % CI] / ceiling", "factors"], align="lrl",
                  csv_columns=[*BASE_COLUMNS, "ci_method", "note"])
        t.notes.add(f"No factor design for this dataset: no run of {name} has `factor_design` or `factors` "
                    "in its `metrics.json`.")
        return t
    splits = split_text(tree, dataset)
    t = Table(
        stem=f"factors_{dataset}",
        caption=f"Per-factor accuracy on {name}: a factor counts as right when the predicted class has the true "
                f"class's level of it; {seeds_phrase(tree, dataset)}; {ci_words(tree, dataset)}; after the slash the "
                "variant's ceiling." + (f" {as_sentence(splits)}" if splits else ""),
        header=["variant", "seeds", "top-1 (%) [95 % CI] / ceiling", *[f"{f} (%) [95 % CI] / ceiling" for f in factors]],
        align="lr" + "r" * (1 + len(factors)),
        csv_columns=[*BASE_COLUMNS, *factor_columns(factors), "ci_method", "note"],
    )
    metrics = ("top1", *factors)
    for variant in tree.variants(dataset):
        stats = tree.stats(dataset, variant)
        if variant not in VARIANTS and stats.n == 0:
            continue
        label, cells, note, iv = accuracy_cells(
            t, tree, dataset, variant, variant_cell(variant), metrics=metrics, ceilings=True,
            missing=f"not run: no `{dataset}/<variant>/seed<k>/metrics.json` for this variant; shown as a dash.")
        for i, m in enumerate(metrics):
            if at_ceiling(iv[m], stats.ceiling(m)):
                cells[i] += t.notes.mark("at", "at the ceiling: the 95 % CI reaches what the design allows this "
                                               "variant.")
        scored, chosen = stats.splits()
        values = [x for m in metrics for x in accuracy_values(stats, iv[m], m)]
        t.add([label, str(stats.n) if stats.n else DASH, *cells],
              dict(zip(t.csv_columns, [dataset, variant, str(stats.n), " ".join(scored), " ".join(chosen), *values,
                                       method_text(iv["top1"].method) if iv["top1"] is not None else "", note])))
    for f, desc in design.items():
        if desc:
            t.notes.add(f"`{f}`: {desc.rstrip('.')}.")
    t.notes.add("Ceiling: the best accuracy the variant can reach on this design by construction (`ceiling` of "
                "`metrics.json`); chance on a factor the variant cannot see.")
    t.notes.add(protocol_note(tree, dataset))
    return t


def factors_sentence(inputs: Inputs) -> str:
    """Which variants sit at their ceiling, and each other variant's weakest factor."""
    tree, dataset = inputs.tree, inputs.dataset
    name = dataset_title(dataset)
    design = tree.factor_design(dataset)
    if not design:
        return f"No factor design for {name}: the per-factor table is a single row of dashes."
    ran = ran_variants(tree, dataset)
    if not ran:
        return f"No runs of {name} yet: every row of the table is a dash."
    parts = [f"Accuracy per factor ({', '.join(design)}) on {name}{split_clause(tree, dataset)}."]
    _, below = ceiling_split(tree, dataset, ran)
    weakest = []
    for v, _, _ in below:
        stats = tree.stats(dataset, v)
        gaps = []
        for f in design:
            ceiling, iv = stats.ceiling(f), accuracy_interval(tree, dataset, v, f)
            mean = shown_mean(stats, iv, f)
            if ceiling is not None and mean is not None and not at_ceiling(iv, ceiling):
                gaps.append((-(ceiling - mean), list(design).index(f), f, mean, ceiling))
        if gaps:
            _, _, f, mean, ceiling = min(gaps)
            weakest.append(f"{variant_name(v)} on {f} ({mean:.2f} of {ceiling_text(ceiling)})")
    if weakest:
        parts.append(f"Below the top-1 ceiling, the factor furthest below its own: {'; '.join(weakest)}.")
    blind = []
    for v in ran:
        stats = tree.stats(dataset, v)
        chance = [f for f in design if (stats.ceiling(f) or 100.0) < 100.0]
        if chance:
            blind.append(f"{variant_name(v)} ({', '.join(chance)})")
    if blind:
        parts.append(f"Factors a variant cannot see by construction (ceiling at chance): {'; '.join(blind)}.")
    return " ".join(parts)


OUTPUTS = (
    Output(
        "factors", TABLE, DATASET, heading="Per-factor accuracy and ceilings", build=factors_table,
        sentence=factors_sentence,
        caption="Per-factor accuracy: for the synthetic dataset's factor design (appearance, motion, order), how "
                "often each variant's predicted class has the true level of each factor, with a 95 % confidence "
                "interval and the ceiling the variant can reach by construction (100 % for a factor it can see, "
                "50 % otherwise)."),
)
