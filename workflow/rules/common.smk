import os
import shlex
from pathlib import Path

# Rules call `mienet` from PATH: the active environment's, or this checkout's .venv/bin,
# which .venv's own `snakemake` puts first (workflow/scripts/setup_env.sh); a rule's conda
# environment, when used (--software-deployment-method conda), is activated on top.
#
# The software of every rule: environment.yml (through workflow/envs/mienet.yaml, a link to
# it) plus this checkout's `mienet`, installed by mienet.post-deploy.sh. Only used with
# `--software-deployment-method conda`; by default the rules run in the environment that
# runs Snakemake (.venv).
MIENET_ENV = "../envs/mienet.yaml"

DATA = config["data_root"]
RUNS = config["runs_root"]
RESULTS = config["results_root"]
DATASETS = config["datasets"]
if config["profile"] not in config["profiles"]:
    raise ValueError(f"params.yaml: profile {config['profile']!r} is not a key of profiles "
                     f"({', '.join(config['profiles'])})")
ENABLED = list(config["profiles"][config["profile"]])
for _name in ENABLED:
    if _name not in DATASETS:
        raise ValueError(f"params.yaml: profiles.{config['profile']} names dataset {_name!r}, "
                         f"which is not a key of datasets")
VARIANTS = config["ablation"]["variants"]
SEEDS = config["ablation"]["seeds"]
SEARCHED = config["search"]["variants"] if config["search"]["enabled"] else []
# `mienet search` and the tuned training read the study and the recipe from this file.
PARAMS_FILE = "params.yaml"


def q(value):
    return shlex.quote(str(value))


def need(name, key):
    """A dataset key that its format requires, with a message naming it."""
    value = DATASETS[name].get(key)
    if not value:
        raise ValueError(f"params.yaml: datasets.{name}.{key} is required for format "
                         f"{DATASETS[name]['format']!r}")
    return value


def videos_dir(name):
    if DATASETS[name]["format"] == "synth":
        return f"{DATA}/{name}/videos"
    return need(name, "videos")


def frames_dir(name):
    if DATASETS[name]["format"] == "sljd":
        return need(name, "root")
    return f"{DATA}/{name}/frames"


def annotation_dir(name):
    return f"{DATA}/{name}/annotations"


def dataset_root(name):
    """The folder the frame lists' paths are relative to."""
    if DATASETS[name]["format"] == "sljd":
        return need(name, "root")
    return f"{DATA}/{name}"


def annotation_files(name):
    return [f"{annotation_dir(name)}/{f}" for f in ("train.txt", "val.txt", "classes.txt")]


def annotation_inputs(w):
    if DATASETS[w.dataset]["format"] == "sljd":
        return [need(w.dataset, "source")]
    return [f"{DATA}/{w.dataset}/frames/manifest.csv"]


def annotation_args(w):
    ds, a = DATASETS[w.dataset], config["annotations"]
    fmt = "folder" if ds["format"] == "synth" else ds["format"]
    args = ["--format", fmt]
    if fmt == "folder":
        args += ["--videos", videos_dir(w.dataset), "--frames", frames_dir(w.dataset),
                 "--val-ratio", a["val_ratio"], "--test-ratio", a["test_ratio"], "--seed", a["seed"]]
    elif fmt == "sljd":
        args += ["--source", need(w.dataset, "source"), "--root", need(w.dataset, "root")]
    else:
        args += ["--source", need(w.dataset, "source"), "--frames", frames_dir(w.dataset)]
    if ds.get("classes"):
        args += ["--classes", ds["classes"]]
    return " ".join(q(x) for x in args)


def recipe_args(name):
    """`mienet train` options from datasets.<name>.train (booleans as flags)."""
    args = []
    for key, value in sorted(DATASETS[name]["train"].items()):
        flag = f"--{key.replace('_', '-')}"
        if key == "flip":
            args += [] if value else ["--no-flip"]
        elif isinstance(value, bool):
            args += [flag] if value else []
        elif isinstance(value, list):
            args += [flag, *map(str, value)]
        else:
            args += [flag, str(value)]
    return " ".join(q(x) for x in args)


def run_dir(dataset, variant, run):
    return f"{RUNS}/{dataset}/{variant}/{run}"


def result_files(dataset, variant, run):
    base = f"{RESULTS}/{dataset}/{variant}/{run}"
    return [f"{base}/{f}" for f in ("metrics.json", "predictions.csv", "per_class.csv", "confusion.csv",
                                    "train_log.csv")]


def data_targets():
    return [f for name in ENABLED for f in annotation_files(name)]


def search_targets():
    out = []
    for d in ENABLED:
        for v in SEARCHED:
            out += [f"{RESULTS}/{d}/search/{v}/summary.json", f"{RESULTS}/{d}/{v}/tuned/metrics.json"]
    return out


def ablation_targets():
    return [f"{RESULTS}/{d}/{v}/seed{s}/metrics.json" for d in ENABLED for v in VARIANTS for s in SEEDS]


from mienet.report import expected_outputs

# Caption file and category of each output family, for `snakemake --report`.
_FAMILIES = {
    "ablation_bars": "Figures", "curves": "Figures", "confusion": "Figures", "per_class": "Figures",
    "accuracy_gflops": "Figures", "ablation": "Tables", "comparison": "Tables", "search": "Tables",
    "efficiency": "Tables",
}


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
    inputs += [f"{RESULTS}/bench/train_{d}_{v}.json" for d in ENABLED for v in ("tsn", "mienet")]
    return inputs


wildcard_constraints:
    dataset="|".join(ENABLED) or "none",
    variant="|".join(["tsn", "dptam", "pa", "naive_fusion", "fusion_dptam", "afm", "mienet"]),
    seed=r"\d+",
    run=r"seed\d+|tuned",
