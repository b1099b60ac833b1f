"""One loader for every model that is evaluated or asked for predictions.

:func:`load_model` rebuilds a model, ready for inference, from either

- a checkpoint written by ``mienet train``, which carries its run's settings (``config``)
  and class list; or
- an authors' released ``.pth.tar`` (``epoch, arch, state_dict, optimizer, best_prec1``),
  which carries neither: the model is built from its zoo entry (``variant``, ``arch``,
  ``segments``, ``num_classes``, optionally ``frames_per_segment``, ``size``, ``template``,
  ``dataset``), after :func:`check_fit` has made sure the file fits that variant.

Either way the result is a :class:`LoadedModel` whose ``config`` has the same keys, so that
evaluation and prediction never ask where a model came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from mienet.config import TRAIN_DEFAULTS
from mienet.errors import MienetError
from mienet.models import build_model, load_checkpoint
from mienet.models.checkpoint import read_checkpoint_file, released_state, state_differences
from mienet.registry.variants import VARIANTS

DEFAULT_TEMPLATE = TRAIN_DEFAULTS.template
MAX_KEYS = 12  # keys named per kind of difference in check_fit's message


@dataclass
class LoadedModel:
    """A model in eval mode on the CPU, with what evaluation needs to know about it.

    ``config``: ``dataset``, ``variant``, ``arch``, ``segments``, ``frames_per_segment``, ``size``,
    ``num_classes``, ``template``, ``seed`` and ``epochs`` (``None`` for a released file), plus
    every other setting of a trained run. ``meta``: ``source`` (``"trained"`` or ``"released"``),
    ``checkpoint`` and the file's own metadata (``epoch``, ``best``; released: ``best_prec1``).
    """

    model: torch.nn.Module
    config: dict
    classes: list[str]
    meta: dict = field(default_factory=dict)


def load_model(checkpoint: str | Path, zoo_entry: dict | None = None, classes: list[str] | None = None,
               name: str = "") -> LoadedModel:
    """The model of ``checkpoint``: a ``mienet train`` checkpoint, or with ``zoo_entry`` a released one.

    ``classes``: class names to use instead of the checkpoint's (a released file has none; without
    them its classes are ``class_00``, ...); their number must be the model's. ``name``: the zoo
    entry's name, for error messages.
    """
    checkpoint = Path(checkpoint)
    if checkpoint.is_dir():
        guess = next((c for c in (checkpoint / "checkpoints" / "best.pt", checkpoint / "best.pt")
                      if c.is_file()), None)
        raise MienetError(f"checkpoint {checkpoint} is a directory, not a checkpoint file"
                          + (f"; did you mean {guess}?" if guess else
                             " (give the .pt file, e.g. RUN_DIR/checkpoints/best.pt)"))
    if not checkpoint.is_file():
        raise MienetError(f"checkpoint {checkpoint} does not exist")
    loaded = _released(checkpoint, zoo_entry, name) if zoo_entry is not None else _trained(checkpoint)
    if classes is not None:
        if len(classes) != len(loaded.classes):
            what = f"zoo entry {name!r}" if zoo_entry is not None and name else str(checkpoint)
            raise MienetError(f"{what} has {len(loaded.classes)} classes, the class list given has "
                              f"{len(classes)}")
        loaded.classes = list(classes)
    loaded.model.eval()
    return loaded


def _trained(checkpoint: Path) -> LoadedModel:

    saved = read_checkpoint_file(checkpoint)
    cfg = saved.get("config") if isinstance(saved, dict) else None
    if not isinstance(cfg, dict) or "classes" not in saved:
        raise MienetError(f"{checkpoint} is not a checkpoint written by `mienet train` (no config and "
                          "class list inside)")
    classes = list(saved["classes"])
    model = build_model(cfg["variant"], cfg["arch"], len(classes), cfg["segments"],
                        cfg["frames_per_segment"], dropout=cfg.get("dropout", TRAIN_DEFAULTS.dropout))
    load_checkpoint(model, checkpoint)
    config = {"dataset": "custom", "seed": 0, "template": DEFAULT_TEMPLATE, **cfg, "num_classes": len(classes)}
    meta = {"source": "trained", "checkpoint": str(checkpoint),
            **{k: v for k, v in saved.items() if k in ("epoch", "best")}}
    return LoadedModel(model, config, classes, meta)


def entry_config(entry: dict) -> dict:
    """A zoo entry's model and input settings, with their defaults, in :class:`LoadedModel`'s keys."""
    return {"dataset": entry.get("dataset", "custom"), "variant": entry["variant"], "arch": entry["arch"],
            "segments": int(entry["segments"]), "frames_per_segment": int(entry.get("frames_per_segment", 4)),
            "size": int(entry.get("size", 224)), "num_classes": int(entry["num_classes"]),
            "template": entry.get("template", DEFAULT_TEMPLATE), "seed": None, "epochs": None}


def _released(checkpoint: Path, entry: dict, name: str) -> LoadedModel:

    config = entry_config(entry)
    check_fit(checkpoint, entry, name)
    model = build_model(config["variant"], config["arch"], config["num_classes"], config["segments"],
                        config["frames_per_segment"], dropout=0.0)
    saved = load_checkpoint(model, checkpoint)  # epoch, arch, best_prec1
    meta = {"source": "released", "checkpoint": str(checkpoint), **saved}
    classes = [f"class_{i:02d}" for i in range(config["num_classes"])]
    return LoadedModel(model, config, classes, meta)


# ---------------------------------------------------------------- fitting a released file


def _some(keys: list[str]) -> str:
    more = f", ... (+{len(keys) - MAX_KEYS} more)" if len(keys) > MAX_KEYS else ""
    return ", ".join(keys[:MAX_KEYS]) + more


def check_fit(path: Path, entry: dict, name: str = "") -> None:
    """Raise a :class:`MienetError` naming the closest variant and the differing keys when the
    released file does not fit the entry's variant (arch, segments and classes of the entry)."""

    state = released_state(path)
    fps = int(entry.get("frames_per_segment", 4))

    def diff(variant):
        model = build_model(variant, entry["arch"], int(entry["num_classes"]), int(entry["segments"]), fps)
        return state_differences(state, model.state_dict())

    declared = diff(entry["variant"])
    if not any(declared.values()):
        return
    scores = {entry["variant"]: declared}
    for variant in VARIANTS:
        if variant not in scores:
            scores[variant] = diff(variant)
    closest = min(scores, key=lambda v: (sum(len(x) for x in scores[v].values()), v != entry["variant"]))

    def described(d):
        return "; ".join(f"{len(keys)} {what}: {_some(keys)}" for what, keys in d.items() if keys)

    head = (f"zoo entry {name or entry.get('file', '')!r}: {path} does not fit variant {entry['variant']!r} "
            f"(arch {entry['arch']}, {entry['segments']} segments, {entry['num_classes']} classes): "
            f"{described(declared)}")
    n = sum(len(x) for x in scores[closest].values())
    if n == 0:
        raise MienetError(f"{head}. It fits variant {closest!r} exactly: the closest variant is "
                          f"{closest!r}; set `variant: {closest}` in the entry")
    raise MienetError(f"{head}. It fits no variant; the closest is {closest!r} ({n} key(s) differ: "
                      f"{described(scores[closest])})")
