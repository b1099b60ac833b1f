"""The ablation table of a dataset: one row per variant, its modules, top-1 and top-5 with their
95 % CI and ceiling, and the sentence that says who won."""

from __future__ import annotations

from mienet.registry.formats import dataset_title
from mienet.registry.variants import BASELINE, FULL_MODEL, VARIANTS
from mienet.report.analysis import accuracy_interval, effect, method_text
from mienet.report.collect import as_number
from mienet.report.spec import DATASET, TABLE, Inputs, Output
from mienet.report.table import CHECK, CROSS, DASH, Table
from mienet.report.tables import (
    accuracy_cells,
    accuracy_values,
    as_sentence,
    best_variant,
    ceiling_sentence,
    ceiling_split,
    ceiling_text,
    ci_bounds,
    ci_words,
    describe,
    factor_columns,
    fmt,
    num,
    paired_text,
    points_text,
    protocol_note,
    ran_variants,
    seeds_phrase,
    split_clause,
    split_text,
    variant_cell,
    variant_name,
)

MODULES = ("rgb", "pa", "afm", "dptam")


def switches(variant: str) -> dict[str, bool] | None:
    """RGB / PA / AFM / DPTAM of a variant, from :data:`mienet.registry.variants.VARIANTS`."""
    v = VARIANTS.get(variant)
    if v is None:
        return None
    return {"rgb": v.backbone_input in ("rgb", "concat", "afm"), "pa": v.uses_pa, "afm": v.backbone_input == "afm",
            "dptam": v.dptam}


def ablation_table(inputs: Inputs) -> Table:
    tree, dataset = inputs.tree, inputs.dataset
    name = dataset_title(dataset)
    factors = list(tree.factor_design(dataset))
    shown = [v for v in tree.variants(dataset) if v in VARIANTS or tree.stats(dataset, v).n]
    has_ceiling = any(tree.stats(dataset, v).ceiling() is not None for v in shown)
    splits = split_text(tree, dataset)
    t = Table(
        stem=f"ablation_{dataset}",
        caption=f"Ablation on {name}: top-1 and top-5 accuracy, {seeds_phrase(tree, dataset)}; "
                f"{ci_words(tree, dataset)}." + (f" {as_sentence(splits)}" if splits else ""),
        header=["variant", "RGB", "PA", "AFM", "DPTAM", "seeds", "top-1 (%) [95 % CI]",
                *(["ceiling (%)"] if has_ceiling else []), "top-5 (%) [95 % CI]", "params (M)", "GFLOPs"],
        align="lccccrr" + ("r" if has_ceiling else "") + "rrr",
        csv_columns=["dataset", "variant", "model", *MODULES, "seeds", "n_seeds",
                     "top1_mean", "top1_std", "top1_ci95_low", "top1_ci95_high", "ceiling_top1",
                     "top5_mean", "top5_std", "top5_ci95_low", "top5_ci95_high", "params_m", "gflops",
                     "split", "selection_split", "ci_method",
                     *factor_columns(factors), "note"],
    )
    for variant in shown:
        stats = tree.stats(dataset, variant)
        sw = switches(variant)
        label, (top1, top5), note, iv = accuracy_cells(
            t, tree, dataset, variant, variant_cell(variant),
            missing=f"not run: no `{dataset}/<variant>/seed<k>/metrics.json` for this variant; shown as a dash.")
        if sw is None:
            label += t.notes.mark("unknown", "not one of the seven ablation variants of `docs/mie-net.md`; "
                                             "switches unknown (?).")
        params, gflops = as_number(stats.first("params_m")), as_number(stats.first("gflops"))
        ceiling = stats.ceiling()
        scored, chosen = stats.splits()
        factor_values = [x for f in factors
                         for x in accuracy_values(stats, accuracy_interval(tree, dataset, variant, f), f)]
        t.add([label, *[(CHECK if sw[k] else CROSS) if sw else "?" for k in MODULES],
               str(stats.n) if stats.n else DASH, top1,
               *([ceiling_text(ceiling) if ceiling is not None else DASH] if has_ceiling else []),
               top5, num(params), num(gflops)],
              {"dataset": dataset, "variant": variant, "model": variant_name(variant),
               **{k: str(int(sw[k])) if sw else "" for k in MODULES},
               "seeds": " ".join(str(r.seed) for r in stats.runs), "n_seeds": str(stats.n),
               "top1_mean": fmt(stats.mean("top1"), 4), "top1_std": fmt(stats.std("top1"), 4),
               **dict(zip(("top1_ci95_low", "top1_ci95_high"), ci_bounds(iv["top1"]))),
               "ceiling_top1": fmt(ceiling, 4), "top5_mean": fmt(stats.mean("top5"), 4),
               "top5_std": fmt(stats.std("top5"), 4),
               **dict(zip(("top5_ci95_low", "top5_ci95_high"), ci_bounds(iv["top5"]))),
               "params_m": fmt(params, 4), "gflops": fmt(gflops, 4), "split": " ".join(scored),
               "selection_split": " ".join(chosen),
               "ci_method": method_text(iv["top1"].method) if iv["top1"] is not None else "",
               **dict(zip(factor_columns(factors), factor_values)), "note": note})
    if has_ceiling:
        t.notes.add("Ceiling: the best top-1 the variant can reach on this dataset's design, by construction "
                    "(`ceiling` of `metrics.json`; the factor table breaks it down).")
    t.notes.add(protocol_note(tree, dataset) or f"No runs of {name} found: every row is a dash.")
    return t


def ablation_sentence(inputs: Inputs) -> str:
    tree, dataset = inputs.tree, inputs.dataset
    name = dataset_title(dataset)
    ran = ran_variants(tree, dataset)
    if not ran:
        return f"No runs of {name} yet: every row of the table is a dash."
    stats = {v: tree.stats(dataset, v) for v in ran}
    best = best_variant(tree, dataset)
    lead = FULL_MODEL if FULL_MODEL in stats else best
    sentence = (f"On {name}{split_clause(tree, dataset)}, {variant_name(lead)} reaches "
                f"{describe(tree, dataset, lead)} (mean with its 95 % CI)")
    if BASELINE in stats and lead != BASELINE:
        diff = stats[lead].mean("top1") - stats[BASELINE].mean("top1")
        sentence += (f", {points_text(diff, 'the TSN baseline')} ({describe(tree, dataset, 'tsn')}; "
                     f"{paired_text(effect(tree, dataset, lead, 'tsn'))})")
    parts = [sentence + "."]
    if len(ran) > 1:
        if best == lead:
            runner = min((v for v in ran if v != best), key=lambda v: (-stats[v].mean("top1"), ran.index(v)))
            diff = stats[best].mean("top1") - stats[runner].mean("top1")
            parts.append(f"It is the best of the {len(ran)} variants run, {diff:.2f} points ahead of "
                         f"{variant_name(runner)} ({describe(tree, dataset, runner)}; "
                         f"{paired_text(effect(tree, dataset, best, runner))}).")
        else:
            diff = stats[best].mean("top1") - stats[lead].mean("top1")
            parts.append(f"The best of the {len(ran)} variants run is {variant_name(best)} with "
                         f"{describe(tree, dataset, best)}, {diff:.2f} points above {variant_name(lead)} "
                         f"({paired_text(effect(tree, dataset, best, lead))}).")
    at, below = ceiling_split(tree, dataset, ran)
    if at or below:
        parts.append(ceiling_sentence(at, below))
    missing = [v for v in VARIANTS if v not in stats]
    if missing:
        parts.append(f"{len(missing)} of the {len(VARIANTS)} variants have no run yet "
                     f"({', '.join(variant_name(v) for v in missing)}): dashes.")
    return " ".join(parts)


OUTPUTS = (
    Output(
        "ablation", TABLE, DATASET, heading="Ablation", build=ablation_table, sentence=ablation_sentence,
        caption="Ablation: one row per variant, with which of RGB, PA, AFM and DPTAM it uses, top-1 and top-5 "
                "accuracy as the mean over seeds with a 95 % confidence interval (hierarchical bootstrap over "
                "seeds and test clips), the variant's ceiling where the dataset has a factor design, the split "
                "scored and the split the checkpoint was selected on, the number of seeds, parameters (M) and "
                "GFLOPs per clip."),
)
