"""Write the fake results tree of tests/test_report.py (run once; the output is committed).

    python tests/data/report/make_fixture.py

synthetic: tsn 3 seeds, mienet 3 seeds + a tuned run and a search, afm 1 seed (the single-seed
case), dptam and the others absent (missing runs), tsn searched without a tuned run;
sljd: mienet and fusion_dptam with one seed each (the published rows); bench: a training
benchmark that matches a run, one that matches none, and a loader benchmark (not a training
one). Numbers are made up but consistent (top-1 = the confusion matrix's diagonal).
"""

from __future__ import annotations

import csv
import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE / "results"
CLASSES = ["00_prep_to_armswing_back", "01_armswing_back_to_prep", "02_armswing_back_to_crouch",
           "03_crouch_to_heel_off", "04_heel_off_to_takeoff", "05_takeoff_to_flight", "06_flight_to_landing",
           "07_landing_to_buffer_fast", "08_landing_to_buffer_slow", "09_buffer_to_stand"]
CLIPS_PER_CLASS = 8
STATS = {  # variant -> params (M), GFLOPs at 3 segments of 112 px (x4 at 224 px)
    "tsn": (23.528, 3.2412), "afm": (23.5375, 3.3619), "mienet": (26.7721, 3.3865),
    "fusion_dptam": (26.7705, 3.3856),
}


def write_csv(path: Path, header, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def run(dataset: str, variant: str, folder: str, seed: int, skill: float, rng, epochs: int = 6,
        size: int = 112) -> None:
    out = ROOT / dataset / variant / folder
    out.mkdir(parents=True, exist_ok=True)
    k = len(CLASSES)
    confusion = np.zeros((k, k), dtype=int)
    for c in range(k):
        p = np.clip(skill + rng.normal(0, 0.12), 0.05, 1.0)
        correct = int(rng.binomial(CLIPS_PER_CLASS, p))
        confusion[c, c] = correct
        for _ in range(CLIPS_PER_CLASS - correct):
            wrong = (c + int(rng.choice([-1, 1, 2]))) % k
            confusion[c, wrong] += 1
    n = int(confusion.sum())
    top1 = 100 * np.trace(confusion) / n
    top5 = min(100.0, top1 + 100 * (n - np.trace(confusion)) * 0.8 / n)
    per_class = [100 * confusion[c, c] / CLIPS_PER_CLASS for c in range(k)]
    params, gflops = STATS[variant]
    gflops = round(gflops * (size / 112) ** 2, 4)
    segments = 3
    metrics = {
        "dataset": dataset, "variant": variant, "arch": "resnet50", "seed": seed, "split": "val",
        "top1": round(top1, 4), "top5": round(top5, 4), "mean_class_acc": round(float(np.mean(per_class)), 4),
        "clips": n, "num_classes": k, "views": 1, "test_clips": 1, "test_crops": 1, "segments": segments,
        "frames_per_segment": 4, "size": size, "params_m": params, "gflops": gflops, "epochs": epochs,
        "trained_epochs": epochs, "best_epoch": epochs - 1,
        "checkpoint": f"runs/{dataset}/{variant}/{folder}/checkpoints/best.pt",
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    write_csv(out / "per_class.csv", ["label", "class", "clips", "correct", "accuracy"],
              [[c, CLASSES[c], CLIPS_PER_CLASS, confusion[c, c], f"{per_class[c]:.4f}"] for c in range(k)])
    write_csv(out / "confusion.csv", ["true \\ predicted", *CLASSES],
              [[CLASSES[c], *confusion[c].tolist()] for c in range(k)])
    rows = []
    for e in range(1, epochs + 1):
        frac = e / epochs
        train_loss = 2.3 * (1 - 0.8 * skill * frac) + rng.normal(0, 0.03)
        val_loss = train_loss + 0.15 + rng.normal(0, 0.03)
        train_top1 = 100 * min(1.0, 0.1 + 0.95 * skill * frac) + rng.normal(0, 1)
        val_top1 = top1 * (0.4 + 0.6 * frac) + rng.normal(0, 1.5)
        rows.append([e, f"{0.01 * (0.1 if e > 4 else 1):.6f}", f"{train_loss:.6f}", f"{train_top1:.4f}",
                     f"{val_loss:.6f}", f"{val_top1:.4f}", f"{min(100, val_top1 + 10):.4f}", 0, "12.5"])
    write_csv(out / "train_log.csv", ["epoch", "lr", "train_loss", "train_top1", "val_loss", "val_top1",
                                      "val_top5", "skipped", "seconds"], rows)
    write_csv(out / "predictions.csv", ["path", "label", "prediction", "correct"], [])


def tiny_png(path: Path, rgb=(40, 90, 160)) -> None:
    """A 4x4 PNG, written by hand (no plotting library needed)."""
    raw = b"".join(b"\x00" + bytes(rgb) * 4 for _ in range(4))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def main() -> None:
    if ROOT.exists():
        shutil.rmtree(ROOT)
    rng = np.random.default_rng(7)
    for seed in range(3):
        run("synthetic", "tsn", f"seed{seed}", seed, 0.55, rng)
        run("synthetic", "mienet", f"seed{seed}", seed, 0.85, rng)
    run("synthetic", "afm", "seed0", 0, 0.78, rng)
    run("synthetic", "mienet", "tuned", 0, 0.98, rng)
    run("sljd", "mienet", "seed0", 0, 0.8, rng, size=224)
    run("sljd", "fusion_dptam", "seed0", 0, 0.7, rng, size=224)
    search = ROOT / "synthetic" / "search" / "mienet"
    search.mkdir(parents=True)
    (search / "summary.json").write_text(json.dumps({
        "study_name": "synthetic-mienet", "metric": "val_top1", "dataset": "synthetic", "variant": "mienet",
        "n_trials": 12, "complete": 5, "pruned": 6, "failed": 1,
        "best_value": 88.75, "best_params": {"lr": 0.0031622776, "weight_decay": 0.00012, "dropout": 0.5,
                                             "batch_size": 8},
        "epochs_trained": 31, "epochs_without_pruning": 72, "epochs_saved_pct": 56.94444,
        "default_value": 84.5,
    }, indent=2) + "\n")
    for name in ("optimization_history", "param_importances"):
        tiny_png(search / "plots" / f"{name}.png")
    search = ROOT / "synthetic" / "search" / "tsn"
    search.mkdir(parents=True)
    (search / "summary.json").write_text(json.dumps({
        "study_name": "synthetic-tsn", "metric": "val_top1", "n_trials": 4, "complete": 4, "pruned": 0,
        "failed": 0, "best_value": 61.25,
        "best_params": {"lr": 0.01, "dropout": 0.6}, "epochs_trained": 24, "epochs_without_pruning": 24,
        "epochs_saved_pct": 0.0,
    }, indent=2) + "\n")
    bench = ROOT / "bench"
    bench.mkdir(parents=True)
    base = {"arch": "resnet50", "segments": 3, "size": 112, "frames_per_segment": 4, "num_classes": 10,
            "batch": 8, "device": "cuda", "device_name": "NVIDIA H100 80GB HBM3",
            "speed_name": "bf16+channels-last",
            "steps": 5, "warmup": 2}
    (bench / "mienet_synthetic.json").write_text(json.dumps(
        {**base, "variant": "mienet", "clips_per_s": 412.37, "eager_fp32_clips_per_s": 151.02,
         "speedup": 2.7306}, indent=2) + "\n")
    (bench / "tsn_224.json").write_text(json.dumps(
        {**base, "variant": "tsn", "size": 224, "device": "cpu", "device_name": "Intel Xeon", "batch": 2,
         "speed_name": "fp32", "clips_per_s": 3.5, "eager_fp32_clips_per_s": 3.1, "speedup": 1.129}, indent=2)
        + "\n")
    (bench / "loader.json").write_text(json.dumps({"loader_clips_per_s": 90.0, "clips_per_s": 90.0}) + "\n")


if __name__ == "__main__":
    main()
