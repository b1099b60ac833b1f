"""The factor design of ``mienet synth``: the factors, the classes they make and what each
variant can reach on them (the ceilings); ``OUT_DIR/factors.json`` holds it.

A class is one combination of three factors with two levels each (8 classes), and each factor
is built to be visible through exactly one kind of evidence
(:data:`mienet.registry.variants.CUES`); :mod:`mienet.data.synth_render` draws them and
:mod:`mienet.data.synth` (the module of the command) describes the whole benchmark.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
from pathlib import Path

from mienet.errors import MienetError
from mienet.registry.variants import VARIANTS

# Bump when a change alters the pixels of a clip (mienet.data.synth_render), so that resuming
# into a folder written by an older generator is refused instead of mixing the two.
GENERATOR_VERSION = 2


@dataclasses.dataclass(frozen=True)
class Factor:
    name: str
    levels: tuple[str, str]
    cue: str  # the evidence that shows it: one of mienet.registry.variants.CUES
    description: str


FACTORS: tuple[Factor, ...] = (
    Factor("appearance", ("red", "blue"), "frame",
           "hue family of the wall above the hip line: static, seen in any single frame, "
           "absent from frame differences"),
    Factor("motion", ("smooth", "jerky"), "consecutive_frames",
           "the free leg swings smoothly, or jerks with every frame shown up to 6 frames off its "
           "time: the same pose distribution in every frame, different change between consecutive frames"),
    Factor("order", ("clockwise", "anticlockwise"), "segment_order",
           "the light's tint turns half round the colour wheel over the clip, one way or the other: "
           "any frame's tint is uniform, consecutive frames differ by the same uniform chord either way"),
)
# Class k is the k-th combination of levels, the first factor varying slowest.
CLASS_LEVELS: tuple[tuple[int, ...], ...] = tuple(itertools.product(*(range(len(f.levels)) for f in FACTORS)))
CLASS_NAMES: list[str] = [
    f"{k:02d}_" + "_".join(f.levels[i] for f, i in zip(FACTORS, levels)) for k, levels in enumerate(CLASS_LEVELS)]
CLASS_DESCRIPTIONS: dict[str, str] = {
    name: ", ".join(f"{f.name} {f.levels[i]}" for f, i in zip(FACTORS, levels))
    for name, levels in zip(CLASS_NAMES, CLASS_LEVELS)}


def class_level(class_index: int, factor: str) -> str:
    """The level of ``factor`` in class ``class_index``."""
    j = [f.name for f in FACTORS].index(factor)
    return FACTORS[j].levels[CLASS_LEVELS[class_index][j]]


def ceilings(classes: int = len(CLASS_LEVELS)) -> dict[str, dict]:
    """The best accuracy (%) each variant can reach on the first ``classes`` classes, balanced,
    by construction: ``{variant: {"top1": x, "factors": {factor: y}}}``.

    A variant that sees a set of factors tells apart exactly the classes that differ in one of
    them; among classes that agree on every seen factor it can at best pick one. So top-1's
    ceiling is (number of distinct seen-level combinations) / classes, and a factor's ceiling
    is the share of clips whose level of it the best such guess gets right.
    """
    levels = CLASS_LEVELS[:classes]
    out = {}
    for name, variant in VARIANTS.items():
        seen = [j for j, f in enumerate(FACTORS) if variant.sees(f.cue)]
        groups: dict[tuple, list[tuple[int, ...]]] = {}
        for lv in levels:
            groups.setdefault(tuple(lv[j] for j in seen), []).append(lv)
        factors = {}
        for j, f in enumerate(FACTORS):
            best = sum(max(sum(1 for lv in members if lv[j] == k) for k in range(len(f.levels)))
                       for members in groups.values())
            factors[f.name] = round(100.0 * best / len(levels), 4)
        out[name] = {"top1": round(100.0 * len(groups) / len(levels), 4), "factors": factors}
    return out


def design(classes: int = len(CLASS_LEVELS)) -> dict:
    """What ``OUT_DIR/factors.json`` holds: the factors, each class's levels, the ceilings."""
    return {
        "design": "mienet synth factors",
        "generator_version": GENERATOR_VERSION,
        "factors": [{"name": f.name, "levels": list(f.levels), "cue": f.cue, "description": f.description}
                    for f in FACTORS],
        "classes": [{"name": CLASS_NAMES[k],
                     "levels": {f.name: f.levels[i] for f, i in zip(FACTORS, CLASS_LEVELS[k])}}
                    for k in range(classes)],
        "ceilings": ceilings(classes),
    }


def read_design(path: str | os.PathLike) -> dict:
    """Read a ``factors.json``; an unreadable or malformed one is an error naming the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        names = [f["name"] for f in data["factors"]]
        for c in data["classes"]:
            if set(c["levels"]) != set(names):
                raise ValueError(f"class {c.get('name')!r} does not give a level of each of {names}")
        return data
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise MienetError(f"{path}: not a factor design ({exc}); re-run `mienet synth` or delete it") from None
