import shlex
import sys
from pathlib import Path

# Rules call `mienet`: the environment that runs Snakemake runs the rules too, whether or
# not it was activated.
shell.prefix(f"export PATH={shlex.quote(str(Path(sys.executable).parent))}:$PATH; ")

DATA = config["data_root"]
DATASETS = config["datasets"]
ENABLED = [name for name, ds in DATASETS.items() if ds["enabled"]]


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


def annotation_files(name):
    return [f"{DATA}/{name}/annotations/{f}" for f in ("train.txt", "val.txt", "classes.txt")]


def data_targets():
    return [f for name in ENABLED for f in annotation_files(name)]


def q(value):
    return shlex.quote(str(value))


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


wildcard_constraints:
    dataset="|".join(ENABLED) or "none",
