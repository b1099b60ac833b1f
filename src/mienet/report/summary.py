"""One generated sentence per table and figure: who won, by how much, over how many seeds."""

from __future__ import annotations

from mienet.registry.variants import VARIANTS
from mienet.report.analysis import Effect, accuracy_interval, at_ceiling, ceiling_delta, effect, module_effects
from mienet.report.collect import (
    ResultsTree,
    as_number,
    confusion_for,
    curves_frame,
    per_class_frame,
    per_class_variants,
)
from mienet.registry.published import PublishedRow
from mienet.report.stats import T, Interval
from mienet.report.tables import (
    ceiling_text,
    ci_how,
    dataset_name,
    shown_mean,
    signed_ceiling_text,
    split_text,
    variant_name,
)


def _seeds(n: int) -> str:
    return "one seed" if n == 1 else f"{n} seeds"


def _ci(interval: Interval | None) -> str:
    """`` [low, high]`` or '' without an interval."""
    return f" [{interval.low:.2f}, {interval.high:.2f}]" if interval is not None and interval.has_ci else ""


def describe(tree: ResultsTree, dataset: str, variant: str, metric: str = "top1", label: str = "top-1") -> str:
    """``83.40 [80.10, 86.50] top-1 over 3 seeds`` (mean with its 95 % CI) or ``... from one seed``."""
    stats = tree.stats(dataset, variant)
    iv = accuracy_interval(tree, dataset, variant, metric)
    m = shown_mean(stats, iv, metric)
    how = "from one seed" if stats.n == 1 else f"over {_seeds(stats.n)}"
    return f"{m:.2f}{_ci(iv)} {label} {how}"


def _signed(x: float) -> str:
    return f"{0.0 if round(x, 2) == 0 else x:+.2f}"


def _paired(e: Effect) -> str:
    """``paired 95 % CI [1.20, 5.30], resolved`` of an effect (over the seeds both ran)."""
    if e.interval is None or not e.interval.has_ci:
        return "no interval for the difference"
    seeds = "one shared seed" if len(e.seeds) == 1 else f"{len(e.seeds)} shared seeds"
    verdict = "resolved" if e.resolved else "not resolved: the CI includes 0"
    return f"paired 95 % CI{_ci(e.interval)} over {seeds}, {verdict}"


def _points(diff: float, than: str) -> str:
    return f"{abs(diff):.2f} points {'above' if diff >= 0 else 'below'} {than}"


def split_clause(tree: ResultsTree, dataset: str) -> str:
    """`` (checkpoint selected on `val`; scored on `test`)`` or '' without runs."""
    text = split_text(tree, dataset)
    return f" ({text})" if text else ""


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
    sentence = (f"On {name}{split_clause(tree, dataset)}, {variant_name(lead)} reaches "
                f"{describe(tree, dataset, lead)} (mean with its 95 % CI)")
    if "tsn" in stats and lead != "tsn":
        diff = stats[lead].mean("top1") - stats["tsn"].mean("top1")
        sentence += (f", {_points(diff, 'the TSN baseline')} ({describe(tree, dataset, 'tsn')}; "
                     f"{_paired(effect(tree, dataset, lead, 'tsn'))})")
    parts.append(sentence + ".")
    if len(ran) > 1:
        if best == lead:
            runner = min((v for v in ran if v != best), key=lambda v: (-stats[v].mean("top1"), ran.index(v)))
            diff = stats[best].mean("top1") - stats[runner].mean("top1")
            parts.append(f"It is the best of the {len(ran)} variants run, {diff:.2f} points ahead of "
                         f"{variant_name(runner)} ({describe(tree, dataset, runner)}; "
                         f"{_paired(effect(tree, dataset, best, runner))}).")
        else:
            diff = stats[best].mean("top1") - stats[lead].mean("top1")
            parts.append(f"The best of the {len(ran)} variants run is {variant_name(best)} with "
                         f"{describe(tree, dataset, best)}, {diff:.2f} points above {variant_name(lead)} "
                         f"({_paired(effect(tree, dataset, best, lead))}).")
    at, below = ceiling_split(tree, dataset, ran)
    if at or below:
        parts.append(ceiling_sentence(at, below))
    missing = [v for v in VARIANTS if v not in stats]
    if missing:
        parts.append(f"{len(missing)} of the {len(VARIANTS)} variants have no run yet "
                     f"({', '.join(variant_name(v) for v in missing)}): dashes.")
    return " ".join(parts)


def ceiling_split(tree: ResultsTree, dataset: str, variants: list[str], metric: str = "top1"):
    """([(variant, mean, ceiling)] at their ceiling, [...] below it) of the variants with a ceiling."""
    at, below = [], []
    for v in variants:
        stats = tree.stats(dataset, v)
        ceiling, iv = stats.ceiling(metric), accuracy_interval(tree, dataset, v, metric)
        reached = at_ceiling(iv, ceiling)
        if reached is None:
            continue
        (at if reached else below).append((v, shown_mean(stats, iv, metric), ceiling))
    return at, below


def ceiling_sentence(at, below) -> str:
    def items(rows):
        return ", ".join(f"{variant_name(v)} ({m:.2f} of {ceiling_text(c)})" for v, m, c in rows)

    parts = []
    if at:
        parts.append(f"At their top-1 ceiling (the 95 % CI reaches what the design allows): {items(at)}")
    if below:
        parts.append(f"{'b' if at else 'B'}elow it: {items(below)}")
    return "; ".join(parts) + "."


def effects(tree: ResultsTree, dataset: str) -> str:
    """Which module effects are resolved (95 % CI excludes 0), which not, which cannot be computed."""
    name = dataset_name(dataset)
    all_effects = module_effects(tree, dataset)
    if not any(e.interval is not None for e in all_effects):
        return f"No module effect can be computed on {name} yet: every pair lacks a variant; dashes."

    def item(e: Effect) -> str:
        how = []
        if e.interval.method == T:
            how.append(f"t-interval over {_seeds(len(e.seeds))}, no predictions")
        elif len(e.seeds) == 1:
            how.append("one shared seed")
        if e.machine_sensitive(tree.machine_margins.get(dataset)):
            how.append("machine-sensitive: may flip on another machine")
        allowed = ceiling_delta(tree, dataset, e.variant_a, e.variant_b)
        if allowed is not None:
            how.append(f"the design allows {signed_ceiling_text(allowed)}")
        return (f"{e.explanation} (`{e.variant_a}` − `{e.variant_b}`) {_signed(e.delta)}"
                f"{_ci(e.interval)}" + (f" ({'; '.join(how)})" if how else ""))

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


def factors(tree: ResultsTree, dataset: str) -> str:
    """Which variants sit at their ceiling, and each other variant's weakest factor."""
    name = dataset_name(dataset)
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


def ablation_bars(tree: ResultsTree, dataset: str) -> str:
    ran = ran_variants(tree, dataset)
    if not ran:
        return f"No runs of {dataset_name(dataset)} yet: a placeholder figure."
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


def comparison(tree: ResultsTree, dataset: str, published: tuple[PublishedRow, ...]) -> str:
    name = dataset_name(dataset)
    reported = [p for p in published if p.dataset == dataset]
    if not reported:
        return (f"No published numbers exist for {name}; the table shows this project's measurements only"
                + (f": {variant_name('mienet')} {describe(tree, dataset, 'mienet')}"
                   f"{split_clause(tree, dataset)}." if tree.stats(dataset, "mienet").n else "."))
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
                text += (f" against {describe(tree, dataset, v)} for the defaults "
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


def _grouped(runs, describe_run) -> str:
    """'all 21 runs X' or '12 runs X; 9 runs Y' (largest group first) of the runs' descriptions."""
    from collections import Counter

    counts = Counter(describe_run(r) for r in runs)
    if len(counts) == 1:
        (text, n), = counts.items()
        return f"{'the run' if n == 1 else 'both runs' if n == 2 else f'all {n} runs'}: {text}"
    return "; ".join(f"{n} run{'s' if n > 1 else ''}: {text}"
                     for text, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def environment(tree: ResultsTree, dataset: str) -> str:
    """How the runs of ``dataset`` were computed: the training's precision, threads and machine,
    the evaluation's, and the evaluate settings; what is bit-identical and what is not."""
    from mienet.engine.provenance import NOT_RECORDED, summary

    runs = tree.all_runs(dataset)
    if not runs:
        return f"No runs of {dataset_name(dataset)} yet."

    def evaluated(r):
        got = r.evaluated_with()
        views = (f"{got['clips']} clip{'s' if got['clips'] != 1 else ''} x {got['crops']} "
                 f"crop{'s' if got['crops'] != 1 else ''}" if "clips" in got and "crops" in got else "views ?")
        return f"`{got.get('split', '?')}`, {views}"

    settings = f"Evaluate settings of {_grouped(runs, evaluated)}."
    if all(r.train_environment is None and r.evaluate_environment is None for r in runs):
        text = (f"{settings} Machine, threads and precision: not recorded (these metrics.json were written "
                "before `mienet evaluate` recorded them). ")
    else:
        trained = _grouped(runs, lambda r: summary(r.train_environment) if r.train_environment else NOT_RECORDED)
        scored = _grouped(runs, lambda r: summary(r.evaluate_environment) if r.evaluate_environment
                          else NOT_RECORDED)
        text = (f"Training (precision, PyTorch threads, machine) of {trained}. Evaluation of {scored}. "
                f"{settings} ")
    return text + ("A run is bit-identical only on the same machine with the same thread count and "
                   "precision; another thread count, precision or CPU changes it from the first epoch "
                   "(README, “The default run”).")
