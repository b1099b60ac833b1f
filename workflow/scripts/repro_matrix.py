"""What makes CPU runs of the default recipe differ: precision, threads, ISA (README, "The default run").

Trains and evaluates (test split, 1 clip, 1 crop: the committed protocol) a small matrix of the
synthetic recipe with `mienet train` / `mienet evaluate`, as the workflow runs them (threads
also in OMP_NUM_THREADS/MKL_NUM_THREADS, as Snakemake sets them), under several conditions,
and prints per run: training seconds, first-epoch training loss, best val top-1, test top-1,
and hashes of the weights (best.pt's tensors) and of predictions.csv; then per condition the
largest difference from the reference condition (the first) and whether it is bit-identical.
It measures; it asserts nothing.

    .venv/bin/snakemake --cores 2 data            # the synthetic data, once
    .venv/bin/python workflow/scripts/repro_matrix.py --out /tmp/repro-matrix
    .venv/bin/python workflow/scripts/repro_matrix.py --out /tmp/m --variants tsn --seeds 0 \\
        --condition ref:auto:1 --condition fp32-avx2:off:1:ONEDNN_MAX_CPU_ISA=AVX2,ATEN_CPU_CAPABILITY=avx2

A condition is NAME:AMP:THREADS[:ENV=VALUE,...][:VARIANTS+SEPARATED+BY+PLUS]; AMP is `mienet
train --amp` (auto: bf16 on a CPU with AVX512-BF16/AMX, else fp32; off: fp32). Evaluation takes
the training's precision (`mienet evaluate --amp auto`) and the condition's threads and
environment. Runs already in --out are reused (delete the folder to measure again).
Committed numbers (results/<dataset>/<variant>/seed<k>/metrics.json) are shown beside.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_CONDITIONS = [
    "bf16-t1:auto:1",          # the default run here: bf16 (AVX512-BF16), 1 thread a job
    "bf16-t1-again:auto:1",    # the same again: bit-identical?
    "bf16-t2:auto:2",
    "fp32-t1:off:1",           # what a CPU without native bf16 trains in
    "fp32-t2:off:2",
    "fp32-t1-again:off:1::mienet",
    # an AVX2 machine: oneDNN's and ATen's kernels restricted to AVX2
    "fp32-t1-avx2:off:1:ONEDNN_MAX_CPU_ISA=AVX2,ATEN_CPU_CAPABILITY=avx2",
]


def parse_condition(text: str) -> dict:
    parts = text.split(":")
    if len(parts) < 3:
        raise SystemExit(f"condition {text!r}: expected NAME:AMP:THREADS[:ENV=V,...][:VARIANTS]")
    env = dict(kv.split("=", 1) for kv in parts[3].split(",") if kv) if len(parts) > 3 else {}
    variants = parts[4].split("+") if len(parts) > 4 and parts[4] else None
    return {"name": parts[0], "amp": parts[1], "threads": int(parts[2]), "env": env, "variants": variants}


def weights_hash(checkpoint: Path) -> str:
    import torch

    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["model"]
    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode())
        h.update(state[name].detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:10]


def run(cmd: list[str], env: dict, log: Path) -> float:
    t0 = time.perf_counter()
    with log.open("w") as fh:
        rc = subprocess.run(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT).returncode
    if rc:
        raise SystemExit(f"failed ({rc}): {' '.join(cmd)}; see {log}")
    return time.perf_counter() - t0


def one(args, cond: dict, variant: str, seed: int) -> dict:
    import csv

    out = args.out / cond["name"] / f"{variant}-seed{seed}"
    run_dir, res_dir = out / "run", out / "eval"
    env = {**os.environ, **cond["env"], "OMP_NUM_THREADS": str(cond["threads"]),
           "MKL_NUM_THREADS": str(cond["threads"])}
    mienet = str(Path(sys.executable).with_name("mienet"))
    record = {"condition": cond["name"], "variant": variant, "seed": seed, "amp": cond["amp"],
              "threads": cond["threads"], "env": cond["env"]}
    timing = out / "timing.json"
    if not (res_dir / "metrics.json").is_file():
        out.mkdir(parents=True, exist_ok=True)
        train_s = run([mienet, "train", "--params", args.params, "--dataset", args.dataset, "--variant", variant,
                       "--seed", str(seed), "--out", str(run_dir), "--threads", str(cond["threads"]),
                       "--amp", cond["amp"], "--resume", "--restart-if-changed", "--no-progress"],
                      env, out / "train.log")
        eval_s = run([mienet, "evaluate", "--checkpoint", str(run_dir / "checkpoints"), "--params", args.params,
                      "--dataset", args.dataset, "--split", "standard", "--clips", "1", "--crops", "1",
                      "--out", str(res_dir), "--workers", "1", "--threads", str(cond["threads"]),
                      "--no-progress"], env, out / "evaluate.log")
        timing.write_text(json.dumps({"train_s": train_s, "eval_s": eval_s}))
    record.update(json.loads(timing.read_text()))
    with (run_dir / "log.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    metrics = json.loads((res_dir / "metrics.json").read_text())
    trained = metrics.get("train_environment")
    record.update({
        "precision": trained[-1]["precision"] if isinstance(trained, list) else "?",
        "epoch_s": statistics.fmean(float(r["seconds"]) for r in rows),
        "epoch1_loss": rows[0]["train_loss"], "epoch1_val": rows[0]["val_top1"],
        "best_val": max(float(r["val_top1"]) for r in rows),
        "best_epoch": metrics.get("best_epoch"), "test_top1": metrics["top1"],
        "weights": weights_hash(run_dir / "checkpoints" / "best.pt"),
        "predictions": hashlib.sha256((res_dir / "predictions.csv").read_bytes()).hexdigest()[:10],
    })
    committed = Path(args.results) / args.dataset / variant / f"seed{seed}" / "metrics.json"
    if committed.is_file():
        record["committed_top1"] = json.loads(committed.read_text()).get("top1")
    return record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--results", default="results", help="committed results to show beside")
    parser.add_argument("--variants", nargs="+", default=["tsn", "pa", "mienet"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--condition", action="append", help="NAME:AMP:THREADS[:ENV=V,...][:VARIANTS] "
                                                             "(repeatable; the first is the reference)")
    args = parser.parse_args()
    conditions = [parse_condition(c) for c in (args.condition or DEFAULT_CONDITIONS)]
    records = []
    for cond in conditions:
        for variant in cond["variants"] or args.variants:
            for seed in args.seeds:
                rec = one(args, cond, variant, seed)
                records.append(rec)
                print(f"# {rec['condition']} {variant} seed {seed}: test {rec['test_top1']:.2f} "
                      f"({rec['train_s']:.1f} s)", file=sys.stderr, flush=True)
    (args.out / "matrix.json").write_text(json.dumps(records, indent=2) + "\n")

    print("| condition | variant | seed | precision | threads | train s | s/epoch | epoch-1 loss | best val "
          "| test top-1 | committed | weights | predictions |")
    print("|" + " --- |" * 13)
    for r in records:
        print(f"| {r['condition']} | {r['variant']} | {r['seed']} | {r['precision']} | {r['threads']} "
              f"| {r['train_s']:.1f} | {r['epoch_s']:.2f} | {r['epoch1_loss']} | {r['best_val']:.2f} "
              f"(ep {r['best_epoch']}) | {r['test_top1']:.2f} | {r.get('committed_top1', '-')} "
              f"| {r['weights']} | {r['predictions']} |")
    ref_name = conditions[0]["name"]
    ref = {(r["variant"], r["seed"]): r for r in records if r["condition"] == ref_name}
    print(f"\nper condition, against {ref_name} (the same variants and seeds):")
    print("| condition | runs | bit-identical (weights, predictions) | same epoch-1 loss | max abs. diff. test "
          "top-1 | mean abs. diff. | mean train s |")
    print("|" + " --- |" * 7)
    for cond in conditions:
        rs = [r for r in records if r["condition"] == cond["name"]]
        pairs = [(r, ref[(r["variant"], r["seed"])]) for r in rs if (r["variant"], r["seed"]) in ref]
        same = sum(r["weights"] == q["weights"] and r["predictions"] == q["predictions"] for r, q in pairs)
        loss = sum(r["epoch1_loss"] == q["epoch1_loss"] for r, q in pairs)
        diffs = [abs(r["test_top1"] - q["test_top1"]) for r, q in pairs]
        print(f"| {cond['name']} | {len(rs)} | {same}/{len(pairs)} | {loss}/{len(pairs)} | "
              f"{max(diffs):.2f} | {statistics.fmean(diffs):.2f} | "
              f"{statistics.fmean(r['train_s'] for r in rs):.1f} |")
    print("\nmean test top-1 per variant (over the seeds):")
    variants = list(dict.fromkeys(r["variant"] for r in records))
    print("| condition | " + " | ".join(variants) + " |")
    print("|" + " --- |" * (len(variants) + 1))
    for cond in conditions:
        cells = []
        for v in variants:
            vals = [r["test_top1"] for r in records if r["condition"] == cond["name"] and r["variant"] == v]
            cells.append(f"{statistics.fmean(vals):.2f}" if vals else "-")
        print(f"| {cond['name']} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
