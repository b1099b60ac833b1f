"""mienet make-annotations: every format, on small files written here, and the bad inputs."""

from __future__ import annotations

import hashlib
import json
from importlib import resources

import cv2
import numpy as np
import pytest

from mienet.cli import main
from mienet.data.annotations import packaged_classes, read_frame_list
from mienet.data.frames import clip_frames, extract_frames
from mienet.errors import MienetError


def make_frames(root, rel, n):
    folder = root / rel
    folder.mkdir(parents=True, exist_ok=True)
    img = np.zeros((8, 8, 3), np.uint8)
    for i in range(1, n + 1):
        cv2.imwrite(str(folder / f"img_{i:05d}.jpg"), img)


def annotate(*argv):
    return main(["make-annotations", *map(str, argv)])


def assert_lists_match_disk(ann, root):
    for split in ("train", "val", "test"):
        if not (ann / f"{split}.txt").exists():
            continue
        for clip in read_frame_list(ann / f"{split}.txt"):
            found = clip_frames(root / clip.path)  # a pack root/<path>.frames or a folder root/<path>/
            assert found is not None and found[1] == clip.frames, clip
            if found[0] == "folders":
                assert len(list((root / clip.path).glob("img_*"))) == clip.frames, clip


@pytest.mark.parametrize("layout", ["packed", "folders"])
def test_folder_format_end_to_end_on_real_clips(class_videos, tmp_path, capsys, layout):
    dataset = tmp_path / "ds"
    extract_frames(class_videos, dataset / "frames", jobs=2, progress=False, layout=layout)
    ann = dataset / "annotations"
    assert annotate("--format", "folder", "--videos", class_videos, "--frames", dataset / "frames",
                    "-o", ann, "--val-ratio", "0.5", "--seed", "3") == 0
    assert "3 classes; train 3, val 3 clips" in capsys.readouterr().out
    assert (ann / "classes.txt").read_text() == "jump\nrun fast\nwalk\n"
    train, val = read_frame_list(ann / "train.txt"), read_frame_list(ann / "val.txt")
    assert all(c.path.startswith("frames/") for c in train + val)
    # stratified: one clip of each class in each split
    assert sorted(c.label for c in train) == [0, 1, 2] and sorted(c.label for c in val) == [0, 1, 2]
    assert {c.path for c in train} | {c.path for c in val} == {
        "frames/jump/part_0", "frames/jump/clip_two", "frames/run_fast/test",
        "frames/run_fast/nested/part_0", "frames/walk/demo", "frames/walk/part_0"}
    assert_lists_match_disk(ann, dataset)
    summary = json.loads((ann / "summary.json").read_text())
    assert summary["clips"] == {"train": 3, "val": 3}
    # the same seed gives the same split, byte for byte
    first = (ann / "train.txt").read_bytes()
    annotate("--format", "folder", "--videos", class_videos, "--frames", dataset / "frames", "-o", ann,
             "--val-ratio", "0.5", "--seed", "3")
    assert (ann / "train.txt").read_bytes() == first


def test_folder_format_reports_every_clip_without_frames(class_videos, tmp_path, capsys):
    frames = tmp_path / "frames"
    extract_frames(class_videos, frames, jobs=1, progress=False, layout="folders")
    for vid in ("walk/demo", "jump/part_0"):
        for p in (frames / vid).iterdir():
            p.unlink()
    (frames / "walk" / "demo").rmdir()  # missing altogether; jump/part_0 left empty
    ann = tmp_path / "ann"
    assert annotate("--format", "folder", "--videos", class_videos, "--frames", frames, "-o", ann) == 2
    err = capsys.readouterr().err
    assert "2 problem(s)" in err
    assert "walk/demo.mp4: frame folder" in err and "does not exist" in err
    assert "jump/part_0.mp4: frame folder" in err and "holds no img_* images" in err
    assert not ann.exists()  # nothing written
    assert annotate("--format", "folder", "--videos", class_videos, "--frames", frames, "-o", ann,
                    "--skip-missing") == 0
    skipped = (ann / "skipped.txt").read_text().splitlines()
    assert len(skipped) == 3 and "walk/demo" in "".join(skipped)
    lines = (ann / "train.txt").read_text() + (ann / "val.txt").read_text()
    assert len(lines.splitlines()) == 4 and "walk/demo" not in lines


def test_packed_layout_reports_a_missing_and_a_damaged_pack(class_videos, tmp_path, capsys):
    frames = tmp_path / "frames"
    extract_frames(class_videos, frames, jobs=1, progress=False)  # the default: packed
    (frames / "walk" / "demo.frames").unlink()
    damaged = frames / "jump" / "part_0.frames"
    damaged.write_bytes(damaged.read_bytes()[:-100])  # cut short
    ann = tmp_path / "ann"
    assert annotate("--format", "folder", "--videos", class_videos, "--frames", frames, "-o", ann) == 2
    err = capsys.readouterr().err
    assert "2 problem(s)" in err
    assert f"walk/demo.mp4: frame folder {frames / 'walk' / 'demo'} does not exist (nor a frame pack" in err
    assert f"jump/part_0.mp4: frame pack {damaged} is damaged (no end marker" in err
    assert "run `mienet extract-frames` again" in err
    assert not ann.exists()


def write_list(path, lines):
    path.write_text("".join(line + "\n" for line in lines))


def test_sljd_lists_are_checked_and_normalised(tmp_path):
    root = tmp_path / "sljd"
    make_frames(root, "frames/clip 1", 12)  # a space in the folder name
    make_frames(root, "frames/c2", 9)
    make_frames(root, "frames/c3", 7)
    lists = root / "lists"
    lists.mkdir()
    write_list(lists / "train.txt", ["./frames/clip 1  12 0", "frames//c2 9 9"])
    write_list(lists / "val.txt", ["frames/c3 7 4"])
    ann = root / "annotations"
    assert annotate("--format", "sljd", "--source", lists, "-o", ann) == 0
    assert (ann / "train.txt").read_text() == "frames/clip 1 12 0\nframes/c2 9 9\n"
    assert len((ann / "classes.txt").read_text().splitlines()) == 10
    assert not (ann / "test.txt").exists()
    assert read_frame_list(ann / "train.txt")[0].path == "frames/clip 1"
    assert_lists_match_disk(ann, root)


def test_sljd_every_problem_is_named_with_file_and_line(tmp_path, capsys):
    root = tmp_path / "sljd"
    make_frames(root, "frames/a", 5)
    make_frames(root, "frames/b", 5)
    make_frames(root, "frames/empty", 0)
    lists = root / "lists"
    lists.mkdir()
    write_list(lists / "train.txt", [
        "frames/a 5 0",
        "frames/b 6 1",          # 2: wrong frame count
        "frames/missing 5 1",    # 3: not on disk
        "frames/a 5 0",          # 4: duplicated
        "frames/empty 0 2",      # 5: empty folder
        "frames/b 5 10",         # 6: label out of range
    ])
    write_list(lists / "val.txt", ["frames/b 5 1", "frames/a 5 0"])  # both also in train
    assert annotate("--format", "sljd", "--source", lists, "-o", root / "ann") == 2
    err = capsys.readouterr().err
    assert "7 problem(s)" in err
    assert f"{lists / 'train.txt'}:2: frames/b: the list says 6 frames, the folder holds 5" in err
    assert f"{lists / 'train.txt'}:3: frame folder" in err and "missing does not exist" in err
    assert f"{lists / 'train.txt'}:4: duplicated clip frames/a (first at {lists / 'train.txt'}:1)" in err
    assert f"{lists / 'train.txt'}:5: frame folder" in err
    assert f"{lists / 'train.txt'}:6: label 10 out of range 0..9" in err
    assert f"{lists / 'val.txt'}:1: clip frames/b is in both train" in err
    assert f"{lists / 'val.txt'}:2: clip frames/a is in both train" in err
    assert not (root / "ann").exists()


def test_unparsable_lines_are_reported_with_their_numbers(tmp_path):
    path = tmp_path / "train.txt"
    write_list(path, ["frames/a 5 0", "frames/b five 1", "justonefield", "", "frames/c 3 -1"])
    with pytest.raises(MienetError) as exc:
        read_frame_list(path)
    msg = str(exc.value)
    assert "3 problem(s)" in msg
    assert f"{path}:2:" in msg and f"{path}:3:" in msg and f"{path}:5:" in msg


def test_diving48_json(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    train = [{"vid_name": "_8Vy3dlHg2w_00000", "label": 0, "start_frame": 0, "end_frame": 40},
             {"vid_name": "_8Vy3dlHg2w_00001", "label": 47, "start_frame": 40, "end_frame": 80}]
    test = [{"vid_name": "x0", "label": 5, "start_frame": 0, "end_frame": 10}]
    (src / "Diving48_V2_train.json").write_text(json.dumps(train))
    (src / "Diving48_V2_test.json").write_text(json.dumps(test))
    (src / "Diving48_vocab.json").write_text(json.dumps([["a", "b", "c", "d"]] * 48))
    ds = tmp_path / "diving48"
    for vid, n in (("_8Vy3dlHg2w_00000", 4), ("_8Vy3dlHg2w_00001", 6), ("x0", 3)):
        make_frames(ds / "frames", vid, n)
    ann = ds / "annotations"
    assert annotate("--format", "diving48", "--source", src, "--frames", ds / "frames", "-o", ann) == 0
    assert (ann / "train.txt").read_text() == "frames/_8Vy3dlHg2w_00000 4 0\nframes/_8Vy3dlHg2w_00001 6 47\n"
    assert (ann / "val.txt").read_text() == "frames/x0 3 5\n"
    assert (ann / "classes.txt").read_text().splitlines() == packaged_classes("diving48")
    # a label out of range and a broken entry, named by entry
    test.append({"vid_name": "x0", "label": 48})
    test.append({"name": "nolabel"})
    (src / "Diving48_V2_test.json").write_text(json.dumps(test))
    assert annotate("--format", "diving48", "--source", src, "--frames", ds / "frames", "-o", ann) == 2
    err = capsys.readouterr().err
    assert "Diving48_V2_test.json: entry 2: expected an object with 'vid_name' and 'label'" in err
    (src / "Diving48_V2_test.json").write_text(json.dumps(test[:2]))
    assert annotate("--format", "diving48", "--source", src, "--frames", ds / "frames", "-o", ann) == 2
    err = capsys.readouterr().err
    assert "Diving48_V2_test.json: entry 1: label 48 out of range 0..47" in err
    (src / "Diving48_V2_train.json").write_text('[{"vid_name": "a",\n "label": }]')
    assert annotate("--format", "diving48", "--source", src, "--frames", ds / "frames", "-o", ann) == 2
    assert "Diving48_V2_train.json:2: not valid JSON" in capsys.readouterr().err


def test_sthv2_json_templates(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    labels = {"Approaching something with your camera": "0", "Pushing something from left to right": "1",
              "Pushing something from right to left": "2"}
    (src / "something-something-v2-labels.json").write_text(json.dumps(labels))
    train = [{"id": "10", "label": "pushing a cup from left to right",
              "template": "Pushing [something] from left to right", "placeholders": ["a cup"]},
             {"id": "11", "label": "approaching a box with your camera",
              "template": "Approaching [something] with your camera", "placeholders": ["a box"]}]
    val = [{"id": "12", "label": "pushing a pen from right to left",
            "template": "Pushing [something] from right to left", "placeholders": ["a pen"]}]
    (src / "something-something-v2-train.json").write_text(json.dumps(train))
    (src / "something-something-v2-validation.json").write_text(json.dumps(val))
    ds = tmp_path / "sthv2"
    for vid in ("10", "11", "12"):
        make_frames(ds / "frames", vid, 2)
    ann = ds / "annotations"
    assert annotate("--format", "sthv2", "--source", src, "--frames", ds / "frames", "-o", ann) == 0
    assert (ann / "train.txt").read_text() == "frames/10 2 1\nframes/11 2 0\n"
    assert (ann / "val.txt").read_text() == "frames/12 2 2\n"
    assert (ann / "classes.txt").read_text().splitlines() == list(labels)
    val.append({"id": "13", "template": "Spinning [something] that quickly stops spinning"})
    val.append({"id": "14", "template": "Poking a hole into [something soft]"})
    (src / "something-something-v2-validation.json").write_text(json.dumps(val))
    assert annotate("--format", "sthv2", "--source", src, "--frames", ds / "frames", "-o", ann) == 2
    err = capsys.readouterr().err
    assert "validation.json: entry 1: template 'Spinning something that quickly stops spinning' of clip 13" in err
    assert "validation.json: entry 2: template 'Poking a hole into something soft' of clip 14" in err


# The class lists shipped in src/mienet/data/classes, pinned: the number of classes of each
# dataset and the sha256 of the file, byte for byte the lists the datasets' authors publish
# (Diving48: the 48 dive names in label order; SSv2: the templates of
# something-something-v2-labels.json in index order).
PACKAGED_CLASS_LISTS = {
    "diving48": (48, "7832becc4d9326028e29fb2cf5adaade78052030c1791784c6dffc32541fd9e9"),
    "sthv2": (174, "c9c5a86ece619e1ab2e7ca0614c85377a534873e17108b13243e5d22089a0a85"),
}


@pytest.mark.parametrize("name", sorted(PACKAGED_CLASS_LISTS))
def test_packaged_class_lists_are_the_published_ones(name):
    count, sha256 = PACKAGED_CLASS_LISTS[name]
    data = resources.files("mienet.data").joinpath("classes", f"{name}_classes.txt").read_bytes()
    lines = data.decode("utf-8").split("\n")
    assert lines[-1] == "", "the list ends with one newline"
    lines = lines[:-1]
    assert all(line.strip() for line in lines), "no blank lines"
    assert all(line == line.strip() and "\r" not in line for line in lines), "no surrounding whitespace"
    assert len(lines) == count
    assert len(set(lines)) == count, "class names are unique"
    assert packaged_classes(name) == lines
    assert hashlib.sha256(data).hexdigest() == sha256


def test_synth_design_travels_with_the_lists_and_the_test_split_is_disjoint(tmp_path, capsys):
    """`mienet synth` writes factors.json beside its videos; make-annotations copies it beside the
    lists (checked to name the same classes), and the three splits never share a clip."""
    from mienet.data.synth import synthesize

    videos, dataset = tmp_path / "videos", tmp_path / "ds"
    synthesize(videos, classes=2, clips_per_class=10, frames=16, size=32, jobs=1, progress=False)
    extract_frames(videos, dataset / "frames", jobs=1, progress=False)
    ann = dataset / "annotations"
    assert annotate("--format", "folder", "--videos", videos, "--frames", dataset / "frames", "-o", ann,
                    "--val-ratio", "0.2", "--test-ratio", "0.5") == 0
    assert "2 classes; train 6, val 4, test 10 clips" in capsys.readouterr().out
    assert (ann / "factors.json").read_text() == (videos / "factors.json").read_text()
    splits = {s: {c.path for c in read_frame_list(ann / f"{s}.txt")} for s in ("train", "val", "test")}
    assert sum(map(len, splits.values())) == 20 == len(set().union(*splits.values()))
    # a stale design that names other classes is refused, naming the file
    design = json.loads((videos / "factors.json").read_text())
    design["classes"][0]["name"] = "something_else"
    (videos / "factors.json").write_text(json.dumps(design))
    assert annotate("--format", "folder", "--videos", videos, "--frames", dataset / "frames", "-o", ann) == 2
    assert f"{videos / 'factors.json'} describes the classes ['something_else', " in capsys.readouterr().err
    # without a design the copy beside the lists goes too
    (videos / "factors.json").unlink()
    assert annotate("--format", "folder", "--videos", videos, "--frames", dataset / "frames", "-o", ann) == 0
    assert not (ann / "factors.json").exists() and not (ann / "test.txt").exists()
