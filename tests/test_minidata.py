"""The miniature SLJD, Diving48 and SSv2 (tests/minidata.py) through the real commands:
`mienet extract-frames` on their videos, `mienet make-annotations` on their own files."""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

import minidata
from mienet.data.annotations import packaged_classes, read_frame_list

BIN = Path(sys.executable).parent


def mienet(*args, expect: int = 0) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN / "mienet"), *map(str, args)], capture_output=True, text=True)
    if proc.returncode != expect:
        pytest.fail(f"mienet {' '.join(map(str, args))} exited {proc.returncode}, expected {expect}:\n"
                    f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def lines(path: Path) -> list[tuple[str, int, int]]:
    return [(c.path, c.frames, c.label) for c in read_frame_list(path)]


def extract(videos, frames: Path, *extra) -> dict[str, dict]:
    """`mienet extract-frames`; the manifest rows by id, every one of them ok."""
    mienet("extract-frames", videos, "-o", frames, "-j", "2", "--no-progress", *extra)
    with open(frames / "manifest.csv", newline="") as f:
        rows = {row["id"]: row for row in csv.DictReader(f)}
    assert all(row["status"] == "ok" and not row["error"] for row in rows.values()), rows
    return rows


def tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_sljd_lists_and_frame_folders(tmp_path):
    entry = minidata.build_sljd(tmp_path / "raw")
    sljd = tmp_path / "raw" / "SLJD"
    assert entry == {"format": "sljd", "source": str(sljd / "lists"), "root": str(sljd)}
    expected = minidata.sljd_clips()
    # The lists' paths are relative to the SLJD root, not to the lists folder.
    for split, clips in expected.items():
        assert lines(sljd / "lists" / f"{split}.txt") == clips
        for rel, frames, _ in clips:
            images = sorted(p.name for p in (sljd / rel).iterdir())
            assert images == [f"img_{i:05d}.jpg" for i in range(1, frames + 1)]
            assert cv2.imread(str(sljd / rel / "img_00001.jpg")).shape == (48, 48, 3)
    assert sorted(p.name for p in (sljd / "lists").iterdir()) == ["test.txt", "train.txt", "val.txt"]

    ann = tmp_path / "datasets" / "sljd" / "annotations"
    out = mienet("make-annotations", "--format", "sljd", "--source", entry["source"], "--root", entry["root"],
                 "-o", ann).stdout
    assert "10 classes; train 9, val 6, test 6 clips" in out
    for split, clips in expected.items():
        assert lines(ann / f"{split}.txt") == clips
        assert {label for _, _, label in clips} == {0, 4, 9}
    assert len((ann / "classes.txt").read_text().splitlines()) == minidata.SLJD_NUM_CLASSES
    summary = json.loads((ann / "summary.json").read_text())
    assert summary["clips"] == {"train": 9, "val": 6, "test": 6} and summary["skipped"] == 0
    # Taken relative to the lists folder, the same paths name nothing.
    err = mienet("make-annotations", "--format", "sljd", "--source", entry["source"], "--root", entry["source"],
                 "-o", tmp_path / "wrong", expect=2).stderr
    assert "21 problem(s)" in err and "does not exist" in err


def test_diving48_json_and_mp4_videos(tmp_path):
    entry = minidata.build_diving48(tmp_path / "raw")
    base = tmp_path / "raw" / "Diving48"
    assert entry == {"format": "diving48", "source": str(base), "videos": str(base / "rgb")}
    lists = {name: json.loads((base / name).read_text()) for name in minidata.diving48_entries()}
    assert lists == minidata.diving48_entries()
    for entries in lists.values():
        for e in entries:
            assert list(e) == ["vid_name", "label", "start_frame", "end_frame"]
            assert 0 <= e["label"] < 48 and (base / "rgb" / f"{e['vid_name']}.mp4").is_file()
    vocab = json.loads((base / "Diving48_vocab.json").read_text())
    assert len(vocab) == 48 and all(len(v) == 4 for v in vocab)
    assert sorted(p.name for p in (base / "rgb").iterdir()) == \
        sorted(f"{e['vid_name']}.mp4" for entries in lists.values() for e in entries)

    dataset = tmp_path / "datasets" / "diving48"
    rows = extract(entry["videos"], dataset / "frames")
    assert len(rows) == 13
    real = minidata.DIVING48_REAL[1]
    assert (int(rows[real]["width"]), int(rows[real]["height"])) == (340, 256)  # the real H.264 clip
    ann = dataset / "annotations"
    out = mienet("make-annotations", "--format", "diving48", "--source", entry["source"],
                 "--frames", dataset / "frames", "-o", ann).stdout
    assert "48 classes; train 7, val 6 clips" in out
    # train list -> train.txt, test list -> val.txt; the frames decoded are the clips' length
    for split, name in (("train", "Diving48_V2_train.json"), ("val", "Diving48_V2_test.json")):
        assert lines(ann / f"{split}.txt") == [
            (f"frames/{e['vid_name']}", e["end_frame"] - e["start_frame"], e["label"]) for e in lists[name]]
        assert {label for _, _, label in lines(ann / f"{split}.txt")} == {0, 17, 47}
    assert (ann / "classes.txt").read_text().splitlines() == packaged_classes("diving48")


def test_ffmpeg_writes_vp9():
    """The SSv2 videos need ffmpeg with libvpx-vp9; `make setup` installs ffmpeg. Never skipped."""
    try:
        minidata.require_vp9()
    except minidata.MiniDataError as exc:
        pytest.fail(str(exc))


def test_sthv2_json_and_vp9_webm_videos(tmp_path):
    entry = minidata.build_sthv2(tmp_path / "raw")
    base = tmp_path / "raw" / "sthv2"
    assert entry == {"format": "sthv2", "source": str(base / "labels"), "videos": str(base / "videos")}
    src = base / "labels"
    labels = json.loads((src / "something-something-v2-labels.json").read_text())
    classes = packaged_classes("sthv2")
    assert labels == {name: str(i) for i, name in enumerate(classes)}
    splits = {s: json.loads((src / f"something-something-v2-{s}.json").read_text())
              for s in ("train", "validation", "test")}
    assert splits == minidata.sthv2_entries()
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [8, 6, 2]
    for e in splits["train"] + splits["validation"]:
        assert list(e) == ["id", "label", "template", "placeholders"]
        assert e["template"].count("[something]") == len(e["placeholders"])
    assert all(list(e) == ["id"] for e in splits["test"])
    # Every video is really VP9 in WebM, and every frame is there.
    ids = [e["id"] for s in splits.values() for e in s]
    assert sorted(p.name for p in (base / "videos").iterdir()) == sorted(f"{i}.webm" for i in ids)
    for i in ids:
        info = minidata.probe(base / "videos" / f"{i}.webm")
        assert info["codec"] == "vp9" and "webm" in info["container"], info
        assert (info["width"], info["height"], info["frames"]) == (64, 48, minidata.sthv2_frames(i)), info
        assert (base / "videos" / f"{i}.webm").read_bytes()[:4] == b"\x1a\x45\xdf\xa3"  # EBML

    dataset = tmp_path / "datasets" / "sthv2"
    rows = extract(entry["videos"], dataset / "frames", "--short-side", "32")  # as params.yaml's short_side
    assert set(rows) == set(ids)
    for i in ids:  # OpenCV decodes every VP9 frame
        assert int(rows[i]["frames"]) == minidata.sthv2_frames(i)
        assert (int(rows[i]["width"]), int(rows[i]["height"])) == (43, 32)
    ann = dataset / "annotations"
    out = mienet("make-annotations", "--format", "sthv2", "--source", entry["source"],
                 "--frames", dataset / "frames", "-o", ann).stdout
    assert "174 classes; train 8, val 6 clips" in out
    assert not (ann / "test.txt").exists()  # the test list has no labels
    for split, name in (("train", "train"), ("val", "validation")):
        got = lines(ann / f"{split}.txt")
        assert got == [(f"frames/{e['id']}", minidata.sthv2_frames(e["id"]),
                        classes.index(e["template"].replace("[", "").replace("]", ""))) for e in splits[name]]
        assert len({label for _, _, label in got}) == 4
    names = (ann / "classes.txt").read_text().splitlines()
    assert names == classes and names[93] == "Pushing something from left to right"


def test_builders_are_deterministic(tmp_path):
    for build in (minidata.build_sljd, minidata.build_diving48, minidata.build_sthv2):
        build(tmp_path / "a")
        build(tmp_path / "b")
    first, second = tree_digest(tmp_path / "a"), tree_digest(tmp_path / "b")
    assert len(first) > 400 and first == second
