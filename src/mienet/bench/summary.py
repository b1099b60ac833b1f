"""``mienet bench summary``: ``bench train --compare [--fill-batch]`` and ``bench e2e`` JSON combined
into ``gpu_summary.json`` / ``.md`` (``workflow/scripts/gpu_checks.sh``), which the report's
efficiency table reads."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mienet.errors import MienetError

def gpu_summary(train: dict, e2e: dict | None = None) -> dict:
    """One record of a GPU check: ``bench train --compare [--fill-batch]`` and ``bench e2e``.
    Its top level is a ``bench train`` record (the report's efficiency table reads it), plus
    ``configurations``: every configuration at every batch with clips/s, the ratio to the
    released path of the same batch, TFLOP/s and the share of the bf16 peak."""
    keep = ("variant", "arch", "segments", "frames_per_segment", "size", "batch", "num_classes", "device",
            "device_name", "torch", "cuda", "cudnn", "clips_per_s", "eager_fp32_clips_per_s", "speedup",
            "speed_name", "speed", "tflops", "peak_bf16_tflops", "train_flops_per_clip", "steps", "warmup")
    out = {k: train.get(k) for k in keep}
    out["kind"] = "gpu_summary"
    configurations = []
    for runs in (train.get("runs", []), train.get("fill", {}).get("runs", [])):
        for r in runs:
            configurations.append({k: r.get(k) for k in ("name", "batch", "speed_name", "clips_per_s",
                                                         "vs_released", "tflops", "share_of_peak", "skipped")})
    out["configurations"] = configurations
    measured = [c for c in configurations if c["clips_per_s"] is not None]
    if measured:
        best = max(measured, key=lambda c: c["clips_per_s"])
        out["fastest"] = {"name": best["name"], "batch": best["batch"], "clips_per_s": best["clips_per_s"],
                          "vs_released": best["vs_released"], "tflops": best["tflops"]}
    if e2e is not None:
        out["e2e"] = {k: e2e.get(k) for k in ("clips_per_s", "data_wait_share", "compute_share", "gpu_busy_share",
                                              "workers", "pin_memory", "page_cache_dropped", "page_cache",
                                              "arch", "size", "batch", "steps",
                                              "speed_name", "cuda_graphs")}
        out["data_wait_share"] = e2e.get("data_wait_share")
    return out


def _cell(value, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def gpu_summary_markdown(summary: dict) -> str:
    lines = [
        f"# Training throughput on {summary.get('device_name')}",
        "",
        f"{summary.get('variant')}/{summary.get('arch')}, {summary.get('segments')} segments x "
        f"{summary.get('frames_per_segment')} frames of {summary.get('size')} px; torch {summary.get('torch')}, "
        f"CUDA {summary.get('cuda')}, cuDNN {summary.get('cudnn')}; bf16 dense peak "
        f"{_cell(summary.get('peak_bf16_tflops'), '{:g} TFLOP/s')}; model FLOPs per training clip "
        f"{_cell((summary.get('train_flops_per_clip') or 0) / 1e9 or None, '{:.1f} G')} (3 x forward).",
        "",
        "| configuration | batch | clips/s | vs released | TFLOP/s | of peak |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for c in summary.get("configurations", []):
        if c.get("skipped"):
            lines.append(f"| {c['name']} | {c['batch']} | skipped: {c['skipped']} | | | |")
            continue
        lines.append(f"| {c['name']} | {c['batch']} | {c['clips_per_s']:.1f} | {_cell(c['vs_released'], '{:.2f}x')} "
                     f"| {_cell(c['tflops'], '{:.3g}')} | {_cell(c['share_of_peak'], '{:.1%}')} |")
    e2e = summary.get("e2e")
    if e2e:
        lines += ["", f"End to end with the real loader (batch {e2e.get('batch')}, {e2e.get('workers')} workers, "
                      f"pin_memory {e2e.get('pin_memory')}, page cache dropped: {e2e.get('page_cache_dropped')}): "
                      f"{_cell(e2e.get('clips_per_s'), '{:.1f}')} clips/s, waiting for data "
                      f"{_cell(e2e.get('data_wait_share'), '{:.1%}')}, "
                      + (f"GPU busy {e2e['gpu_busy_share']:.1%}." if e2e.get("gpu_busy_share") is not None
                         else f"computing {_cell(e2e.get('compute_share'), '{:.1%}')} (no GPU).")]
    return "\n".join(lines) + "\n"


def run_summary(args: argparse.Namespace) -> int:
    def read(path):
        try:
            return json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise MienetError(f"cannot read the benchmark JSON {path}: {exc}") from None

    summary = gpu_summary(read(args.train), read(args.e2e) if args.e2e else None)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    markdown = gpu_summary_markdown(summary)
    out.with_suffix(".md").write_text(markdown)
    print(markdown, end="")
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return 0
