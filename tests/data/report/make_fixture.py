"""Write the fake results tree of tests/test_report.py (run once; the output is committed).

    python tests/data/report/make_fixture.py

synthetic (a factor design: appearance x motion x order, 8 classes, 160 test clips; metrics
name the split `test`, the selection split `val`, per-factor accuracy and every variant's
ceilings): tsn, naive_fusion and mienet 3 seeds each, mienet also a tuned run and a search,
afm 1 seed (the single-seed case), pa 2 seeds without predictions.csv (the t-interval
fallback), dptam and fusion_dptam absent (missing runs), tsn searched without a tuned run;
sljd (no factor design, old-style metrics: split `val`, no selection split): mienet and
fusion_dptam with one seed each (the published rows); bench: a training benchmark that matches
a run, one that matches none, and a loader benchmark (not a training one). Numbers are made up
but consistent: predictions.csv, confusion.csv, per_class.csv and metrics.json tell the same story.
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
# sljd: the 10 phase transitions of a standing long jump, no factor design.
SLJD_CLASSES = ["00_prep_to_armswing_back", "01_armswing_back_to_prep", "02_armswing_back_to_crouch",
                "03_crouch_to_heel_off", "04_heel_off_to_takeoff", "05_takeoff_to_flight", "06_flight_to_landing",
                "07_landing_to_buffer_fast", "08_landing_to_buffer_slow", "09_buffer_to_stand"]
SLJD_CLIPS_PER_CLASS = 8
# synthetic: every class is one level of each factor.
FACTOR_LEVELS = {"appearance": ("light", "dark"), "motion": ("armswing", "crouch"), "order": ("forward", "backward")}
FACTOR_DESIGN = {
    "appearance": "the jumper's colours: visible in any single RGB frame",
    "motion": "which limbs move within a segment: in the frame differences PA encodes, not in one frame",
    "order": "the movement played forwards or backwards: only in the order of the segments (DPTAM)",
}
LEVELS = [(a, m, o) for a in range(2) for m in range(2) for o in range(2)]  # class index -> factor levels
SYNTH_CLASSES = ["_".join(FACTOR_LEVELS[f][lv] for f, lv in zip(FACTOR_LEVELS, levels)) for levels in LEVELS]
SYNTH_CLIPS_PER_CLASS = 20
# What each variant can see of each factor by construction: 100 = all of it, 50 = chance (two levels).
CEILINGS = {
    "tsn": (100, 50, 50), "dptam": (100, 50, 100), "pa": (50, 100, 50), "naive_fusion": (100, 100, 50),
    "afm": (100, 100, 50), "fusion_dptam": (100, 100, 100), "mienet": (100, 100, 100),
}
STATS = {  # variant -> params (M), GFLOPs at 3 segments of 112 px (x4 at 224 px)
    "tsn": (23.528, 3.2412), "pa": (23.5217, 3.2826), "naive_fusion": (23.5374, 3.3401),
    "afm": (23.5375, 3.3619), "mienet": (26.7721, 3.3865), "fusion_dptam": (26.7705, 3.3856),
}


def write_csv(path: Path, header, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def base_metrics(dataset: str, variant: str, folder: str, seed: int, size: int, epochs: int) -> dict:
    params, gflops = STATS[variant]
    return {
        "dataset": dataset, "variant": variant, "arch": "resnet50", "seed": seed, "split": "val",
        "views": 1, "test_clips": 1, "test_crops": 1, "segments": 3, "frames_per_segment": 4, "size": size,
        "params_m": params, "gflops": round(gflops * (size / 112) ** 2, 4), "epochs": epochs,
        "trained_epochs": epochs, "best_epoch": epochs - 1,
        "checkpoint": f"runs/{dataset}/{variant}/{folder}/checkpoints/best.pt",
    }


def write_run(out: Path, metrics: dict, classes: list[str], rows: list[dict], rng, predictions: bool = True,
              epochs: int = 6) -> None:
    """metrics.json (top-1/top-5 from ``rows``), per_class.csv, confusion.csv, train_log.csv and
    predictions.csv of one run."""
    out.mkdir(parents=True, exist_ok=True)
    k = len(classes)
    confusion = np.zeros((k, k), dtype=int)
    for r in rows:
        confusion[r["label"], r["prediction"]] += 1
    n = len(rows)
    top1 = 100 * np.trace(confusion) / n
    top5 = 100 * sum(r["in_top5"] for r in rows) / n
    clips = confusion.sum(axis=1)
    per_class = [100 * confusion[c, c] / clips[c] for c in range(k)]
    metrics = {**metrics, "top1": round(top1, 4), "top5": round(top5, 4),
               "mean_class_acc": round(float(np.mean(per_class)), 4), "clips": n, "num_classes": k}
    factor_names = [c.removesuffix("_correct") for c in rows[0] if c.endswith("_correct")]
    if factor_names:
        metrics["factors"] = {f: round(100 * sum(r[f"{f}_correct"] for r in rows) / n, 4) for f in factor_names}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    write_csv(out / "per_class.csv", ["label", "class", "clips", "correct", "accuracy"],
              [[c, classes[c], clips[c], confusion[c, c], f"{per_class[c]:.4f}"] for c in range(k)])
    write_csv(out / "confusion.csv", ["true \\ predicted", *classes],
              [[classes[c], *confusion[c].tolist()] for c in range(k)])
    skill = top1 / 100
    log = []
    for e in range(1, epochs + 1):
        frac = e / epochs
        train_loss = 2.3 * (1 - 0.8 * skill * frac) + rng.normal(0, 0.03)
        val_loss = train_loss + 0.15 + rng.normal(0, 0.03)
        train_top1 = 100 * min(1.0, 0.1 + 0.95 * skill * frac) + rng.normal(0, 1)
        val_top1 = top1 * (0.4 + 0.6 * frac) + rng.normal(0, 1.5)
        log.append([e, f"{0.01 * (0.1 if e > 4 else 1):.6f}", f"{train_loss:.6f}", f"{train_top1:.4f}",
                    f"{val_loss:.6f}", f"{val_top1:.4f}", f"{min(100, val_top1 + 10):.4f}", 0, "12.5"])
    write_csv(out / "train_log.csv", ["epoch", "lr", "train_loss", "train_top1", "val_loss", "val_top1",
                                      "val_top5", "skipped", "seconds"], log)
    if predictions:
        write_csv(out / "predictions.csv", list(rows[0]), [list(r.values()) for r in rows])


def sljd_run(variant: str, folder: str, seed: int, skill: float, rng, size: int = 224) -> None:
    """A run on sljd: a per-class skill, errors to neighbouring classes, no factor columns."""
    k = len(SLJD_CLASSES)
    rows = []
    for c in range(k):
        p = np.clip(skill + rng.normal(0, 0.12), 0.05, 1.0)
        right = set(rng.permutation(SLJD_CLIPS_PER_CLASS)[:int(rng.binomial(SLJD_CLIPS_PER_CLASS, p))].tolist())
        for j in range(SLJD_CLIPS_PER_CLASS):
            pred = c if j in right else (c + int(rng.choice([-1, 1, 2]))) % k
            top5 = [(pred + d) % k for d in range(5)]
            rows.append({"path": f"frames/{SLJD_CLASSES[c]}/clip_{j:04d}", "label": c, "prediction": pred,
                         "correct": int(pred == c), "probability": f"{rng.uniform(0.2, 0.9):.6f}",
                         "top5": " ".join(map(str, top5)), "in_top5": int(c in top5)})
    write_run(ROOT / "sljd" / variant / folder, base_metrics("sljd", variant, folder, seed, size, 6),
              SLJD_CLASSES, rows, rng)


# Every synthetic clip's difficulty per factor, shared by all runs (a hard clip is hard for every model).
DIFFICULTY = np.random.default_rng(11).uniform(size=(len(LEVELS) * SYNTH_CLIPS_PER_CLASS, len(FACTOR_LEVELS)))


def synthetic_run(variant: str, folder: str, seed: int, skills: tuple[float, float, float], rng,
                  predictions: bool = True) -> None:
    """A run on the factor design: a factor the variant can see is right where the clip's
    difficulty is below the run's skill, one it cannot see is a coin flip."""
    ceilings = CEILINGS[variant]
    run_skill = [s + rng.normal(0, 0.03) for s in skills]
    rows = []
    for i, (c, levels) in enumerate((c, lv) for c, lv in enumerate(LEVELS) for _ in range(SYNTH_CLIPS_PER_CLASS)):
        j = i % SYNTH_CLIPS_PER_CLASS
        guessed = []
        for f, level in enumerate(levels):
            if ceilings[f] == 100:
                right = DIFFICULTY[i, f] < run_skill[f]
            else:
                right = rng.uniform() < 0.5
            guessed.append(level if right else 1 - level)
        pred = LEVELS.index(tuple(guessed))
        same_look = [x for x in range(len(LEVELS)) if LEVELS[x][0] == LEVELS[pred][0] and x != pred]
        top5 = [pred, *same_look, (pred + 4) % len(LEVELS)]
        row = {"path": f"frames/{SYNTH_CLASSES[c]}/clip_{j:04d}", "label": c, "prediction": pred,
               "correct": int(pred == c), "probability": f"{rng.uniform(0.2, 0.9):.6f}",
               "top5": " ".join(map(str, top5)), "in_top5": int(c in top5)}
        for f, name in enumerate(FACTOR_LEVELS):
            row[f"{name}_correct"] = int(LEVELS[pred][f] == levels[f])
        rows.append(row)
    top1_ceiling = 100 * np.prod([c / 100 for c in ceilings])
    metrics = {**base_metrics("synthetic", variant, folder, seed, 112, 6), "split": "test",
               "selection_split": "val", "factor_design": FACTOR_DESIGN,
               "ceiling": {"top1": round(float(top1_ceiling), 4),
                           "factors": {f: float(c) for f, c in zip(FACTOR_LEVELS, ceilings)}}}
    write_run(ROOT / "synthetic" / variant / folder, metrics, SYNTH_CLASSES, rows, rng, predictions)


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
    rng = np.random.default_rng(10)
    for seed in range(3):
        synthetic_run("tsn", f"seed{seed}", seed, (0.97, 0, 0), rng)
        synthetic_run("naive_fusion", f"seed{seed}", seed, (0.95, 0.82, 0), rng)
        synthetic_run("mienet", f"seed{seed}", seed, (0.97, 0.92, 0.88), rng)
    for seed in range(2):
        synthetic_run("pa", f"seed{seed}", seed, (0, 0.9, 0), rng, predictions=False)
    synthetic_run("afm", "seed0", 0, (0.96, 0.86, 0), rng)
    synthetic_run("mienet", "tuned", 0, (0.98, 0.96, 0.95), rng)
    sljd_run("mienet", "seed0", 0, 0.8, rng)
    sljd_run("fusion_dptam", "seed0", 0, 0.7, rng)
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
