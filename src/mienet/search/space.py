"""The search configuration: the ``search:`` mapping of ``params.yaml``, checked key by key.

::

    search:
      n_trials: 12                   # trials that end (complete, pruned or failed) in the study
      timeout: null                  # seconds per invocation after which no trial starts
      workers: 1                     # worker processes of one invocation
      sampler: {seed: 0, n_startup_trials: 4}
      pruner: {type: median, n_startup_trials: 2, n_warmup_steps: 1}   # steps are epochs (1-based)
      train: {epochs: 4}             # fixed settings of every trial, over datasets.<name>.train
      space:                         # what the sampler draws (TrainConfig names)
        lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
        batch_size: {type: categorical, choices: [4, 8, 16]}

Everything a user can get wrong is reported as a :class:`MienetError` naming the key.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mienet.config import (SEARCH_DEFAULTS, TRAIN_DEFAULTS, TUNABLE, field_type, load_params, schema_errors,
                           validate_params, value_fits)
from mienet.errors import MienetError

# Training settings a trial may draw or fix (TrainConfig names); `arch` is fixed per study.
FIXED_EXTRA = {"arch"}
PRUNERS = {
    "median": {"n_startup_trials": int, "n_warmup_steps": int, "interval_steps": int, "n_min_trials": int},
    "percentile": {"percentile": float, "n_startup_trials": int, "n_warmup_steps": int,
                   "interval_steps": int, "n_min_trials": int},
    "hyperband": {"min_resource": int, "max_resource": int, "reduction_factor": int, "bootstrap_count": int},
    "none": {},
}
DISTRIBUTION_KEYS = {
    "float": {"type", "low", "high", "log", "step"},
    "int": {"type", "low", "high", "log", "step"},
    "categorical": {"type", "choices"},
}


def _train_fields() -> dict[str, str]:
    """Tunable training settings -> 'int', 'float', 'bool', 'str' or 'list' (mienet.config)."""
    return {name: field_type(name) for name in sorted(TUNABLE | FIXED_EXTRA)}


@dataclass
class Distribution:
    """One entry of ``space``: float, int (low/high, log or step) or categorical (choices)."""

    name: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: list | None = None

    def suggest(self, trial) -> Any:
        if self.type == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step)
        if self.type == "int":
            return trial.suggest_int(self.name, self.low, self.high, log=self.log, step=self.step or 1)
        return trial.suggest_categorical(self.name, self.choices)

    def contains(self, value) -> bool:
        if self.type == "categorical":
            return value in self.choices
        return isinstance(value, (int, float)) and not isinstance(value, bool) and self.low <= value <= self.high

    def as_dict(self) -> dict:
        keys = ("type", "choices") if self.type == "categorical" else ("type", "low", "high", "log", "step")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


def _set(section) -> dict:
    """A settings dataclass of mienet.config as a mapping, without its unset (None) keys."""
    return {k: v for k, v in dataclasses.asdict(section).items() if v is not None}


@dataclass
class SearchSettings:
    """A checked ``search:`` mapping; the defaults apply to keys the file leaves out."""

    space: dict[str, Distribution] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    n_trials: int = SEARCH_DEFAULTS.n_trials
    timeout: float | None = SEARCH_DEFAULTS.timeout
    workers: int = SEARCH_DEFAULTS.workers
    sampler: dict[str, Any] = field(default_factory=lambda: _set(SEARCH_DEFAULTS.sampler))
    pruner: dict[str, Any] = field(default_factory=lambda: _set(SEARCH_DEFAULTS.pruner))
    heartbeat: dict[str, int] = field(default_factory=lambda: _set(SEARCH_DEFAULTS.heartbeat))
    subset: dict[str, int] | None = None
    storage: str | None = None
    study_name: str | None = None
    enqueue_default: bool = SEARCH_DEFAULTS.enqueue_default
    keep_checkpoints: bool = SEARCH_DEFAULTS.keep_checkpoints
    enabled: bool = SEARCH_DEFAULTS.enabled  # read by the workflow (run the search stage or not), not by the command
    variants: list[str] = field(default_factory=list)  # the workflow's: which variants get a study

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["space"] = {k: v.as_dict() for k, v in self.space.items()}
        return d


TOP_KEYS = {f.name for f in dataclasses.fields(SearchSettings)}


def read_search_settings(path: str | Path | None, dataset: str | None = None) -> tuple[SearchSettings, str | None]:
    """The search settings for ``dataset`` from a params.yaml, and its ``data_root``.

    The fixed training settings of a trial are, from weakest to strongest: TrainConfig's defaults,
    the dataset's recipe ``datasets.<dataset>.train``, ``search.train``, and
    ``datasets.<dataset>.search`` (any ``search`` key for this dataset only; ``train``, ``space``,
    ``sampler`` and ``heartbeat`` merge key by key, the others replace). A file holding only the
    ``search`` mapping's keys works too.
    """
    if path is None:
        return SearchSettings(), None
    path = Path(path)
    data = load_params(path, validate=False)
    if "search" in data:  # a params.yaml: checked against its schema (the sections it has)
        validate_params(data, str(path), partial=True)
    if "search" not in data:
        if "space" in data:
            return parse_search_settings(data, str(path)), None
        raise MienetError(f"{path} has no `search:` mapping (the search space and its settings); "
                          "see docs/search.md")
    search = data["search"]
    parse_search_settings(search, f"{path}: search")  # errors name the key where it is
    datasets = data.get("datasets") or {}
    entry = datasets.get(dataset) if isinstance(datasets, dict) and dataset else None
    entry = entry if isinstance(entry, dict) else {}
    recipe = entry.get("train") or {}
    override = entry.get("search") or {}
    parse_search_settings({"train": recipe}, f"{path}: datasets.{dataset}")
    parse_search_settings(override, f"{path}: datasets.{dataset}.search")
    merged = {**search, **override}
    for key in ("sampler", "heartbeat", "space"):
        if isinstance(search.get(key), dict) and isinstance(override.get(key), dict):
            merged[key] = {**search[key], **override[key]}
    merged["train"] = {**recipe, **(search.get("train") or {}), **(override.get("train") or {})}
    return parse_search_settings(merged, f"{path}: search"), str(data.get("data_root", "datasets"))


def parse_search_settings(data: dict, where: str = "search") -> SearchSettings:
    """A ``search:`` mapping, checked against the params schema (mienet.config) first; what
    follows checks only what the schema cannot say: the distributions against the settings'
    types, fixed values against their ranges, the pruner's keys for its type, and the
    heartbeat's interval against its grace period."""
    if not isinstance(data, dict):
        raise MienetError(f"{where}: expected a mapping")
    errors = schema_errors({k: v for k, v in data.items() if k != "space"}, where,
                           definition="search_settings")
    if errors:
        raise MienetError("; ".join(errors[:5]) + (f"; ... and {len(errors) - 5} more" if len(errors) > 5 else ""))
    s = SearchSettings()
    fields_ = _train_fields()
    space = data.get("space") or {}
    if not isinstance(space, dict):
        raise MienetError(f"{where}.space: expected a mapping of setting -> distribution")
    s.space = {name: parse_distribution(name, spec, fields_, f"{where}.space.{name}")
               for name, spec in space.items()}
    train = data.get("train") or {}
    for key, value in train.items():
        if not value_fits(key, value):
            raise MienetError(f"{where}.train.{key}: {value!r} does not fit the setting (a {fields_[key]}, "
                              "in range; see workflow/schemas/params.schema.yaml)")
    s.train = dict(train)
    for key in ("n_trials", "workers", "timeout", "storage", "study_name", "enqueue_default",
                "keep_checkpoints", "enabled"):
        if data.get(key) is not None:
            setattr(s, key, data[key])
    for key in ("sampler", "heartbeat"):
        if data.get(key) is not None:
            setattr(s, key, {**getattr(s, key), **data[key]})
    if data.get("pruner") is not None:
        s.pruner = parse_pruner(data["pruner"], f"{where}.pruner")
    if s.heartbeat["grace_period"] <= s.heartbeat["interval"]:
        raise MienetError(f"{where}.heartbeat: need grace_period > interval "
                          f"(got {s.heartbeat['interval']} and {s.heartbeat['grace_period']})")
    if data.get("subset") is not None:
        s.subset = dict(data["subset"])
    return s


def parse_pruner(spec, where: str) -> dict:
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, dict) or "type" not in spec:
        raise MienetError(f"{where}: expected a mapping with `type` ({', '.join(PRUNERS)})")
    kind = spec["type"]
    if kind not in PRUNERS:
        raise MienetError(f"{where}.type: {kind!r} is not one of {', '.join(PRUNERS)}")
    rest = _typed_mapping({k: v for k, v in spec.items() if k != "type"}, PRUNERS[kind], where)
    if kind == "percentile" and not 0 < rest.get("percentile", -1) < 100:
        raise MienetError(f"{where}.percentile: a number between 0 and 100 is required")
    return {"type": kind, **rest}


def parse_distribution(name: str, spec, fields_: dict[str, str], where: str) -> Distribution:
    if name not in TUNABLE:
        raise MienetError(f"{where}: {name!r} is not a training setting a search may tune; "
                          f"tunable: {', '.join(sorted(TUNABLE))}")
    if not isinstance(spec, dict) or spec.get("type") not in DISTRIBUTION_KEYS:
        raise MienetError(f"{where}: expected a mapping with type float, int or categorical, "
                          f"e.g. {{type: float, low: 1.0e-4, high: 1.0e-1, log: true}}")
    kind = spec["type"]
    unknown = sorted(set(spec) - DISTRIBUTION_KEYS[kind])
    if unknown:
        raise MienetError(f"{where}: unknown key(s) {', '.join(unknown)} for a {kind} distribution; "
                          f"known: {', '.join(sorted(DISTRIBUTION_KEYS[kind]))}")
    ftype = fields_[name]
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise MienetError(f"{where}.choices: expected a non-empty list")
        if ftype == "list":
            raise MienetError(f"{where}.choices: {name} is a list setting; lists cannot be Optuna choices")
        for c in choices:
            if not value_fits(name, c):
                raise MienetError(f"{where}.choices: {c!r} does not fit the setting's type ({ftype})")
        if len(set(map(repr, choices))) != len(choices):
            raise MienetError(f"{where}.choices: repeated values")
        return Distribution(name, kind, choices=list(choices))
    if ftype not in ("int", "float") or (kind == "float" and ftype != "float"):
        raise MienetError(f"{where}: {name} is a {ftype} setting; a {kind} distribution does not fit "
                          "(use type: categorical with choices)")
    number = int if kind == "int" else float
    for key in ("low", "high"):
        if key not in spec:
            raise MienetError(f"{where}: missing `{key}`")
    low = _number(spec["low"], f"{where}.low", number)
    high = _number(spec["high"], f"{where}.high", number)
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise MienetError(f"{where}.log: expected true or false")
    step = spec.get("step")
    if step is not None:
        step = _number(step, f"{where}.step", number)
        if step <= 0:
            raise MienetError(f"{where}.step: must be positive")
        if log:
            raise MienetError(f"{where}: `log` and `step` cannot be combined")
    if not low < high:
        raise MienetError(f"{where}: low ({low}) must be below high ({high})")
    if log and low <= 0:
        raise MienetError(f"{where}: a log distribution needs low > 0 (got {low})")
    return Distribution(name, kind, low=low, high=high, log=log, step=step)


def default_trial_params(settings: SearchSettings) -> dict | None:
    """The untuned values of the searched settings (``train`` over TrainConfig's defaults), or None
    when one lies outside the space (then the study has no default trial)."""
    params = {}
    for name, dist in settings.space.items():
        value = settings.train.get(name, getattr(TRAIN_DEFAULTS, name))
        if not dist.contains(value):
            return None
        params[name] = value
    return params


# --------------------------------------------------------------------------- small checks

def _number(value, where: str, kind: type, minimum: float | None = None):
    if isinstance(value, str):
        try:  # PyYAML reads 1e-4 (no dot) as a string
            value = float(value)
        except ValueError:
            pass
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and kind is int:
        ok = float(value).is_integer()
    if not ok:
        raise MienetError(f"{where}: expected {'an integer' if kind is int else 'a number'}, not {value!r}")
    value = kind(value)
    if minimum is not None and value < minimum:
        raise MienetError(f"{where}: must be >= {minimum}, not {value}")
    return value


def _typed_mapping(data, keys: dict[str, type], where: str) -> dict:
    if not isinstance(data, dict):
        raise MienetError(f"{where}: expected a mapping")
    unknown = sorted(set(data) - set(keys))
    if unknown:
        raise MienetError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(keys)) or 'none'}")
    out = {}
    for k, v in data.items():
        if keys[k] is bool:
            if not isinstance(v, bool):
                raise MienetError(f"{where}.{k}: expected true or false, not {v!r}")
            out[k] = v
        elif v is None:
            out[k] = None
        else:
            out[k] = _number(v, f"{where}.{k}", keys[k], minimum=0)
    return out
