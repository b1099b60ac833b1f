"""The stages of the pipeline, one :class:`Stage` each: the one place a stage is defined.

A stage's spec holds its command (from :class:`mienet.pipeline.Commands`), its inputs and
outputs, its log and benchmark files, the settings whose change re-runs it, whether DVC keeps
its outputs across an interrupted run (``persist``), its threads and GPUs, and its resource
family (the key of ``set-resources`` / ``set-threads`` in ``profiles/slurm/profile.yaml``).

Both workflows are built from :data:`STAGES`:

- Snakemake: ``workflow/rules/stages.smk`` declares one rule per spec in a loop. The rules read
  the specs rather than being generated as text, so there is no second copy to keep current:
  a spec's paths and commands are the very functions DVC's stages are built from.
- DVC: :func:`dvc_stages` (``mienet generate`` writes ``dvc.yaml``; a test fails when the
  committed file differs).

Adding a stage: its command (a module with ``add_arguments`` and ``run``; ``module`` here makes
it a ``mienet`` command), its spec in :data:`STAGES`, and its test.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import yaml

from mienet.layout import (ANNOTATION_FILES, SYNTH_DONE, DatasetLayout, Roots, annotations_dir, data_root,
                           dataset_dir, dataset_layout, profile_datasets)
from mienet.pipeline import (BENCH_VARIANTS, PARAMS, PRETRAINED_DIR, Commands, dvc_text, imagenet_archs,
                             placeholder, search_jobs, training_gpus)
from mienet.registry.frames import MANIFEST_NAME
from mienet.registry.variants import FETCH_RULE, IMAGENET_FILES, imagenet_weights_file

DVC_FILE = Path("dvc.yaml")
# What a change of re-runs a DVC stage: the code it runs.
TRAIN_CODE = ("src/mienet/engine", "src/mienet/models", "src/mienet/registry", "src/mienet/config.py",
              "src/mienet/layout.py")
EVALUATE_CODE = ("src/mienet/engine/evaluate.py", "src/mienet/engine/loading.py")
SYNTH_CODE = ("src/mienet/data/synth.py", "src/mienet/data/synth_design.py", "src/mienet/data/synth_render.py")
EXTRACT_CODE = ("src/mienet/data/frames.py", "src/mienet/data/ffmpeg_log.py")
ANNOTATIONS_CODE = ("src/mienet/data/annotations.py", "src/mienet/data/readers.py")
SEARCH_CODE = ("src/mienet/search",)
BENCH_CODE = ("src/mienet/bench/training.py",)
REPORT_CODE = ("src/mienet/report",)
ZOO_CODE = ("src/mienet/zoo.py", "src/mienet/released.py", "src/mienet/engine/evaluate.py",
            "src/mienet/engine/loading.py", "src/mienet/models", "src/mienet/report")


class Workflow:
    """What the stages read of one configuration: its commands, roots and dataset layouts.

    Snakemake builds one from its config (``--config`` overrides applied, ``params_file`` the
    effective params it writes); :func:`dvc_stages` one from params.yaml."""

    def __init__(self, params: dict, params_file: str = PARAMS, templated: bool = False):
        self.params = params
        self.cmd = Commands(params, params_file, templated=templated)
        self.roots = Roots.of(params)
        self.data = data_root(params)
        self.enabled = profile_datasets(params)
        self.layouts = {d: dataset_layout(params, d) for d in self.enabled}
        self.variants = params["ablation"]["variants"]
        self.seeds = params["ablation"]["seeds"]
        search = params["search"]
        self.searched = search["variants"] if search.get("enabled", True) else []

    def layout(self, dataset: str) -> DatasetLayout:
        return self.layouts[dataset]

    def annotation_files(self, dataset: str) -> list[str]:
        if dataset in self.layouts:
            return self.layouts[dataset].annotation_files
        return [f"{annotations_dir(self.data, dataset)}/{f}" for f in ANNOTATION_FILES]

    def weights_files(self, dataset: str) -> list[str]:
        """The ImageNet weights a dataset's trainings read, fetched by the local rule fetch_weights."""
        return [imagenet_weights_file(a) for a in imagenet_archs(self.params, dataset)]

    def worker_records(self, dataset: str, variant: str) -> list[str]:
        """The records of the worker jobs of a study spread over search.jobs > 1 jobs; none for 1."""
        jobs = search_jobs(self.params, dataset)
        return [self.roots.search_worker_record(dataset, variant, k) for k in range(jobs)] if jobs > 1 else []

    def training_inputs(self, dataset: str) -> list[str]:
        return self.annotation_files(dataset) + self.weights_files(dataset)

    def study(self, dataset: str) -> dict:
        return {**self.params["search"], **(self.params["datasets"][dataset].get("search") or {})}

    def recipe(self, dataset: str) -> dict:
        return self.params["datasets"][dataset]["train"]

    # what the workflow's targets are
    def data_targets(self) -> list[str]:
        return [f for d in self.enabled for f in self.annotation_files(d)]

    def ablation_targets(self) -> list[str]:
        return [f"{self.roots.result_dir(d, v, f'seed{s}')}/metrics.json"
                for d in self.enabled for v in self.variants for s in self.seeds]

    def search_targets(self) -> list[str]:
        r = self.roots
        return [f for d in self.enabled for v in self.searched
                for f in (f"{r.search_dir(d, v)}/summary.json", f"{r.result_dir(d, v, 'tuned')}/metrics.json")]

    def bench_targets(self) -> list[str]:
        return [self.roots.bench_file(d, v) for d in self.enabled for v in BENCH_VARIANTS]

    def zoo_inputs(self) -> list[str]:
        """The released checkpoints present (the target succeeds without any, and re-runs when one
        arrives); with one present, its dataset's annotations first when the profile makes them."""
        zoo = self.params.get("zoo") or {}
        present = [e for e in zoo.values() if Path(f"{PRETRAINED_DIR}/{e['file']}").exists()]
        return [f"{PRETRAINED_DIR}/{e['file']}" for e in present] + [
            f for e in present if e["dataset"] in self.enabled and not e.get("list")
            for f in self.annotation_files(e["dataset"])]


W = SimpleNamespace  # wildcard values: Snakemake's, or DVC's placeholders


@dataclass(frozen=True)
class Stage:
    """One stage. Functions take (workflow, wildcards); ``outputs`` returns Snakemake's patterns."""

    name: str
    log: str  # under <results>/logs/ (.log) and <results>/benchmarks/ (.tsv), with {wildcards}
    command: Callable  # (workflow, wildcards, threads) -> shell command
    outputs: Callable  # (workflow) -> the files whose presence means done: a list, or name -> path
    inputs: Callable | None = None  # (workflow, wildcards) -> a list, or name -> path(s)
    watch: Callable | None = None  # (workflow, wildcards) -> the settings whose change re-runs it
    threads: str | None = None  # the setting that gives its threads: "extract" (extract.jobs), "train"
    gpus: Callable | int = 0  # (workflow, wildcards) -> GPUs, or a number
    local: bool = False  # runs in Snakemake's own process (never on a compute node)
    module: str | None = None  # the module of a `mienet` command the stage adds (add_arguments, run)
    help: str = ""  # that command's one-line help
    dvc: Callable | None = None  # (workflow) -> DVC stages {name: stage}
    family: str = ""  # the SLURM profile's rule family (default: the name)

    @property
    def resource_family(self) -> str:
        return self.family or self.name

    def log_file(self, results: str) -> str:
        return f"{results}/logs/{self.log}.log"

    def benchmark_file(self, results: str) -> str:
        return f"{results}/benchmarks/{self.log}.tsv"


def report_files(wf: Workflow) -> list[str]:
    """The report's tables, figures and page (:func:`mienet.report.expected_outputs`)."""
    # Imported here: the report's registry loads pandas, 0.5 s that `mienet --help` (which lists
    # the commands stages add) would otherwise pay on every start: measured 0.56 s -> 0.15 s.
    from mienet.report import expected_outputs

    return [f"{wf.roots.results}/{p}" for p in expected_outputs(wf.enabled)]


def _uncached(paths) -> list[dict]:
    return [{p: {"cache": False}} for p in paths]


def _run_files(wf: Workflow, run: str, dataset: str = "{dataset}", variant: str = "{variant}") -> dict:
    """A run's checkpoint and curve: Snakemake's patterns, or one run's files."""
    base = wf.roots.run_dir(dataset, variant, run)
    return {"best": f"{base}/checkpoints/best.pt", "curve": f"{base}/log.csv"}


def _search_files(wf: Workflow) -> dict:
    base = wf.roots.search_dir("{dataset}", "{variant}")
    return {"best": f"{base}/best_params.yaml", "summary": f"{base}/summary.json", "trials": f"{base}/trials.csv"}


# --------------------------------------------------------------------------- DVC's stages

def _items(*keys: str) -> W:
    return W(**{k: placeholder(f"item.{k}") for k in keys})


def _dvc_synth(wf: Workflow) -> dict:
    return {f"synth_{d}": {
        "cmd": wf.cmd.synth(d, wf.cmd.v("extract", "jobs")), "deps": list(SYNTH_CODE), "params": ["synth"],
        # persist: an interrupted synthesis resumes from its finished clips
        "outs": [{lay.videos: {"persist": True}}]} for d, lay in wf.layouts.items() if lay.spec.synthesized}


def _dvc_extract(wf: Workflow) -> dict:
    return {f"extract_frames_{d}": {
        "cmd": wf.cmd.extract_frames(d, wf.cmd.v("extract", "jobs")), "deps": [lay.videos, *EXTRACT_CODE],
        "params": ["extract"] + ([f"datasets.{d}.short_side"] if lay.short_side else []),
        # persist: an interrupted extraction resumes instead of starting over
        "outs": [{lay.frames: {"persist": True}}]} for d, lay in wf.layouts.items() if lay.extracted}


def _dvc_annotations(wf: Workflow) -> dict:
    stages = {}
    for d, lay in wf.layouts.items():
        keys = [f"datasets.{d}.{k}" for k in ("format", "source", "root", "classes") if wf.params["datasets"][d].get(k)]
        stages[f"make_annotations_{d}"] = {
            "cmd": wf.cmd.make_annotations(d), "deps": [lay.frames if lay.extracted else lay.source, *ANNOTATIONS_CODE],
            "params": ["annotations"] if lay.spec.split_by_settings else keys, "outs": [lay.annotations]}
    return stages


def _evaluated(result_dir: str) -> dict:
    return {
        "metrics": _uncached([f"{result_dir}/metrics.json"]),
        "plots": [{f"{result_dir}/train_log.csv": {"cache": False, "x": "epoch", "y": "val_top1"}},
                  {f"{result_dir}/confusion.csv": {"cache": False}}],
        "outs": _uncached([f"{result_dir}/predictions.csv", f"{result_dir}/per_class.csv"]),
    }


def _ablation_matrix(wf: Workflow) -> dict:
    return {"dataset": wf.enabled, "variant": placeholder("ablation.variants"), "seed": placeholder("ablation.seeds")}


def _threads() -> str:
    return placeholder("resources.train_threads")


def _dvc_train(wf: Workflow) -> dict:
    w = _items("dataset", "variant", "seed")
    return {"train": {
        "matrix": _ablation_matrix(wf), "cmd": wf.cmd.train(w.dataset, w.variant, w.seed, _threads()),
        "deps": [annotations_dir(wf.data, w.dataset), *TRAIN_CODE],
        "params": [f"datasets.{d}.train" for d in wf.enabled],
        # persist: a killed training resumes from its last epoch
        "outs": [{wf.roots.run_dir(w.dataset, w.variant, f"seed{w.seed}"): {"persist": True}}]}}


def _dvc_evaluate(wf: Workflow) -> dict:
    w = _items("dataset", "variant", "seed")
    ann = annotations_dir(wf.data, w.dataset)
    stages = {"evaluate": {
        "matrix": _ablation_matrix(wf), "cmd": wf.cmd.evaluate(w.dataset, w.variant, f"seed{w.seed}"),
        "deps": [wf.roots.run_dir(w.dataset, w.variant, f"seed{w.seed}"), ann, *EVALUATE_CODE],
        "params": ["evaluate"], **_evaluated(wf.roots.result_dir(w.dataset, w.variant, f"seed{w.seed}"))}}
    if wf.searched:
        stages["evaluate_tuned"] = {
            "matrix": _search_matrix(wf), "cmd": wf.cmd.evaluate(w.dataset, w.variant, "tuned"),
            "deps": [wf.roots.run_dir(w.dataset, w.variant, "tuned"), ann, *EVALUATE_CODE], "params": ["evaluate"],
            **_evaluated(wf.roots.result_dir(w.dataset, w.variant, "tuned"))}
    return stages


def _search_matrix(wf: Workflow) -> dict:
    return {"dataset": wf.enabled, "variant": placeholder("search.variants")}


def _dvc_search(wf: Workflow) -> dict:
    if not wf.searched:
        return {}
    w = _items("dataset", "variant")
    search_dir = wf.roots.search_dir(w.dataset, w.variant)
    return {"search": {
        "matrix": _search_matrix(wf), "cmd": wf.cmd.search(w.dataset, w.variant, _threads()),
        "deps": [annotations_dir(wf.data, w.dataset), *SEARCH_CODE, *TRAIN_CODE],
        # the recipe and the dataset's search overrides; not the whole dataset entry, whose
        # report-only keys (machine_margin) would re-run every search
        "params": ["search"] + [f"datasets.{d}.{k}" for d in wf.enabled for k in ("train", "search")
                                if wf.params["datasets"][d].get(k) is not None],
        "outs": _uncached([f"{search_dir}/best_params.yaml", f"{search_dir}/trials.csv"]),
        "metrics": _uncached([f"{search_dir}/summary.json"])}}


def _dvc_train_tuned(wf: Workflow) -> dict:
    if not wf.searched:
        return {}
    w = _items("dataset", "variant")
    return {"train_tuned": {
        "matrix": _search_matrix(wf), "cmd": wf.cmd.train_tuned(w.dataset, w.variant, _threads()),
        "deps": [annotations_dir(wf.data, w.dataset), f"{wf.roots.search_dir(w.dataset, w.variant)}/best_params.yaml",
                 *TRAIN_CODE],
        "params": [f"datasets.{d}.train" for d in wf.enabled],
        "outs": [{wf.roots.run_dir(w.dataset, w.variant, "tuned"): {"persist": True}}]}}


def _dvc_bench(wf: Workflow) -> dict:
    item = placeholder("item")
    return {f"bench_train_{d}": {"foreach": list(BENCH_VARIANTS), "do": {
        "cmd": wf.cmd.bench_train(d, item, _threads(), f"datasets.{d}.train"), "deps": list(BENCH_CODE),
        "params": [f"datasets.{d}.train"], "outs": _uncached([wf.roots.bench_file(d, item)])}} for d in wf.enabled}


def _dvc_report(wf: Workflow) -> dict:
    results = wf.roots.results
    return {"report": {
        "cmd": wf.cmd.report(wf.enabled),
        "deps": [f"{results}/{d}" for d in wf.enabled] + [f"{results}/bench", *REPORT_CODE],
        "outs": _uncached(report_files(wf))}}


def _dvc_zoo(wf: Workflow) -> dict:
    return {"zoo": {"cmd": wf.cmd.zoo(), "deps": [PRETRAINED_DIR, *ZOO_CODE], "params": ["zoo"],
                    "outs": _uncached(wf.roots.zoo_tables())}}


# --------------------------------------------------------------------------- the stages

# Every rule's shell line: the stage's command, its output and messages into its log. One line for
# all (Snakemake evaluates a rule's shell expression when the job runs, so a per-stage expression
# in the rules' loop would read the loop's last stage).
SHELL = "({params.cmd}) > {log:q} 2>&1"


def _sync_dvc(wf: Workflow) -> str:
    """After the report: record what Snakemake made in dvc.lock too, so that `dvc status` agrees;
    only when dvc.yaml describes this very configuration (`mienet generate` writes it)."""
    if not (DVC_FILE.is_file() and DVC_FILE.read_text() == dvc_yaml_text(wf.params)):
        return ""
    return (" && if [ -d .dvc ]; then dvc commit --force --quiet"
            " || echo 'warning: dvc commit failed' >&2; fi")


def _gpus(wf: Workflow, w) -> int:
    return training_gpus(wf.params, w.dataset)


_STAGE_LIST = (
    Stage("synth", "{dataset}/synth", threads="extract", dvc=_dvc_synth,
          command=lambda wf, w, threads: wf.cmd.synth(w.dataset, threads),
          # The completion file, not the folder: Snakemake deletes a folder output before a re-run,
          # while `mienet synth` resumes an interrupted run from its finished clips.
          outputs=lambda wf: [f"{dataset_dir(wf.data, '{dataset}')}/videos/{SYNTH_DONE}"],
          watch=lambda wf, w: wf.params["synth"]),
    Stage("extract_frames", "{dataset}/extract_frames", threads="extract", dvc=_dvc_extract,
          command=lambda wf, w, threads: wf.cmd.extract_frames(w.dataset, threads),
          inputs=lambda wf, w: [wf.layout(w.dataset).videos_ready],
          # The manifest is written last; the frame folders themselves are kept across interrupted
          # runs so that a re-run resumes instead of starting over.
          outputs=lambda wf: [f"{dataset_dir(wf.data, '{dataset}')}/frames/{MANIFEST_NAME}"],
          watch=lambda wf, w: wf.params["extract"]),
    Stage("make_annotations", "{dataset}/make_annotations", dvc=_dvc_annotations,
          command=lambda wf, w, threads: wf.cmd.make_annotations(w.dataset),
          inputs=lambda wf, w: [wf.layout(w.dataset).manifest if wf.layout(w.dataset).extracted
                                else wf.layout(w.dataset).source],
          outputs=lambda wf: [f"{annotations_dir(wf.data, '{dataset}')}/{f}" for f in ANNOTATION_FILES]),
    # ImageNet weights, downloaded on the submitting node: compute nodes mostly have no internet, and
    # a training never downloads (it fails at once naming the file and this rule). The torch hub
    # cache ($TORCH_HOME) must be on a file system the compute nodes see.
    Stage(FETCH_RULE, "fetch_weights_{weights_file}", local=True,
          command=lambda wf, w, threads: wf.cmd.fetch_weights(
              {f: a for a, f in IMAGENET_FILES.items()}[w.weights_file]),
          outputs=lambda wf: [str(Path(imagenet_weights_file("resnet50")).parent / "{weights_file}")]),
    Stage("train", "{dataset}/train_{variant}_seed{seed}", threads="train", gpus=_gpus, dvc=_dvc_train,
          # --resume: an interrupted job continues from its last epoch; --restart-if-changed: a run
          # made with other parameters starts over.
          command=lambda wf, w, threads: wf.cmd.train(w.dataset, w.variant, w.seed, threads),
          inputs=lambda wf, w: wf.training_inputs(w.dataset),
          outputs=lambda wf: _run_files(wf, "seed{seed}"),
          watch=lambda wf, w: wf.recipe(w.dataset)),
    Stage("evaluate", "{dataset}/evaluate_{variant}_{run}", threads="train", dvc=_dvc_evaluate,
          command=lambda wf, w, threads: wf.cmd.evaluate(w.dataset, w.variant, w.run),
          inputs=lambda wf, w: _run_files(wf, w.run, w.dataset, w.variant),
          outputs=lambda wf: wf.roots.result_files("{dataset}", "{variant}", "{run}"),
          watch=lambda wf, w: wf.params["evaluate"]),
    # One of search.jobs jobs taking trials of one study until it has n_trials.
    Stage("search_worker", "{dataset}/search_{variant}_worker{worker}", threads="train", gpus=1,
          command=lambda wf, w, threads: wf.cmd.search_worker(w.dataset, w.variant, w.worker, threads),
          inputs=lambda wf, w: wf.training_inputs(w.dataset),
          outputs=lambda wf: [wf.roots.search_worker_record("{dataset}", "{variant}", "{worker}")],
          watch=lambda wf, w: [wf.study(w.dataset), wf.recipe(w.dataset)]),
    # The whole study (search.jobs: 1), or the final step after its worker jobs: it runs what they
    # left (a lost worker's retry), checks their records and writes the outputs. The study (its
    # journal) is not an output: an interrupted search resumes.
    Stage("search", "{dataset}/search_{variant}", threads="train", gpus=1, dvc=_dvc_search,
          command=lambda wf, w, threads: wf.cmd.search(w.dataset, w.variant, threads,
                                                       wf.worker_records(w.dataset, w.variant)),
          inputs=lambda wf, w: {"ann": wf.training_inputs(w.dataset),
                                "workers": wf.worker_records(w.dataset, w.variant)},
          outputs=_search_files,
          watch=lambda wf, w: [wf.study(w.dataset), wf.recipe(w.dataset)]),
    Stage("train_tuned", "{dataset}/train_{variant}_tuned", threads="train", gpus=_gpus, dvc=_dvc_train_tuned,
          # the recipe from --params, then the searched settings on top (--hparams)
          command=lambda wf, w, threads: wf.cmd.train_tuned(w.dataset, w.variant, threads),
          inputs=lambda wf, w: {"ann": wf.training_inputs(w.dataset),
                                "hparams": f"{wf.roots.search_dir(w.dataset, w.variant)}/best_params.yaml"},
          outputs=lambda wf: _run_files(wf, "tuned"),
          watch=lambda wf, w: wf.recipe(w.dataset)),
    Stage("bench_train", "bench/train_{dataset}_{variant}", threads="train", dvc=_dvc_bench,
          command=lambda wf, w, threads: wf.cmd.bench_train(w.dataset, w.variant, threads, wf.recipe(w.dataset)),
          outputs=lambda wf: [wf.roots.bench_file("{dataset}", "{variant}")]),
    Stage("report", "report", dvc=_dvc_report,
          command=lambda wf, w, threads: wf.cmd.report(wf.enabled) + _sync_dvc(wf),
          # the zoo table too, so that the `dvc commit` after it finds every stage's outputs
          inputs=lambda wf, w: wf.ablation_targets() + wf.search_targets() + wf.bench_targets()
          + wf.roots.zoo_tables(),
          outputs=report_files),
    # The authors' released checkpoints, evaluated where their files are (PRETRAINED_DIR).
    Stage("zoo", "zoo", threads="train", dvc=_dvc_zoo,
          command=lambda wf, w, threads: wf.cmd.zoo(),
          inputs=lambda wf, w: wf.zoo_inputs(),
          outputs=lambda wf: wf.roots.zoo_tables(),
          watch=lambda wf, w: wf.params.get("zoo")),
)
STAGES: dict[str, Stage] = {s.name: s for s in _STAGE_LIST}


def stage_threads(stage: Stage, params: dict) -> int:
    """A stage's threads from its setting (``extract.jobs``, ``resources.train_threads``), else 1."""
    return {"extract": params["extract"]["jobs"], "train": params["resources"]["train_threads"], None: 1}[stage.threads]


def stage_commands() -> dict[str, tuple[str, str]]:
    """The ``mienet`` commands stages add: name (the stage's, with '-') -> (module, help)."""
    return {s.name.replace("_", "-"): (s.module, s.help) for s in _STAGE_LIST if s.module}


def resource_families() -> list[str]:
    """The SLURM profile's rule families, one a stage (``set-resources`` / ``set-threads`` keys)."""
    return [s.resource_family for s in _STAGE_LIST]


SLURM_PROFILE = Path("profiles/slurm/profile.yaml")


def profile_family_problems(profile_file: Path) -> list[str]:
    """What a Snakemake profile's rule families get wrong against the stages: a family that names
    no stage (a renamed or removed stage), threads for a stage that runs one. The cluster's
    numbers are the profile's (partitions, memory, time); its keys are the stages' families. A
    stage without an entry gets the profile's default-resources."""
    profile = yaml.safe_load(profile_file.read_text(encoding="utf-8")) or {}
    families = {s.resource_family: s for s in _STAGE_LIST}
    problems = []
    for section in ("set-resources", "set-threads"):
        problems += [f"{profile_file}: {section}.{k} is not a stage's family ({', '.join(families)})"
                     for k in profile.get(section) or {} if k not in families]
    problems += [f"{profile_file}: set-threads.{name}: stage {name!r} runs one thread"
                 for name in profile.get("set-threads") or {} if name in families and not families[name].threads]
    return problems


# --------------------------------------------------------------------------- dvc.yaml

def dvc_stages(params: dict) -> dict:
    """The ``stages:`` of dvc.yaml for the profile in ``params``, each from its stage's spec."""
    wf = Workflow(params, PARAMS, templated=True)
    stages: dict = {}
    for stage in _STAGE_LIST:
        if stage.dvc is not None:
            stages.update(stage.dvc(wf))
    return dvc_text(stages)


def dvc_yaml_text(params: dict) -> str:
    profile = params.get("profile")
    header = (
        f"# GENERATED by `mienet generate` from src/mienet/stages.py for profile {profile!r}\n"
        "# (the same commands as the Snakemake rules). Do not edit: change params.yaml or the\n"
        "# stage specs, then run `mienet generate`. With .venv activated:\n"
        "#   dvc repro                                  everything that changed\n"
        "#   dvc repro train@<dataset>-mienet-0         one stage (and what it needs)\n"
        "#   dvc exp run -S ablation.seeds=[0]          an experiment with a changed parameter\n"
        "#   dvc metrics show ; dvc plots show\n")

    class NoAliases(yaml.SafeDumper):
        def ignore_aliases(self, data):
            return True

    return header + yaml.dump({"stages": dvc_stages(params)}, Dumper=NoAliases, sort_keys=False, width=110)
