"""The hyper-parameter search table: every Optuna study and tuned model of the reported
datasets, and the sentence that says what the search found; Optuna's copied plots follow it."""

from __future__ import annotations

import json

from mienet.registry.formats import dataset_title
from mienet.report.analysis import accuracy_interval
from mienet.report.collect import as_number
from mienet.report.spec import GLOBAL, TABLE, Inputs, Output
from mienet.report.table import DASH, Table
from mienet.report.tables import (
    CI_WORDS,
    accuracy_cells,
    ci_bounds,
    code,
    describe,
    fmt,
    num,
    signed,
    variant_name,
)

COLUMNS = ["dataset", "variant", "study", "n_trials", "complete", "pruned", "failed", "best_value", "default_value",
           "best_params", "epochs_trained", "epochs_without_pruning", "epochs_saved_pct", "default_top1_mean",
           "default_top1_ci95_low", "default_top1_ci95_high", "default_n_seeds", "tuned_top1", "delta_top1"]
TRIALS = ("n_trials", "complete", "pruned", "failed")


def format_params(params: dict) -> str:
    def one(v):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return str(v)
        if isinstance(v, int):
            return str(v)
        return f"{v:.4g}"
    return ", ".join(f"{k}={one(params[k])}" for k in sorted(params))


def _add_search(t: Table, inputs: Inputs, dataset: str, variant: str, search, tuned) -> None:
    tree = inputs.tree
    s = search.summary if search else {}
    stats = tree.stats(dataset, variant)
    default, tuned_top1 = stats.mean("top1"), tuned.top1 if tuned else None
    delta = tuned_top1 - default if tuned_top1 is not None and default is not None else None
    label = code(variant)
    if search is None:
        label += t.notes.mark("nosummary", "a tuned run without `search/<variant>/summary.json`.")
    counts = [s.get(k) for k in TRIALS]
    trials = (f"{counts[0]} ({counts[1]}/{counts[2]}/{counts[3]})"
              if all(isinstance(c, int) for c in counts) else None)
    best = as_number(s.get("best_value"))
    params = s.get("best_params") if isinstance(s.get("best_params"), dict) else None
    saved = as_number(s.get("epochs_saved_pct"))
    default_cell = DASH
    if stats.n:
        _, (default_cell,), _, _ = accuracy_cells(t, tree, dataset, variant, label, "", metrics=("top1",))
    if default is None and tuned_top1 is not None:
        default_cell += t.notes.mark("nodefault", "no seed runs with the default parameters to compare with.")
    t.add([dataset_title(dataset), label, trials or DASH, num(best), format_params(params) if params else DASH,
           num(saved, 1), default_cell, num(tuned_top1), signed(delta)],
          dict(zip(COLUMNS, [
              dataset, variant, str(s.get("study_name") or s.get("study") or ""),
              *["" if c is None else str(c) for c in counts],
              fmt(best, 4), fmt(as_number(s.get("default_value")), 4),
              json.dumps(params, sort_keys=True) if params else "",
              str(s.get("epochs_trained", "")), str(s.get("epochs_without_pruning", "")), fmt(saved, 2),
              fmt(default, 4), *ci_bounds(accuracy_interval(tree, dataset, variant)), str(stats.n),
              fmt(tuned_top1, 4), fmt(delta, 4)])))


def search_table(inputs: Inputs) -> Table:
    tree, datasets = inputs.tree, inputs.datasets
    t = Table(
        stem="search",
        caption="Hyper-parameter search (Optuna): the best trial, the trials' fate, the epochs pruning saved, "
                "and the final training with the best parameters against the untuned seed runs.",
        header=["dataset", "variant", "trials (complete/pruned/failed)", "best value", "best parameters",
                "epochs saved (%)", "default top-1 [95 % CI]", "tuned top-1", "Δ top-1"],
        align="llrrlrrrr", csv_columns=COLUMNS)
    for dataset, variant, search, tuned in tree.searched(list(datasets)):
        _add_search(t, inputs, dataset, variant, search, tuned)
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


def search_sentence(inputs: Inputs) -> str:
    tree = inputs.tree
    parts = []
    for dataset, v, s, tuned in tree.searched(list(inputs.datasets)):
        text = f"{variant_name(v)} on {dataset_title(dataset)}:"
        if s is not None:
            sm = s.summary
            text += (f" {sm.get('n_trials', '?')} trials ({sm.get('complete', '?')} complete, "
                     f"{sm.get('pruned', '?')} pruned, {sm.get('failed', '?')} failed)")
            saved = as_number(sm.get("epochs_saved_pct"))
            if saved is not None:
                text += f", pruning saved {saved:.1f} % of the epochs"
            best = as_number(sm.get("best_value"))
            if best is not None:
                text += f", best validation value {best:.2f}"
                dv = as_number(sm.get("default_value"))
                if dv is not None:
                    text += f" against {dv:.2f} with the default parameters"
        default = tree.stats(dataset, v)
        if tuned is not None and tuned.top1 is not None:
            text += (";" if s is not None else "") + f" the tuned model reaches {tuned.top1:.2f} top-1"
            if default.n:
                text += (f" against {describe(tree, dataset, v)} for the defaults "
                         f"({tuned.top1 - default.mean('top1'):+.2f} points)")
        parts.append(text + ".")
    return " ".join(parts) if parts else "No hyper-parameter search results yet."


def optuna_plots(inputs: Inputs) -> list[str]:
    """Markdown of Optuna's plots, copied next to the report (``inputs.search_plots``)."""
    lines = []
    for (dataset, variant), paths in sorted(inputs.search_plots.items()):
        if paths:
            lines += [f"Optuna's plots, {variant_name(variant)} (`{variant}`) on {dataset_title(dataset)}:", ""]
            lines += [f"![{p.rsplit('/', 1)[-1]}]({p})" for p in paths] + [""]
    return lines


OUTPUTS = (
    Output(
        "search", TABLE, GLOBAL, heading="Hyper-parameter search", build=search_table, sentence=search_sentence,
        after=optuna_plots,
        caption="Optuna studies: best parameters and value, trials complete / pruned / failed, the share of "
                "epochs pruning saved, and the final training with the best parameters against the untuned seed "
                "runs."),
)
