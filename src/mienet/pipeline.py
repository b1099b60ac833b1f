"""Every stage's shell command, from the validated params, and the settings the stages share.

The stage specs (:mod:`mienet.stages`) take their commands from :class:`Commands`, for the
Snakemake rules and for ``dvc.yaml`` alike: the commands are the same strings in both. DVC
gets ``${item.*}`` placeholders where Snakemake gets wildcards, and the variant and seed lists
stay ``${ablation.variants}`` / ``${ablation.seeds}`` so that ``dvc exp run -S
ablation.seeds=[0]`` changes the stages it runs. Every value reaches the shell quoted (:func:`q`).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from mienet.config import SEARCH_DEFAULTS, TRAIN_DEFAULTS
from mienet.layout import DatasetLayout, Roots, dataset_layout
from mienet.registry.frames import DEFAULT_LAYOUT
from mienet.registry.variants import BASELINE, FULL_MODEL

PARAMS = "params.yaml"  # what DVC stages read; Snakemake passes its own (config with overrides)
BENCH_VARIANTS = (BASELINE, FULL_MODEL)  # the training-speed benchmark's two ends
PRETRAINED_DIR = "pretrained"


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
