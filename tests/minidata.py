"""Miniature copies of the paper's three datasets, written in their real file formats.

None of SLJD, Diving48 or Something-Something V2 can be downloaded where the tests run, so
these builders write a few dozen tiny clips laid out, named and encoded as the real
distributions are (see docs/datasets.md):

``build_sljd(root)``
    ``root/SLJD/lists/{train,val,test}.txt``: TSN frame lists, ``<frame folder> <frames> <label>``,
    whose paths are relative to ``root/SLJD`` (not to the lists folder), and the frame folders
    ``root/SLJD/data/rawframes/<clip>/img_00001.jpg ...``. Ten classes, as SLJD.
``build_diving48(root)``
    ``root/Diving48/Diving48_V2_{train,test}.json`` (objects with ``vid_name``, ``label``,
    ``start_frame``, ``end_frame``), ``Diving48_vocab.json`` and ``root/Diving48/rgb/<vid_name>.mp4``:
    synthetic clips (MPEG-4 Part 2, written by OpenCV) and one real H.264 sample video.
``build_sthv2(root)``
    ``root/sthv2/labels/something-something-v2-{labels,train,validation,test}.json`` and
    ``root/sthv2/videos/<id>.webm``, VP9 in WebM, encoded by ffmpeg's libvpx-vp9 and checked
    with ffprobe. Needs ffmpeg with libvpx-vp9 (``workflow/scripts/setup_env.sh`` installs it);
    without it the builder raises ``MiniDataError`` saying so.

Each builder returns the keys of params.yaml's ``datasets.<name>`` entry that point at what it
wrote (``format``, ``source``, and ``root`` or ``videos``), as strings, ready to be merged into
the entry. The pixels come from the synthetic standing-long-jump generator
(``mienet.data.synth_render.render_clip``), so the classes differ by motion. Everything is
deterministic: the same call writes the same bytes on the same machine. The module-level tables
say what each builder writes, for the tests to check against.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np

from mienet.data.annotations import packaged_classes
from mienet.data.synth import write_video
from mienet.data.synth_design import CLASS_LEVELS
from mienet.data.synth_render import render_clip

REPO = Path(__file__).resolve().parents[1]
FIXTURE_VIDEOS = REPO / "tests" / "fixtures" / "videos"
SEED = 0


class MiniDataError(RuntimeError):
    """A miniature dataset cannot be written (a missing tool, a video that is not what it should be)."""


# --------------------------------------------------------------------------- SLJD

SLJD_NUM_CLASSES = 10
SLJD_LABELS = (0, 4, 9)                            # the first, a middle and the last class
SLJD_CLIPS_PER_CLASS = {"train": 3, "val": 2, "test": 2}
SLJD_SIZE = 48


def sljd_clips() -> dict[str, list[tuple[str, int, int]]]:
    """What ``build_sljd`` lists: split -> [(frame folder relative to the SLJD root, frames, label)]."""
    out: dict[str, list[tuple[str, int, int]]] = {}
    index = 0
    for split, per_class in SLJD_CLIPS_PER_CLASS.items():
        out[split] = []
        for label in SLJD_LABELS:
            for _ in range(per_class):
                out[split].append((f"data/rawframes/jump_{index:03d}", 16 + index % 5, label))
                index += 1
    return out


def build_sljd(root: str | Path) -> dict:
    """SLJD as distributed: frame folders plus TSN lists; returns ``{"format", "source", "root"}``.

    The synthetic generator's ten classes are the SLJD phase transitions, so label ``k`` is
    drawn from synthetic class ``k``.
    """
    sljd = Path(root) / "SLJD"
    lists = sljd / "lists"
    lists.mkdir(parents=True, exist_ok=True)
    index = 0
    for split, clips in sljd_clips().items():
        lines = []
        for rel, frames, label in clips:
            folder = sljd / rel
            folder.mkdir(parents=True, exist_ok=True)
            video = render_clip(label % len(CLASS_LEVELS), index, SEED, frames, SLJD_SIZE)
            for i, frame in enumerate(video, start=1):
                if not cv2.imwrite(str(folder / f"img_{i:05d}.jpg"), frame):
                    raise MiniDataError(f"could not write {folder / f'img_{i:05d}.jpg'}")
            lines.append(f"{rel} {frames} {label}\n")
            index += 1
        (lists / f"{split}.txt").write_text("".join(lines))
    return {"format": "sljd", "source": str(lists), "root": str(sljd)}


# --------------------------------------------------------------------------- Diving48

DIVING48_LABELS = (0, 17, 47)                      # the first, a middle and the last of 48
DIVING48_SIZE = 48
DIVING48_FPS = 30.0
# YouTube-like ids (11 characters of [A-Za-z0-9_-]); one starts with "-", as real ones do.
DIVING48_SOURCES = ("-dQ7mW2xk9A", "_4fTn0pLs8U", "Xb3K_9-qLmZ")
# The real sample clip (H.264, 340x256) that joins the synthetic ones as one more training clip:
# fixture, vid_name, frames OpenCV decodes, label.
DIVING48_REAL = ("part_0.mp4", "_4fTn0pLs8U_00012", 32, 17)


def diving48_entries() -> dict[str, list[dict]]:
    """The two JSON lists ``build_diving48`` writes: file name -> entries (real V2 key order)."""
    out: dict[str, list[dict]] = {"Diving48_V2_train.json": [], "Diving48_V2_test.json": []}
    index = 0
    for name, source in (("Diving48_V2_train.json", 0), ("Diving48_V2_test.json", 2)):
        for label in DIVING48_LABELS:
            for _ in range(2):
                frames = 16 + index % 4
                out[name].append({"vid_name": f"{DIVING48_SOURCES[source]}_{index:05d}", "label": label,
                                  "start_frame": 0, "end_frame": frames})
                index += 1
    _, vid_name, frames, label = DIVING48_REAL
    out["Diving48_V2_train.json"].append({"vid_name": vid_name, "label": label,
                                          "start_frame": 0, "end_frame": frames})
    return out


def build_diving48(root: str | Path) -> dict:
    """Diving48 V2: JSON lists, vocabulary and ``<vid_name>.mp4``; returns ``{"format", "source", "videos"}``."""
    base = Path(root) / "Diving48"
    videos = base / "rgb"
    videos.mkdir(parents=True, exist_ok=True)
    classes = packaged_classes("diving48")
    # Diving48_vocab.json: per label, [takeoff, somersault, twist, flight position].
    (base / "Diving48_vocab.json").write_text(json.dumps([name.split("+") for name in classes]))
    synth_class = {label: k for k, label in enumerate(DIVING48_LABELS)}
    index = 0
    for name, entries in diving48_entries().items():
        for entry in entries:
            path = videos / f"{entry['vid_name']}.mp4"
            if entry["vid_name"] == DIVING48_REAL[1]:
                shutil.copyfile(FIXTURE_VIDEOS / DIVING48_REAL[0], path)
                continue
            video = render_clip(synth_class[entry["label"]] % len(CLASS_LEVELS), index, SEED, entry["end_frame"],
                                DIVING48_SIZE)
            write_video(path, video, DIVING48_FPS)  # mp4v through OpenCV, checked by decoding
            index += 1
        (base / name).write_text(json.dumps(entries))
    return {"format": "diving48", "source": str(base), "videos": str(videos)}


# --------------------------------------------------------------------------- Something-Something V2

# Real SSv2 templates (their bracketed form) and the objects filled into them.
STHV2_TEMPLATES = (
    ("Pushing [something] from left to right", (["a cup"], ["a book"], ["a pen"])),
    ("Pushing [something] from right to left", (["a phone"], ["a box"], ["a spoon"])),
    ("Holding [something] next to [something]", (["potato", "a bottle"], ["a mug", "a lamp"])),
    ("Moving [something] up", (["a remote"], ["a shoe"])),
)
# split -> template index of each clip, in file order
STHV2_SPLITS = {"train": (0, 1, 2, 3, 0, 1, 2, 3), "validation": (0, 1, 2, 3, 0, 1), "test": (2, 3)}
STHV2_WIDTH, STHV2_HEIGHT = 64, 48                 # landscape, like the real 427x240 clips
STHV2_FPS = 12                                     # the real clips' frame rate


def sthv2_template(index: int) -> str:
    """The class name (the template without brackets) of template ``index``."""
    return STHV2_TEMPLATES[index][0].replace("[", "").replace("]", "")


def sthv2_entries() -> dict[str, list[dict]]:
    """split -> the entries ``build_sthv2`` writes (test entries carry only ``id``)."""
    ids = iter(range(40213, 40213 + 7919 * 100, 7919))  # SSv2 ids: decimal strings of 1..220847
    out: dict[str, list[dict]] = {}
    for split, templates in STHV2_SPLITS.items():
        out[split] = []
        for n, t in enumerate(templates):
            clip_id = str(next(ids))
            if split == "test":
                out[split].append({"id": clip_id})
                continue
            template, fillings = STHV2_TEMPLATES[t]
            placeholders = fillings[n % len(fillings)]
            label = template
            for p in placeholders:
                label = label.replace("[something]", p, 1)
            out[split].append({"id": clip_id, "label": label[0].lower() + label[1:], "template": template,
                               "placeholders": list(placeholders)})
    return out


def sthv2_frames(clip_id: str) -> int:
    """Frames of the video ``<clip_id>.webm``."""
    return 16 + int(clip_id) % 5


def require_vp9() -> tuple[str, str]:
    """``(ffmpeg, ffprobe)``, or MiniDataError saying why VP9 videos cannot be written and checked."""
    ffmpeg, ffprobe = shutil.which("ffmpeg"), shutil.which("ffprobe")
    if not ffmpeg or not ffprobe:
        missing = " and ".join(n for n, p in (("ffmpeg", ffmpeg), ("ffprobe", ffprobe)) if not p)
        raise MiniDataError(
            f"{missing} not found on PATH: the miniature Something-Something V2 dataset is VP9 in WebM, "
            "written with ffmpeg's libvpx-vp9 encoder and checked with ffprobe. Install ffmpeg: "
            "`make setup` (workflow/scripts/setup_env.sh) installs it with apt-get when run as root; "
            "otherwise `sudo apt-get install ffmpeg`.")
    encoders = subprocess.run([ffmpeg, "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    if " libvpx-vp9 " not in encoders:
        raise MiniDataError(f"{ffmpeg} has no libvpx-vp9 encoder (ffmpeg -encoders); the miniature "
                            "Something-Something V2 dataset needs it to write VP9 .webm videos. "
                            "Install a full ffmpeg build (Debian/Ubuntu: apt-get install ffmpeg).")
    return ffmpeg, ffprobe


def encode_vp9(ffmpeg: str, path: Path, video: np.ndarray, fps: int) -> None:
    """Encode BGR frames ``(F, H, W, 3)`` into a VP9 WebM file, byte-for-byte reproducibly."""
    n, h, w = video.shape[:3]
    cmd = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
           "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{w}x{h}", "-r", str(fps), "-i", "-",
           "-c:v", "libvpx-vp9", "-pix_fmt", "yuv420p", "-b:v", "0", "-crf", "30",
           "-deadline", "realtime", "-cpu-used", "8", "-threads", "1", "-row-mt", "0", "-g", str(n),
           "-an", "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact",
           "-f", "webm", str(path)]
    proc = subprocess.run(cmd, input=np.ascontiguousarray(video).tobytes(), capture_output=True)
    if proc.returncode != 0:
        raise MiniDataError(f"ffmpeg could not encode {path}: {proc.stderr.decode(errors='replace')[-2000:]}")


def probe(path: str | Path, ffprobe: str | None = None) -> dict:
    """What ffprobe says of a video's first stream: codec, container, size and decoded frames."""
    ffprobe = ffprobe or shutil.which("ffprobe") or "ffprobe"
    proc = subprocess.run([ffprobe, "-v", "error", "-select_streams", "v:0", "-count_frames",
                           "-show_entries", "stream=codec_name,width,height,pix_fmt,nb_read_frames"
                           ":format=format_name", "-of", "json", str(path)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise MiniDataError(f"ffprobe cannot read {path}: {proc.stderr.strip()}")
    info = json.loads(proc.stdout)
    stream = info["streams"][0]
    return {"codec": stream["codec_name"], "container": info["format"]["format_name"],
            "width": int(stream["width"]), "height": int(stream["height"]), "pix_fmt": stream.get("pix_fmt"),
            "frames": int(stream["nb_read_frames"])}


def build_sthv2(root: str | Path) -> dict:
    """Something-Something V2: label and split JSON files and VP9 ``<id>.webm``;
    returns ``{"format", "source", "videos"}``.

    The labels file maps every one of the 174 templates (the packaged class list, in its
    order) to its index as a string, as the real one does; the clips use a handful of them.
    Each video is checked with ffprobe: VP9 in WebM, every frame there.
    """
    ffmpeg, ffprobe = require_vp9()
    base = Path(root) / "sthv2"
    labels_dir, videos = base / "labels", base / "videos"
    labels_dir.mkdir(parents=True, exist_ok=True)
    videos.mkdir(parents=True, exist_ok=True)
    classes = packaged_classes("sthv2")
    for t in range(len(STHV2_TEMPLATES)):
        if sthv2_template(t) not in classes:
            raise MiniDataError(f"template {sthv2_template(t)!r} is not in the packaged SSv2 class list")
    labels = {name: str(i) for i, name in enumerate(classes)}
    (labels_dir / "something-something-v2-labels.json").write_text(json.dumps(labels, indent=0))
    index = 0
    for split, entries in sthv2_entries().items():
        (labels_dir / f"something-something-v2-{split}.json").write_text(json.dumps(entries))
        for n, entry in enumerate(entries):
            t = STHV2_SPLITS[split][n]
            frames = sthv2_frames(entry["id"])
            square = render_clip(t % len(CLASS_LEVELS), index, SEED, frames, STHV2_WIDTH)
            top = (STHV2_WIDTH - STHV2_HEIGHT) // 2
            path = videos / f"{entry['id']}.webm"
            encode_vp9(ffmpeg, path, square[:, top:top + STHV2_HEIGHT], STHV2_FPS)
            info = probe(path, ffprobe)
            expected = {"codec": "vp9", "width": STHV2_WIDTH, "height": STHV2_HEIGHT, "frames": frames}
            if {k: info[k] for k in expected} != expected or "webm" not in info["container"]:
                raise MiniDataError(f"{path} is not what was encoded: ffprobe says {info}, expected {expected} "
                                    "in a webm container")
            index += 1
    return {"format": "sthv2", "source": str(labels_dir), "videos": str(videos)}


def build_paper_datasets(root: str | Path) -> dict[str, dict]:
    """All three, under ``root``: ``{"sljd": ..., "diving48": ..., "sthv2": ...}`` for params.yaml."""
    return {"sljd": build_sljd(root), "diving48": build_diving48(root), "sthv2": build_sthv2(root)}
