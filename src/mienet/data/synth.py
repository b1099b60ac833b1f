"""``mienet synth``: the embedded default dataset, a diagnostic benchmark built from named factors.

Every clip shows a procedurally drawn figure (side view) swinging its legs in antiphase, in
front of a wall, under a light that changes over the clip. A class is one combination
of three factors with two levels each (8 classes), and each factor is built to be visible
through exactly one kind of evidence (:data:`mienet.registry.variants.CUES`):

- ``appearance`` (red / blue wall): the hue family of the wall above the hip line. It is
  static and nothing that moves ever touches it, so it is visible in any single frame and
  invisible in frame differences (no camera shake).
- ``motion`` (smooth / jerky legs): the legs swing in antiphase 1.5 to 3 times per clip from a random
  start, shown frame by frame (smooth) or with every frame taken up to 6 frames off its time
  (jerky: the leg jumps back and forth). Each single frame draws the leg from the same pose
  distribution either way, and frames a segment apart see the same swing up to that jitter
  (small beside the spread of swing speeds); consecutive frames differ (what PA sees).
- ``order`` (clockwise / anticlockwise light): a uniform tint whose hue turns half round the
  colour wheel over the clip from a random start, one way or the other. Any frame's tint is
  uniform on the wheel wherever the frame lies in the clip, and consecutive frames differ by the
  same uniform chord either way (PA takes magnitudes); no pixel is ever clipped. So no single
  frame and no window of consecutive frames tells the way it turns; only comparing segments
  does (DPTAM's temporal convolution; average consensus is blind to it). A brightness ramp would
  not do: which frames a model samples is not symmetric in time, so a ramp's mean would leak.

Everything else (body proportions, clothes and skin colours, arms, placement, facing, the
lower background, the leg's swing range, pixel noise) is drawn from one per-clip distribution
for every class. So a variant's *ceiling* follows from the factors it can see
(:func:`ceilings`) before anything is trained: TSN sees appearance only (25 % top-1 on the 8
classes), TSN+DPTAM appearance and order (50 %), PA only motion (25 %), RGB+PA fusions
appearance and motion (50 %), fusions with DPTAM all three (100 %). ``mienet synth`` writes
this design, with the ceilings, to ``OUT_DIR/factors.json``.

Everything random comes from ``numpy.random.Generator`` seeded by (seed, class index, clip
index), so a clip does not depend on ``-j`` or on the other clips, and the same seed gives the
same decoded frames.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import itertools
import json
import math
import multiprocessing
import os
import re
import signal
import sys
import time
from pathlib import Path
import cv2
import numpy as np
from tqdm import tqdm

from mienet.config import SYNTH_CLASSES, SYNTH_DEFAULTS, SYNTH_LIMITS
from mienet.errors import MienetError
from mienet.io import write_text_atomic

# Defaults and limits: the `synth` section of the configuration model (mienet.config).
DEFAULT_CLASSES = SYNTH_DEFAULTS.classes
DEFAULT_CLIPS_PER_CLASS = SYNTH_DEFAULTS.clips_per_class
DEFAULT_FRAMES = SYNTH_DEFAULTS.frames
DEFAULT_SIZE = SYNTH_DEFAULTS.size
DEFAULT_FPS = SYNTH_DEFAULTS.fps
DEFAULT_SEED = SYNTH_DEFAULTS.seed
MIN_FRAMES = SYNTH_LIMITS["frames"]["minimum"]
MIN_SIZE = SYNTH_LIMITS["size"]["minimum"]
FOURCC = "mp4v"
# Bump when a change alters the pixels of a clip, so that resuming into a
# folder written by an older generator is refused instead of mixing the two.
GENERATOR_VERSION = 2
META_NAME = ".mienet-synth.json"
# Written last, removed first: it exists only while OUT_DIR holds exactly the requested clips.
# A workflow should take this file as the step's output, not the folder: Snakemake and DVC
# delete an output before re-running its step, and deleting the folder would throw away
# the finished clips of an interrupted run, which `mienet synth` otherwise keeps and skips.
from mienet.layout import SYNTH_DONE as DONE_NAME  # noqa: E402  (the workflow waits for it)
from mienet.layout import FACTORS_FILE as FACTORS_NAME  # noqa: E402  (the design and the ceilings)
LOCK_NAME = ".mienet-synth.lock"
_CLIP_FILE = re.compile(r"^clip_(\d{4,})\.mp4$")


# ---------------------------------------------------------------------------
# The design: factors -> classes -> ceilings
# ---------------------------------------------------------------------------

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
    from mienet.registry.variants import VARIANTS

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


# ---------------------------------------------------------------------------
# The figure. Angles are absolute segment directions in degrees, in a side view
# of a figure facing +x: 0 points straight down, +90 forward, 180 up, -90 back.
# Segments: trunk (hip -> shoulder), head (shoulder -> head), upper arm,
# forearm, thigh (hip -> knee), shin (knee -> ankle), foot (sole, heel -> toe).
# ---------------------------------------------------------------------------
SEGMENTS = ("trunk", "head", "uarm", "farm", "thigh", "shin", "foot")
_SEG = {name: i for i, name in enumerate(SEGMENTS)}

# Segment lengths in body heights (standing height is about 1.0).
_LENGTHS = dict(
    trunk=0.30, neck=0.045, head_r=0.065, uarm=0.165, farm=0.15, hand_r=0.024,
    thigh=0.245, shin=0.235, ankle_h=0.04, heel=0.035, toe=0.10,
)
# Line thicknesses in body heights.
_WIDTHS = dict(trunk=0.105, uarm=0.058, farm=0.048, thigh=0.11, shin=0.09, neck=0.04)
# The wall ends this far (body heights) above the hip: clear of the swinging thigh's width.
WALL_CLEARANCE = 0.12
# Chroma of the light's tint (grey levels); the scene is first squeezed into
# [LIGHT + NOISE_ROOM, 255 - LIGHT - NOISE_ROOM], so no pixel is ever clipped.
LIGHT = 50.0
TURN = math.pi  # how far (radians) the light's hue turns over a clip: half the wheel
NOISE_ROOM = 12.0
# How far (frames) a jerky clip's frames are shown off their time.
JITTER = 8.0
# Hue ranges (OpenCV's 0..180) of the wall's two levels.
_WALL_HUES = {"red": (-10.0, 8.0), "blue": (100.0, 122.0)}
_SKIN_BGR = np.array([[170, 195, 235], [140, 170, 225], [105, 140, 195], [80, 110, 160], [60, 80, 120]], float)


@dataclasses.dataclass(frozen=True)
class ClipParams:
    """Everything random about one clip. Only ``wall`` (appearance), ``phases`` (motion) and
    ``tint`` (order) depend on the class; the rest has one distribution for every class."""

    frames: int
    size: int
    angles: np.ndarray = dataclasses.field(repr=False)  # (F, len(SEGMENTS)) near side
    far_angles: np.ndarray = dataclasses.field(repr=False)  # (F, len(SEGMENTS)) the far leg, in antiphase
    lengths: dict = dataclasses.field(repr=False)
    widths: dict = dataclasses.field(repr=False)
    far_arm_offset: float
    height_px: float
    center_x: float
    ground_y: float
    hip_y: float  # pixel row of the hip: the straight-legged stance's heel on the ground
    facing: int  # +1 right, -1 left
    skin: tuple
    shirt: tuple
    pants: tuple
    shoes: tuple
    background: np.ndarray = dataclasses.field(repr=False)  # (S, S, 3) uint8, wall included
    wall_bottom: int  # first row below the wall
    phases: np.ndarray = dataclasses.field(repr=False)  # (F,) the free leg's phase per frame
    tint: np.ndarray = dataclasses.field(repr=False)  # (F, 3) the light's colour offset per frame
    noise_sigma: float = 0.0
    noise_seed: int = 0


def _clip_seed_sequence(class_index: int, clip_index: int, seed: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(entropy=int(seed), spawn_key=(int(class_index), int(clip_index)))


def _smooth_noise(rng: np.random.Generator, size: int, cells: int, channels: int = 1) -> np.ndarray:
    """Values in [0, 1], smooth at the scale size / cells."""
    grid = rng.random((cells + 1, cells + 1, channels)).astype(np.float32)
    out = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
    out = out.reshape(size, size, channels)
    lo, hi = out.min(), out.max()
    return (out - lo) / max(hi - lo, 1e-6)


def _hsv_colour(hue: float, saturation: float, value: float) -> np.ndarray:
    hsv = np.array([[[hue % 180.0, saturation * 255, value * 255]]], np.float32)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)[0, 0].astype(float)


def _random_colour(rng: np.random.Generator, lightness: tuple[float, float], saturation: tuple[float, float]):
    return _hsv_colour(rng.uniform(0, 180), rng.uniform(*saturation), rng.uniform(*lightness))


def _texture(rng: np.random.Generator, size: int, c1: np.ndarray, c2: np.ndarray) -> np.ndarray:
    """A (size, size, 3) float image mixing two colours: smoothed noise or soft stripes."""
    if rng.random() < 0.5:
        mix = _smooth_noise(rng, size, int(rng.integers(3, 9)))
    else:
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(0.1, 0.35) * size
        mix = 0.5 + 0.5 * np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period
                                 + rng.uniform(0, 2 * np.pi))
        mix = (0.8 * mix + 0.2 * _smooth_noise(rng, size, 5)[..., 0])[..., None]
    return c1 + (c2 - c1) * mix


def _unit(deg: np.ndarray) -> np.ndarray:
    rad = np.radians(deg)
    return np.stack([np.sin(rad), -np.cos(rad)], axis=-1)


def _body_points(angles: np.ndarray, lengths: dict, far_arm_offset: float) -> dict[str, np.ndarray]:
    """Joint positions relative to the hip, in body heights, y up; arrays of shape (F, 2)."""
    u = {name: _unit(angles[:, i]) for i, name in enumerate(SEGMENTS)}
    p = {"hip": np.zeros_like(u["trunk"])}
    p["shoulder"] = p["hip"] + lengths["trunk"] * u["trunk"]
    p["neck"] = p["shoulder"] + lengths["neck"] * u["head"]
    p["head"] = p["shoulder"] + (lengths["neck"] + lengths["head_r"]) * u["head"]
    p["elbow"] = p["shoulder"] + lengths["uarm"] * u["uarm"]
    p["wrist"] = p["elbow"] + lengths["farm"] * u["farm"]
    far_u = _unit(angles[:, _SEG["uarm"]] + far_arm_offset)
    far_f = _unit(angles[:, _SEG["farm"]] + far_arm_offset)
    p["far_elbow"] = p["shoulder"] + lengths["uarm"] * far_u
    p["far_wrist"] = p["far_elbow"] + lengths["farm"] * far_f
    p["knee"] = p["hip"] + lengths["thigh"] * u["thigh"]
    p["ankle"] = p["knee"] + lengths["shin"] * u["shin"]
    sole_up = _unit(angles[:, _SEG["foot"]] + 90.0)
    sole = p["ankle"] - lengths["ankle_h"] * sole_up
    p["heel"] = sole - lengths["heel"] * u["foot"]
    p["toe"] = sole + lengths["toe"] * u["foot"]
    return p


def leg_phases(motion: str, frames: int, rng: np.random.Generator) -> np.ndarray:
    """The free leg's phase per frame. Both levels follow one smooth swing (1.5 to 3 cycles per
    clip from a random start); ``smooth`` shows it frame by frame, ``jerky`` shows each frame at
    a time jittered by up to ``JITTER`` frames, so the leg jumps back and forth. Every frame's
    phase is uniform either way, and frames a segment apart see the same swing."""
    cycles = rng.uniform(1.0, 2.0)
    start = rng.uniform(0, 2 * np.pi)
    jitter = rng.uniform(-JITTER, JITTER, frames)  # drawn for both levels: one random stream
    if motion == "smooth":
        times = np.arange(frames, dtype=float)
    elif motion == "jerky":
        times = np.arange(frames) + jitter
    else:
        raise MienetError(f"unknown motion level {motion!r}")
    return start + 2 * np.pi * cycles * times / frames


# An orthonormal basis of the colour plane orthogonal to grey (B, G, R): the light's tint turns in it.
_TINT_BASIS = np.array([[1.0, -1.0, 0.0], [1.0, 1.0, -2.0]]) / np.array([[math.sqrt(2.0)], [math.sqrt(6.0)]])


def light_tint(order: str, frames: int, start: float) -> np.ndarray:
    """The light's colour offset per frame, (F, 3) BGR: a tint of chroma ``LIGHT`` whose hue turns
    half round the colour wheel over the clip from ``start``, one way or the other. Any frame's
    hue is uniform either way, and consecutive frames differ by the same chord either way."""
    turn = {"clockwise": -1.0, "anticlockwise": 1.0}.get(order)
    if turn is None:
        raise MienetError(f"unknown order level {order!r}")
    angle = start + turn * TURN * np.arange(frames) / frames
    return LIGHT * (np.cos(angle)[:, None] * _TINT_BASIS[0] + np.sin(angle)[:, None] * _TINT_BASIS[1])


def draw_clip_params(class_index: int, clip_index: int, seed: int,
                     frames: int = DEFAULT_FRAMES, size: int = DEFAULT_SIZE) -> ClipParams:
    """Draw the random parameters of one clip from (seed, class, clip).

    The nuisance draws come first and do not look at the class; then the class's levels
    pick the wall's hue family, the leg's jitter and the way the light turns.
    """
    if not 0 <= class_index < len(CLASS_LEVELS):
        raise MienetError(f"class index {class_index} out of range 0..{len(CLASS_LEVELS) - 1}")
    ss = _clip_seed_sequence(class_index, clip_index, seed)
    params_ss, class_ss, noise_ss = ss.spawn(3)
    rng = np.random.default_rng(params_ss)

    group = {"trunk": rng.uniform(0.9, 1.1), "arm": rng.uniform(0.88, 1.12),
             "leg": rng.uniform(0.9, 1.1), "head": rng.uniform(0.85, 1.15)}
    which = dict(trunk="trunk", neck="head", head_r="head", uarm="arm", farm="arm", hand_r="arm",
                 thigh="leg", shin="leg", ankle_h="leg", heel="leg", toe="leg")
    lengths = {k: v * group[which[k]] for k, v in _LENGTHS.items()}
    widths = {k: v * rng.uniform(0.85, 1.2) for k, v in _WIDTHS.items()}

    # The still body: trunk, head and arms keep one pose for the whole clip.
    uarm = rng.uniform(-15.0, 25.0)
    still = np.array([178.0 + rng.uniform(-6, 6), 180.0 + rng.uniform(-8, 8), uarm,
                      uarm + rng.uniform(5.0, 25.0), 2.0, -2.0, 90.0])
    # The free (near) leg: thigh base + amplitude * sin(phase), the knee bending as it comes forward.
    base, amplitude, knee = rng.uniform(10.0, 20.0), rng.uniform(24.0, 34.0), rng.uniform(8.0, 16.0)

    height_px = rng.uniform(0.55, 0.7) * size
    center_x = (0.5 + rng.uniform(-0.08, 0.08)) * size
    ground_y = rng.uniform(0.88, 0.94) * size
    facing = 1 if rng.random() < 0.5 else -1
    skin = tuple(float(c) for c in np.clip(_SKIN_BGR[rng.integers(len(_SKIN_BGR))] + rng.normal(0, 8, 3), 0, 255))
    shirt = tuple(float(c) for c in _random_colour(rng, (0.2, 1.0), (0.0, 1.0)))
    pants = tuple(float(c) for c in _random_colour(rng, (0.1, 0.8), (0.0, 0.9)))
    shoes = tuple(float(c) for c in _random_colour(rng, (0.05, 0.5), (0.0, 0.8)))
    lower_a = _random_colour(rng, (0.3, 0.9), (0.0, 0.6))
    lower = _texture(rng, size, lower_a, np.clip(lower_a + rng.normal(0, 45, 3), 0, 255))
    noise_sigma = rng.uniform(1.0, 3.0)
    wall_shades = (rng.uniform(0.45, 0.9), rng.uniform(0.5, 0.9), rng.uniform(0.45, 0.9), rng.uniform(0.5, 0.9))
    wall_mix = rng.uniform(0.0, 1.0)
    wall_seed = int(rng.integers(2**31))
    tint_start = rng.uniform(0, 2 * np.pi)

    # Where the hip is: the standing leg's sole on the ground.
    stand = _body_points(still[None, :], lengths, 0.0)
    hip_y = ground_y + stand["heel"][0, 1] * height_px
    wall_bottom = int(math.floor(hip_y - WALL_CLEARANCE * height_px))

    # The class.
    crng = np.random.default_rng(class_ss)
    hue_lo, hue_hi = _WALL_HUES[class_level(class_index, "appearance")]
    hue1 = hue_lo + (hue_hi - hue_lo) * wall_mix
    hue2 = hue_lo + (hue_hi - hue_lo) * ((wall_mix + 0.5) % 1.0)
    wrng = np.random.default_rng(wall_seed)
    wall = _texture(wrng, size, _hsv_colour(hue1, wall_shades[0], wall_shades[1]),
                    _hsv_colour(hue2, wall_shades[2], wall_shades[3]))
    background = lower.copy()
    background[:max(wall_bottom, 0)] = wall[:max(wall_bottom, 0)]
    phases = leg_phases(class_level(class_index, "motion"), frames, crng)
    tint = light_tint(class_level(class_index, "order"), frames, tint_start)

    def leg(swing):
        out = np.repeat(still[None, :], frames, axis=0)
        out[:, _SEG["thigh"]] = base + amplitude * swing
        out[:, _SEG["shin"]] = out[:, _SEG["thigh"]] - knee * (1.0 + swing)
        out[:, _SEG["foot"]] = 90.0 + 0.4 * amplitude * swing
        return out

    swing = np.sin(phases)
    return ClipParams(
        frames=frames, size=size, angles=leg(swing), far_angles=leg(-swing), lengths=lengths, widths=widths,
        far_arm_offset=rng.uniform(8.0, 18.0) * (1 if rng.random() < 0.5 else -1),
        height_px=height_px, center_x=center_x, ground_y=ground_y, hip_y=hip_y, facing=facing,
        skin=skin, shirt=shirt, pants=pants, shoes=shoes,
        background=np.clip(background, 0, 255).astype(np.uint8), wall_bottom=wall_bottom,
        phases=phases, tint=tint, noise_sigma=noise_sigma, noise_seed=int(noise_ss.generate_state(1)[0]),
    )


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------

_SHIFT = 4  # sub-pixel precision of the cv2 drawing calls (1/16 px)


def _to_pixels(pts: dict[str, np.ndarray], params: ClipParams) -> dict[str, np.ndarray]:
    """Points relative to the hip (body heights, y up) -> fixed-point pixels, int32 (F, 2)."""
    out = {}
    for name, xy in pts.items():
        px = params.center_x + params.facing * xy[:, 0] * params.height_px
        py = params.hip_y - xy[:, 1] * params.height_px
        out[name] = np.rint(np.stack([px, py], axis=-1) * (1 << _SHIFT)).astype(np.int32)
    return out


def render_frames(class_index: int, params: ClipParams, clean: bool = False) -> np.ndarray:
    """Draw the clip of ``class_index`` with ``params``: (F, S, S, 3) uint8 BGR.

    ``clean=True`` leaves out the pixel noise (the only part that is not a function of the
    design), so two clips that share parameters differ exactly by their factors.
    """
    if not 0 <= class_index < len(CLASS_LEVELS):
        raise MienetError(f"class index {class_index} out of range 0..{len(CLASS_LEVELS) - 1}")
    n, size = params.frames, params.size
    moving = _body_points(params.angles, params.lengths, params.far_arm_offset)
    px = _to_pixels(moving, params)
    far = _to_pixels(_body_points(params.far_angles, params.lengths, params.far_arm_offset), params)
    for name in ("knee", "ankle", "heel", "toe"):
        px["far_" + name] = far[name]
    px["far_hip"] = px["hip"]

    h = params.height_px
    w = {k: max(1, int(round(v * h))) for k, v in params.widths.items()}
    head_r = max(2, int(round(params.lengths["head_r"] * h * (1 << _SHIFT))))
    hand_r = max(1, int(round(params.lengths["hand_r"] * h * (1 << _SHIFT))))

    def shade(colour, k=0.7):
        return tuple(c * k for c in colour)

    skin, shirt, pants, shoes = params.skin, params.shirt, params.pants, params.shoes
    aa = cv2.LINE_AA
    video = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        img = video[i]
        img[:] = params.background

        def P(name):
            x, y = px[name][i]
            return int(x), int(y)

        def limb(a, b, colour, width):
            cv2.line(img, P(a), P(b), colour, width, aa, _SHIFT)

        def foot(prefix, colour):
            poly = np.array([P(prefix + "ankle"), P(prefix + "heel"), P(prefix + "toe")], np.int32)
            cv2.fillConvexPoly(img, poly, colour, aa, _SHIFT)
            limb(prefix + "heel", prefix + "toe", colour, max(1, w["farm"] - 1))

        # far side first, darker: the arm and the standing leg
        limb("shoulder", "far_elbow", shade(shirt), w["uarm"])
        limb("far_elbow", "far_wrist", shade(skin), w["farm"])
        cv2.circle(img, P("far_wrist"), hand_r, shade(skin), -1, aa, _SHIFT)
        limb("far_hip", "far_knee", shade(pants), w["thigh"])
        limb("far_knee", "far_ankle", shade(pants), w["shin"])
        foot("far_", shade(shoes))
        # body
        limb("hip", "shoulder", shirt, w["trunk"])
        limb("shoulder", "neck", skin, w["neck"])
        cv2.circle(img, P("head"), head_r, skin, -1, aa, _SHIFT)
        # near side: the free leg, then the arm
        limb("hip", "knee", pants, w["thigh"])
        limb("knee", "ankle", pants, w["shin"])
        foot("", shoes)
        limb("shoulder", "elbow", shirt, w["uarm"])
        limb("elbow", "wrist", skin, w["farm"])
        cv2.circle(img, P("wrist"), hand_r, skin, -1, aa, _SHIFT)

    # The light: squeeze the scene clear of 0 and 255, then add the tint (and the noise).
    low = LIGHT + NOISE_ROOM
    out = video.astype(np.float32) * ((255.0 - 2 * low) / 255.0) + low
    out += params.tint.astype(np.float32)[:, None, None, :]
    if not clean:
        rng = np.random.default_rng(params.noise_seed)
        out += rng.standard_normal(video.shape, dtype=np.float32) * params.noise_sigma
    np.clip(out, 0, 255, out=out)
    return np.rint(out).astype(np.uint8)


def render_clip(class_index: int, clip_index: int, seed: int = DEFAULT_SEED,
                frames: int = DEFAULT_FRAMES, size: int = DEFAULT_SIZE, clean: bool = False) -> np.ndarray:
    """The frames of clip ``clip_index`` of class ``class_index``: (F, S, S, 3) uint8 BGR."""
    return render_frames(class_index, draw_clip_params(class_index, clip_index, seed, frames, size), clean)


# ---------------------------------------------------------------------------
# Writing videos
# ---------------------------------------------------------------------------

def clip_name(clip_index: int) -> str:
    return f"clip_{clip_index:04d}.mp4"


def temp_name(final: Path) -> Path:
    # OpenCV picks the container from the extension, so ".mp4" stays last.
    return final.with_name(f".{final.stem}.tmp.mp4")


def read_video(path: str | os.PathLike) -> np.ndarray:
    """Decode every frame of a video: (F, H, W, 3) uint8 BGR."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
    finally:
        cap.release()
    if not frames:
        return np.empty((0, 0, 0, 3), np.uint8)
    return np.stack(frames)


def write_video(path: Path, video: np.ndarray, fps: float) -> None:
    """Write ``video`` to ``path`` atomically and check that it decodes to the same shape."""
    tmp = temp_name(path)
    n, h, w = video.shape[:3]
    try:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*FOURCC), float(fps), (w, h))
        if not writer.isOpened():
            raise MienetError(f"OpenCV cannot open a '{FOURCC}' video writer for {tmp}; "
                              "check that opencv-python(-headless) was built with FFmpeg")
        try:
            for frame in video:
                writer.write(frame)
        finally:
            writer.release()
        decoded = read_video(tmp)
        if decoded.shape != video.shape:
            raise MienetError(f"{tmp} decodes to {decoded.shape[0]} frames of {decoded.shape[1:3]}, "
                              f"expected {n} frames of {(h, w)}")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _make_clip(task: tuple[str, int, int, int, int, int, float]) -> str:
    out_dir, class_index, clip_index, seed, frames, size, fps = task
    video = render_clip(class_index, clip_index, seed, frames, size)
    path = Path(out_dir) / CLASS_NAMES[class_index] / clip_name(clip_index)
    write_video(path, video, fps)
    return str(path)


def _worker_init() -> None:
    cv2.setNumThreads(1)  # one process per core already


def default_jobs() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def validate(classes: int, clips_per_class: int, frames: int, size: int, fps: float, seed: int,
             jobs: int | None) -> None:
    """Raise MienetError naming the option when a value is out of range."""
    n = len(CLASS_LEVELS)
    if not 2 <= classes <= n:
        raise MienetError(f"--classes must be between 2 and {n}, got {classes}")
    if clips_per_class < 1:
        raise MienetError(f"--clips-per-class must be at least 1, got {clips_per_class}")
    if frames < MIN_FRAMES:
        raise MienetError(f"--frames must be at least {MIN_FRAMES} (T=3 segments x L=4 frames need room), "
                          f"got {frames}")
    if size < MIN_SIZE or size % 2:
        raise MienetError(f"--size must be an even number of pixels, at least {MIN_SIZE} "
                          f"(the mp4v codec needs even dimensions), got {size}")
    if not (fps > 0 and math.isfinite(fps)):
        raise MienetError(f"--fps must be a positive number, got {fps}")
    if seed < 0:
        raise MienetError(f"--seed must be non-negative, got {seed}")
    if jobs is not None and jobs < 1:
        raise MienetError(f"-j/--jobs must be at least 1, got {jobs}")


@contextlib.contextmanager
def _locked(out_dir: Path):
    """Hold an exclusive lock on ``out_dir``: two runs writing the same clips would each
    find the other's half-written temporary file."""
    with open(out_dir / LOCK_NAME, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise MienetError(f"{out_dir} is being written by another mienet synth run; "
                              "wait for it to finish") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _remove_clips(folder: Path, keep: int) -> int:
    """Remove this generator's clips numbered ``keep`` and up (and temporary files) from
    ``folder``; the folder too once empty. Other files are left alone. Returns the count."""
    removed = 0
    if not folder.is_dir():
        return 0
    for path in folder.iterdir():
        m = _CLIP_FILE.match(path.name)
        if (m and int(m.group(1)) >= keep) or (path.name.startswith(".") and path.name.endswith(".tmp.mp4")):
            path.unlink()
            removed += 1 if m else 0
    if not any(folder.iterdir()):
        folder.rmdir()
    return removed


def _check_meta(out_dir: Path, meta: dict, restart_if_changed: bool = False) -> int:
    """Refuse to resume into a folder written with options that change the pixels, or, with
    ``restart_if_changed``, remove its clips and start over. Returns the clips removed."""
    path = out_dir / META_NAME
    removed = 0
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise MienetError(f"{path} is unreadable ({exc}); delete it or choose another OUT_DIR") from exc
        diff = {k: (old.get(k), v) for k, v in meta.items() if old.get(k) != v}
        if not diff:
            return 0
        what = ", ".join(f"{k}: {a} there, {b} now" for k, (a, b) in diff.items())
        if not restart_if_changed:
            raise MienetError(f"{out_dir} holds clips made with other settings ({what}); "
                              "use the same options to resume, pass --restart-if-changed to replace "
                              "them, or choose another OUT_DIR")
        (out_dir / DONE_NAME).unlink(missing_ok=True)
        for name in CLASS_NAMES:
            removed += _remove_clips(out_dir / name, keep=0)
        print(f"synth: {out_dir} held {removed} clips made with other settings ({what}); "
              "removed them, starting over", file=sys.stderr)
    write_text_atomic(path, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return removed


def synthesize(out_dir: str | os.PathLike, classes: int = DEFAULT_CLASSES,
               clips_per_class: int = DEFAULT_CLIPS_PER_CLASS, frames: int = DEFAULT_FRAMES,
               size: int = DEFAULT_SIZE, fps: float = DEFAULT_FPS, seed: int = DEFAULT_SEED,
               jobs: int | None = None, progress: bool | None = None,
               restart_if_changed: bool = False, debug_kill_after: int | None = None) -> dict:
    """Write ``out_dir/<class>/clip_NNNN.mp4`` for the first ``classes`` classes; skip clips already there.

    An interrupted run is resumed: finished clips are kept (each is renamed into place only
    once complete), the missing ones written. Clips beyond the request (of classes or clip
    numbers not asked for, left by a larger earlier run) are removed, so that the folder
    holds exactly the requested dataset. ``DONE_NAME`` is written last.

    Returns a summary: written, skipped, removed, seconds and the settings used.
    ``progress=None`` shows the bar only on a terminal.
    """
    validate(classes, clips_per_class, frames, size, fps, seed, jobs)
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with _locked(out):
        settings = {"generator_version": GENERATOR_VERSION, "frames": frames, "size": size,
                    "fps": float(fps), "seed": seed, "fourcc": FOURCC}
        replaced = _check_meta(out, settings, restart_if_changed)
        done_path = out / DONE_NAME
        done_path.unlink(missing_ok=True)  # from here on the folder is being changed

        removed = 0
        for c, name in enumerate(CLASS_NAMES):
            removed += _remove_clips(out / name, keep=clips_per_class if c < classes else 0)

        todo: list[tuple] = []
        skipped = 0
        for c in range(classes):
            class_dir = out / CLASS_NAMES[c]
            class_dir.mkdir(exist_ok=True)
            for k in range(clips_per_class):
                if (class_dir / clip_name(k)).exists():
                    skipped += 1
                else:
                    todo.append((str(out), c, k, seed, frames, size, float(fps)))

        jobs = min(jobs or default_jobs(), max(1, len(todo)))
        if skipped and todo:
            print(f"synth: resuming: {skipped} clips already in {out} are kept, {len(todo)} to write",
                  file=sys.stderr)
        with tqdm(total=len(todo), desc="synth", unit="clip", dynamic_ncols=True,
                  disable=None if progress is None else not progress) as bar:
            if jobs == 1:
                for n, task in enumerate(todo, 1):
                    _make_clip(task)
                    bar.update()
                    if n == debug_kill_after:  # tests: what the OOM killer or a time limit leaves
                        os.kill(os.getpid(), signal.SIGKILL)
            else:
                # spawn: workers must not inherit OpenCV's thread pool through fork
                ctx = multiprocessing.get_context("spawn")
                with ctx.Pool(jobs, initializer=_worker_init) as pool:
                    for _ in pool.imap_unordered(_make_clip, todo, chunksize=2):
                        bar.update()
        seconds = time.perf_counter() - started
        summary = {
            "out_dir": str(out), "classes": CLASS_NAMES[:classes], "clips_per_class": clips_per_class,
            "frames": frames, "size": size, "fps": float(fps), "seed": seed, "jobs": jobs,
            "written": len(todo), "skipped": skipped, "removed": removed + replaced,
            "seconds": round(seconds, 3),
        }
        done = {**settings, "classes": classes, "clips_per_class": clips_per_class,
                "clips": classes * clips_per_class}
        write_text_atomic(out / FACTORS_NAME, json.dumps(design(classes), indent=2) + "\n")
        write_text_atomic(done_path, json.dumps(done, indent=2, sort_keys=True) + "\n")
    return summary


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

def add_arguments(parser) -> None:
    parser.add_argument("out_dir", metavar="OUT_DIR", help="folder to write OUT_DIR/<class>/<clip>.mp4 into")
    parser.add_argument("--classes", type=int, default=DEFAULT_CLASSES,
                        help=f"number of classes, the first K of the {len(CLASS_LEVELS)} factor combinations (default: %(default)s)")
    parser.add_argument("--clips-per-class", type=int, default=DEFAULT_CLIPS_PER_CLASS,
                        help="clips per class (default: %(default)s)")
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES,
                        help=f"frames per clip, at least {MIN_FRAMES} (default: %(default)s)")
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE,
                        help=f"frame width and height in pixels, even, at least {MIN_SIZE} (default: %(default)s)")
    parser.add_argument("--fps", type=float, default=DEFAULT_FPS, help="frame rate (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (default: %(default)s)")
    parser.add_argument("-j", "--jobs", type=int, default=None,
                        help="worker processes (default: the number of CPUs)")
    parser.add_argument("--restart-if-changed", action="store_true",
                        help="if OUT_DIR holds clips made with other frames/size/fps/seed, remove them and "
                             "start over (default: refuse)")
    parser.add_argument("--debug-kill-after", type=int, default=None, help=argparse.SUPPRESS)


def run(args) -> int:
    summary = synthesize(args.out_dir, classes=args.classes, clips_per_class=args.clips_per_class,
                         frames=args.frames, size=args.size, fps=args.fps, seed=args.seed, jobs=args.jobs,
                         restart_if_changed=args.restart_if_changed, debug_kill_after=args.debug_kill_after)
    removed = f", {summary['removed']} removed" if summary["removed"] else ""
    print(f"synth: {summary['written']} clips written, {summary['skipped']} skipped{removed} "
          f"({len(summary['classes'])} classes x {summary['clips_per_class']} clips, "
          f"{summary['frames']} frames {summary['size']}x{summary['size']} at {summary['fps']:g} fps, "
          f"seed {summary['seed']}) in {summary['seconds']:.1f} s with {summary['jobs']} "
          f"worker{'s' if summary['jobs'] != 1 else ''} -> "
          f"{summary['out_dir']}")
    return 0
