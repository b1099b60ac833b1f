import os
import re
from pathlib import Path

from mienet.config import write_effective_params
from mienet.layout import (ANNOTATION_FILES, SYNTH_DONE, Roots, annotations_dir, data_root, dataset_layout,
                           profile_datasets)
from mienet.registry.variants import FETCH_RULE, IMAGENET_FILES, VARIANTS as _VARIANTS, imagenet_weights_file
from mienet.pipeline import (BENCH_VARIANTS, PRETRAINED_DIR, Commands, dvc_yaml_text, imagenet_archs, search_jobs,
                             training_gpus)
from mienet.report import DATASET_TABLES, FIGURES, GLOBAL_TABLES, expected_outputs

# Rules call `mienet` from PATH: the active environment's, or this checkout's .venv/bin,
# which .venv's own `snakemake` puts first (workflow/scripts/setup_env.sh); a rule's conda
# environment, when used (--software-deployment-method conda), is activated on top.
#
# The software of every rule: environment.yml (through workflow/envs/mienet.yaml, a link to
# it) plus this checkout's `mienet`, installed by mienet.post-deploy.sh. Only used with
# `--software-deployment-method conda`; by default the rules run in the environment that
# runs Snakemake (.venv).
MIENET_ENV = "../envs/mienet.yaml"

# params.yaml with the `--config key=value` / `--configfile more.yaml` overrides of this run
# (checked in the Snakefile); every job reads this one configuration, and the commands
# that take `--params` get it as a file (rewritten only when it changes).
PARAMS_FILE = write_effective_params(config, ".snakemake/mienet/params.yaml")
CMD = Commands(config, PARAMS_FILE)
ROOTS = Roots.of(config)
DATA = data_root(config)
RUNS = ROOTS.runs
RESULTS = ROOTS.results
DATASETS = config["datasets"]
ENABLED = profile_datasets(config)
LAYOUT = {name: dataset_layout(config, name) for name in ENABLED}
VARIANTS = config["ablation"]["variants"]
SEEDS = config["ablation"]["seeds"]
SEARCHED = config["search"]["variants"] if config["search"]["enabled"] else []
# dvc.yaml describes the same pipeline when it was generated for this configuration.
DVC_CURRENT = Path("dvc.yaml").is_file() and Path("dvc.yaml").read_text() == dvc_yaml_text(config)


def layout(w):
    return LAYOUT[w.dataset]


def annotation_files(name):
    return LAYOUT[name].annotation_files if name in LAYOUT else [
        f"{annotations_dir(DATA, name)}/{f}" for f in ANNOTATION_FILES]


def weights_files(name):
    """The ImageNet weights a dataset's trainings read, fetched by the local rule fetch_weights."""
    return [imagenet_weights_file(a) for a in imagenet_archs(config, name)]


def worker_records(name, variant):
    """The records of the worker jobs of a study spread over search.jobs > 1 jobs; none for 1."""
    jobs = search_jobs(config, name)
    return [ROOTS.search_worker_record(name, variant, k) for k in range(jobs)] if jobs > 1 else []


def gpus(name):
    """GPUs of one training of a dataset: its recipe's gpus (mienet train starts that many processes)."""
    return training_gpus(config, name)


def data_targets():
    return [f for name in ENABLED for f in annotation_files(name)]


def search_targets():
    return [f for d in ENABLED for v in SEARCHED
            for f in (f"{ROOTS.search_dir(d, v)}/summary.json", f"{ROOTS.result_dir(d, v, 'tuned')}/metrics.json")]


def ablation_targets():
    return [f"{ROOTS.result_dir(d, v, f'seed{s}')}/metrics.json" for d in ENABLED for v in VARIANTS for s in SEEDS]


# Caption file (workflow/report/<family>.rst) and category of each output family of
# mienet.report, for `snakemake --report`.
_FAMILIES = {**{f: "Figures" for f in FIGURES}, **{t: "Tables" for t in DATASET_TABLES + GLOBAL_TABLES}}


def report_output(path):
    stem = Path(path).stem
    family = next((f for f in sorted(_FAMILIES, key=len, reverse=True) if stem.startswith(f)), None)
    full = f"{RESULTS}/{path}"
    if family is None or not path.endswith((".png", ".md")):
        return full  # PDF, LaTeX, CSV and the page itself: in results/, not in the HTML report
    return report(full, caption=f"../report/{family}.rst", category=_FAMILIES[family],
                  subcategory=stem.removeprefix(family).strip("_") or "all")


def report_inputs(wildcards):
    inputs = ablation_targets() + search_targets()
    inputs += [ROOTS.bench_file(d, v) for d in ENABLED for v in BENCH_VARIANTS]
    return inputs


wildcard_constraints:
    dataset="|".join(ENABLED) or "none",
    variant="|".join(_VARIANTS),
    seed=r"\d+",
    run=r"seed\d+|tuned",
    worker=r"\d+",
    weights_file="|".join(re.escape(f) for f in IMAGENET_FILES.values()),


OTHER_DATASETS = [d for d in DATASETS if d not in ENABLED]


def refuse_other_dataset(w):
    """Input of the catch-all rule for files of a dataset the active profile does not run."""
    others = [p for p, names in config["profiles"].items() if w.other in names]
    # One line and exit 1, as for a bad params.yaml: an exception here would be printed by
    # Snakemake as an InputFunctionException with its traceback.
    import sys

    print(
        f"Error: dataset {w.other!r} is not in profile {config['profile']!r} (it runs: {', '.join(ENABLED)}); "
        + (f"run it with `--config profile={others[0]}` after the targets" if others
           else f"add it to a profile in params.yaml (profiles.<name>: [..., {w.other}])"), file=sys.stderr)
    raise SystemExit(1)
