"""``mienet synth``: real videos written and decoded with OpenCV, no mocks."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from mienet.cli import main
from mienet.data import synth
from mienet.data.synth import (
    CLASS_NAMES,
    FAST_SLOW_PAIRS,
    REVERSED_PAIRS,
    draw_clip_params,
    joint_angles,
    motion_progress,
    pose_trajectory,
    read_video,
    render_clip,
    render_frames,
    synthesize,
)
from mienet.errors import MienetError

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
    assert len(CLASS_NAMES) == 10
    assert CLASS_NAMES == sorted(CLASS_NAMES)
    assert all(re.fullmatch(r"\d\d_[a-z_]+", name) for name in CLASS_NAMES)
    assert [name[:2] for name in CLASS_NAMES] == [f"{i:02d}" for i in range(10)]


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


@pytest.mark.parametrize("clip", range(4))
def test_reversed_pair_is_the_same_frames_in_reverse_order(clip):
    for forward, backward in REVERSED_PAIRS:
        params = draw_clip_params(forward, clip, seed=0, frames=24, size=64)
        a = render_frames(forward, params, clean=True)
        b = render_frames(backward, params, clean=True)
        assert not np.array_equal(a[0], a[-1])  # it does move
        assert np.array_equal(b, a[::-1])
        pa, pb = pose_trajectory(forward, params), pose_trajectory(backward, params)
        for joint in pa:
            np.testing.assert_allclose(pb[joint], pa[joint][::-1])


@pytest.mark.parametrize("clip", range(4))
def test_fast_slow_pair_same_motion_different_speed(clip):
    for fast, slow in FAST_SLOW_PAIRS:
        params = draw_clip_params(slow, clip, seed=0, frames=40, size=64)
        pf, ps = motion_progress(fast, params), motion_progress(slow, params)
        # same start and end pose
        af, as_ = joint_angles(fast, params), joint_angles(slow, params)
        np.testing.assert_allclose(af[[0, -1]], as_[[0, -1]])
        assert pf[0] == ps[0] == 0 and pf[-1] == ps[-1] == 1
        ff, fs = render_frames(fast, params, clean=True), render_frames(slow, params, clean=True)
        assert np.array_equal(ff[0], fs[0]) and np.array_equal(ff[-1], fs[-1])
        # the fast one moves within half the clip and holds, the slow one moves over most of it
        moving_fast = np.mean((pf > 0) & (pf < 1))
        moving_slow = np.mean((ps > 0) & (ps < 1))
        assert moving_fast <= 0.55 and moving_slow >= 0.75
        speed_f = np.abs(np.diff(pf)).max()
        speed_s = np.abs(np.diff(ps)).max()
        assert 1.5 < speed_f / speed_s < 2.6


def test_appearance_does_not_tell_the_class():
    """Per-clip mean colour: the spread between class means is what chance gives.

    One-way ANOVA over 10 classes x 6 clips: F is near 1 when the class does not
    shift the colours. The figure is a small part of the frame, so pose barely
    moves the mean; background, clothes and lighting are drawn the same way for
    every class.
    """
    n_clips = 6
    means = np.array([[render_clip(c, k, seed=0, frames=16, size=32).reshape(-1, 3).mean(0)
                       for k in range(n_clips)] for c in range(10)])  # (classes, clips, 3)
    grand = means.mean((0, 1))
    between = n_clips * ((means.mean(1) - grand) ** 2).sum(0) / (10 - 1)
    within = ((means - means.mean(1, keepdims=True)) ** 2).sum((0, 1)) / (10 * (n_clips - 1))
    f_stat = between / within
    assert (f_stat < 2.5).all(), f_stat  # F(9, 50) above 2.5 has p < 0.02


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
        synth.render_frames(len(CLASS_NAMES), params)
