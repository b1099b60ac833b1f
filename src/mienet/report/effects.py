"""The module effects of a dataset (:data:`mienet.report.analysis.EFFECTS`): paired top-1
differences with their 95 % CI, the difference of the ceilings and, with a factor design, the
per-factor differences; and the sentence that says which are resolved."""

from __future__ import annotations

from mienet.registry.formats import dataset_title
from mienet.report.analysis import Effect, ceiling_delta, effect, method_text, module_effects
from mienet.report.collect import ResultsTree
from mienet.report.spec import DATASET, TABLE, Inputs, Output
from mienet.report.stats import CLIPS, NONE, REPLICATES, T
from mienet.report.table import DASH, Table
from mienet.report.tables import (
    as_sentence,
    ci,
    ci_bounds,
    ci_text,
    code,
    fmt,
    protocol_note,
    seeds_text,
    signed,
    signed_ceiling_text,
    split_clause,
    split_text,
    with_ceiling,
)

FACTOR_EFFECT_COLUMNS = ("delta", "ci95_low", "ci95_high", "resolved", "delta_ceiling")
EFFECT_MARKS = {  # an effect's interval that is not the hierarchical bootstrap: (note key, note)
    CLIPS: ("single", "one shared seed: the 95 % CI is a bootstrap over test clips only."),
    T: ("tci", "no usable `predictions.csv`: the 95 % CI is a paired t-interval over the shared seeds."),
    NONE: ("noci", "one shared seed and no usable `predictions.csv`: no interval."),
}


def module_effect(tree: ResultsTree, dataset: str, e: Effect, metric: str) -> Effect:
    """The effect ``e`` on another metric (a factor)."""
    return effect(tree, dataset, e.variant_a, e.variant_b, metric, e.effect, e.explanation)


def _effect_cell(t: Table, e: Effect) -> str:
    cell = ci(e.delta, e.interval, sign=True)
    if e.interval is None or cell == DASH or e.interval.method not in EFFECT_MARKS:
        return cell
    return cell + t.notes.mark(*EFFECT_MARKS[e.interval.method])


def _resolved_text(resolved: bool | None) -> str:
    return "" if resolved is None else ("yes" if resolved else "no")


def _resolved_cell(resolved: bool | None) -> str:
    if resolved is None:
        return DASH
    return "**resolved**" if resolved else "unresolved"


def _signed_ceiling(x: float | None) -> str:
    return DASH if x is None else signed_ceiling_text(x)


def _label(t: Table, e: Effect) -> tuple[str, str]:
    """(the a − b cell with its footnote, the CSV note) of an effect."""
    label = f"{code(e.variant_a)} − {code(e.variant_b)}"
    if e.missing:
        return label + t.notes.mark("missing", "a variant of the pair has no seed runs on this dataset: no effect "
                                               "(dashes)."), "not run: " + " ".join(e.missing)
    if not e.seeds:
        return label + t.notes.mark("noshared", "the two variants share no seed: no paired effect."), "no shared seed"
    return label, ""


def _add_effect(t: Table, tree: ResultsTree, dataset: str, e: Effect, factors: list[str]) -> None:
    label, note = _label(t, e)
    delta = _effect_cell(t, e)
    runs = [r for v in (e.variant_a, e.variant_b) for r in tree.runs.get((dataset, v), []) if r.seed in e.seeds]
    margin = tree.machine_margins.get(dataset)
    verdict, sensitive = _resolved_cell(e.resolved), e.machine_sensitive(margin)
    if sensitive:
        verdict += t.notes.mark(
            "machine", f"machine-sensitive: an end of the CI lies within {margin:g} points of 0, and another CPU, "
                       f"thread count or precision moved a mean effect of this recipe by up to {margin:g} points "
                       f"(params.yaml `datasets.{dataset}.machine_margin`, measured with "
                       "`workflow/scripts/repro_matrix.py`): the verdict may differ on another machine.")
    cells = [e.effect, label, e.explanation, str(len(e.seeds)) if e.seeds else DASH, delta, verdict]
    values = [e.effect, e.variant_a, e.variant_b, fmt(e.delta, 4), *ci_bounds(e.interval),
              _resolved_text(e.resolved), _resolved_text(sensitive), str(len(e.seeds)),
              " ".join(sorted({r.split for r in runs} - {None}))]
    if factors:
        dc = ceiling_delta(tree, dataset, e.variant_a, e.variant_b)
        cells.append(_signed_ceiling(dc))
        values.append(fmt(dc, 4))
        for f in factors:
            fe = module_effect(tree, dataset, e, f)
            fdc = ceiling_delta(tree, dataset, e.variant_a, e.variant_b, f)
            cells.append(with_ceiling(_effect_cell(t, fe), fdc, sign=True))
            values += [fmt(fe.delta, 4), *ci_bounds(fe.interval), _resolved_text(fe.resolved), fmt(fdc, 4)]
    iv = e.interval
    values += [" ".join(map(str, e.seeds)), str(iv.n_clips) if iv is not None and iv.n_clips else "",
               method_text(iv.method) if iv is not None else "", e.explanation, note]
    t.add(cells, dict(zip(t.csv_columns, values)))


def effects_table(inputs: Inputs) -> Table:
    """:data:`mienet.report.analysis.EFFECTS` on a dataset: paired top-1 differences with their
    95 % CI, and, with a factor design, the difference of the ceilings and the per-factor differences."""
    tree, dataset = inputs.tree, inputs.dataset
    name = dataset_title(dataset)
    factors = list(tree.factor_design(dataset))
    effects = module_effects(tree, dataset)
    splits = split_text(tree, dataset)
    t = Table(
        stem=f"effects_{dataset}",
        caption=f"Module effects on {name}: Δ = top-1 of variant a minus variant b in points, paired by seed "
                f"and test clip (the seeds both ran); 95 % CI: hierarchical bootstrap over the shared seeds and "
                f"test clips ({REPLICATES} replicates); resolved: the CI excludes 0."
                + (f" {as_sentence(splits)}" if splits else ""),
        header=["module", "a − b", "what changes", "seeds", "Δ top-1 (points) [95 % CI]", "resolved",
                *(["Δ ceiling", *[f"Δ {f} [95 % CI] / Δ ceiling" for f in factors]] if factors else [])],
        align="lllcrc" + ("r" * (1 + len(factors)) if factors else ""),
        csv_columns=["effect", "variant_a", "variant_b", "delta_top1", "ci95_low", "ci95_high", "resolved",
                     "machine_sensitive", "n_seeds", "split", *(["delta_ceiling"] if factors else []),
                     *[f"{f}_{col}" for f in factors for col in FACTOR_EFFECT_COLUMNS],
                     "seeds", "n_clips", "ci_method", "explanation", "note"],
    )
    for i, e in enumerate(effects):
        if i and e.effect != effects[i - 1].effect:
            t.start_group()
        _add_effect(t, tree, dataset, e, factors)
    if factors:
        t.notes.add("Δ ceiling: the ceiling of a minus that of b, the largest difference the dataset's design "
                    "allows; a factor's cell: its paired Δ [95 % CI] / Δ of its ceilings.")
    if not any(e.interval is not None for e in effects):
        t.notes.add(f"No effect can be computed on {name} yet: every row is a dash.")
    t.notes.add(protocol_note(tree, dataset))
    return t


def effects_sentence(inputs: Inputs) -> str:
    """Which module effects are resolved (95 % CI excludes 0), which not, which cannot be computed."""
    tree, dataset = inputs.tree, inputs.dataset
    name = dataset_title(dataset)
    all_effects = module_effects(tree, dataset)
    if not any(e.interval is not None for e in all_effects):
        return f"No module effect can be computed on {name} yet: every pair lacks a variant; dashes."

    def item(e: Effect) -> str:
        how = []
        if e.interval.method == T:
            how.append(f"t-interval over {seeds_text(len(e.seeds))}, no predictions")
        elif len(e.seeds) == 1:
            how.append("one shared seed")
        if e.machine_sensitive(tree.machine_margins.get(dataset)):
            how.append("machine-sensitive: may flip on another machine")
        allowed = ceiling_delta(tree, dataset, e.variant_a, e.variant_b)
        if allowed is not None:
            how.append(f"the design allows {signed_ceiling_text(allowed)}")
        return (f"{e.explanation} (`{e.variant_a}` − `{e.variant_b}`) {signed(e.delta)}"
                f"{ci_text(e.interval)}" + (f" ({'; '.join(how)})" if how else ""))

    resolved = [item(e) for e in all_effects if e.resolved]
    unresolved = [item(e) for e in all_effects if e.resolved is False]
    no_ci = [item(e) for e in all_effects if e.interval is not None and e.resolved is None]
    absent = [f"`{e.variant_a}` − `{e.variant_b}`" for e in all_effects if e.interval is None]
    parts = [f"Top-1 differences on {name}{split_clause(tree, dataset)}, paired by seed and clip."]
    if resolved:
        parts.append(f"Resolved (95 % CI excludes 0): {'; '.join(resolved)}.")
    if unresolved:
        parts.append(f"Not resolved (CI includes 0): {'; '.join(unresolved)}.")
    if no_ci:
        parts.append(f"Without an interval: {'; '.join(no_ci)}.")
    if absent:
        parts.append(f"Not computable yet (a variant not run): {', '.join(absent)}.")
    return " ".join(parts)


OUTPUTS = (
    Output(
        "effects", TABLE, DATASET, heading="Module effects", build=effects_table, sentence=effects_sentence,
        caption="Module effects: each row is the difference in top-1 between two variants that differ in one "
                "module (PA, AFM or DPTAM), paired by seed and by test clip, with a 95 % confidence interval "
                "(hierarchical bootstrap); an interval that excludes 0 is marked resolved. Where the dataset has "
                "a factor design, the difference of the two ceilings and the per-factor differences show what "
                "the design allows."),
)
