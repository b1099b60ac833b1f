"""The typed configuration model: every section of ``params.yaml`` as a dataclass.

This module is the one place where a setting's type, default and allowed range are
written down. From it come:

- the JSON schema that Snakemake validates params.yaml against
  (``workflow/schemas/params.schema.yaml``, written by ``mienet generate``; a test fails
  when the committed file differs from :func:`params_schema`);
- the defaults and ranges of the command-line tools (``mienet train``, ``mienet synth``);
- the training recipe: :class:`TrainConfig` is what ``mienet train`` runs, and the keys of
  ``datasets.<name>.train`` are its fields marked ``recipe``;
- :func:`validate_params`, the same schema applied by the CLI to ``--params`` files.

Variant and backbone names come from :mod:`mienet.registry.variants`. Nothing here imports
torch, so the Snakefile and every CLI start stay light.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from mienet.errors import MienetError
from mienet.io import write_text_atomic
from mienet.registry.formats import FORMATS
from mienet.registry.frames import DEFAULT_LAYOUT, FRAME_TEMPLATE, LAYOUTS
from mienet.registry.variants import ARCH_NAMES, FULL_MODEL, VARIANTS

SCHEMA_FILE = Path("workflow/schemas/params.schema.yaml")
# Names that become folder names, Snakemake wildcards, DVC matrix items and command-line
# arguments (datasets, profiles, zoo entries, study names): lower-case letters, digits, '_'
# and '-', starting with a letter or digit. Checked by the schema before any job runs, so no
# name can carry a shell metacharacter (or a '/', '..' or a space) into a command or a path.
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
NAME_RULE = "lower-case letters, digits, '_' and '-', starting with a letter or digit"
# Paths of params.yaml (roots, a dataset's source, videos and class list): anything but '{'
# and '}', which Snakemake reads as wildcards and DVC as variables. Every other character,
# shell metacharacters included, reaches a command quoted.
PATH_PATTERN = r"^[^{}]*$"
PATH_RULE = "a path without '{' or '}', which Snakemake reads as wildcards and DVC as variables"
PAN_INIT_STD = 0.001


def name_arg(text: str) -> str:
    """argparse type of a command-line name (``--dataset``, ``--study-name``, ``--profile``): the
    rule of :data:`NAME_PATTERN`, since a name becomes a folder and a stage name."""
    if not re.match(NAME_PATTERN, text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a name ({NAME_RULE})")
    return text  # PAN's initialisation of the PA filters (std of a normal distribution)

Amp = Literal["auto", "bf16", "fp16", "off"]
Switch = Literal["auto", "on", "off"]
Schedule = Literal["step", "cosine"]
Pretrained = Literal["none", "imagenet"]
Format = Literal[tuple(FORMATS)]  # mienet.registry.formats: one entry a format


def setting(default=dataclasses.MISSING, *, help: str = "", role: str = "", factory=None, **schema):
    """A dataclass field with its help text, its role and extra JSON-schema constraints."""
    meta = {"help": help, "role": role, "schema": schema}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


# --------------------------------------------------------------------------- training


@dataclass(kw_only=True)
class TrainConfig:
    """Everything a training run depends on; saved in config.json and in every checkpoint.

    ``role``: ``recipe`` fields are the keys of ``datasets.<name>.train`` (and of a
    ``best_params.yaml``); ``run`` fields may be tuned or fixed by a search but not set by
    a recipe; the others name the run and its data.
    """

    annotations: str = setting("", help="folder with train.txt, val.txt and classes.txt")
    root: str = setting("", help="dataset root of the lists' paths")
    out: str = setting("", help="run folder")
    dataset: str = setting("custom", help="dataset name")
    variant: str = setting(FULL_MODEL, help="model variant")
    arch: str = setting("resnet50", role="recipe", enum=list(ARCH_NAMES),
                        help="backbone: " + ", ".join(ARCH_NAMES) + " (resnet10 has no ImageNet weights)")
    segments: int = setting(3, role="recipe", minimum=1, help="T segments per clip")
    frames_per_segment: int = setting(4, role="recipe", minimum=1, help="L frames per segment")
    size: int = setting(224, role="recipe", minimum=16, help="crop size in pixels")
    epochs: int = setting(60, role="recipe", minimum=1, help="epochs")
    batch_size: int = setting(8, role="recipe", minimum=1, help="clips per device")
    sync_bn: bool = setting(True, role="recipe",
                            help="with several processes, BatchNorm's statistics over the global batch (as one "
                                 "process computes them) instead of each process's own share")
    gpus: int = setting(1, role="recipe", minimum=1,
                        help="processes (GPUs) of one training on one node: `mienet train` starts them "
                             "with torchrun; the global batch is gpus x batch_size and lr scales with it. "
                             "A run resumes only on as many processes as it started with")
    lr: float = setting(0.0025, role="recipe", exclusiveMinimum=0,
                        help="learning rate at batch 8 on one device, scaled linearly")
    lr_steps: list[int] = setting(role="recipe", factory=lambda: [36, 50], items={"minimum": 1},
                                  help="epochs where the step schedule multiplies lr by 0.1")
    schedule: Schedule = setting("step", role="recipe", help="learning-rate schedule")
    warmup_epochs: float = setting(0.0, role="recipe", minimum=0, help="linear warm-up")
    momentum: float = setting(0.9, role="recipe", minimum=0, help="SGD momentum")
    weight_decay: float = setting(1e-4, role="recipe", minimum=0, help="weight decay")
    clip_grad: float = setting(20.0, role="recipe", minimum=0, help="gradient-norm clip, 0 for none")
    dropout: float = setting(0.6, role="recipe", minimum=0, exclusiveMaximum=1,
                             help="dropout before the classifier")
    flip: bool = setting(True, role="recipe", help="horizontal flip augmentation (off for SSv2)")
    pretrained: Pretrained = setting("none", role="recipe", help="backbone initialisation")
    freeze_fusion_weights: bool = setting(
        False, role="recipe", help="keep AFM's w at (1, 1), outside the optimiser but with its accumulated "
                                   "gradient in the clip norm, as the released code did (exact reproduction)")
    pa_init_std: float = setting(PAN_INIT_STD, role="recipe", exclusiveMinimum=0,
                                 help="std of the normal initialisation of PA's filters (PAN: 0.001)")
    workers: int = setting(2, role="recipe", minimum=0, help="data-loading processes per device")
    cache_frames: bool = setting(False, role="recipe",
                                 help="keep every decoded frame in memory after its first read (small "
                                      "datasets: the frames are decoded once, not every epoch; per loader "
                                      "process, so best with workers 0)")
    template: str = setting(FRAME_TEMPLATE, role="recipe", help="frame file name template (1-based)")
    skip_missing: bool = setting(False, role="recipe", help="skip clips with missing frames, counting them")
    amp: Amp = setting("auto", role="recipe", help="mixed precision")
    channels_last: Switch = setting("auto", role="recipe", help="channels-last memory layout")
    compile: Switch = setting("auto", role="recipe", help="torch.compile")
    decode: Literal["auto", "cpu", "gpu"] = setting(
        "auto", role="recipe",
        help="where frames are decoded: cpu in the loader workers; gpu on the CUDA device from the JPEG "
             "bytes the workers read (nvJPEG, one call per batch); auto: gpu on CUDA when a probe at the "
             "start measures it faster, cpu everywhere else")
    cuda_graphs: Switch = setting("auto", role="recipe",
                                  help="CUDA graphs for the training forward and backward (auto: tried on "
                                       "one CUDA device at batch 16 or less, kept when measured faster; "
                                       "never on CPU)")
    seed: int = setting(0, role="run", minimum=0, help="seed of everything random")
    device: str = setting("auto", role="run", help="auto (CUDA when present), cpu or cuda")
    debug_nan_at_step: int | None = None  # fault injection for the tests: a NaN loss here
    debug_exit_at_step: int | None = None  # fault injection: the process dies here, like a kill

    @property
    def run_dir(self) -> Path:
        return Path(self.out)

    @property
    def pretrained_weights(self) -> str | None:
        """``pretrained`` as :func:`mienet.models.build_model` takes it (None for none)."""
        return None if self.pretrained in (None, "none") else self.pretrained


def _fields_with_role(*roles: str) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(TrainConfig) if f.metadata.get("role") in roles)


RECIPE_KEYS = _fields_with_role("recipe")  # the keys of datasets.<name>.train
TUNABLE = frozenset(_fields_with_role("recipe", "run"))  # what a search or best_params.yaml may set
TRAIN_DEFAULTS = TrainConfig()


# --------------------------------------------------------------------------- params.yaml sections


@dataclass
class Dataset:
    """``datasets.<name>``; where its files are is derived in :mod:`mienet.layout`."""

    format: Format = setting(help="where the labels come from")
    train: dict = setting(help="the recipe of `mienet train` for the dataset",
                          schema_ref="recipe")
    source: str = setting(None, pattern=PATH_PATTERN, help="; ".join(
        f"{f.name}: {f.source_help}" for f in FORMATS.values() if "source" in f.requires))
    root: str = setting(None, pattern=PATH_PATTERN, help=", ".join(
        f.name for f in FORMATS.values() if f.root_from_source) + ": dataset root the list paths are relative "
        "to (default: the parent of source)")
    videos: str = setting(None, pattern=PATH_PATTERN, help=", ".join(
        f.name for f in FORMATS.values() if "videos" in f.requires) + ": the videos")
    short_side: int | None = setting(None, minimum=8, help="resize frames to this short side when extracting")
    classes: str = setting(None, pattern=PATH_PATTERN, help="optional class list, one name a line")
    search: dict = setting(None, schema_ref="search_settings", help="this dataset's overrides of `search`")
    machine_margin: float | None = setting(
        None, minimum=0,
        help="points by which another CPU, thread count or precision moved a mean effect of this recipe "
             "(workflow/scripts/repro_matrix.py); the effects table marks a verdict machine-sensitive when "
             "an end of its 95 % CI lies within it of 0")


SYNTH_CLASSES = 8  # factor combinations of mienet.data.synth_design (tests/test_config.py checks it)


@dataclass
class Synth:
    """``synth``: the embedded default dataset (``mienet synth``)."""

    classes: int = setting(8, minimum=2, maximum=SYNTH_CLASSES, help="number of classes (the first K factor combinations)")
    clips_per_class: int = setting(150, minimum=1, help="clips per class")
    frames: int = setting(40, minimum=16, help="frames per clip (T=3 segments x L=4 frames need room)")
    size: int = setting(64, minimum=32, multipleOf=2, help="frame width and height (even: the mp4v codec)")
    fps: float = setting(25.0, exclusiveMinimum=0, help="frame rate")
    seed: int = setting(0, minimum=0, help="random seed")


SYNTH_DEFAULTS = Synth()
SYNTH_LIMITS = {f.name: f.metadata["schema"] for f in dataclasses.fields(Synth)}


@dataclass
class Extract:
    jobs: int = setting(minimum=1)
    ext: Literal["jpg", "png"] = setting()
    quality: int = setting(minimum=1, maximum=100)
    layout: str = setting(
        DEFAULT_LAYOUT, enum=list(LAYOUTS),
        help="packed: one file per video with its encoded frames and an index (DVC tracks "
             "one file per video; docs/scale.md); folders: one image file per frame")


@dataclass
class Annotations:
    val_ratio: float = setting(minimum=0, exclusiveMaximum=1)
    test_ratio: float = setting(minimum=0, exclusiveMaximum=1)
    seed: int = setting(minimum=0)


@dataclass
class Ablation:
    variants: list[str] = setting(items={"$ref": "#/$defs/variant"}, minItems=1, uniqueItems=True)
    seeds: list[int] = setting(items={"minimum": 0}, minItems=1, uniqueItems=True)


@dataclass
class Evaluate:
    split: Literal["standard", "val", "test"] = setting(
        help="standard: each dataset's protocol (its format's standard_split, mienet.registry.formats)")
    clips: int = setting(minimum=1)
    crops: Literal[1, 3] = setting()


@dataclass
class Resources:
    train_threads: int = setting(minimum=1)


@dataclass
class ZooEntry:
    """``zoo.<name>``: one released checkpoint. The reported numbers are not here: they live in
    :data:`mienet.registry.published.BUILTIN`, found by (dataset, variant)."""

    dataset: str = setting(schema_ref="name", help="a key of datasets")
    variant: str = setting(schema_ref="variant")
    arch: str = setting(enum=list(ARCH_NAMES))
    segments: int = setting(minimum=1)
    num_classes: int = setting(minimum=1)
    file: str = setting(help="file name under pretrained/")
    frames_per_segment: int = setting(4, minimum=1)
    size: int = setting(224, minimum=16)
    split: str = setting("val", help="the annotation list evaluated")
    list: str = setting(None, pattern=PATH_PATTERN, help="a frame list instead of the dataset's")
    root: str = setting(None, pattern=PATH_PATTERN, help="its frame root")
    classes: str = setting(None, pattern=PATH_PATTERN, help="its class list")
    template: str = setting(None)
    source: str = setting(None, help="where to get the file")


# Search settings: sub-mappings.


@dataclass
class Sampler:
    seed: int = setting(0, minimum=0)
    n_startup_trials: int = setting(10, minimum=0)
    multivariate: bool = setting(True)


@dataclass
class Pruner:
    type: Literal["median", "percentile", "hyperband", "none"] = setting("median")
    n_startup_trials: int = setting(5, minimum=0)
    n_warmup_steps: int = setting(0, minimum=0)
    interval_steps: int = setting(None, minimum=1)
    n_min_trials: int = setting(None, minimum=1)
    percentile: float = setting(None, exclusiveMinimum=0, exclusiveMaximum=100)
    min_resource: int = setting(None, minimum=1)
    max_resource: int = setting(None, minimum=1)
    reduction_factor: int = setting(None, minimum=2)
    bootstrap_count: int = setting(None, minimum=0)


@dataclass
class Heartbeat:
    interval: int = setting(60, minimum=1)
    grace_period: int = setting(180, minimum=2)
    max_retry: int = setting(2, minimum=0)


@dataclass
class Subset:
    train_per_class: int | None = setting(None, minimum=1)
    val_per_class: int | None = setting(None, minimum=1)
    seed: int = setting(0, minimum=0)


@dataclass
class Search:
    """``search`` (and ``datasets.<name>.search``, any subset of the keys)."""

    enabled: bool = setting(True, help="run the search stage in the workflow")
    variants: list[str] = setting(factory=list, items={"$ref": "#/$defs/variant"}, uniqueItems=True)
    n_trials: int = setting(20, minimum=0, help="trials that end (complete, pruned, failed), over all runs")
    timeout: float | None = setting(None, minimum=0, help="seconds per run after which no new trial starts")
    workers: int = setting(1, minimum=1, help="worker processes per run")
    jobs: int = setting(1, minimum=1, help="the workflow's worker jobs on the study (Snakemake and SLURM "
                                           "jobs taking trials until n_trials; 1: one job runs it all)")
    storage: str | None = setting(None, minLength=1, help="journal file path or database URL")
    study_name: str | None = setting(None, pattern=NAME_PATTERN)
    enqueue_default: bool = setting(True, help="trial 0 = the recipe's own values")
    keep_checkpoints: bool = setting(False)
    sampler: Sampler = setting(factory=Sampler)
    pruner: Pruner = setting(factory=Pruner, required=["type"])
    heartbeat: Heartbeat = setting(factory=Heartbeat)
    subset: Subset | None = setting(None, help="tune on a subset: {train_per_class, val_per_class, seed}")
    train: dict = setting(factory=dict, propertyNames={"$ref": "#/$defs/tunable"},
                          help="fixed training settings over datasets.<name>.train")
    space: dict = setting(factory=dict, schema_ref="search_space", help="what the sampler draws")


SEARCH_DEFAULTS = Search()


@dataclass
class Params:
    """params.yaml."""

    profile: str = setting(schema_ref="name", help="key of `profiles`")
    profiles: dict[str, list[str]] = setting(help="profile -> the datasets it runs",
                                             propertyNames={"$ref": "#/$defs/name"},
                                             additionalProperties={"type": "array",
                                                                   "items": {"$ref": "#/$defs/name"}})
    data_root: str = setting(pattern=PATH_PATTERN, help="generated data: videos, frames, annotations")
    runs_root: str = setting(pattern=PATH_PATTERN, help="training runs: checkpoints and logs")
    results_root: str = setting(pattern=PATH_PATTERN, help="small tables, figures and metrics")
    datasets: dict[str, Dataset] = setting(minProperties=1, propertyNames={"$ref": "#/$defs/name"})
    synth: Synth = setting(required=list(SYNTH_LIMITS))
    extract: Extract = setting()
    annotations: Annotations = setting()
    ablation: Ablation = setting()
    search: Search = setting(required=["enabled", "variants", "n_trials", "space"],
                             properties={"space": {"minProperties": 1}})
    evaluate: Evaluate = setting()
    resources: Resources = setting()
    zoo: dict[str, ZooEntry] = setting(help="released checkpoints evaluated by `mienet zoo`",
                                       propertyNames={"$ref": "#/$defs/name"})


# --------------------------------------------------------------------------- the schema


def _type_schema(tp, defs: dict) -> dict:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is type(None):
        return {"type": "null"}
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        parts = [_type_schema(a, defs) for a in args]
        if all(set(p) == {"type"} for p in parts):
            types = []
            for p in parts:
                types += p["type"] if isinstance(p["type"], list) else [p["type"]]
            return {"type": types}
        nullable = [p for p in parts if p != {"type": "null"}]
        if len(nullable) == 1 and len(parts) == 2:
            return {"oneOf": [nullable[0], {"type": "null"}]}
        return {"oneOf": parts}
    if origin is Literal:
        return {"enum": list(args)}
    if origin is list:
        return {"type": "array", "items": _type_schema(args[0], defs)}
    if origin is dict:
        return {"type": "object", "additionalProperties": _type_schema(args[1], defs)}
    if tp is dict:
        return {"type": "object"}
    if dataclasses.is_dataclass(tp):
        name = _def_name(tp)
        if name not in defs:
            defs[name] = {}  # reserve: recursion
            defs[name] = _dataclass_schema(tp, defs)
        return {"$ref": f"#/$defs/{name}"}
    simple = {bool: "boolean", int: "integer", float: "number", str: "string"}
    if tp in simple:
        return {"type": simple[tp]}
    raise TypeError(f"no JSON schema for {tp!r}")


def _def_name(cls) -> str:
    return {"Search": "search_settings", "Dataset": "dataset", "ZooEntry": "zoo_entry"}.get(
        cls.__name__, cls.__name__.lower())


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if key == "items" and "items" in out:
            out["items"] = {**out["items"], **value}
        elif key == "schema_ref":
            continue
        else:
            out[key] = value
    return out


def _field_schema(f: dataclasses.Field, hints: dict, defs: dict) -> dict:
    meta = f.metadata.get("schema", {})
    if "schema_ref" in meta:
        schema = {"$ref": f"#/$defs/{meta['schema_ref']}"}
    else:
        schema = _type_schema(hints[f.name], defs)
        if "$ref" in schema and meta:  # a section with extra constraints beside its definition
            return {"$ref": schema["$ref"], **{k: v for k, v in meta.items()}}
    if f.default is None and "type" in schema and "null" not in schema["type"]:
        # optional keys (default None) may be written as null in params.yaml
        schema = {**schema, "type": [schema["type"], "null"] if isinstance(schema["type"], str)
                  else [*schema["type"], "null"]}
    schema = _merge(schema, meta)
    if f.metadata.get("help"):
        schema["description"] = f.metadata["help"]
    return schema


def _dataclass_schema(cls, defs: dict, only: tuple[str, ...] | None = None) -> dict:
    hints = typing.get_type_hints(cls)
    props, required = {}, []
    for f in dataclasses.fields(cls):
        if only is not None and f.name not in only:
            continue
        if f.name.startswith("debug_"):
            continue
        props[f.name] = _field_schema(f, hints, defs)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            required.append(f.name)
    schema = {"type": "object", "additionalProperties": False}
    if required:
        schema["required"] = required
    schema["properties"] = props
    return schema


def params_schema() -> dict:
    """The JSON schema of params.yaml (draft 2020-12), derived from the dataclasses above."""
    defs: dict = {
        "name": {"type": "string", "pattern": NAME_PATTERN, "description": NAME_RULE},
        "variant": {"enum": list(VARIANTS)},
        "tunable": {"enum": sorted(TUNABLE)},
    }
    defs["recipe"] = {**_dataclass_schema(TrainConfig, defs, only=RECIPE_KEYS),
                      "description": "settings of `mienet train` (its long options with _ for -)"}
    defs["search_space"] = {
        "type": "object",
        "propertyNames": {"$ref": "#/$defs/tunable"},
        "additionalProperties": {"oneOf": [
            {"type": "object", "additionalProperties": False, "required": ["type", "low", "high"],
             "properties": {"type": {"enum": ["float", "int"]}, "low": {"type": "number"},
                            "high": {"type": "number"}, "log": {"type": "boolean"},
                            "step": {"type": "number", "exclusiveMinimum": 0}}},
            {"type": "object", "additionalProperties": False, "required": ["type", "choices"],
             "properties": {"type": {"const": "categorical"},
                            "choices": {"type": "array", "minItems": 1,
                                        "items": {"type": ["number", "string", "boolean", "null"]}}}},
        ]},
    }
    top = _dataclass_schema(Params, defs)
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
              "description": "params.yaml, the configuration of the Snakemake workflow and of the DVC "
                             "stages. GENERATED from src/mienet/config.py by `mienet generate`: edit "
                             "the dataclasses there, not this file.",
              **top, "$defs": dict(sorted(defs.items()))}
    return schema


def schema_text() -> str:
    header = ("# GENERATED by `mienet generate` from src/mienet/config.py (the typed configuration\n"
              "# model). Do not edit: change the dataclasses and run `mienet generate`.\n")
    return header + yaml.safe_dump(params_schema(), sort_keys=False, width=100)


# --------------------------------------------------------------------------- validation


def _hint(error) -> str:
    """A fix for the common YAML traps (``1e-3`` is a string for PyYAML)."""
    value = error.instance
    if error.validator == "pattern" and error.validator_value == NAME_PATTERN:
        return f" (a name: {NAME_RULE})"
    if error.validator == "pattern" and error.validator_value == PATH_PATTERN:
        return f" ({PATH_RULE})"
    if error.validator == "propertyNames":
        return f" (names of datasets, profiles and zoo entries: {NAME_RULE})"
    if isinstance(value, str) and error.validator in ("type",):
        try:
            float(value)
        except ValueError:
            return ""
        return (f" (YAML reads {value!r} as text: write it with a dot and a signed exponent, "
                f"e.g. {float(value):.1e}".replace("e-0", "e-").replace("e+0", "e+") + ")")
    return ""


def schema_errors(data: Any, where: str = "params.yaml", definition: str | None = None,
                  partial: bool = False) -> list[str]:
    """Every violation of the schema (or of one of its ``$defs``) as 'where.key: message'.
    ``partial``: top-level sections may be missing (those present are checked in full)."""
    schema = params_schema()
    if definition is not None:
        schema = {"$ref": f"#/$defs/{definition}", "$defs": schema["$defs"]}
    elif partial:  # no required sections, nor required keys directly in a section
        schema = {k: v for k, v in schema.items() if k != "required"}
        schema["properties"] = {k: {kk: vv for kk, vv in v.items() if kk != "required"}
                                for k, v in schema["properties"].items()}
    import jsonschema  # here: 0.11 s of every start that reads this module but never validates

    validator = jsonschema.Draft202012Validator(schema)
    out = []
    for err in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        path = ".".join(str(p) for p in err.absolute_path)
        out.append(f"{where}: {path + ': ' if path else ''}{err.message}{_hint(err)}")
    return out


def validate_params(data: Any, where: str = "params.yaml", partial: bool = False) -> None:
    """Raise a :class:`MienetError` listing every schema violation of a params mapping."""
    errors = schema_errors(data, where, partial=partial)
    if errors:
        shown = errors[:10] + ([f"... and {len(errors) - 10} more"] if len(errors) > 10 else [])
        raise MienetError("invalid parameters:\n  " + "\n  ".join(shown))


def check_params(data: Any, where: str = "params.yaml") -> None:
    """For the Snakefile: on a schema violation, print one line per problem and stop (exit 1),
    instead of a traceback with the whole schema."""
    errors = schema_errors(data, where)
    if errors:
        print("error: invalid parameters:\n  " + "\n  ".join(errors), file=sys.stderr)
        raise SystemExit(1)


def load_params(path: str | Path, validate: bool = True, partial: bool = False) -> dict:
    """A params.yaml as a dict, checked against the schema; errors name the file and the key.
    ``partial``: a file with only some sections (e.g. ``datasets`` and ``search``) is fine."""
    path = Path(path)
    if not path.is_file():
        raise MienetError(f"--params file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise MienetError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise MienetError(f"{path}: expected a mapping of sections (profile, datasets, ...)")
    if validate:
        validate_params(data, str(path), partial=partial)
    return data


def value_fits(name: str, value: Any) -> bool:
    """Whether ``value`` is allowed for the training setting ``name`` (by the schema)."""
    return not schema_errors({name: value}, definition="recipe") if name in RECIPE_KEYS else (
        isinstance(value, int) and not isinstance(value, bool) and value >= 0 if name == "seed"
        else isinstance(value, str))


def field_type(name: str) -> str:
    """'int', 'float', 'bool', 'str' or 'list' of a TrainConfig field (what a distribution may draw)."""
    tp = typing.get_type_hints(TrainConfig)[name]
    if typing.get_origin(tp) is Literal:
        return "str"
    if typing.get_origin(tp) is list:
        return "list"
    return {int: "int", float: "float", bool: "bool", str: "str"}.get(tp, "str")


def write_effective_params(params: dict, path: str | Path) -> str:
    """Write the configuration a workflow runs with (params.yaml plus ``--config`` /
    ``--configfile`` overrides) to ``path`` when its content changed; returns ``path``.

    The commands that take ``--params`` read this file, so an override reaches every rule,
    the search and the tuned training included, exactly as it reaches Snakemake's config.
    """
    path = Path(path)
    text = ("# Written by the Snakefile: params.yaml with the --config/--configfile overrides of the\n"
            "# current run. Do not edit; edit params.yaml.\n"
            + yaml.safe_dump(params, sort_keys=False))
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, text)
    return str(path)
