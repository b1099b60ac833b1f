"""The paper's figures with seaborn, PNG and PDF, of a fixed size, each with its sentence.

Every figure is :data:`FIGSIZE` inches at :data:`DPI` (960 x 720 pixels as PNG), drawn with
the Agg backend and saved without timestamps or software versions in its metadata, so the
same results give the same files with the same library versions. A figure without data is
still written: a placeholder that says what is missing, so the set of outputs is fixed.

pyplot and seaborn are imported when the first figure is drawn (:func:`plotting`), not with this
module: the registry (:mod:`mienet.report.outputs`) imports it, and with the registry every
Snakefile parse and ``mienet generate`` (through :mod:`mienet.stages`); at the top they cost each
of them 1.0 s more (``python -X importtime -c "import mienet.stages"``: 1.2 s against 0.2 s).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd

from mienet.registry.formats import dataset_title
from mienet.io import atomic_path
from mienet.registry.variants import BASELINE, FULL_MODEL, VARIANTS
from mienet.report.analysis import accuracy_interval
from mienet.report.collect import (
    ResultsTree,
    as_number,
    confusion_for,
    curves_frame,
    per_class_frame,
    per_class_variants,
)
from mienet.report.spec import DATASET, FIGURE, FIGURE_FORMATS, Inputs, Output
from mienet.report.tables import (
    best_variant,
    ci_how,
    describe,
    points_text,
    ran_variants,
    seeds_text,
    split_clause,
    variant_name,
)

FIGSIZE = (6.4, 4.8)
DPI = 150
PIXELS = (round(FIGSIZE[0] * DPI), round(FIGSIZE[1] * DPI))  # (width, height) of the PNG
# Metadata that would otherwise carry the matplotlib version or a time stamp.
METADATA = {"png": {"Software": None}, "pdf": {"Creator": None, "Producer": None, "CreationDate": None}}
THEME = {"style": "whitegrid", "context": "paper", "font_scale": 1.0}
# Index into seaborn's 10-colour "colorblind" palette (mienet.registry.variants).
COLOUR_INDEX = {name: v.colour for name, v in VARIANTS.items()}


@functools.cache
def plotting():
    """(pyplot, seaborn), imported on first use with the Agg backend (see the module's docstring)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    return plt, sns


def palette(variants: list[str]) -> dict[str, tuple]:
    """A fixed colour per variant, the same in every figure (grey for a variant not in the table)."""
    _, sns = plotting()
    colours = sns.color_palette("colorblind", 10)
    return {v: colours[COLOUR_INDEX[v]] if v in COLOUR_INDEX else colours[7] for v in variants}


def new_figure(**kwargs):
    plt, _ = plotting()
    return plt.figure(figsize=FIGSIZE, dpi=DPI, layout="constrained", **kwargs)


def placeholder(title: str, reason: str):
    fig = new_figure()
    fig.text(0.5, 0.55, title, ha="center", va="center", fontsize=12, weight="bold")
    fig.text(0.5, 0.45, f"no data: {reason}", ha="center", va="center", fontsize=10, color="0.35", wrap=True)
    return fig


def save_figure(fig, path_stem: Path) -> list[Path]:
    """``<stem>.png`` and ``<stem>.pdf``, each written atomically; closes the figure."""
    plt, _ = plotting()
    written = []
    try:
        for fmt in FIGURE_FORMATS:
            path = path_stem.with_name(f"{path_stem.name}.{fmt}")
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format=fmt, dpi=DPI, metadata=METADATA[fmt])
            written.append(path)
    finally:
        plt.close(fig)
    return written


def _seed_top1(tree: ResultsTree, dataset: str) -> pd.DataFrame:
    rows = [(v, r.seed, r.top1) for v in tree.variants(dataset) for r in tree.runs.get((dataset, v), [])
            if r.top1 is not None]
    return pd.DataFrame(rows, columns=["variant", "seed", "top1"])


# --------------------------------------------------------------------------- the figures

def ablation_bars(inputs: Inputs):
    """Top-1 per variant: bar = mean over seeds, error bar = its 95 % CI (hierarchical bootstrap,
    :func:`mienet.report.analysis.accuracy_interval`), dots = the seeds, a black tick = the
    variant's ceiling where ``metrics.json`` gives one."""
    tree, dataset = inputs.tree, inputs.dataset
    df = _seed_top1(tree, dataset)
    title = f"{dataset_title(dataset)}: ablation"
    if df.empty:
        return placeholder(title, "no evaluated runs")
    order = [v for v in tree.variants(dataset) if v in VARIANTS or v in set(df["variant"])]
    colours = palette(order)
    fig = new_figure()
    ax = fig.add_subplot()
    ran = set(df["variant"])
    top = float(df["top1"].max())
    ceiling_drawn = False
    for i, v in enumerate(order):
        if v not in ran:
            ax.text(i, 1.0, "not run", ha="center", va="bottom", rotation=90, fontsize=8, color="0.4")
            continue
        mean = float(df.loc[df["variant"] == v, "top1"].mean())
        ax.bar(i, mean, width=0.8, color=colours[v], zorder=2)
        iv = accuracy_interval(tree, dataset, v)
        if iv is not None and iv.has_ci:
            ax.errorbar(i, mean, yerr=[[max(mean - iv.low, 0.0)], [max(iv.high - mean, 0.0)]], fmt="none",
                        ecolor="0.25", elinewidth=1.2, capsize=5, zorder=4)
            top = max(top, iv.high)
        ceiling = tree.stats(dataset, v).ceiling()
        if ceiling is not None:
            ax.hlines(ceiling, i - 0.42, i + 0.42, colors="black", linestyles="--", linewidth=1.4, zorder=5,
                      label=None if ceiling_drawn else "ceiling")
            ceiling_drawn = True
            top = max(top, ceiling)
    for i, v in enumerate(order):  # the seeds as dots, spread evenly (no random jitter: reproducible)
        ys = df.loc[df["variant"] == v, "top1"].tolist()
        xs = np.linspace(-0.12, 0.12, len(ys)) if len(ys) > 1 else np.zeros(len(ys))
        ax.scatter(i + xs, ys, s=12, color="0.15", zorder=6)
    if ceiling_drawn:
        ax.legend(loc="upper left", fontsize=7, frameon=False)
    ax.set_xlim(-0.6, len(order) - 0.4)
    ax.set_ylim(0, min(105.0, top * 1.12 + 2))
    ax.set_xticks(range(len(order)), [variant_name(v) for v in order], rotation=30, ha="right")
    ax.set_xlabel("")
    ax.set_ylabel("top-1 (%)")
    ax.set_title(f"{title}: top-1, mean over seeds with 95 % CI (dots: seeds)")
    return fig


def ablation_bars_sentence(inputs: Inputs) -> str:
    tree, dataset = inputs.tree, inputs.dataset
    ran = ran_variants(tree, dataset)
    if not ran:
        return f"No runs of {dataset_title(dataset)} yet: a placeholder figure."
    best = best_variant(tree, dataset)
    missing = [v for v in VARIANTS if v not in ran]
    ceilings = any(tree.stats(dataset, v).ceiling() is not None for v in ran)
    text = (f"Bars: mean top-1 over seeds{split_clause(tree, dataset)}, error bars the 95 % CI "
            f"({ci_how(tree, dataset)}), dots the single seeds"
            + (", dashed black lines each variant's ceiling" if ceilings else "")
            + f"; the highest bar is {variant_name(best)} ({describe(tree, dataset, best)})")
    if missing:
        text += f"; {len(missing)} variant{'s' * (len(missing) != 1)} not run (no bar)"
    return text + "."


def curves(inputs: Inputs):
    """Loss and top-1 over epochs per variant, training (dashed) and validation (solid): the line
    is the mean over seeds, the band one standard deviation."""
    tree, dataset = inputs.tree, inputs.dataset
    df = curves_frame(tree, dataset)
    title = f"{dataset_title(dataset)}: training curves"
    if df.empty:
        return placeholder(title, "no training logs (train_log.csv)")
    order = [v for v in tree.variants(dataset) if v in set(df["variant"])]
    metrics = [m for m in ("loss", "top-1 (%)") if m in set(df["metric"])]
    plt, sns = plotting()
    fig = new_figure()
    axes = fig.subplots(len(metrics), 1, sharex=True, squeeze=False)[:, 0]
    for ax, metric in zip(axes, metrics):
        sns.lineplot(data=df[df["metric"] == metric], x="epoch", y="value", hue="variant", hue_order=order,
                     palette=palette(order), style="split", style_order=["val", "train"], errorbar="sd",
                     estimator="mean", legend=ax is axes[0], ax=ax)
        ax.set_ylabel(metric)
    axes[-1].set_xlabel("epoch")
    axes[-1].xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    handles, labels = axes[0].get_legend_handles_labels()
    axes[0].get_legend().remove()
    names = {v: variant_name(v) for v in order} | {"val": "validation", "train": "training"}
    fig.legend(handles, [names.get(label, label) for label in labels], loc="outside right center", fontsize=7,
               frameon=False)
    fig.suptitle(f"{title} (mean over seeds, band: ±1 std)")
    return fig


def curves_sentence(inputs: Inputs) -> str:
    tree, dataset = inputs.tree, inputs.dataset
    df = curves_frame(tree, dataset)
    val = df[(df["split"] == "val") & (df["metric"] == "top-1 (%)")] if not df.empty else df
    if val.empty:
        return "No training logs with validation accuracy yet."
    items = []
    for v in tree.variants(dataset):
        part = val[val["variant"] == v]
        if part.empty:
            continue
        means = part.groupby("epoch")["value"].mean().sort_index()
        best_epoch = int(means.idxmax())
        items.append((-means.max(), tree.variants(dataset).index(v),
                      f"{variant_name(v)} {means.max():.2f} at epoch {best_epoch} of {int(means.index.max())} "
                      f"({seeds_text(part['seed'].nunique())})"))
    return "Best mean validation top-1: " + "; ".join(i[2] for i in sorted(items)) + "."


def confusion(inputs: Inputs):
    """Row-normalised confusion matrix of MIE-Net (or the best variant), summed over its seeds."""
    tree, dataset = inputs.tree, inputs.dataset
    conf = confusion_for(tree, dataset)
    title = f"{dataset_title(dataset)}: confusion matrix"
    if conf is None:
        return placeholder(title, "no confusion.csv")
    k = len(conf.classes)
    _, sns = plotting()
    fig = new_figure()
    ax = fig.add_subplot()
    show_names = k <= 60
    sns.heatmap(np.array(conf.percent()), vmin=0, vmax=100, cmap="Blues", square=False, annot=k <= 15,
                fmt=".0f", annot_kws={"fontsize": 6}, cbar_kws={"label": "% of the true class", "shrink": 0.8},
                xticklabels=list(range(k)) if show_names else False,
                yticklabels=[f"{i}: {c}" for i, c in enumerate(conf.classes)] if show_names else False, ax=ax)
    ax.tick_params(axis="both", labelsize=6 if k <= 20 else 4)
    ax.set_xlabel("predicted class (index)")
    ax.set_ylabel("true class")
    seeds = len(conf.seeds)
    ax.set_title(f"{title}\n{variant_name(conf.variant)}, summed over {seeds} seed{'s' * (seeds != 1)}, "
                 "row-normalised (%)", fontsize=9)
    return fig


def confusion_sentence(inputs: Inputs) -> str:
    conf = confusion_for(inputs.tree, inputs.dataset)
    if conf is None:
        return "No confusion matrix yet (`confusion.csv` of `mienet evaluate`)."
    why = "" if conf.variant == FULL_MODEL else " (MIE-Net has none; shown: the best variant that has one)"
    pct = conf.percent()
    total = sum(map(sum, conf.counts))
    correct = sum(conf.counts[i][i] for i in range(len(conf.classes)))
    errors = [(-pct[i][j], i, j) for i in range(len(pct)) for j in range(len(pct)) if i != j and conf.counts[i][j]]
    seeds = "from one seed" if len(conf.seeds) == 1 else f"summed over {len(conf.seeds)} seeds"
    text = (f"Confusion of {variant_name(conf.variant)}{why}, {seeds}, "
            f"row-normalised: {100 * correct / total:.2f} % of the {total} evaluated clips on the diagonal")
    if errors:
        p, i, j = min(errors)
        text += (f"; the most frequent error is {conf.classes[i]} predicted as {conf.classes[j]} "
                 f"({-p:.1f} % of its clips)")
    return text + "."


PER_CLASS_LIMIT = 30  # more classes than this: the 15 at each end (gain over TSN, or accuracy)


def per_class(inputs: Inputs):
    """Per-class accuracy, mean over seeds with a std error bar, grouped by class."""
    tree, dataset = inputs.tree, inputs.dataset
    df = per_class_frame(tree, dataset)
    title = f"{dataset_title(dataset)}: per-class accuracy"
    if df.empty:
        return placeholder(title, "no per_class.csv")
    order = per_class_variants(tree, dataset, set(df["variant"]))
    df = df[df["variant"].isin(order)]
    classes = df.drop_duplicates("label").sort_values("label")
    labels = [f"{lab}: {name}" for lab, name in zip(classes["label"], classes["class"])]
    df = df.assign(name=df["label"].map(dict(zip(classes["label"], labels))))
    note = ""
    if len(labels) > PER_CLASS_LIMIT:  # readable: the classes at both ends
        means = df.groupby(["variant", "name"])["accuracy"].mean().unstack(0)
        score = (means[order[-1]] - means[order[0]]) if len(order) >= 2 else means[order[0]]
        ranked = sorted(score.dropna().items(), key=lambda kv: (-kv[1], kv[0]))
        half = PER_CLASS_LIMIT // 2
        keep = {n for n, _ in ranked[:half]} | {n for n, _ in ranked[-half:]}
        labels = [n for n in labels if n in keep]
        df = df[df["name"].isin(keep)]
        what = (f"largest gains and losses of {variant_name(order[-1])} over {variant_name(order[0])}"
                if len(order) >= 2 else "the most and the least accurate")
        note = f"\n{len(labels)} of {len(classes)} classes: {what}"
    _, sns = plotting()
    fig = new_figure()
    ax = fig.add_subplot()
    sns.barplot(data=df, y="name", x="accuracy", hue="variant", order=labels, hue_order=order,
                palette=palette(order), errorbar="sd", orient="h", err_kws={"linewidth": 0.8}, ax=ax)
    ax.set_xlim(0, 100)
    ax.set_xlabel("accuracy (%)")
    ax.set_ylabel("")
    ax.tick_params(axis="y", labelsize=6 if len(labels) <= 20 else 4)
    handles, names = ax.get_legend_handles_labels()
    ax.get_legend().remove()
    fig.legend(handles, [variant_name(n) for n in names], fontsize=7, loc="outside lower center",
               ncols=len(order), frameon=False)
    ax.set_title(f"{title}, mean ± std over seeds{note}", fontsize=9)
    return fig


def per_class_sentence(inputs: Inputs) -> str:
    tree, dataset = inputs.tree, inputs.dataset
    df = per_class_frame(tree, dataset)
    if df.empty:
        return "No per-class accuracy yet (`per_class.csv` of `mienet evaluate`)."
    order = per_class_variants(tree, dataset, set(df["variant"]))
    if len(order) < 2:
        return f"Per-class accuracy of {variant_name(order[0])} only: no other variant to compare with yet."
    base, top = order[0], order[-1]
    means = df[df["variant"].isin([base, top])].groupby(["label", "variant"])["accuracy"].mean().unstack(1)
    means = means.dropna()
    names = df.drop_duplicates("label").set_index("label")["class"]
    gain = (means[top] - means[base]).round(6)
    better, equal = int((gain > 0).sum()), int((gain == 0).sum())
    text = (f"{variant_name(top)} is more accurate than {variant_name(base)} on {better} of {len(gain)} classes"
            + (f" and equal on {equal}" if equal else ""))
    g = sorted(gain.items(), key=lambda kv: (-kv[1], kv[0]))
    if g and g[0][1] > 0:
        text += f"; the largest gain is {names[g[0][0]]} ({g[0][1]:+.2f} points)"
    if g and g[-1][1] < 0:
        text += f", the largest loss {names[g[-1][0]]} ({g[-1][1]:+.2f} points)"
    return text + f" (means over seeds; shown: {', '.join(variant_name(v) for v in order)})."


def accuracy_gflops(inputs: Inputs):
    """Mean top-1 against GFLOPs per clip, one labelled point per variant (error bar: 95 % CI)."""
    tree, dataset = inputs.tree, inputs.dataset
    title = f"{dataset_title(dataset)}: accuracy against GFLOPs"
    points = []
    for v in tree.variants(dataset):
        stats = tree.stats(dataset, v)
        g, m = as_number(stats.first("gflops")), stats.mean("top1")
        if g is not None and m is not None:
            iv = accuracy_interval(tree, dataset, v)
            has_ci = iv is not None and iv.has_ci
            err = [[max(m - iv.low, 0.0)], [max(iv.high - m, 0.0)]] if has_ci else [[0.0], [0.0]]
            points.append((v, g, m, err))
    if not points:
        return placeholder(title, "no evaluated runs with GFLOPs")
    colours = palette([p[0] for p in points])
    fig = new_figure()
    ax = fig.add_subplot()
    for i, (v, g, m, s) in enumerate(points):
        ax.errorbar(g, m, yerr=s, fmt="o", color=colours[v], ecolor=colours[v], capsize=3, markersize=6)
        ax.annotate(variant_name(v), (g, m), xytext=(6, 4 if i % 2 == 0 else -10), textcoords="offset points",
                    fontsize=7)
    gs = [p[1] for p in points]
    span = max(max(gs) - min(gs), 0.05 * max(gs), 1e-3)
    ax.set_xlim(min(gs) - 0.15 * span, max(gs) + 0.35 * span)
    ax.set_xlabel("GFLOPs per clip")
    ax.set_ylabel("top-1 (%)")
    ax.set_title(f"{dataset_title(dataset)}: mean top-1 (95 % CI) against GFLOPs per clip")
    return fig


def accuracy_gflops_sentence(inputs: Inputs) -> str:
    tree, dataset = inputs.tree, inputs.dataset

    def point(v):
        s = tree.stats(dataset, v)
        g = as_number(s.first("gflops"))
        return (g, s.mean("top1")) if g is not None and s.n else None

    pts = {v: point(v) for v in ran_variants(tree, dataset)}
    pts = {v: p for v, p in pts.items() if p is not None}
    if not pts:
        return "No evaluated runs with GFLOPs yet."
    if FULL_MODEL in pts and BASELINE in pts:
        (g1, a1), (g0, a0) = pts[FULL_MODEL], pts[BASELINE]
        ratio = f" ({g1 / g0:.2f}×)" if g0 else ""
        return (f"MIE-Net costs {g1:.2f} GFLOPs per clip against {g0:.2f} for TSN{ratio} and scores "
                f"{points_text(a1 - a0, 'TSN')} in mean top-1.")
    cheapest = min(pts, key=lambda v: (pts[v][0], v))
    best = max(pts, key=lambda v: (pts[v][1], v))
    return (f"Cheapest: {variant_name(cheapest)} at {pts[cheapest][0]:.2f} GFLOPs ({pts[cheapest][1]:.2f} top-1); "
            f"most accurate: {variant_name(best)} at {pts[best][0]:.2f} GFLOPs ({pts[best][1]:.2f} top-1).")


OUTPUTS = (
    Output("ablation_bars", FIGURE, DATASET, heading="Ablation bars", build=ablation_bars,
           sentence=ablation_bars_sentence,
           caption="Top-1 accuracy per variant: the bar is the mean over seeds, the error bar its 95 % confidence "
                   "interval (hierarchical bootstrap over seeds and test clips), the dots the individual seeds, the "
                   "dashed line the variant's ceiling where the dataset has a factor design; \"not run\" marks a "
                   "variant without runs."),
    Output("curves", FIGURE, DATASET, heading="Training and validation curves", build=curves,
           sentence=curves_sentence,
           caption="Training (dashed) and validation (solid) loss and top-1 over epochs per variant: the line is "
                   "the mean over seeds, the band one standard deviation."),
    Output("confusion", FIGURE, DATASET, heading="Confusion matrix", build=confusion, sentence=confusion_sentence,
           caption="Confusion matrix of MIE-Net (or, without MIE-Net runs, of the best variant), summed over its "
                   "seeds and normalised per true class (percent); rows are the true classes by name, columns the "
                   "predicted class index."),
    Output("per_class", FIGURE, DATASET, heading="Per-class accuracy", build=per_class, sentence=per_class_sentence,
           caption="Accuracy of every class for TSN and MIE-Net (and the best variant if it is neither): mean over "
                   "seeds, error bar one standard deviation."),
    Output("accuracy_gflops", FIGURE, DATASET, heading="Accuracy against GFLOPs", build=accuracy_gflops,
           sentence=accuracy_gflops_sentence,
           caption="Mean top-1 accuracy against GFLOPs per clip, one labelled point per variant, with its 95 % "
                   "confidence interval (hierarchical bootstrap over seeds and test clips) as error bar."),
)


def write_figures(inputs: Inputs, plots_dir: Path) -> list[Path]:
    """Every figure of :data:`OUTPUTS` for ``inputs.dataset``, as PNG and PDF under ``plots_dir``."""
    plt, sns = plotting()
    written = []
    with plt.rc_context():
        sns.set_theme(**THEME)
        for output in OUTPUTS:
            written += save_figure(output.build(inputs), plots_dir / output.stem(inputs.dataset))
    return written
