"""The renderer of ``mienet synth``: a clip's random parameters drawn from (seed, class, clip),
then its frames drawn with OpenCV. Only the wall (appearance), the leg's phases (motion) and the
light's tint (order) depend on the class (:mod:`mienet.data.synth_design`); everything else has
one distribution for every class.
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

from mienet.config import SYNTH_DEFAULTS
from mienet.data.synth_design import CLASS_LEVELS, class_level
from mienet.errors import MienetError


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
                     frames: int = SYNTH_DEFAULTS.frames, size: int = SYNTH_DEFAULTS.size) -> ClipParams:
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


def render_clip(class_index: int, clip_index: int, seed: int = SYNTH_DEFAULTS.seed,
                frames: int = SYNTH_DEFAULTS.frames, size: int = SYNTH_DEFAULTS.size,
                clean: bool = False) -> np.ndarray:
    """The frames of clip ``clip_index`` of class ``class_index``: (F, S, S, 3) uint8 BGR."""
    return render_frames(class_index, draw_clip_params(class_index, clip_index, seed, frames, size), clean)
