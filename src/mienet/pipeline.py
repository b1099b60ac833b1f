"""The pipeline, defined once: every stage's command, inputs, outputs and parameters.

The Snakemake rules (``workflow/rules/*.smk``) take their shell commands and paths from
here, and ``dvc.yaml`` is written from here for the active profile (``mienet generate``;
a test fails when the committed file differs). The commands are the same strings in
both; DVC gets ``${item.*}`` placeholders where Snakemake gets wildcards, and the
variant and seed lists stay ``${ablation.variants}`` / ``${ablation.seeds}`` so that
``dvc exp run -S ablation.seeds=[0]`` changes the stages it runs.

Stages (per dataset of the profile; DVC names them ``<stage>@<dataset>[-<variant>[-<seed>]]``):
synth (synthetic data only), extract_frames (video formats), make_annotations, train,
evaluate, search, train_tuned, evaluate_tuned, bench_train, and once: report, zoo.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from mienet.config import SEARCH_DEFAULTS, TRAIN_DEFAULTS
from mienet.registry.frames import DEFAULT_LAYOUT
from mienet.layout import (DatasetLayout, Roots, annotations_dir, data_root, dataset_layout,
                           profile_datasets)

DVC_FILE = Path("dvc.yaml")
PARAMS = "params.yaml"  # what DVC stages read; Snakemake passes its own (config with overrides)
BENCH_VARIANTS = ("tsn", "mienet")
PRETRAINED_DIR = "pretrained"
EVALUATE_CODE = ("src/mienet/engine/evaluate.py", "src/mienet/engine/loading.py")
TRAIN_CODE = ("src/mienet/engine", "src/mienet/models", "src/mienet/registry", "src/mienet/config.py", "src/mienet/layout.py")


# A DVC placeholder while a stage is built: kept apart from user text (a path may contain
# "${HOME}" literally), so that quoting leaves it alone and only it becomes ``${...}`` in
# dvc.yaml (:func:`dvc_text`). Its names are validated ones (mienet.config.NAME_PATTERN),
# variants and integers, so what DVC substitutes needs no quoting.
_MARK = re.compile("\x1e([\\w.]+)\x1f")


def placeholder(name: str) -> str:
    """``${name}`` of DVC's templating, as a marker until :func:`dvc_text` writes it out."""
    return f"\x1e{name}\x1f"


def q(value) -> str:
    """A value as one shell word: everything but DVC placeholders is shell-quoted where needed
    (``;``, ``$(``, backticks, ``${HOME}``, spaces, quotes, newlines)."""
    parts = _MARK.split(str(value))
    return "".join(placeholder(p) if i % 2 else shlex.quote(p) if p else "" for i, p in enumerate(parts))


def dvc_text(value):
    """A string (or the strings of a list or mapping) as dvc.yaml holds it: DVC's own ``${``
    escaped in user text (``\\${``), the placeholders written as ``${...}``."""
    if isinstance(value, dict):
        return {dvc_text(k): dvc_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [dvc_text(v) for v in value]
    if isinstance(value, str):
        return _MARK.sub(lambda m: "${" + m.group(1) + "}", value.replace("${", "\\${"))
    return value


def join(*parts) -> str:
    return " ".join(str(p) for p in parts if p not in (None, ""))


@dataclass(frozen=True)
class Commands:
    """The shell command of every stage, from the validated params."""

    params: dict
    params_file: str = PARAMS
    templated: bool = False  # DVC: settings as ${section.key} (paths stay concrete)

    def v(self, section: str, key: str, default=None):
        """A setting's value, or its DVC placeholder: ``dvc exp run -S synth.classes=5`` then
        changes the command, not only the stage's parameter hash. A setting with a ``default``
        may be absent from params.yaml: its default is then written out (DVC cannot fill a
        placeholder of a missing key)."""
        present = key in (self.params.get(section) or {})
        if default is not None and not present:
            return default
        return placeholder(f"{section}.{key}") if self.templated else self.params[section][key]

    def layout(self, dataset: str) -> DatasetLayout:
        return dataset_layout(self.params, dataset, self.params_file)

    @property
    def roots(self) -> Roots:
        return Roots.of(self.params)

    # ---------------------------------------------------------------- data

    def synth(self, dataset: str, jobs) -> str:
        s = {k: self.v("synth", k) for k in ("classes", "clips_per_class", "frames", "size", "fps", "seed")}
        return join("mienet synth", q(self.layout(dataset).videos), "--classes", q(s["classes"]),
                    "--clips-per-class", q(s["clips_per_class"]), "--frames", q(s["frames"]),
                    "--size", q(s["size"]), "--fps", q(s["fps"]), "--seed", q(s["seed"]), "-j", q(jobs),
                    "--restart-if-changed")

    def extract_frames(self, dataset: str, jobs) -> str:
        lay = self.layout(dataset)
        short = placeholder(f"datasets.{dataset}.short_side") if self.templated else lay.short_side
        return join("mienet extract-frames", q(lay.videos), "-o", q(lay.frames), "-j", q(jobs),
                    "--ext", q(self.v("extract", "ext")), "--quality", q(self.v("extract", "quality")),
                    "--layout", q(self.v("extract", "layout", DEFAULT_LAYOUT)),
                    f"--short-side {q(short)}" if lay.short_side else "", "--no-progress")

    def make_annotations(self, dataset: str) -> str:
        lay = self.layout(dataset)
        args = ["--format", q(lay.format)]
        for option in lay.spec.options:  # the layout's paths the format's reader takes
            args += [f"--{option}", q(getattr(lay, option))]
        if lay.spec.split_by_settings:
            args += ["--val-ratio", q(self.v("annotations", "val_ratio")),
                     "--test-ratio", q(self.v("annotations", "test_ratio")),
                     "--seed", q(self.v("annotations", "seed"))]
        if lay.classes:
            args += ["--classes", q(lay.classes)]
        return join("mienet make-annotations", *args, "-o", q(lay.annotations))

    # ---------------------------------------------------------------- training and evaluation

    def train(self, dataset: str, variant: str, seed, threads) -> str:
        return join("mienet train --params", q(self.params_file), "--dataset", q(dataset),
                    "--variant", q(variant), "--seed", q(seed),
                    "--out", q(self.roots.run_dir(dataset, variant, f"seed{seed}")),
                    "--resume --restart-if-changed --threads", q(threads), "--no-progress")

    def train_tuned(self, dataset: str, variant: str, threads) -> str:
        return join("mienet train --params", q(self.params_file), "--dataset", q(dataset),
                    "--variant", q(variant),
                    "--hparams", q(f"{self.roots.search_dir(dataset, variant)}/best_params.yaml"),
                    "--out", q(self.roots.run_dir(dataset, variant, "tuned")),
                    "--resume --restart-if-changed --threads", q(threads), "--no-progress")

    def evaluate(self, dataset: str, variant: str, run: str) -> str:
        r = self.roots
        # the checkpoints folder: evaluate takes best.pt, or last.pt when the split is val
        return join("mienet evaluate --checkpoint", q(f"{r.run_dir(dataset, variant, run)}/checkpoints"),
                    "--params", q(self.params_file), "--dataset", q(dataset),
                    "--split", q(self.v("evaluate", "split")),
                    "--clips", q(self.v("evaluate", "clips")), "--crops", q(self.v("evaluate", "crops")),
                    "--out", q(r.result_dir(dataset, variant, run)),
                    "--workers 1 --no-progress")

    def search(self, dataset: str, variant: str, threads, after_workers: list[str] | None = None) -> str:
        """The study in one job; with ``after_workers`` (the worker jobs' records) the final step of
        a study spread over jobs: what the workers left (a lost worker's retry), then the outputs."""
        r = self.roots
        return join("mienet search --params", q(self.params_file), "--dataset", q(dataset),
                    "--variant", q(variant), "--out", q(r.search_dir(dataset, variant)),
                    "--trials-dir", q(r.trials_dir(dataset, variant)),
                    "--restart-if-changed --threads", q(threads), "--no-progress",
                    *(["--after-workers", *map(q, after_workers)] if after_workers else []))

    def search_worker(self, dataset: str, variant: str, worker, threads) -> str:
        """Worker job ``worker`` of a study spread over ``search.jobs`` jobs."""
        return join(self.search(dataset, variant, threads), "--worker-record",
                    q(self.roots.search_worker_record(dataset, variant, worker)))

    def fetch_weights(self, arch: str) -> str:
        return join("mienet fetch-weights", q(arch))

    def bench_train(self, dataset: str, variant: str, threads, recipe: dict | str) -> str:
        def t(key):
            return q(recipe[key] if isinstance(recipe, dict) else placeholder(f"{recipe}.{key}"))

        out = q(self.roots.bench_file(dataset, variant))
        return join("mienet bench train --variant", q(variant), "--arch", t("arch"), "--segments", t("segments"),
                    "--size", t("size"), "--batch", t("batch_size"), "--threads", q(threads),
                    f"--json > {out}.tmp && mv {out}.tmp {out}")

    # ---------------------------------------------------------------- once

    def report(self, datasets: list[str]) -> str:
        return join("mienet report --results", q(self.roots.results), "--datasets", *map(q, datasets))

    def zoo(self) -> str:
        return join("mienet zoo --params", q(self.params_file), "--pretrained-dir", q(PRETRAINED_DIR),
                    "--results", q(self.roots.results), "--no-progress")


def search_jobs(params: dict, dataset: str) -> int:
    """The worker jobs of a dataset's study: ``datasets.<name>.search.jobs`` over ``search.jobs``."""
    own = (params["datasets"][dataset].get("search") or {}).get("jobs")
    return int(own if own is not None else params["search"].get("jobs", SEARCH_DEFAULTS.jobs))


def training_gpus(params: dict, dataset: str) -> int:
    """GPUs (processes) of one training of a dataset: its recipe's ``gpus``."""
    return int((params["datasets"][dataset].get("train") or {}).get("gpus", TRAIN_DEFAULTS.gpus))


def imagenet_archs(params: dict, dataset: str) -> list[str]:
    """The backbones whose ImageNet weights a dataset's trainings read (its recipe, and the
    search's fixed settings over it)."""
    recipe = params["datasets"][dataset].get("train") or {}
    fixed = {**recipe, **(params["search"].get("train") or {}),
             **((params["datasets"][dataset].get("search") or {}).get("train") or {})}
    return sorted({r.get("arch", TRAIN_DEFAULTS.arch) for r in (recipe, fixed) if r.get("pretrained") == "imagenet"})


# --------------------------------------------------------------------------- dvc.yaml


def _uncached(paths) -> list[dict]:
    return [{p: {"cache": False}} for p in paths]


def dvc_stages(params: dict) -> dict:
    """The ``stages:`` of dvc.yaml for the profile in ``params``."""
    from mienet.report import expected_outputs

    cmd = Commands(params, PARAMS, templated=True)
    roots = cmd.roots
    names = profile_datasets(params)
    layouts = {d: cmd.layout(d) for d in names}
    threads = placeholder("resources.train_threads")
    stages: dict = {}

    # Data stages differ by dataset in more than a name: one stage per dataset.
    for d in names:
        lay = layouts[d]
        if lay.spec.synthesized:
            stages[f"synth_{d}"] = {
                "cmd": cmd.synth(d, cmd.v("extract", "jobs")),
                "deps": ["src/mienet/data/synth.py"], "params": ["synth"],
                # persist: an interrupted synthesis resumes from its finished clips
                "outs": [{lay.videos: {"persist": True}}]}
        if lay.extracted:
            stages[f"extract_frames_{d}"] = {
                "cmd": cmd.extract_frames(d, cmd.v("extract", "jobs")),
                "deps": [lay.videos, "src/mienet/data/frames.py"],
                "params": ["extract"] + ([f"datasets.{d}.short_side"] if lay.short_side else []),
                # persist: an interrupted extraction resumes instead of starting over
                "outs": [{lay.frames: {"persist": True}}]}
        ann_deps = [lay.frames if lay.extracted else lay.source, "src/mienet/data/annotations.py"]
        stages[f"make_annotations_{d}"] = {
            "cmd": cmd.make_annotations(d), "deps": ann_deps,
            "params": ["annotations"] if lay.spec.split_by_settings else
            [f"datasets.{d}.{k}" for k in ("format", "source", "root", "classes") if params["datasets"][d].get(k)],
            "outs": [lay.annotations]}

    item_d, item_v, item_s = (placeholder(f"item.{k}") for k in ("dataset", "variant", "seed"))
    ann = annotations_dir(data_root(params), item_d)
    run_seed = roots.run_dir(item_d, item_v, f"seed{item_s}")
    res_seed = roots.result_dir(item_d, item_v, f"seed{item_s}")
    train_params = [f"datasets.{d}.train" for d in names]

    def evaluated(result_dir: str) -> dict:
        return {
            "metrics": _uncached([f"{result_dir}/metrics.json"]),
            "plots": [{f"{result_dir}/train_log.csv": {"cache": False, "x": "epoch", "y": "val_top1"}},
                      {f"{result_dir}/confusion.csv": {"cache": False}}],
            "outs": _uncached([f"{result_dir}/predictions.csv", f"{result_dir}/per_class.csv"]),
        }

    stages["train"] = {
        "matrix": {"dataset": names, "variant": placeholder("ablation.variants"),
                   "seed": placeholder("ablation.seeds")},
        "cmd": cmd.train(item_d, item_v, item_s, threads),
        "deps": [ann, *TRAIN_CODE],
        "params": train_params,
        # persist: a killed training resumes from its last epoch
        "outs": [{run_seed: {"persist": True}}]}
    stages["evaluate"] = {
        "matrix": {"dataset": names, "variant": placeholder("ablation.variants"),
                   "seed": placeholder("ablation.seeds")},
        "cmd": cmd.evaluate(item_d, item_v, f"seed{item_s}"),
        "deps": [run_seed, ann, *EVALUATE_CODE], "params": ["evaluate"],
        **evaluated(res_seed)}
    if params["search"].get("enabled", True) and params["search"].get("variants"):
        search_dir = roots.search_dir(item_d, item_v)
        run_tuned = roots.run_dir(item_d, item_v, "tuned")
        matrix = {"dataset": names, "variant": placeholder("search.variants")}
        stages["search"] = {
            "matrix": matrix, "cmd": cmd.search(item_d, item_v, threads),
            "deps": [ann, "src/mienet/search", *TRAIN_CODE],
            # the recipe and the dataset's search overrides; not the whole dataset entry, whose
            # report-only keys (machine_margin) would re-run every search
            "params": ["search"] + [f"datasets.{d}.{k}" for d in names for k in ("train", "search")
                                    if params["datasets"][d].get(k) is not None],
            "outs": _uncached([f"{search_dir}/best_params.yaml", f"{search_dir}/trials.csv"]),
            "metrics": _uncached([f"{search_dir}/summary.json"])}
        stages["train_tuned"] = {
            "matrix": matrix, "cmd": cmd.train_tuned(item_d, item_v, threads),
            "deps": [ann, f"{search_dir}/best_params.yaml", *TRAIN_CODE],
            "params": train_params, "outs": [{run_tuned: {"persist": True}}]}
        stages["evaluate_tuned"] = {
            "matrix": matrix, "cmd": cmd.evaluate(item_d, item_v, "tuned"),
            "deps": [run_tuned, ann, *EVALUATE_CODE], "params": ["evaluate"],
            **evaluated(roots.result_dir(item_d, item_v, "tuned"))}
    for d in names:
        stages[f"bench_train_{d}"] = {
            "foreach": list(BENCH_VARIANTS),
            "do": {"cmd": cmd.bench_train(d, placeholder("item"), threads, f"datasets.{d}.train"),
                   "deps": ["src/mienet/bench/training.py"], "params": [f"datasets.{d}.train"],
                   "outs": _uncached([roots.bench_file(d, placeholder("item"))])}}
    stages["report"] = {
        "cmd": cmd.report(names),
        "deps": [f"{roots.results}/{d}" for d in names] + [f"{roots.results}/bench", "src/mienet/report"],
        "outs": _uncached(f"{roots.results}/{p}" for p in expected_outputs(names))}
    stages["zoo"] = {
        "cmd": cmd.zoo(),
        "deps": [PRETRAINED_DIR, "src/mienet/zoo.py", "src/mienet/released.py", "src/mienet/engine/evaluate.py",
                 "src/mienet/engine/loading.py", "src/mienet/models", "src/mienet/report"],
        "params": ["zoo"], "outs": _uncached(roots.zoo_tables())}
    return dvc_text(stages)


def dvc_yaml_text(params: dict) -> str:
    import yaml

    profile = params.get("profile")
    header = (
        f"# GENERATED by `mienet generate` from src/mienet/pipeline.py for profile {profile!r}\n"
        "# (the same commands as the Snakemake rules). Do not edit: change params.yaml or the\n"
        "# pipeline module, then run `mienet generate`. With .venv activated:\n"
        "#   dvc repro                                  everything that changed\n"
        "#   dvc repro train@<dataset>-mienet-0         one stage (and what it needs)\n"
        "#   dvc exp run -S ablation.seeds=[0]          an experiment with a changed parameter\n"
        "#   dvc metrics show ; dvc plots show\n")
    class NoAliases(yaml.SafeDumper):
        def ignore_aliases(self, data):
            return True

    return header + yaml.dump({"stages": dvc_stages(params)}, Dumper=NoAliases, sort_keys=False, width=110)
