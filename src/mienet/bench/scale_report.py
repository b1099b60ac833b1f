"""The fits, the projection to Something-Something V2 and the tables of ``mienet bench scale``
(:mod:`mienet.bench.scale` measures).

Each extensive quantity (seconds, files, bytes) of :data:`QUANTITIES` is fitted as ``a + b * clips``
by least squares over the sizes and projected to SSv2's :data:`SSV2_CLIPS`; one whose fitted slope
is not above zero is projected as the mean of its measurements and marked "flat". The loader's
projection is its per-worker rate at the largest size times :data:`TARGET_CORES`. :func:`refit`
recomputes all of it for an earlier run's JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

from mienet.errors import MienetError

SSV2_CLIPS = 220_847
SSV2_FRAMES = 45
TARGET_DVC_STATUS_S = 60.0
TARGET_LOADER_CLIPS_PER_S = 200.0
TARGET_CORES = 16
QUANTITIES = {  # key: (label, unit)
    "extract_s": ("extraction", "s"),
    "files": ("files", ""),
    "bytes": ("data bytes", "B"),
    "disk_bytes": ("disk bytes", "B"),
    "snakemake_n_s": ("snakemake -n", "s"),
    "dvc_add_s": ("dvc add (frames)", "s"),
    "dvc_status_s": ("dvc status (frames, warm)", "s"),
    "dvc_push_s": ("dvc push (frames)", "s"),
    "dvc_commit_stage_s": ("dvc commit (extract stage)", "s"),
    "dvc_status_pipeline_s": ("dvc status (pipeline, warm)", "s"),
}


def fit_line(xs: list[float], ys: list[float]) -> dict:
    """Least-squares ``y = a + b x``, with R squared (1.0 for an exact fit)."""
    n = len(xs)
    if n < 2:
        raise ValueError("a fit needs at least two sizes")
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0
    a = my - b * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - a - b * x) ** 2 for x, y in zip(xs, ys))
    return {"a": a, "b": b, "r2": 1.0 - ss_res / ss_tot if ss_tot else 1.0}


# --------------------------------------------------------------------------- fit and projection


def fit_and_project(rows: list[dict], layouts: list[str], frames: int, clips: int = SSV2_CLIPS,
                    cores: int = TARGET_CORES) -> tuple[dict, dict]:
    fits: dict = {}
    projection: dict = {"clips": clips, "frames_per_clip": frames, "target_cores": cores}
    for layout in layouts:
        mine = sorted((r for r in rows if r["layout"] == layout), key=lambda r: r["clips"])
        if len(mine) < 2:
            continue
        xs = [r["clips"] for r in mine]
        fits[layout] = {}
        proj: dict = {}
        for key in QUANTITIES:
            if all(key in r for r in mine):
                ys = [float(r[key]) for r in mine]
                f = fit_line(xs, ys)
                flat = f["b"] <= 0  # cannot shrink with more clips: no growth measured
                fits[layout][key] = {"a": f["a"], "b_per_clip": f["b"], "r2": round(f["r2"], 4), "flat": flat}
                proj[key] = sum(ys) / len(ys) if flat else f["a"] + f["b"] * clips
        if "extract_s" in proj:
            proj["extract_s_on_target_cores"] = proj["extract_s"] * mine[-1].get("jobs", 2) / cores
        loaders = mine[-1].get("loader") or {}
        if loaders:  # the per-worker rate with the most workers measured (all cores busy)
            per_worker = loaders[str(max(int(k) for k in loaders))]["per_worker"]
            proj["loader_per_worker_clips_per_s"] = per_worker
            proj["loader_clips_per_s_on_target_cores"] = round(per_worker * cores, 1)
        projection[layout] = proj
    return fits, projection


# --------------------------------------------------------------------------- report


def _human(value: float, unit: str) -> str:
    if unit == "B":
        for u, f in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
            if abs(value) >= f:
                return f"{value / f:.2f} {u}"
        return f"{value:.0f} B"
    if unit == "s":
        if abs(value) >= 3600:
            return f"{value / 3600:.1f} h"
        if abs(value) >= 120:
            return f"{value / 60:.1f} min"
        return f"{value:.2f} s"
    return f"{value:,.0f}"


def markdown(result: dict) -> str:
    s = result["settings"]
    lines = [
        "# Frame layout at scale (`mienet bench scale`)",
        "",
        f"Synthetic clips (`mienet synth`) of {s['frames']} frames at {s['size']}x{s['size']}, {s['classes']} "
        f"classes; extraction with `-j {s['jobs']}`; JPEG quality {s['quality']}. Machine: {s['machine']['cpus']} "
        f"CPUs, {s['machine']['platform']}; DVC {s['versions'].get('dvc')}, Snakemake "
        f"{s['versions'].get('snakemake')}. Loader: T={s['segments']} x L={s['frames_per_segment']} frames, "
        f"{s['crop']} px crop, training augmentation, batch {s['batch']}, {s['batches']} batches, page cache warm.",
        "",
        "## Measured",
        "",
        "dvc status: of the frames alone (`dvc add`ed), the faster of two runs after a first; pipeline: a "
        "plain `dvc status` of the scratch project's dvc.yaml after `dvc commit` of its extract stage "
        "(videos folder in, frames out). snakemake -n: `snakemake -n reproduce_all`, the faster of two "
        "runs after a first.",
        "",
        "| clips | layout | frames | extract s | frames/s | clips/s | files | data | on disk | snakemake -n s "
        "| dvc add s | dvc status s | dvc push s | dvc commit stage s | dvc status pipeline s | " + " | ".join(
            f"loader {w}w clips/s" for w in s["workers"]) + " |",
        "|" + "---|" * (15 + len(s["workers"])),
    ]
    for r in result["rows"]:
        loader = r.get("loader") or {}
        cells = [r["clips"], r["layout"], f"{r['frames']:,}", f"{r['extract_s']:.1f}", f"{r['extract_frames_per_s']:,.0f}",
                 f"{r['extract_clips_per_s']:.1f}", f"{r['files']:,}", _human(r["bytes"], "B"),
                 _human(r["disk_bytes"], "B"), f"{r['snakemake_n_s']:.2f}" if "snakemake_n_s" in r else "-",
                 f"{r['dvc_add_s']:.2f}" if "dvc_add_s" in r else "-",
                 f"{r['dvc_status_s']:.2f}" if "dvc_status_s" in r else "-",
                 f"{r['dvc_push_s']:.2f}" if "dvc_push_s" in r else "-",
                 f"{r['dvc_commit_stage_s']:.2f}" if "dvc_commit_stage_s" in r else "-",
                 f"{r['dvc_status_pipeline_s']:.2f}" if "dvc_status_pipeline_s" in r else "-"]
        cells += [f"{loader[str(w)]['clips_per_s']:.1f}" if str(w) in loader else "-" for w in s["workers"]]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    lines += ["", "## Fit: quantity = a + b x clips", "",
              "| quantity | layout | a | b per clip | R^2 |", "|---|---|---|---|---|"]
    for layout, fits in result["fit"].items():
        for key, f in fits.items():
            label, unit = QUANTITIES[key]
            b = f"{f['b_per_clip'] * 1000:.3f} ms" if unit == "s" else (
                f"{f['b_per_clip']:,.1f}" + (" B" if unit == "B" else ""))
            lines.append(f"| {label} | {layout} | {_human(f['a'], unit)} | {b} | {f['r2']:.4f} |")
    p = result["projection"]
    layouts = [layout for layout in s["layouts"] if layout in p]
    lines += ["", f"## Projection to Something-Something V2 ({p['clips']:,} clips x {p['frames_per_clip']} frames)",
              "", "| quantity | " + " | ".join(layouts) + " |", "|---|" + "---|" * len(layouts)]
    for key, (label, unit) in QUANTITIES.items():
        if all(key in p[layout] for layout in layouts):
            cells = [_human(p[layout][key], unit) + (" (flat: mean)" if result["fit"][layout][key].get("flat")
                                                     else "") for layout in layouts]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if all("extract_s_on_target_cores" in p[layout] for layout in layouts):
        lines.append(f"| extraction on {p['target_cores']} cores (linear) | " + " | ".join(
            _human(p[layout]["extract_s_on_target_cores"], "s") for layout in layouts) + " |")
    if all("loader_per_worker_clips_per_s" in p[layout] for layout in layouts):
        lines.append("| loader per worker, clips/s (measured, largest size) | " + " | ".join(
            f"{p[layout]['loader_per_worker_clips_per_s']:.1f}" for layout in layouts) + " |")
        lines.append(f"| loader with {p['target_cores']} workers, clips/s (per worker x {p['target_cores']}) | "
                     + " | ".join(f"{p[layout]['loader_clips_per_s_on_target_cores']:.0f}" for layout in layouts)
                     + " |")
    t = result.get("targets") or {}
    if t:
        lines += ["", "## Targets", ""]
        for layout, verdict in t.get("layouts", {}).items():
            lines.append(f"- {layout}: " + "; ".join(verdict) + ".")
    c = result.get("containers")
    if c:
        lines += ["", f"## Reading {c['frames_per_read']} frames of a clip (bytes only, page cache warm, "
                      f"{c['clips']} clips, {c['reads']} reads, best of 3)", "",
                  "| container | clips/s |", "|---|---|"]
        lines += [f"| {name} | {rate:,.0f} |" for name, rate in c["clips_per_s"].items()]
    return "\n".join(lines) + "\n"


def bytes_per_frame(rows: list[dict]) -> dict:
    """Bytes on disk per extracted frame of each layout, at the largest size measured (what
    ``mienet sizing`` reads). Synthetic frames: real SSv2 JPEGs are larger."""
    out = {}
    for r in sorted(rows, key=lambda r: r["clips"]):
        if r.get("frames"):
            out[r["layout"]] = round(r["disk_bytes"] / r["frames"], 1)
    return out


def targets(projection: dict, layouts: list[str]) -> dict:
    out = {"dvc_status_s": TARGET_DVC_STATUS_S, "loader_clips_per_s": TARGET_LOADER_CLIPS_PER_S, "layouts": {}}
    for layout in layouts:
        p = projection.get(layout) or {}
        verdict = []
        for key, what in (("dvc_status_s", "frames"), ("dvc_status_pipeline_s", "pipeline")):
            if key in p:
                ok = p[key] < TARGET_DVC_STATUS_S
                verdict.append(f"dvc status ({what}) on SSv2 {_human(p[key], 's')} "
                               f"({'meets' if ok else 'misses'} < {TARGET_DVC_STATUS_S:.0f} s)")
        if "loader_clips_per_s_on_target_cores" in p:
            v = p["loader_clips_per_s_on_target_cores"]
            ok = v >= TARGET_LOADER_CLIPS_PER_S
            verdict.append(f"loader {v:.0f} clips/s projected on {projection['target_cores']} workers "
                           f"({'meets' if ok else 'misses'} >= {TARGET_LOADER_CLIPS_PER_S:.0f})")
        out["layouts"][layout] = verdict
    return out


def refit(path: Path) -> dict:
    """An earlier run's result with its fits, projection and targets recomputed from its rows."""
    try:
        result = json.loads(Path(path).read_text(encoding="utf-8"))
        rows, settings = result["rows"], result["settings"]
    except (OSError, ValueError, KeyError) as exc:
        raise MienetError(f"--refit {path}: not a `mienet bench scale` result ({exc})") from None
    fits, projection = fit_and_project(rows, settings["layouts"], settings["frames"])
    result.update(fit=fits, projection=projection, targets=targets(projection, settings["layouts"]),
                  bytes_per_frame=bytes_per_frame(rows))
    return result
