"""The efficiency table: parameters and GFLOPs of the evaluated models beside the training speed
of ``mienet bench train`` (``bench/*.json``), and the sentence that says how fast each trains."""

from __future__ import annotations

from mienet.registry.formats import dataset_title
from mienet.registry.variants import VARIANTS
from mienet.report.collect import as_number
from mienet.report.spec import GLOBAL, TABLE, Inputs, Output
from mienet.report.table import DASH, Table
from mienet.report.tables import code, fmt, frames_label, num, variant_name

BENCH_MATCH = ("variant", "arch", "segments", "size", "frames_per_segment")
COLUMNS = ["dataset", "variant", "arch", "frames", "size", "params_m", "gflops", "device", "device_name",
           "speed_name", "batch", "clips_per_s", "eager_fp32_clips_per_s", "speedup", "tflops", "data_wait_share",
           "inference_clips_per_s", "bench_file", "note"]
NOTES = ("Clips per second: batch over the median training-step time of `mienet bench train` "
         "(forward, backward, SGD) on the default speed path; eager fp32: the released code's plain "
         "float32 path measured in the same run; speedup: their ratio. TFLOP/s: achieved model FLOPs "
         "(3 x forward per clip) per second on the default path. Data wait: the share of an end-to-end "
         "training epoch spent waiting for the loader (`mienet bench e2e`, in `gpu_summary.json`). "
         "Inference clips/s: a dash unless a benchmark reports it.")


def bench_order(record: dict) -> tuple:
    return (
        list(VARIANTS).index(record["variant"]) if record.get("variant") in VARIANTS else len(VARIANTS),
        str(record.get("variant")), str(record.get("arch")), int(as_number(record.get("segments")) or 0),
        int(as_number(record.get("size")) or 0), int(as_number(record.get("batch")) or 0),
        str(record.get("device")), record.get("_file", ""),
    )


def _add(t: Table, model: dict, record: dict | None, label: str, note: str = "") -> None:
    """A row: ``model`` (dataset, variant, arch, frames, size, params, gflops of the evaluated runs)
    with the benchmark ``record`` of its shape (None: dashes)."""
    r = record or {}
    clips, eager = as_number(r.get("clips_per_s")), as_number(r.get("eager_fp32_clips_per_s"))
    speedup, infer = as_number(r.get("speedup")), as_number(r.get("inference_clips_per_s"))
    tflops, wait = as_number(r.get("tflops")), as_number(r.get("data_wait_share"))  # gpu_summary.json
    device = str(r.get("device_name") or r.get("device") or "")
    size = "" if model["size"] in (None, "") else str(model["size"])
    t.add([dataset_title(model["dataset"]) if model["dataset"] else DASH, label, model["frames"] or DASH,
           size or DASH, num(model["params"]), num(model["gflops"]), device or DASH,
           str(r["batch"]) if r.get("batch") else DASH, num(clips), num(eager),
           f"{speedup:.2f}×" if speedup is not None else DASH, num(tflops),
           f"{100 * wait:.1f} %" if wait is not None else DASH, num(infer)],
          dict(zip(COLUMNS, [
              model["dataset"], model["variant"], str(model["arch"] or ""), model["frames"], size,
              fmt(model["params"], 4), fmt(model["gflops"], 4), str(r.get("device", "")),
              str(r.get("device_name", "")), str(r.get("speed_name", "")), str(r.get("batch", "")), fmt(clips, 2),
              fmt(eager, 2), fmt(speedup, 3), fmt(tflops, 3), fmt(wait, 4), fmt(infer, 2), r.get("_file", ""),
              note])))


def _model(dataset: str, variant: str, arch=None, segments=None, frames_per_segment=None, size=None,
           params: float | None = None, gflops: float | None = None) -> dict:
    return {"dataset": dataset, "variant": variant, "arch": arch, "size": size, "params": params, "gflops": gflops,
            "frames": frames_label(variant, segments, frames_per_segment)}


def efficiency_table(inputs: Inputs) -> Table:
    tree = inputs.tree
    t = Table(
        stem="efficiency",
        caption="Efficiency: parameters and GFLOPs per clip of the evaluated models, and training clips per "
                "second from `mienet bench train` where it was run.",
        header=["dataset", "variant", "frames", "size", "params (M)", "GFLOPs", "device", "batch", "train clips/s",
                "eager fp32 clips/s", "speedup", "TFLOP/s", "data wait", "inference clips/s"],
        align="llcrrrlrrrrrrr", csv_columns=COLUMNS)
    bench = sorted(tree.bench, key=bench_order)
    used: set[str] = set()
    for dataset in inputs.datasets:
        for variant in tree.variants(dataset):
            stats = tree.stats(dataset, variant)
            if variant not in VARIANTS and stats.n == 0:
                continue
            if stats.n == 0:
                _add(t, _model(dataset, variant), None, code(variant) + t.notes.mark(
                    "missing", "not run: no metrics for this dataset, so no parameters or GFLOPs at its shape."),
                     "not run")
                continue
            shape = {k: stats.first(k) for k in BENCH_MATCH[1:]}
            model = _model(dataset, variant, shape["arch"], shape["segments"], shape["frames_per_segment"],
                           shape["size"], as_number(stats.first("params_m")), as_number(stats.first("gflops")))
            matches = [b for b in bench if b.get("variant") == variant
                       and all(str(b.get(k)) == str(shape[k]) for k in BENCH_MATCH[1:])]
            used.update(b["_file"] for b in matches)
            for record in matches or [None]:
                _add(t, model, record, code(variant))
    for record in bench:
        if record["_file"] in used:
            continue
        label = code(str(record["variant"])) + t.notes.mark(
            "benchonly", "a benchmark whose shape (variant, backbone, segments, size) matches no evaluated run: "
                         "no parameters or GFLOPs from `metrics.json`.")
        _add(t, _model("", str(record["variant"]), record.get("arch"), record.get("segments"),
                       record.get("frames_per_segment"), record.get("size")), record, label, "benchmark only")
    t.notes.add(NOTES)
    if not tree.bench:
        t.notes.add("No training benchmarks found (`bench/*.json`): the speed columns are dashes.")
    if tree.bench_skipped:
        t.notes.add(f"Not training-step benchmarks, left out: {', '.join(sorted(tree.bench_skipped))}.")
    return t


def efficiency_sentence(inputs: Inputs) -> str:
    tree = inputs.tree
    if not tree.bench:
        return ("No training benchmarks yet (`mienet bench train --json` into `bench/`): parameters and GFLOPs "
                "only, speed columns are dashes.")
    parts = []
    for r in sorted(tree.bench, key=bench_order):
        clips, speedup = as_number(r.get("clips_per_s")), as_number(r.get("speedup"))
        text = (f"{variant_name(str(r['variant']))} ({r.get('segments', '?')} segments of {r.get('size', '?')} px, "
                f"batch {r.get('batch', '?')}) trains at {clips:.2f} clips/s on "
                f"{r.get('device_name') or r.get('device') or 'an unnamed device'}")
        if speedup is not None:
            text += f", {speedup:.2f}× the eager float32 path"
        parts.append(text)
    return "; ".join(parts) + "."


OUTPUTS = (
    Output(
        "efficiency", TABLE, GLOBAL, heading="Efficiency", build=efficiency_table, sentence=efficiency_sentence,
        caption="Cost of each variant: parameters and GFLOPs per clip from the evaluated runs, and training clips "
                "per second of ``mienet bench train`` (default speed path and eager float32, with their ratio) "
                "where a benchmark was run; dashes elsewhere."),
)
