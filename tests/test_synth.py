"""``mienet synth``: real videos written and decoded with OpenCV, no mocks."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from mienet.cli import main
from mienet.data import synth_render
from mienet.data.synth import read_video, synthesize
from mienet.data.synth_design import CLASS_LEVELS, CLASS_NAMES, FACTORS, ceilings, class_level, read_design
from mienet.data.synth_render import (
    LIGHT,
    TURN,
    draw_clip_params,
    leg_phases,
    light_tint,
    render_clip,
    render_frames,
)
from mienet.errors import MienetError
from mienet.registry.variants import VARIANTS

SMALL = dict(classes=3, clips_per_class=2, frames=16, size=64, progress=False)


def decoded(out_dir: Path) -> dict[str, np.ndarray]:
    return {str(p.relative_to(out_dir)): read_video(p) for p in sorted(out_dir.rglob("*.mp4"))}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """The same small dataset written twice, once in-process and once with two workers."""
    root = tmp_path_factory.mktemp("synth")
    one = synthesize(root / "j1", jobs=1, **SMALL)
    two = synthesize(root / "j2", jobs=2, **SMALL)
    return root, one, two


def test_class_names_are_sortable_readable_folder_names():
    assert len(CLASS_NAMES) == 8
    assert CLASS_NAMES == sorted(CLASS_NAMES)
    assert all(re.fullmatch(r"\d\d_[a-z_]+", name) for name in CLASS_NAMES)
    assert [name[:2] for name in CLASS_NAMES] == [f"{i:02d}" for i in range(8)]
    # every combination of the factors' levels once, the first factor varying slowest
    assert CLASS_NAMES[0] == "00_red_smooth_clockwise" and CLASS_NAMES[-1] == "07_blue_jerky_anticlockwise"
    assert sorted(CLASS_LEVELS) == list(itertools.product(range(2), repeat=3))
    assert [class_level(k, "order") for k in range(4)] == ["clockwise", "anticlockwise"] * 2


def test_layout_and_decodable_videos(two_runs):
    root, summary, _ = two_runs
    out = root / "j1"
    assert summary["written"] == 6 and summary["skipped"] == 0
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == CLASS_NAMES[:3]
    for name in CLASS_NAMES[:3]:
        assert sorted(p.name for p in (out / name).iterdir()) == ["clip_0000.mp4", "clip_0001.mp4"]
    for rel, video in decoded(out).items():
        assert video.shape == (16, 64, 64, 3), rel
        cap = cv2.VideoCapture(str(out / rel))
        assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(25.0)
        cap.release()
    # the file holds the rendered clip, frame for frame (mp4v is lossy, so approximately)
    video = read_video(out / CLASS_NAMES[1] / "clip_0001.mp4").astype(float)
    rendered = render_clip(1, 1, seed=0, frames=16, size=64).astype(float)
    assert np.abs(video - rendered).mean() < 6
    assert np.abs(video - rendered[::-1]).mean() > np.abs(video - rendered).mean() + 1


def test_same_seed_same_decoded_frames_whatever_the_jobs(two_runs):
    root, _, two = two_runs
    assert two["jobs"] == 2
    a, b = decoded(root / "j1"), decoded(root / "j2")
    assert a.keys() == b.keys() and len(a) == 6
    for rel in a:
        assert a[rel].tobytes() == b[rel].tobytes(), rel


def test_render_is_deterministic_and_seed_dependent():
    first = render_clip(3, 5, seed=7, frames=16, size=48)
    assert first.shape == (16, 48, 48, 3) and first.dtype == np.uint8
    assert np.array_equal(first, render_clip(3, 5, seed=7, frames=16, size=48))
    assert not np.array_equal(first, render_clip(3, 5, seed=8, frames=16, size=48))
    assert not np.array_equal(first, render_clip(3, 6, seed=7, frames=16, size=48))


def test_ceilings_follow_from_the_factors_each_variant_sees():
    """Known answers: appearance is seen in a frame (RGB), motion in consecutive frames (PA),
    order across segments (DPTAM); a factor not seen is a coin toss over its two levels."""
    full = ceilings()
    expect = {"tsn": (25, "appearance"), "pa": (25, "motion"), "dptam": (50, "appearance order"),
              "naive_fusion": (50, "appearance motion"), "afm": (50, "appearance motion"),
              "fusion_dptam": (100, "appearance motion order"), "mienet": (100, "appearance motion order")}
    assert set(full) == set(VARIANTS)
    for variant, (top1, seen) in expect.items():
        assert full[variant]["top1"] == top1, variant
        assert full[variant]["factors"] == {f.name: 100.0 if f.name in seen.split() else 50.0
                                            for f in FACTORS}, variant
    # the first two classes differ in order alone: only DPTAM variants tell them apart
    two = ceilings(2)
    assert two["tsn"]["top1"] == 50 and two["dptam"]["top1"] == 100 and two["afm"]["top1"] == 50
    assert two["tsn"]["factors"] == {"appearance": 100.0, "motion": 100.0, "order": 50.0}


def test_design_file_round_trips_and_names_the_classes(tmp_path):
    summary = synthesize(tmp_path / "v", classes=3, clips_per_class=1, frames=16, size=32, progress=False)
    data = read_design(tmp_path / "v" / "factors.json")
    assert [c["name"] for c in data["classes"]] == summary["classes"] == CLASS_NAMES[:3]
    assert data["classes"][1]["levels"] == {"appearance": "red", "motion": "smooth", "order": "anticlockwise"}
    assert data["ceilings"] == ceilings(3)
    (tmp_path / "bad.json").write_text('{"factors": [{"name": "a"}], "classes": [{"name": "x", "levels": {}}]}')
    with pytest.raises(MienetError, match="bad.json: not a factor design"):
        read_design(tmp_path / "bad.json")


@pytest.mark.parametrize("start", [0.0, 1.0, 4.0])
def test_order_levels_turn_the_light_the_same_chords_either_way(start):
    frames = 40
    cw, acw = light_tint("clockwise", frames, start), light_tint("anticlockwise", frames, start)
    assert cw.shape == (frames, 3)
    # a uniform tint: no grey component, constant chroma
    np.testing.assert_allclose(cw.sum(1), 0, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(cw, axis=1), LIGHT)
    # consecutive frames differ by the same chord either way (PA cannot tell the way)
    np.testing.assert_allclose(np.linalg.norm(np.diff(cw, axis=0), axis=1),
                               np.linalg.norm(np.diff(acw, axis=0), axis=1))
    # one way is the other played backwards from another start
    back = light_tint("anticlockwise", frames, start - TURN * (frames - 1) / frames)
    np.testing.assert_allclose(cw[::-1], back, atol=1e-9)


def test_order_leaves_every_frame_s_tint_uniform_wherever_it_lies():
    """The hue of frame i over many clips is uniform for both levels: a model that samples some
    frames more often than others (the first of a window) learns nothing from one frame."""
    for order in ("clockwise", "anticlockwise"):
        rng = np.random.default_rng(0)
        tints = np.array([light_tint(order, 40, rng.uniform(0, 2 * np.pi))[[3, 30]] for _ in range(2000)])
        plane = tints @ synth_render._TINT_BASIS.T  # (clips, 2 frames, 2): coordinates on the colour wheel
        hue = np.arctan2(plane[..., 1], plane[..., 0])
        counts, _ = np.histogram(hue.ravel(), bins=8, range=(-np.pi, np.pi))
        assert counts.min() > 0.8 * counts.mean(), counts


def test_motion_levels_share_the_pose_distribution_but_not_its_change():
    rng = np.random.default_rng(0)
    smooth = np.array([np.sin(leg_phases("smooth", 40, rng)) for _ in range(4000)])
    jerky = np.array([np.sin(leg_phases("jerky", 40, rng)) for _ in range(4000)])
    # any single frame: the same distribution of the leg's pose (counts within 4 sigma of their
    # difference's sampling noise; a 20 % shift of the middle bins would be 7 sigma)
    for frame in (0, 20, 39):
        h_s, _ = np.histogram(smooth[:, frame], bins=5, range=(-1, 1))
        h_j, _ = np.histogram(jerky[:, frame], bins=5, range=(-1, 1))
        assert (np.abs(h_s - h_j) < 4 * np.sqrt(h_s + h_j)).all(), (frame, h_s, h_j)
    # consecutive frames: the jerky leg moves far more
    assert np.abs(np.diff(jerky, axis=1)).mean() > 2 * np.abs(np.diff(smooth, axis=1)).mean()


def test_appearance_is_a_static_wall_that_nothing_moving_touches():
    for k in range(4):
        params = draw_clip_params(6, k, seed=0, frames=24, size=64)
        video = render_frames(6, params, clean=True).astype(float)
        untinted = video - params.tint[:, None, None, :]
        wall = untinted[:, :params.wall_bottom]
        assert params.wall_bottom > 16
        assert np.abs(wall - wall[0]).max() <= 1.0  # rounding only: static under the light
        below = untinted[:, params.wall_bottom:]
        assert np.abs(below - below[0]).max() > 20  # the leg moves down there


def test_nuisance_does_not_tell_the_class():
    """Mean colour below the wall (floor, figure): one-way ANOVA over the 8 classes x 6 clips.
    F is near 1 when the class does not shift it; only the wall carries appearance."""
    n_clips = 6
    means = []
    for c in range(8):
        row = []
        for k in range(n_clips):
            params = draw_clip_params(c, k, seed=0, frames=16, size=32)
            video = render_frames(c, params, clean=True).astype(float) - params.tint[:, None, None, :]
            row.append(video[:, params.wall_bottom:].reshape(-1, 3).mean(0))
        means.append(row)
    means = np.array(means)  # (classes, clips, 3)
    grand = means.mean((0, 1))
    between = n_clips * ((means.mean(1) - grand) ** 2).sum(0) / (8 - 1)
    within = ((means - means.mean(1, keepdims=True)) ** 2).sum((0, 1)) / (8 * (n_clips - 1))
    f_stat = between / within
    assert (f_stat < 2.7).all(), f_stat  # F(7, 40) above 2.7 has p < 0.02


def test_resume_skips_finished_clips_and_ignores_temp_files(tmp_path):
    out = tmp_path / "videos"
    small = dict(classes=2, clips_per_class=2, frames=16, size=32, jobs=1, progress=False)
    assert synthesize(out, **small)["written"] == 4
    clips = sorted(out.rglob("*.mp4"))
    stamps = {p: p.stat().st_mtime_ns for p in clips}

    again = synthesize(out, **small)
    assert (again["written"], again["skipped"]) == (0, 4)
    assert {p: p.stat().st_mtime_ns for p in sorted(out.rglob("*.mp4"))} == stamps

    # an interrupted run: the final file is missing, a partial temporary one is left
    victim = out / CLASS_NAMES[1] / "clip_0001.mp4"
    victim.unlink()
    leftover = victim.with_name(".clip_0001.tmp.mp4")
    leftover.write_bytes(b"half a video")
    third = synthesize(out, **small)
    assert (third["written"], third["skipped"]) == (1, 3)
    assert not leftover.exists()
    assert read_video(victim).shape == (16, 32, 32, 3)
    assert np.array_equal(read_video(victim), read_video(victim))


def test_resume_with_other_pixel_settings_is_refused(tmp_path):
    synthesize(tmp_path, classes=2, clips_per_class=1, frames=16, size=32, jobs=1, progress=False)
    with pytest.raises(MienetError, match="frames: 16 there, 20 now"):
        synthesize(tmp_path, classes=2, clips_per_class=1, frames=20, size=32, jobs=1, progress=False)
    # more clips with the same settings is a resume, not a conflict
    more = synthesize(tmp_path, classes=3, clips_per_class=2, frames=16, size=32, jobs=1, progress=False)
    assert (more["written"], more["skipped"]) == (4, 2)


def test_cli_writes_and_reports(tmp_path, capsys):
    rc = main(["synth", str(tmp_path / "v"), "--classes", "2", "--clips-per-class", "1",
               "--frames", "16", "--size", "32", "-j", "1"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "2 clips written, 0 skipped" in out
    assert len(list((tmp_path / "v").rglob("*.mp4"))) == 2


@pytest.mark.parametrize("argv, option", [
    (["--classes", "1"], "--classes"),
    (["--classes", "11"], "--classes"),
    (["--clips-per-class", "0"], "--clips-per-class"),
    (["--frames", "8"], "--frames"),
    (["--size", "16"], "--size"),
    (["--size", "65"], "--size"),
    (["--fps", "0"], "--fps"),
    (["--seed", "-1"], "--seed"),
    (["-j", "0"], "--jobs"),
])
def test_cli_bad_arguments_name_the_option(tmp_path, capsys, argv, option):
    out_dir = tmp_path / "v"
    rc = main(["synth", str(out_dir), *argv])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("mienet synth: error: ") and option in err
    assert "Traceback" not in err
    assert not out_dir.exists()


def test_render_rejects_unknown_class():
    params = draw_clip_params(0, 0, seed=0, frames=16, size=32)
    with pytest.raises(MienetError, match="class index"):
        synth_render.render_frames(len(CLASS_NAMES), params)
