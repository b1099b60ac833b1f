"""``mienet synth``: the embedded default dataset of synthetic standing-long-jump videos.

Each clip shows a procedurally drawn stick figure (side view) performing one
transition between phases of a standing long jump, mirroring the 10 classes of
SLJD (preparation, arm swing, takeoff, flight, landing, buffering). Appearance
(figure proportions and colours, background, position, scale, facing direction,
camera shake, pixel noise) is drawn from the same per-clip distribution for
every class, so the class lives in the motion. Two pairs need motion modelling
to be told apart at all:

- ``00_prep_to_armswing_back`` / ``01_armswing_back_to_prep``: the second is the
  first played backwards, so the two classes have exactly the same set of
  frames, only in the opposite order;
- ``07_landing_to_buffer_fast`` / ``08_landing_to_buffer_slow``: the same
  squat, done within about 45 % of the clip (then held) or over 80-100 % of it.

A clip is a trajectory over normalised time ``t`` in [0, 1]: joint angles
interpolated between two key poses after a per-clip time warp, plus the hip
position that keeps the supporting foot planted (or follows a parabola in
flight). Everything random comes from ``numpy.random.Generator`` seeded by
(seed, class index, clip index), so a clip does not depend on ``-j`` or on the
other clips, and the same seed gives the same decoded frames.

Default length: 40 frames (1.6 s at 25 fps). Training samples T = 3 segments of
L = 4 consecutive frames, so each segment spans about 13 frames and the
4-frame window still has about 10 start offsets to jitter over; the fast class's
motion lasts 16-20 frames, longer than one segment, so every sampled window
sees either motion or a hold, never a jump cut.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import math
import multiprocessing
import os
import re
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
GENERATOR_VERSION = 1
META_NAME = ".mienet-synth.json"
# Written last, removed first: it exists only while OUT_DIR holds exactly the requested clips.
# A workflow should take this file as the step's output, not the folder: Snakemake and DVC
# delete an output before re-running its step, and deleting the folder would throw away
# the finished clips of an interrupted run, which `mienet synth` otherwise keeps and skips.
from mienet.layout import SYNTH_DONE as DONE_NAME  # noqa: E402  (the workflow waits for it)
LOCK_NAME = ".mienet-synth.lock"
_CLIP_FILE = re.compile(r"^clip_(\d{4,})\.mp4$")

# ---------------------------------------------------------------------------
# Key poses. Angles are absolute segment directions in degrees, in a side view
# of a figure facing +x: 0 points straight down, +90 forward, 180 up, -90 back.
# Segments: trunk (hip -> shoulder), head (shoulder -> head), upper arm,
# forearm, thigh (hip -> knee), shin (knee -> ankle), foot (sole, heel -> toe).
# ---------------------------------------------------------------------------
SEGMENTS = ("trunk", "head", "uarm", "farm", "thigh", "shin", "foot")
KEY_POSES: dict[str, tuple[float, ...]] = {
    #                trunk  head   uarm   farm  thigh  shin  foot
    "stand":        (178.0, 180.0,   5.0,  15.0,   2.0, -2.0, 90.0),
    "arms_back":    (152.0, 165.0, -110.0, -95.0, 35.0, -22.0, 90.0),
    "crouch":       (128.0, 148.0, -122.0, -110.0, 78.0, -38.0, 90.0),
    "heel_off":     (138.0, 150.0, 115.0, 128.0,  22.0, -42.0, 55.0),
    "takeoff":      (135.0, 140.0, 150.0, 158.0, -38.0, -44.0, -5.0),
    "flight":       (155.0, 165.0,  55.0,  80.0,  98.0,  12.0, 100.0),
    "landing":      (138.0, 155.0,  82.0,  92.0,  62.0,  40.0, 112.0),
    "buffer":       (122.0, 145.0,  78.0,  88.0,  88.0, -28.0, 90.0),
}
_SEG = {name: i for i, name in enumerate(SEGMENTS)}

# Segment lengths in body heights (standing height is about 1.0).
_LENGTHS = dict(
    trunk=0.30, neck=0.045, head_r=0.065, uarm=0.165, farm=0.15, hand_r=0.024,
    thigh=0.245, shin=0.235, ankle_h=0.04, heel=0.035, toe=0.10,
)
# Line thicknesses in body heights.
_WIDTHS = dict(trunk=0.105, uarm=0.058, farm=0.048, thigh=0.078, shin=0.062, neck=0.04)

JUMP_DISTANCE = 1.15  # takeoff toe to landing heel, body heights (real jumps: about 1.3)
FLIGHT_APEX = 0.22  # extra hip height at mid-flight, body heights


@dataclasses.dataclass(frozen=True)
class ClassSpec:
    name: str
    start: str  # key pose at progress 0
    end: str  # key pose at progress 1
    timing: str  # "window": hold-move-hold; "fast": same, short window; "ballistic": in the air
    anchor: str  # point kept on the ground: "toe", "heel", or "air"
    description: str
    reverse_of: int | None = None  # this class is that class played backwards


CLASS_SPECS: tuple[ClassSpec, ...] = (
    ClassSpec("00_prep_to_armswing_back", "stand", "arms_back", "window", "toe",
              "from the upright stance the arms swing back to their highest point, knees and hips flex a little"),
    ClassSpec("01_armswing_back_to_prep", "stand", "arms_back", "window", "toe",
              "class 00 played backwards: the arms swing forward-down from backward-highest to the upright stance",
              reverse_of=0),
    ClassSpec("02_armswing_back_to_crouch", "arms_back", "crouch", "window", "toe",
              "countermovement: knees and hips flex into a deep crouch, trunk leans, arms stay back"),
    ClassSpec("03_crouch_to_heel_off", "crouch", "heel_off", "window", "toe",
              "arms swing forward-up through the bottom while the legs extend and the heels leave the ground"),
    ClassSpec("04_heel_off_to_takeoff", "heel_off", "takeoff", "window", "toe",
              "full extension of hips, knees and ankles along a forward-leaning line, arms reach up; toe-off"),
    ClassSpec("05_takeoff_to_flight", "takeoff", "flight", "ballistic", "air",
              "rising flight: knees tuck toward the chest, arms swing down-forward, body travels forward and up"),
    ClassSpec("06_flight_to_landing", "flight", "landing", "ballistic", "air",
              "descending flight: legs reach forward, arms forward, until the heels touch down"),
    ClassSpec("07_landing_to_buffer_fast", "landing", "buffer", "fast", "heel",
              "hard landing: the buffering squat is done within 40-50% of the clip, then held"),
    ClassSpec("08_landing_to_buffer_slow", "landing", "buffer", "window", "heel",
              "soft landing: the same buffering squat spread over 80-100% of the clip"),
    ClassSpec("09_buffer_to_stand", "buffer", "stand", "window", "heel",
              "recovery: rise from the buffering squat to upright, arms come down"),
)
CLASS_NAMES: list[str] = [spec.name for spec in CLASS_SPECS]
CLASS_DESCRIPTIONS: dict[str, str] = {spec.name: spec.description for spec in CLASS_SPECS}
REVERSED_PAIRS: list[tuple[int, int]] = [(spec.reverse_of, i) for i, spec in enumerate(CLASS_SPECS)
                                         if spec.reverse_of is not None]
FAST_SLOW_PAIRS: list[tuple[int, int]] = [(7, 8)]

_SKIN_BGR = np.array([[170, 195, 235], [140, 170, 225], [105, 140, 195], [80, 110, 160], [60, 80, 120]], float)


@dataclasses.dataclass(frozen=True)
class ClipParams:
    """Everything random about one clip; its distribution does not depend on the class."""

    frames: int
    size: int
    # timing
    move_slow: float  # length of the motion window, fraction of the clip ("window" classes)
    move_fast: float  # same for the "fast" class
    move_start: float  # where the window starts, as a fraction of the free time 1 - length
    air_from: float  # progress range covered by a "ballistic" clip
    air_to: float
    sway: tuple[float, ...]  # (amplitude deg, cycles per clip, phase) x 3: trunk, head, arms
    # body
    lengths: dict
    widths: dict
    far_arm_offset: float  # degrees between the far and the near arm
    far_leg_dx: float  # body heights between the far and the near leg
    jump_distance: float
    flight_apex: float
    # placement
    height_px: float
    center_x: float
    ground_y: float
    facing: int  # +1 right, -1 left
    # colours (BGR) and background
    skin: tuple
    shirt: tuple
    pants: tuple
    shoes: tuple
    background: np.ndarray = dataclasses.field(repr=False)  # (S + 2m, S + 2m, 3) uint8
    margin: int = 0
    shake: np.ndarray = dataclasses.field(repr=False, default=None)  # (F, 2) int pixels
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


def _random_colour(rng: np.random.Generator, lightness: tuple[float, float], saturation: tuple[float, float]):
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(*saturation) * 255, rng.uniform(*lightness) * 255]]],
                   np.float32)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)[0, 0].astype(float)


def _draw_background(rng: np.random.Generator, size: int, floor_top: int):
    """A textured backdrop above row ``floor_top`` and a floor below it; also returns its mean colour."""
    c1 = _random_colour(rng, (0.35, 0.9), (0.0, 0.5))
    c2 = np.clip(c1 + rng.normal(0, 45, 3), 0, 255)
    kind = rng.integers(3)
    if kind == 0:  # smoothed noise
        mix = _smooth_noise(rng, size, int(rng.integers(3, 9)))
    elif kind == 1:  # soft stripes
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(0.08, 0.3) * size
        phase = rng.uniform(0, 2 * np.pi)
        mix = 0.5 + 0.5 * np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period + phase)
        mix = (0.8 * mix + 0.2 * _smooth_noise(rng, size, 5)[..., 0])[..., None]
    else:  # gradient with blotches
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
        angle = rng.uniform(0, 2 * np.pi)
        grad = (xx * np.cos(angle) + yy * np.sin(angle))
        grad = (grad - grad.min()) / max(float(np.ptp(grad)), 1e-6)
        mix = (0.6 * grad + 0.4 * _smooth_noise(rng, size, int(rng.integers(4, 12)))[..., 0])[..., None]
    img = c1 + (c2 - c1) * mix
    floor = _random_colour(rng, (0.25, 0.75), (0.0, 0.6))
    grain = _smooth_noise(rng, size, int(rng.integers(12, 30)))
    floor_img = floor * (0.85 + 0.3 * grain)
    img[floor_top:] = floor_img[floor_top:]
    return np.clip(img, 0, 255).astype(np.uint8), img.reshape(-1, 3).mean(0)


def draw_clip_params(class_index: int, clip_index: int, seed: int,
                     frames: int = DEFAULT_FRAMES, size: int = DEFAULT_SIZE) -> ClipParams:
    """Draw the random parameters of one clip from (seed, class, clip).

    The class only enters the seed: the distribution is the same for every
    class, which is what makes appearance uninformative about the class.
    """
    ss = _clip_seed_sequence(class_index, clip_index, seed)
    params_ss, noise_ss = ss.spawn(2)
    rng = np.random.default_rng(params_ss)
    scale = size / 128.0

    move_slow = rng.uniform(0.8, 1.0)
    move_fast = rng.uniform(0.4, 0.5)
    move_start = rng.uniform(0.0, 1.0)
    air_from = rng.uniform(0.0, 0.08)
    air_to = rng.uniform(0.92, 1.0)
    sway = tuple(float(v) for v in np.column_stack([
        rng.uniform(0.5, 2.0, 3), rng.uniform(0.5, 1.5, 3), rng.uniform(0, 2 * np.pi, 3)]).ravel())

    group = {"trunk": rng.uniform(0.9, 1.1), "arm": rng.uniform(0.88, 1.12),
             "leg": rng.uniform(0.9, 1.1), "head": rng.uniform(0.85, 1.15)}
    which = dict(trunk="trunk", neck="head", head_r="head", uarm="arm", farm="arm", hand_r="arm",
                 thigh="leg", shin="leg", ankle_h="leg", heel="leg", toe="leg")
    lengths = {k: v * group[which[k]] for k, v in _LENGTHS.items()}
    bulk = rng.uniform(0.85, 1.2)
    widths = {k: v * bulk for k, v in _WIDTHS.items()}

    height_px = rng.uniform(0.42, 0.56) * size
    center_x = (0.5 + rng.uniform(-0.1, 0.1)) * size
    ground_y = rng.uniform(0.8, 0.9) * size
    facing = 1 if rng.random() < 0.5 else -1

    margin = max(1, int(math.ceil(2 * scale)))
    # The far edge of the floor lies a little above where the feet touch it.
    floor_top = int(round(ground_y - rng.uniform(0.03, 0.12) * size)) + margin
    background, bg_mean = _draw_background(rng, size + 2 * margin, floor_top)

    def contrasting(lightness, saturation):
        colour = _random_colour(rng, lightness, saturation)
        for _ in range(20):  # keep the figure visible against the backdrop
            if np.abs(colour - bg_mean).sum() > 90:
                break
            colour = _random_colour(rng, lightness, saturation)
        return tuple(float(c) for c in colour)

    skin = tuple(float(c) for c in np.clip(_SKIN_BGR[rng.integers(len(_SKIN_BGR))] + rng.normal(0, 8, 3), 0, 255))
    shirt = contrasting((0.2, 1.0), (0.3, 1.0))
    pants = contrasting((0.1, 0.8), (0.0, 0.9))
    shoes = tuple(float(c) for c in _random_colour(rng, (0.05, 0.5), (0.0, 0.8)))

    # Camera shake: a smoothed random walk, whole pixels, at most `margin`.
    amplitude = rng.uniform(0.0, 1.0) * margin
    walk = np.cumsum(rng.normal(0, 1, (frames, 2)), axis=0)
    walk -= walk.mean(0)
    walk /= max(np.abs(walk).max(), 1e-6)
    shake = np.clip(np.rint(walk * amplitude), -margin, margin).astype(int)

    return ClipParams(
        frames=frames, size=size, move_slow=move_slow, move_fast=move_fast, move_start=move_start,
        air_from=air_from, air_to=air_to, sway=sway, lengths=lengths, widths=widths,
        far_arm_offset=rng.uniform(8.0, 18.0) * (1 if rng.random() < 0.5 else -1),
        far_leg_dx=rng.uniform(-0.05, 0.05),
        jump_distance=JUMP_DISTANCE * rng.uniform(0.9, 1.1), flight_apex=FLIGHT_APEX * rng.uniform(0.8, 1.2),
        height_px=height_px, center_x=center_x, ground_y=ground_y, facing=facing,
        skin=skin, shirt=shirt, pants=pants, shoes=shoes,
        background=background, margin=margin, shake=shake,
        noise_sigma=rng.uniform(1.0, 4.0), noise_seed=int(noise_ss.generate_state(1)[0]),
    )


# ---------------------------------------------------------------------------
# Trajectory: time warp -> joint angles -> forward kinematics -> joint positions
# ---------------------------------------------------------------------------

def _ease(x: np.ndarray) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(x, 0.0, 1.0))


def _base_spec(class_index: int) -> tuple[ClassSpec, bool]:
    spec = CLASS_SPECS[class_index]
    if spec.reverse_of is not None:
        return CLASS_SPECS[spec.reverse_of], True
    return spec, False


def clip_times(class_index: int, frames: int) -> np.ndarray:
    """Normalised time of each frame as the class's base motion sees it (reversed classes run 1 -> 0)."""
    t = np.linspace(0.0, 1.0, frames)
    return t[::-1].copy() if _base_spec(class_index)[1] else t


def motion_progress(class_index: int, params: ClipParams) -> np.ndarray:
    """Progress of the motion (0 = start pose, 1 = end pose) at every frame, before easing."""
    spec, _ = _base_spec(class_index)
    t = clip_times(class_index, params.frames)
    if spec.timing == "ballistic":
        return params.air_from + (params.air_to - params.air_from) * t
    length = params.move_fast if spec.timing == "fast" else params.move_slow
    start = params.move_start * (1.0 - length)
    return np.clip((t - start) / length, 0.0, 1.0)


def joint_angles(class_index: int, params: ClipParams) -> np.ndarray:
    """Segment angles in degrees, shape (F, len(SEGMENTS)), including the small idle sway."""
    spec, _ = _base_spec(class_index)
    s = _ease(motion_progress(class_index, params))[:, None]
    a = np.asarray(KEY_POSES[spec.start])
    b = np.asarray(KEY_POSES[spec.end])
    angles = a + (b - a) * s
    t = clip_times(class_index, params.frames)
    sway = np.asarray(params.sway).reshape(3, 3)
    wave = sway[:, 0] * np.sin(2 * np.pi * sway[:, 1] * t[:, None] + sway[:, 2])  # (F, 3)
    angles[:, _SEG["trunk"]] += wave[:, 0]
    angles[:, _SEG["head"]] += wave[:, 1]
    angles[:, _SEG["uarm"]] += wave[:, 2]
    angles[:, _SEG["farm"]] += 1.5 * wave[:, 2]
    return angles


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


def pose_trajectory(class_index: int, params: ClipParams) -> dict[str, np.ndarray]:
    """World joint positions of the near side, (F, 2) each, in body heights; ground at y = 0."""
    spec, _ = _base_spec(class_index)
    angles = joint_angles(class_index, params)
    pts = _body_points(angles, params.lengths, params.far_arm_offset)
    if spec.anchor in ("toe", "heel"):
        root = -pts[spec.anchor]  # the anchored point stays at the origin, on the ground
    else:
        # In the air the hip follows a parabola from the takeoff pose (toe at the
        # origin) to the landing pose (heel at jump_distance); flight covers the
        # first half of it, landing the second.
        def hip_at(pose: str, anchor: str, at_x: float) -> np.ndarray:
            key = _body_points(np.asarray(KEY_POSES[pose])[None, :], params.lengths, 0.0)
            return np.array([at_x, 0.0]) - key[anchor][0]

        hip_takeoff = hip_at("takeoff", "toe", 0.0)
        hip_landing = hip_at("landing", "heel", params.jump_distance)
        progress = motion_progress(class_index, params)
        u = 0.5 * progress if spec.start == "takeoff" else 0.5 + 0.5 * progress
        root = hip_takeoff + (hip_landing - hip_takeoff) * u[:, None]
        root[:, 1] += 4.0 * params.flight_apex * u * (1.0 - u)
    return {name: xy + root for name, xy in pts.items()}


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------

_SHIFT = 4  # sub-pixel precision of the cv2 drawing calls (1/16 px)


def _to_pixels(pts: dict[str, np.ndarray], params: ClipParams) -> dict[str, np.ndarray]:
    """World points -> fixed-point pixel coordinates (before camera shake), int32 (F, 2)."""
    # Centre the hip's horizontal range (not its mean), so the placement does not
    # depend on how long the clip dwells where: a fast clip and a slow clip of
    # the same motion start and end at the same pixels.
    hip_x = pts["hip"][:, 0]
    x_mid = 0.5 * (hip_x.min() + hip_x.max())
    out = {}
    for name, xy in pts.items():
        px = params.center_x + params.facing * (xy[:, 0] - x_mid) * params.height_px
        py = params.ground_y - xy[:, 1] * params.height_px
        out[name] = np.rint(np.stack([px, py], axis=-1) * (1 << _SHIFT)).astype(np.int32)
    return out


def render_frames(class_index: int, params: ClipParams, clean: bool = False) -> np.ndarray:
    """Draw the clip of ``class_index`` with ``params``: (F, S, S, 3) uint8 BGR.

    ``clean=True`` leaves out camera shake and pixel noise (the only parts that
    are not a function of the trajectory), so a reversed class renders exactly
    as its partner's frames in reverse order.
    """
    if not 0 <= class_index < len(CLASS_SPECS):
        raise MienetError(f"class index {class_index} out of range 0..{len(CLASS_SPECS) - 1}")
    n, size, m = params.frames, params.size, params.margin
    pts = pose_trajectory(class_index, params)
    far_dx = np.array([params.facing * params.far_leg_dx * params.height_px * (1 << _SHIFT), 0]).astype(np.int32)
    px = _to_pixels(pts, params)
    for name in ("knee", "ankle", "heel", "toe"):
        px["far_" + name] = px[name] + far_dx
    px["far_hip"] = px["hip"] + far_dx

    h = params.height_px
    w = {k: max(1, int(round(v * h))) for k, v in params.widths.items()}
    head_r = max(2, int(round(params.lengths["head_r"] * h * (1 << _SHIFT))))
    hand_r = max(1, int(round(params.lengths["hand_r"] * h * (1 << _SHIFT))))
    dark = 0.7

    def shade(colour, k=dark):
        return tuple(c * k for c in colour)

    skin, shirt, pants, shoes = params.skin, params.shirt, params.pants, params.shoes
    aa = cv2.LINE_AA
    shake = np.zeros((n, 2), int) if clean else params.shake
    video = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        dx, dy = int(shake[i, 0]), int(shake[i, 1])
        img = video[i]
        img[:] = params.background[m + dy:m + dy + size, m + dx:m + dx + size]
        off = np.array([-dx, -dy], np.int32) << _SHIFT

        def P(name):
            x, y = px[name][i] + off
            return int(x), int(y)

        def limb(a, b, colour, width):
            cv2.line(img, P(a), P(b), colour, width, aa, _SHIFT)

        def foot(prefix, colour):
            poly = np.array([P(prefix + "ankle"), P(prefix + "heel"), P(prefix + "toe")], np.int32)
            cv2.fillConvexPoly(img, poly, colour, aa, _SHIFT)
            limb(prefix + "heel", prefix + "toe", colour, max(1, w["farm"] - 1))

        # far side first, darker
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
        # near side
        limb("hip", "knee", pants, w["thigh"])
        limb("knee", "ankle", pants, w["shin"])
        foot("", shoes)
        limb("shoulder", "elbow", shirt, w["uarm"])
        limb("elbow", "wrist", skin, w["farm"])
        cv2.circle(img, P("wrist"), hand_r, skin, -1, aa, _SHIFT)

    if not clean:
        rng = np.random.default_rng(params.noise_seed)
        noise = rng.standard_normal(video.shape, dtype=np.float32)
        noise *= params.noise_sigma
        noise += video
        np.clip(noise, 0, 255, out=noise)
        video = np.rint(noise).astype(np.uint8)
    return video


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
    n = len(CLASS_SPECS)
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
               restart_if_changed: bool = False) -> dict:
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
                for task in todo:
                    _make_clip(task)
                    bar.update()
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
        write_text_atomic(done_path, json.dumps(done, indent=2, sort_keys=True) + "\n")
    return summary


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

def add_arguments(parser) -> None:
    parser.add_argument("out_dir", metavar="OUT_DIR", help="folder to write OUT_DIR/<class>/<clip>.mp4 into")
    parser.add_argument("--classes", type=int, default=DEFAULT_CLASSES,
                        help=f"number of classes, the first K of the {len(CLASS_SPECS)} (default: %(default)s)")
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


def run(args) -> int:
    summary = synthesize(args.out_dir, classes=args.classes, clips_per_class=args.clips_per_class,
                         frames=args.frames, size=args.size, fps=args.fps, seed=args.seed, jobs=args.jobs,
                         restart_if_changed=args.restart_if_changed)
    removed = f", {summary['removed']} removed" if summary["removed"] else ""
    print(f"synth: {summary['written']} clips written, {summary['skipped']} skipped{removed} "
          f"({len(summary['classes'])} classes x {summary['clips_per_class']} clips, "
          f"{summary['frames']} frames {summary['size']}x{summary['size']} at {summary['fps']:g} fps, "
          f"seed {summary['seed']}) in {summary['seconds']:.1f} s with {summary['jobs']} "
          f"worker{'s' if summary['jobs'] != 1 else ''} -> "
          f"{summary['out_dir']}")
    return 0
