"""``mienet sizing``: jobs, GPU-hours and disk of a profile on a cluster, before running it.

Derived, not guessed: the recipes, variants, seeds and searches come from params.yaml; each
model's FLOPs per clip from :func:`mienet.models.flops.model_stats`; the dataset sizes from the
annotation lists when they exist (``datasets/<name>/annotations``), else from the published
sizes below. One number is an input: the GPU's training rate for the reference model (MIE-Net,
ResNet-50, T = 8, 224 px), ``--clips-per-s``; measure it on your GPU with
``mienet bench train --variant mienet --arch resnet50 --segments 8 --size 224 --batch 8 --device cuda``
(or workflow/scripts/gpu_checks.sh). Every other model's rate is scaled by its FLOPs.

Costs counted per job, in GPU-hours:
  training  epochs x (train clips + val clips / 3) / rate   (validation every epoch, forward only = 1/3)
  evaluate  scored clips x views / 3 / rate
  search    trials x trial epochs x (train + val clips of the subset) / rate   (no pruning: an upper bound)
"""

from __future__ import annotations

import argparse
import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path

from mienet.config import TrainConfig, load_params, name_arg
from mienet.errors import MienetError
from mienet.layout import dataset_layout, profile_datasets
from mienet.pipeline import search_jobs, training_gpus
from mienet.registry.formats import FORMATS
from mienet.registry.variants import FULL_MODEL
from mienet.schedule import Job, critical_path, list_schedule
from mienet.search.space import read_search_settings

REFERENCE = (FULL_MODEL, "resnet50", 8, 224)  # the model --clips-per-s is measured on
# `mienet bench loader --json` of workflow/scripts/bench_loader_paper.sh (T = 8, L = 4, 224 px,
# SSv2-sized frames): the default of --loader-clips-per-worker when it exists
LOADER_BENCH = Path("results/bench/loader_paper.json")
REFERENCE_FRAMES = 32  # frames per clip of that measurement (T x L)
DEFAULT_RATE = 100.0  # clips/s: one modern GPU (the loader target of issue 13 is 2x this)
CHECKPOINT_FILES = 2  # best.pt and last.pt per run
CHECKPOINT_FACTOR = 2  # weights + SGD momentum, float32


@dataclass
class Split:
    clips: int
    frames: int | None  # total frames, when known


def dataset_sizes(name: str, annotations: Path, fmt: str) -> tuple[dict[str, Split], int, str]:
    """Clips (and frames) per split, classes, and where the figures come from: the lists, else the
    format's published size (:data:`mienet.registry.formats.FORMATS`)."""
    from mienet.data.annotations import read_frame_list  # lazy: 25 ms of `mienet sizing --help`

    lists = {s: annotations / f"{s}.txt" for s in ("train", "val", "test")}
    if lists["train"].is_file() and lists["val"].is_file():
        splits = {}
        for split, path in lists.items():
            if path.is_file():
                clips = read_frame_list(path)
                splits[split] = Split(len(clips), sum(c.frames for c in clips))
        classes_file = annotations / "classes.txt"
        classes = (len(classes_file.read_text().splitlines()) if classes_file.is_file()
                   else 1 + max(c.label for c in read_frame_list(lists["train"])))
        return splits, classes, f"counted in {annotations}"
    p = FORMATS[fmt].published
    if p is None:
        raise MienetError(f"dataset {name!r}: no annotation lists in {annotations} and no published size; "
                          "run `snakemake data` first")
    counts = {"train": p.train, "val": p.val, "test": p.test}
    splits = {s: Split(n, n * p.frames if p.frames else None) for s, n in counts.items() if n}
    return splits, p.classes, p.source


@functools.lru_cache(maxsize=None)
def model_stats(*args, **kwargs) -> dict:
    """:func:`mienet.models.flops.model_stats`, computed once per model and shape in a process
    (it builds the model and counts its FLOPs: seconds each). Callers only read the dict."""
    from mienet.models.flops import model_stats as count  # lazy: torch, 1.5 s of `mienet sizing --help`

    return count(*args, **kwargs)


def workers_needed(train_clips_per_s: float, clips_per_s_per_worker: float) -> int:
    """Loader workers (one CPU core each) that supply ``train_clips_per_s`` at
    ``clips_per_s_per_worker``, rounded up."""
    if clips_per_s_per_worker <= 0:
        raise MienetError("the loader delivered nothing: no worker count can feed a GPU")
    return max(1, math.ceil(train_clips_per_s / clips_per_s_per_worker - 1e-9))


def loader_check(row: dict, recipe_workers: int, per_worker_ref: float, cores_per_gpu: int) -> dict:
    """Whether a dataset's loader can feed one GPU: the GPU's clips/s for its reference model
    (``row["gpu_clips_per_s"]``) against ``per_worker_ref`` (clips/s of one worker at 32 frames a
    clip, scaled by the recipe's frames per clip). ``warnings`` says where the recipe's workers or
    the node's cores fall short (one core is the training process's)."""
    per_worker = per_worker_ref * REFERENCE_FRAMES / row["frames_per_clip"]
    need = workers_needed(row["gpu_clips_per_s"], per_worker)
    out = {"loader_clips_per_s_per_worker": round(per_worker, 2), "workers_needed": need,
           "recipe_workers": recipe_workers, "warnings": []}
    if need > cores_per_gpu - 1:
        out["warnings"].append(
            f"{row['dataset']}: feeding {row['gpu_clips_per_s']:.0f} clips/s takes {need} loader workers at "
            f"{per_worker:.1f} clips/s each, more than the {cores_per_gpu - 1} cores a GPU has beside its "
            f"training process (--cores-per-gpu {cores_per_gpu}): the CPUs, not the GPU, set the pace")
    elif need > recipe_workers:
        out["warnings"].append(
            f"{row['dataset']}: the recipe's {recipe_workers} loader workers deliver about "
            f"{recipe_workers * per_worker:.0f} of the {row['gpu_clips_per_s']:.0f} clips/s the GPU takes; "
            f"set datasets.{row['dataset']}.train.workers to {need}")
    return out


@dataclass
class WallClock:
    """What ``mienet sizing --gpus`` schedules with: G GPUs, each search spread over
    ``search_jobs`` worker jobs (Optuna's distributed mode; the trials split as evenly as they
    go), ``gpus_per_training`` GPUs per training (ideal linear speed-up), ``pruned_share`` of the
    search's trial hours saved by pruning, and a job-time limit to check against. ``None``: each
    dataset's own setting in params.yaml (``search.jobs``, the recipe's ``gpus``)."""

    gpus: int
    search_jobs: int | None = None
    gpus_per_training: int | None = None
    pruned_share: float = 0.0
    job_limit: float | None = None

    def check(self) -> None:
        if self.gpus < 1 or (self.search_jobs or 1) < 1 or (self.gpus_per_training or 1) < 1:
            raise MienetError("--gpus, --search-jobs and --gpus-per-training must be at least 1")
        if (self.gpus_per_training or 1) > self.gpus:
            raise MienetError(f"--gpus-per-training {self.gpus_per_training} is more than --gpus {self.gpus}")
        if not 0 <= self.pruned_share < 1:
            raise MienetError(f"--pruned-share must be in [0, 1), got {self.pruned_share}")
        if self.job_limit is not None and self.job_limit <= 0:
            raise MienetError(f"--job-limit must be positive, got {self.job_limit}")


def dataset_jobs(name: str, runs: dict[str, float], evals: dict[str, float], seeds: list[int],
                 searches: dict[str, tuple[int, float, float]], wall: WallClock, search_jobs: int = 1,
                 gpus_per_training: int = 1) -> list[Job]:
    """The GPU jobs of one dataset: a training (``runs[v]`` GPU-hours over the training's GPUs)
    and its evaluation (``evals[v]``) per variant and seed; per searched variant
    ``searches[v] = (trials, GPU-hours of one trial, GPU-hours of the tuned training)``, the
    worker jobs, then the tuned training and its evaluation. The dataset's ``search_jobs`` and
    ``gpus_per_training`` unless ``wall`` overrides them."""
    g = wall.gpus_per_training or gpus_per_training
    if g > wall.gpus:
        raise MienetError(f"{name}: a training on {g} GPUs does not fit on --gpus {wall.gpus}")
    jobs = []
    for v, hours in runs.items():
        for s in seeds:
            train = f"{name}/train/{v}/seed{s}"
            jobs += [Job(train, hours / g, g), Job(f"{name}/evaluate/{v}/seed{s}", evals[v], 1, (train,))]
    for v, (trials, per_trial, tuned_h) in searches.items():
        k = max(1, min(wall.search_jobs or search_jobs, trials))
        share, extra = divmod(trials, k)
        workers = [Job(f"{name}/search/{v}/worker{i}", (share + (i < extra)) * per_trial * (1 - wall.pruned_share))
                   for i in range(k)]
        tuned = Job(f"{name}/train_tuned/{v}", tuned_h / g, g, tuple(w.name for w in workers))
        jobs += workers + [tuned, Job(f"{name}/evaluate_tuned/{v}", evals[v], 1, (tuned.name,))]
    return jobs


def wall_clock(jobs_by_dataset: dict[str, list[Job]], wall: WallClock) -> dict:
    """Critical path, list-schedule makespan on ``wall.gpus`` GPUs and longest job, per dataset
    (alone on the GPUs) and for the whole profile (every dataset's jobs together)."""
    every = [j for jobs in jobs_by_dataset.values() for j in jobs]

    def summary(jobs: list[Job]) -> dict:
        longest = max(jobs, key=lambda j: j.hours, default=None)
        searches = [j for j in jobs if "/search/" in j.name]
        return {"search_worker_jobs": len(searches), "training_gpus": max((j.gpus for j in jobs), default=1),
                "critical_path_h": round(critical_path(jobs), 1),
                "makespan_h": round(list_schedule(jobs, wall.gpus)["makespan_h"], 1),
                "longest_job_h": round(longest.hours, 1) if longest else 0.0,
                "longest_job": longest.name if longest else None,
                "gpu_hours": round(sum(j.hours * j.gpus for j in jobs), 1)}

    out = {"gpus": wall.gpus, "search_jobs": wall.search_jobs, "gpus_per_training": wall.gpus_per_training,
           "pruned_share": wall.pruned_share, "job_limit_h": wall.job_limit,
           "datasets": {d: summary(jobs) for d, jobs in jobs_by_dataset.items()}, **summary(every)}
    out["over_limit"] = ([{"job": j.name, "hours": round(j.hours, 1)} for j in every if j.hours > wall.job_limit]
                         if wall.job_limit is not None else [])
    return out


def _profile_params(params_path: Path, profile: str | None) -> dict:
    """params.yaml, with ``profile`` (one of its profiles) the active one when given."""
    params = load_params(params_path)
    if profile is not None:
        if profile not in params["profiles"]:
            raise MienetError(f"profile {profile!r} is not in {params_path} (profiles: {', '.join(params['profiles'])})")
        params["profile"] = profile
    return params


class _DatasetCosts:
    """One dataset of the profile: its sizes, and the GPU-hours of its runs at ``rate`` training
    clips/s for the reference model (``ref`` GFLOPs a clip), every other model scaled by its FLOPs."""

    def __init__(self, params: dict, name: str, rate: float, ref: float):
        self.name, self.rate, self.ref = name, rate, ref
        self.recipe = params["datasets"][name]["train"]
        self.frames_per_segment = self.recipe.get("frames_per_segment", TrainConfig.frames_per_segment)
        self.workers = self.recipe.get("workers", TrainConfig.workers)
        self.layout = dataset_layout(params, name)
        self.splits, self.classes, self.source = dataset_sizes(name, Path(self.layout.annotations), self.layout.format)
        ev = params["evaluate"]
        self.views = ev["clips"] * ev["crops"]
        self.scored = self.layout.standard_split if ev["split"] == "standard" else ev["split"]
        self.n_train, self.n_val = self.splits["train"].clips, self.splits["val"].clips
        self.n_scored = self.splits.get(self.scored, self.splits["val"]).clips

    def model(self, variant: str) -> dict:  # model_stats is cached: computed once per variant
        r = self.recipe
        return model_stats(variant, r["arch"], r["segments"], r["size"], frames_per_segment=self.frames_per_segment,
                           num_classes=self.classes)

    def hours(self, variant: str, clips: float) -> float:
        return clips / (self.rate * self.ref / self.model(variant)["gflops"]) / 3600

    def run_hours(self, variant: str) -> float:
        """One training: every epoch's clips, validation forward only."""
        return self.hours(variant, self.recipe["epochs"] * (self.n_train + self.n_val / 3))

    def eval_hours(self, variant: str) -> float:
        return self.hours(variant, self.n_scored * self.views / 3)

    def search_trials(self, params_path: Path) -> tuple[int, float]:
        """The trials of the dataset's study and the clips they go through together: every trial
        epoch, the subset's train clips and a third of its val clips (forward only)."""
        settings, _ = read_search_settings(params_path, self.name)
        sub = settings.subset or {}
        st = sub.get("train_per_class", 0) * self.classes or self.n_train
        sv = sub.get("val_per_class", 0) * self.classes or self.n_val
        epochs = settings.train.get("epochs", self.recipe["epochs"])
        return settings.n_trials, settings.n_trials * epochs * (st + sv / 3)


def _gpu_hours(d: _DatasetCosts, variants: list[str], seeds: list[int], searched: list[str],
               params_path: Path) -> dict:
    """GPU-hours of one dataset: a training of each variant (``per_run``), the ablation's trainings
    and evaluations over the seeds, the searches (no pruning: an upper bound) and the tuned trainings
    with their evaluations; the studies' trials and the clips they go through together."""
    per_run = {v: d.run_hours(v) for v in variants}
    out = {"per_run": per_run, "training": sum(per_run.values()) * len(seeds),
           "evaluation": sum(d.eval_hours(v) for v in variants) * len(seeds), "search": 0.0, "tuned": 0.0,
           "trials": 0, "trial_clips": 0.0}
    if searched:
        out["trials"], out["trial_clips"] = d.search_trials(params_path)
    for v in searched:
        out["search"] += d.hours(v, out["trial_clips"])
        out["tuned"] += d.run_hours(v) + d.eval_hours(v)
    return out


def _dataset_row(d: _DatasetCosts, hours: dict, runs: int, searches: int, k: int, rate: float,
                 bytes_per_frame: float | None) -> tuple[dict, float, float]:
    """The table's row of one dataset (``hours`` of :func:`_gpu_hours`, ``runs`` trainings of the
    ablation, ``searches`` studies of ``k`` worker jobs each), with the disk of its frames (0 when
    unknown) and checkpoints in GB, unrounded, for the totals."""
    # train + evaluate; per search its worker jobs and final step (one job when k = 1), the
    # tuned training and its evaluation; bench x2
    gpu_jobs = 2 * runs + searches * (2 + (k + 1 if k > 1 else 1)) + 2
    data_jobs = 1 + d.layout.extracted + d.layout.spec.synthesized  # (synth,) extract, annotations
    splits = d.splits
    frames = sum(s.frames for s in splits.values() if s.frames) if all(s.frames for s in splits.values()) else None
    frames_gb = frames * bytes_per_frame / 1e9 if frames and bytes_per_frame else None
    ckpt_gb = (runs + searches) * CHECKPOINT_FILES * CHECKPOINT_FACTOR * 4 * max(
        d.model(v)["params_m"] for v in hours["per_run"]) * 1e6 / 1e9
    train_h, eval_h, search_h, tuned_h = hours["training"], hours["evaluation"], hours["search"], hours["tuned"]
    row = {"dataset": d.name, "source": d.source, "train_clips": d.n_train, "val_clips": d.n_val,
           "scored_split": d.scored, "scored_clips": d.n_scored, "epochs": d.recipe["epochs"],
           "segments": d.recipe["segments"], "runs": runs, "jobs": gpu_jobs + data_jobs, "gpu_jobs": gpu_jobs,
           "gpu_hours_training": round(train_h, 1), "gpu_hours_evaluation": round(eval_h, 2),
           "gpu_hours_search": round(search_h, 1), "gpu_hours_tuned": round(tuned_h, 1),
           "gpu_hours": round(train_h + eval_h + search_h + tuned_h, 1),
           "longest_training_h": round(max(hours["per_run"].values()), 1),
           "frames_per_clip": d.recipe["segments"] * d.frames_per_segment,
           "gpu_clips_per_s": round(rate * d.ref / d.model(REFERENCE[0])["gflops"], 1),
           "frames": frames, "frames_gb": None if frames_gb is None else round(frames_gb, 1),
           "checkpoints_gb": round(ckpt_gb, 1)}
    return row, frames_gb or 0.0, ckpt_gb


def build_table(params_path: Path, profile: str | None, rate: float, bytes_per_frame: float | None,
                loader_per_worker: float | None = None, cores_per_gpu: int = 16,
                wall: WallClock | None = None) -> dict:
    params = _profile_params(params_path, profile)
    variants, seeds = params["ablation"]["variants"], params["ablation"]["seeds"]
    searched = params["search"]["variants"] if params["search"]["enabled"] else []
    ref = model_stats(*REFERENCE[:3], REFERENCE[3])["gflops"]
    rows, totals = [], {"jobs": 0, "gpu_jobs": 0, "gpu_hours": 0.0, "frames_gb": 0.0, "checkpoints_gb": 0.0}
    jobs_by_dataset: dict[str, list[Job]] = {}
    for name in profile_datasets(params):
        d = _DatasetCosts(params, name, rate, ref)
        hours = _gpu_hours(d, variants, seeds, searched, params_path)
        k = search_jobs(params, name)
        if wall is not None:
            evals = {v: d.eval_hours(v) for v in {*variants, *searched}}
            trials, trial_clips = hours["trials"], hours["trial_clips"]
            searches = {v: (trials, d.hours(v, trial_clips) / trials, d.run_hours(v)) for v in searched if trials}
            jobs_by_dataset[name] = dataset_jobs(name, hours["per_run"], evals, seeds, searches, wall, k,
                                                 training_gpus(params, name))
        row, frames_gb, ckpt_gb = _dataset_row(d, hours, len(variants) * len(seeds), len(searched), k, rate,
                                               bytes_per_frame)
        if loader_per_worker is not None:
            row["loader"] = loader_check(row, d.workers, loader_per_worker, cores_per_gpu)
        rows.append(row)
        totals["jobs"] += row["jobs"]
        totals["gpu_jobs"] += row["gpu_jobs"]
        totals["gpu_hours"] += row["gpu_hours"]
        totals["frames_gb"] += frames_gb
        totals["checkpoints_gb"] += ckpt_gb
    totals["jobs"] += 2  # report, zoo
    totals = {k: round(v, 1) if isinstance(v, float) else v for k, v in totals.items()}
    return {"profile": params["profile"], "variants": variants, "seeds": seeds, "searched": searched,
            "reference_model": "MIE-Net, ResNet-50, T=8, 224 px", "reference_gflops": round(ref, 2),
            "clips_per_s": rate, "bytes_per_frame": bytes_per_frame, "loader_clips_per_s_per_worker": loader_per_worker,
            "cores_per_gpu": cores_per_gpu, "datasets": rows, "total": totals,
            "warnings": [w for r in rows for w in r.get("loader", {}).get("warnings", [])],
            **(_wall_clock_keys(wall_clock(jobs_by_dataset, wall)) if wall is not None else {})}


def _wall_clock_keys(wc: dict) -> dict:
    """``wall_clock`` and the whole profile's makespan and longest job at the table's top level."""
    return {"wall_clock": wc, "makespan_h": wc["makespan_h"], "longest_job_h": wc["longest_job_h"]}


def markdown(table: dict) -> str:
    head = ("| dataset | train / val clips | epochs | runs | jobs (GPU) | GPU-h training | GPU-h evaluation "
            "| GPU-h search (no pruning) | GPU-h tuned | GPU-h total | longest training (h) | frames (GB) | checkpoints (GB) |")
    lines = [head, "| " + " | ".join(["---"] + ["---:"] * 12) + " |"]
    for r in table["datasets"]:
        lines.append(
            f"| {r['dataset']} | {r['train_clips']:,} / {r['val_clips']:,} | {r['epochs']} | {r['runs']} "
            f"| {r['jobs']} ({r['gpu_jobs']}) | {r['gpu_hours_training']:,} | {r['gpu_hours_evaluation']:,} "
            f"| {r['gpu_hours_search']:,} | {r['gpu_hours_tuned']:,} | {r['gpu_hours']:,} | {r['longest_training_h']} "
            f"| {'—' if r['frames_gb'] is None else r['frames_gb']} | {r['checkpoints_gb']} |")
    t = table["total"]
    lines.append(f"| **total** | | | | {t['jobs']} ({t['gpu_jobs']}) | | | | | **{t['gpu_hours']:,}** | "
                 f"| {t['frames_gb']} | {t['checkpoints_gb']} |")
    lines.append("")
    lines.append(f"Profile `{table['profile']}`: {len(table['variants'])} variants x {len(table['seeds'])} seeds, "
                 f"searches of {', '.join(table['searched']) or 'none'}; {table['clips_per_s']:g} training clips/s "
                 f"for {table['reference_model']} ({table['reference_gflops']} GFLOPs per clip), other models "
                 "scaled by their FLOPs. Sizes: " + "; ".join(f"{r['dataset']}: {r['source']}" for r in table["datasets"]))
    wc = table.get("wall_clock")
    if wc is not None:
        def given(value, what: str) -> str:
            return f"{value} ({what}, from the command line)" if value else f"each dataset's {what} (params.yaml)"

        lines += ["", f"Wall-clock on {wc['gpus']} GPUs ({given(wc['search_jobs'], 'search worker jobs')}; "
                      f"{given(wc['gpus_per_training'], 'GPUs per training')}, at a linear speed-up; "
                      f"{100 * wc['pruned_share']:g} % of the search's trial hours pruned):", "",
                  "| dataset | search jobs | GPUs per training | GPU-h | critical path (h) | makespan alone (h) "
                  "| longest job (h) |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for d, r in wc["datasets"].items():
            lines.append(f"| {d} | {r['search_worker_jobs']} | {r['training_gpus']} | {r['gpu_hours']:,} "
                         f"| {r['critical_path_h']:,} | {r['makespan_h']:,} | {r['longest_job_h']:,} ({r['longest_job']}) |")
        lines.append(f"| **all together** | | | {wc['gpu_hours']:,} | {wc['critical_path_h']:,} "
                     f"| **{wc['makespan_h']:,}** | {wc['longest_job_h']:,} ({wc['longest_job']}) |")
        if wc["job_limit_h"] is not None:
            over = wc["over_limit"]
            lines.append("")
            lines.append(f"Jobs over the {wc['job_limit_h']:g} h limit: " + (
                ", ".join(f"{o['job']} ({o['hours']:g} h)" for o in over) if over else "none") + ".")
    if table.get("loader_clips_per_s_per_worker") is not None:
        lines.append("")
        lines.append(
            f"Loader: {table['loader_clips_per_s_per_worker']:g} clips/s per worker at 32 frames a clip (scaled by "
            "each recipe's frames per clip); loader workers one GPU needs for the MIE-Net recipe: "
            + ", ".join(f"{r['dataset']} {r['loader']['workers_needed']} (recipe: {r['loader']['recipe_workers']}, "
                        f"GPU {r['gpu_clips_per_s']:g} clips/s)" for r in table["datasets"] if "loader" in r) + ".")
        for w in table["warnings"]:
            lines.append(f"- warning: {w}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="params.yaml (default: %(default)s)")
    parser.add_argument("--profile", default="paper", type=name_arg, help="profile to size (default: %(default)s)")
    parser.add_argument("--clips-per-s", type=float, default=DEFAULT_RATE,
                        help="training clips/s of MIE-Net ResNet-50 T=8 224 px on one of your GPUs "
                             "(default %(default)s; measure with `mienet bench train ... --device cuda`)")
    parser.add_argument("--bytes-per-frame", type=float, default=None,
                        help="disk per extracted frame (default: results/bench/scale.json's packed layout, if present)")
    parser.add_argument("--loader-clips-per-worker", type=float, default=None,
                        help="clips/s one loader worker delivers at T=8, L=4, 224 px (default: "
                             f"{LOADER_BENCH}'s measurement, if present; workflow/scripts/bench_loader_paper.sh)")
    parser.add_argument("--cores-per-gpu", type=int, default=16,
                        help="CPU cores a node has per GPU (default %(default)s): warns when the loader "
                             "workers one GPU needs exceed them")
    g = parser.add_argument_group("wall-clock (with --gpus)")
    g.add_argument("--gpus", type=int, default=None,
                   help="also schedule the profile's GPU jobs on this many GPUs: critical path, makespan of a "
                        "list schedule, longest job")
    g.add_argument("--search-jobs", type=int, default=None,
                   help="worker jobs each search is spread over (default: each dataset's search.jobs)")
    g.add_argument("--gpus-per-training", type=int, default=None,
                   help="GPUs of each training and tuned training (default: each recipe's gpus; linear "
                        "speed-up assumed)")
    g.add_argument("--pruned-share", type=float, default=0.0,
                   help="share of the search's trial hours pruning saves, in [0, 1) (default 0: none)")
    g.add_argument("--job-limit", type=float, default=None, help="hours a job may run; lists the jobs over it")
    parser.add_argument("--json", action="store_true", help="print the table as JSON")


def run(args: argparse.Namespace) -> int:
    if args.clips_per_s <= 0:
        raise MienetError(f"--clips-per-s must be positive, got {args.clips_per_s}")
    if args.cores_per_gpu < 1:
        raise MienetError(f"--cores-per-gpu must be at least 1, got {args.cores_per_gpu}")
    if args.loader_clips_per_worker is not None and args.loader_clips_per_worker <= 0:
        raise MienetError(f"--loader-clips-per-worker must be positive, got {args.loader_clips_per_worker}")
    bpf = args.bytes_per_frame
    scale = Path("results/bench/scale.json")
    if bpf is None and scale.is_file():
        bpf = json.loads(scale.read_text()).get("bytes_per_frame", {}).get("packed")
    per_worker = args.loader_clips_per_worker
    if per_worker is None and LOADER_BENCH.is_file():
        per_worker = json.loads(LOADER_BENCH.read_text()).get("clips_per_s_per_worker")
    wall = None
    if args.gpus is not None:
        wall = WallClock(args.gpus, args.search_jobs, args.gpus_per_training, args.pruned_share, args.job_limit)
        wall.check()
    table = build_table(Path(args.params), args.profile, args.clips_per_s, bpf, per_worker, args.cores_per_gpu, wall)
    print(json.dumps(table, indent=2) if args.json else markdown(table))
    return 0
