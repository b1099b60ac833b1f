"""One generated sentence per table and figure: who won, by how much, over how many seeds."""

from __future__ import annotations

from mienet.models.variants import VARIANTS
from mienet.report.collect import (
    ResultsTree,
    SeedStats,
    as_number,
    confusion_for,
    curves_frame,
    per_class_frame,
    per_class_variants,
)
from mienet.report.published import PublishedRow
from mienet.report.tables import dataset_name, variant_name


def _seeds(n: int) -> str:
    return "one seed" if n == 1 else f"{n} seeds"


def describe(stats: SeedStats, key: str = "top1", label: str = "top-1") -> str:
    """``83.40 ± 1.20 top-1 over 3 seeds`` or ``83.40 top-1 from one seed``."""
    m, s = stats.mean(key), stats.std(key)
    if s is None:
        return f"{m:.2f} {label} from one seed"
    return f"{m:.2f} ± {s:.2f} {label} over {_seeds(stats.n)}"


def _gap(a: SeedStats, b: SeedStats) -> tuple[float, bool]:
    """Mean top-1 of ``a`` minus ``b``, and whether that is within the larger seed std."""
    diff = a.mean("top1") - b.mean("top1")
    spread = max(a.std("top1") or 0.0, b.std("top1") or 0.0)
    return diff, abs(diff) <= spread


def _points(diff: float, than: str) -> str:
    return f"{abs(diff):.2f} points {'above' if diff >= 0 else 'below'} {than}"


def ran_variants(tree: ResultsTree, dataset: str) -> list[str]:
    return [v for v in tree.variants(dataset) if tree.stats(dataset, v).n > 0]


def best_variant(tree: ResultsTree, dataset: str) -> str | None:
    ran = ran_variants(tree, dataset)
    if not ran:
        return None
    return min(ran, key=lambda v: (-tree.stats(dataset, v).mean("top1"), ran.index(v)))


def ablation(tree: ResultsTree, dataset: str) -> str:
    name = dataset_name(dataset)
    ran = ran_variants(tree, dataset)
    if not ran:
        return f"No runs of {name} yet: every row of the table is a dash."
    stats = {v: tree.stats(dataset, v) for v in ran}
    best = best_variant(tree, dataset)
    parts = []
    lead = "mienet" if "mienet" in stats else best
    sentence = f"On {name}, {variant_name(lead)} reaches {describe(stats[lead])}"
    if "tsn" in stats and lead != "tsn":
        diff, within = _gap(stats[lead], stats["tsn"])
        sentence += (f", {_points(diff, 'the TSN baseline')} ({describe(stats['tsn'])})"
                     + (", within the seed-to-seed spread" if within else ""))
    parts.append(sentence + ".")
    if len(ran) > 1:
        if best == lead:
            runner = min((v for v in ran if v != best), key=lambda v: (-stats[v].mean("top1"), ran.index(v)))
            diff, within = _gap(stats[best], stats[runner])
            parts.append(f"It is the best of the {len(ran)} variants run, {diff:.2f} points ahead of "
                         f"{variant_name(runner)} ({describe(stats[runner])})"
                         + (", within the seed-to-seed spread." if within else "."))
        else:
            diff, within = _gap(stats[best], stats[lead])
            parts.append(f"The best of the {len(ran)} variants run is {variant_name(best)} with "
                         f"{describe(stats[best])}, {diff:.2f} points above {variant_name(lead)}"
                         + (", within the seed-to-seed spread." if within else "."))
    missing = [v for v in VARIANTS if v not in stats]
    if missing:
        parts.append(f"{len(missing)} of the {len(VARIANTS)} variants have no run yet "
                     f"({', '.join(variant_name(v) for v in missing)}): dashes.")
    return " ".join(parts)


def ablation_bars(tree: ResultsTree, dataset: str) -> str:
    ran = ran_variants(tree, dataset)
    if not ran:
        return f"No runs of {dataset_name(dataset)} yet: a placeholder figure."
    best = best_variant(tree, dataset)
    missing = [v for v in VARIANTS if v not in ran]
    text = (f"Bars: mean top-1 over seeds, error bars one sample standard deviation, dots the single seeds; "
            f"the highest bar is {variant_name(best)} ({describe(tree.stats(dataset, best))})")
    if missing:
        text += f"; {len(missing)} variant{'s' * (len(missing) != 1)} not run (no bar)"
    return text + "."


def comparison(tree: ResultsTree, dataset: str, published: tuple[PublishedRow, ...]) -> str:
    name = dataset_name(dataset)
    reported = [p for p in published if p.dataset == dataset]
    if not reported:
        return (f"No published numbers exist for {name}; the table shows this project's measurements only"
                + (f": {variant_name('mienet')} {describe(tree.stats(dataset, 'mienet'))}."
                   if tree.stats(dataset, "mienet").n else "."))
    parts, absent = [], []
    for p in reported:
        if not p.counterpart:
            continue
        stats = tree.stats(dataset, p.counterpart)
        if stats.n == 0:
            absent.append(p.model)
            continue
        diff = stats.mean("top1") - float(p.top1)
        parts.append(f"{p.model} ({p.counterpart}) measures {describe(stats)} against {p.top1} reported "
                     f"({diff:+.2f} points)")
    text = "; ".join(parts) + "." if parts else f"None of the reported models has been run on {name} yet."
    if parts and absent:
        text += f" Not run yet: {', '.join(absent)}."
    return f"On {name}: {text}" if parts else text


def curves(tree: ResultsTree, dataset: str) -> str:
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
                      f"({_seeds(part['seed'].nunique())})"))
    return "Best mean validation top-1: " + "; ".join(i[2] for i in sorted(items)) + "."


def confusion(tree: ResultsTree, dataset: str) -> str:
    conf = confusion_for(tree, dataset)
    if conf is None:
        return "No confusion matrix yet (`confusion.csv` of `mienet evaluate`)."
    why = "" if conf.variant == "mienet" else " (MIE-Net has none; shown: the best variant that has one)"
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


def per_class(tree: ResultsTree, dataset: str) -> str:
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


def accuracy_gflops(tree: ResultsTree, dataset: str) -> str:
    def point(v):
        s = tree.stats(dataset, v)
        g = as_number(s.first("gflops"))
        return (g, s.mean("top1")) if g is not None and s.n else None

    pts = {v: point(v) for v in ran_variants(tree, dataset)}
    pts = {v: p for v, p in pts.items() if p is not None}
    if not pts:
        return "No evaluated runs with GFLOPs yet."
    if "mienet" in pts and "tsn" in pts:
        (g1, a1), (g0, a0) = pts["mienet"], pts["tsn"]
        ratio = f" ({g1 / g0:.2f}×)" if g0 else ""
        return (f"MIE-Net costs {g1:.2f} GFLOPs per clip against {g0:.2f} for TSN{ratio} and scores "
                f"{_points(a1 - a0, 'TSN')} in mean top-1.")
    cheapest = min(pts, key=lambda v: (pts[v][0], v))
    best = max(pts, key=lambda v: (pts[v][1], v))
    return (f"Cheapest: {variant_name(cheapest)} at {pts[cheapest][0]:.2f} GFLOPs ({pts[cheapest][1]:.2f} top-1); "
            f"most accurate: {variant_name(best)} at {pts[best][0]:.2f} GFLOPs ({pts[best][1]:.2f} top-1).")


def search(tree: ResultsTree, datasets: list[str]) -> str:
    parts = []
    for dataset, v, s, tuned in tree.searched(datasets):
        text = f"{variant_name(v)} on {dataset_name(dataset)}:"
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
                text += (f" against {describe(default)} for the defaults "
                         f"({tuned.top1 - default.mean('top1'):+.2f} points)")
        parts.append(text + ".")
    return " ".join(parts) if parts else "No hyper-parameter search results yet."


def efficiency(tree: ResultsTree) -> str:
    if not tree.bench:
        return ("No training benchmarks yet (`mienet bench train --json` into `bench/`): parameters and GFLOPs "
                "only, speed columns are dashes.")
    from mienet.report.tables import bench_order

    parts = []
    for r in sorted(tree.bench, key=bench_order):
        clips, speedup = as_number(r.get("clips_per_s")), as_number(r.get("speedup"))
        text = (f"{variant_name(str(r['variant']))} ({r.get('segments', '?')} segments of "
                f"{r.get('size', '?')} px, "
                f"batch {r.get('batch', '?')}) trains at {clips:.2f} clips/s on "
                f"{r.get('device_name') or r.get('device') or 'an unnamed device'}")
        if speedup is not None:
            text += f", {speedup:.2f}× the eager float32 path"
        parts.append(text)
    return "; ".join(parts) + "."
