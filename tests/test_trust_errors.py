"""Bad input that used to end in a traceback: one line from the real command, a non-zero exit,
the file, line or key named, no password shown, nothing left behind (issue: tracebacks left,
lists and packs)."""

from __future__ import annotations

import csv
import os
import re
import resource
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import torch
import yaml

from conftest import make_synthetic_dataset
from mienet.data import pack
from mienet.data.annotations import read_frame_list
from mienet.errors import MienetError

BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}
TINY = ["--variant", "mienet", "--arch", "resnet10", "--segments", "2", "--size", "32", "--epochs", "1",
        "--batch-size", "4", "--lr", "0.002", "--lr-steps", "10", "--no-progress", "--dropout", "0.0",
        "--seed", "1", "--dataset", "tiny"]
LOG_LINE = re.compile(r"^(DEBUG|INFO|WARNING) \S+: ")
URL = "postgresql://user:secret@127.0.0.1:1/db"  # port 1: nothing listens, the connection is refused


def mienet(*args, preexec_fn=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "mienet"), *map(str, args)], capture_output=True, text=True, env=ENV,
                          timeout=300, preexec_fn=preexec_fn)


def error_line(proc: subprocess.CompletedProcess, command: str) -> str:
    """The one line the command printed besides its log lines: its error."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr and "Caught " not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if not LOG_LINE.match(line)]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"mienet {command}: error: "), proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_synthetic_dataset(tmp_path_factory.mktemp("trust") / "ds", clips_per_class=2, frames=16, size=32)


@pytest.fixture(scope="module")
def damaged(dataset, tmp_path_factory) -> Path:
    """A copy of the dataset whose every frame fails its checksum."""
    root = tmp_path_factory.mktemp("damaged") / "ds"
    shutil.copytree(dataset, root)
    for path in (root / "frames").rglob("*.frames"):
        index = pack.read_index(path)
        data = bytearray(path.read_bytes())
        for offset, length in zip(index.offsets, index.lengths):
            data[offset + length // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    return root


@pytest.fixture(scope="module")
def checkpoint(dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    proc = mienet("train", "--annotations", dataset / "annotations", "--out", out, *TINY, "--workers", "0")
    assert proc.returncode == 0, proc.stderr
    return out / "checkpoints" / "best.pt"


# --------------------------------------------------------------------------- an unreachable database


def test_an_unreachable_database_is_one_line_without_the_password_and_writes_nothing(dataset, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({
        "data_root": "datasets",
        "datasets": {"tiny": {"format": "folder", "train": {"arch": "resnet10", "segments": 2, "size": 32,
                                                          "epochs": 1, "batch_size": 2, "lr": 0.001,
                                                          "lr_steps": [10], "pretrained": "none", "workers": 0}}},
        "search": {"n_trials": 1, "subset": {"train_per_class": 1, "val_per_class": 1, "seed": 0},
                   "space": {"lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-1, "log": True}}},
    }))
    out = tmp_path / "out"
    proc = mienet("search", "--annotations", dataset / "annotations", "--dataset", "tiny", "--params", params,
                  "--out", out, "--no-progress", "--storage", URL)
    line = error_line(proc, "search")
    assert "secret" not in proc.stdout + proc.stderr
    assert "postgresql://user:***@127.0.0.1:1/db" in line and "Connection refused" in line, line
    assert not out.exists()  # not even OUT/annotations (the subset lists)


def test_the_study_lock_and_the_storage_name_an_unreachable_database_in_one_line():
    from mienet.search.storage import StudyLock, open_storage

    with pytest.raises(MienetError) as err:
        with StudyLock(URL, "study")():
            pass
    with pytest.raises(MienetError) as err2:
        open_storage(URL, {"interval": 1, "grace_period": 5, "max_retry": 1})
    for e in (err, err2):
        message = str(e.value)
        assert "\n" not in message and "secret" not in message and "user:***@127.0.0.1:1/db" in message, message


# --------------------------------------------------------------------------- a data error in a loader worker


@pytest.mark.parametrize("command, extra", [
    ("train", ["--workers", "2"]),
    ("evaluate", []),  # its default workers
    ("evaluate", ["--workers", "1"]),
])
def test_a_damaged_frame_read_by_a_loader_worker_is_one_line(damaged, checkpoint, tmp_path, command, extra):
    ann = damaged / "annotations"
    if command == "train":
        proc = mienet("train", "--annotations", ann, "--out", tmp_path / "run", *TINY, *extra)
    else:
        proc = mienet("evaluate", "--checkpoint", checkpoint, "--annotations", ann, "--out", tmp_path / "eval",
                      "--no-progress", *extra)
    line = error_line(proc, command)
    assert "Original Traceback" not in proc.stderr
    assert re.search(rf"cannot read frame \d+ of {re.escape(str(damaged / 'frames'))}/\S+\.frames \(the frame's "
                     rf"bytes fail their checksum", line), line
    assert re.search(rf"\({re.escape(str(ann))}/(train|val)\.txt:\d+\)", line), line


def test_the_worker_is_kept_beside_the_original_message():
    from mienet.engine.dataset import ClipLoadError

    text = ("Caught ClipLoadError in DataLoader worker process 3.\nOriginal Traceback (most recent call last):\n"
            '  File "x.py", line 1, in f\n    raise ClipLoadError("a: b")\n'
            "mienet.engine.dataset.ClipLoadError: cannot read frame 2 of a.frames\n")
    err = ClipLoadError(text)
    assert str(err) == "cannot read frame 2 of a.frames" and err.worker == "DataLoader worker process 3"
    assert str(ClipLoadError("plain words")) == "plain words"


# --------------------------------------------------------------------------- list paths outside the root


def list_with_path(dataset: Path, tmp_path: Path, path: str) -> tuple[Path, str]:
    """A copy of the dataset's annotations whose train.txt line 2 names ``path``."""
    ann = tmp_path / "ann"
    shutil.copytree(dataset / "annotations", ann)
    lines = (ann / "train.txt").read_text().splitlines()
    if path == "absolute pack":  # a real pack, reached by an absolute path: it must not be read
        path = str((dataset / lines[0].rsplit(maxsplit=2)[0]).resolve())
        assert pack.pack_path(path).is_file()
    lines[1] = f"{path} 16 {lines[1].split()[-1]}"
    (ann / "train.txt").write_text("\n".join(lines) + "\n")
    return ann, path


@pytest.mark.parametrize("path", ["../../../etc/x", "frames/../../x", "absolute pack"])
def test_a_list_path_outside_the_root_is_refused_when_the_list_is_read(dataset, tmp_path, path):
    ann, path = list_with_path(dataset, tmp_path, path)
    with pytest.raises(MienetError) as refused:
        read_frame_list(ann / "train.txt")
    assert f"{ann / 'train.txt'}:2: path {path!r} leaves the dataset root" in str(refused.value)


def test_a_training_refuses_a_list_path_outside_the_root_in_one_line_before_any_work(dataset, tmp_path):
    """The real command on one of the paths above (each is refused by the same list reader)."""
    ann, path = list_with_path(dataset, tmp_path, "frames/../../x")
    out = tmp_path / "run"
    proc = mienet("train", "--annotations", ann, "--root", dataset, "--out", out, *TINY, "--workers", "0")
    line = error_line(proc, "train")
    assert f"{ann / 'train.txt'}:2: path {path!r} leaves the dataset root" in line, line
    assert not out.exists()  # refused before any work


# --------------------------------------------------------------------------- a pack's footer claiming too much


def sparse_pack(path: Path, count: int, meta: int) -> Path:
    """A pack of one real frame whose footer claims ``count`` frames and ``meta`` bytes of meta, its
    size matching that claim; sparse, so it costs no disk."""
    frame = b"\xff\xd8" + b"\0" * 10 + b"\xff\xd9"
    index_offset = pack.HEAD_SIZE + len(frame)
    size = index_offset + count * pack.ENTRY_SIZE + meta + pack.FOOT_SIZE
    with open(path, "wb") as fh:
        fh.write(struct.pack("<8sH6x", pack.HEAD_MAGIC, pack.VERSION) + frame)
        fh.write(struct.pack("<QII", pack.HEAD_SIZE, len(frame), zlib.crc32(frame)))
        fh.seek(size - pack.FOOT_SIZE)
        fh.write(struct.pack("<QIIII8s", index_offset, count, meta, 0, pack.VERSION, pack.TAIL_MAGIC))
    return path


def limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))  # 2 GiB: the claimed 3 GiB cannot be read


def test_a_footer_claiming_a_3_gib_meta_block_is_refused_before_reading_it(dataset, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(dataset, root, ignore=shutil.ignore_patterns("annotations"))
    victim = next((root / "frames").rglob("*.frames"))
    sparse_pack(victim, 1, 3 << 30)
    assert victim.stat().st_size > 3 << 30 and victim.stat().st_blocks * 512 < 1 << 20
    proc = mienet("make-annotations", "--format", "folder", "--videos", root / "videos", "--frames",
                  root / "frames", "-o", root / "annotations", preexec_fn=limit_memory)
    line = error_line(proc, "make-annotations")
    assert f"frame pack {victim} is damaged (its footer claims 1 frames and {3 << 30} bytes of meta" in line, line
    assert not (root / "annotations").exists()


@pytest.mark.parametrize("count, meta", [(1, 3 << 30), (1 << 28, 0)])
def test_read_index_bounds_the_index_and_the_meta(tmp_path, count, meta):
    path = sparse_pack(tmp_path / "clip.frames", count, meta)
    with pytest.raises(pack.PackError, match=rf"its footer claims {count} frames and {meta} bytes of meta, "
                                             "more than a pack holds"):
        pack.read_index(path)
    assert pack.read_frames(tmp_path / "absent.frames", [0]) is None


def test_the_writer_refuses_a_pack_the_reader_would_refuse(tmp_path, monkeypatch):
    monkeypatch.setattr(pack, "MAX_META", 64)
    with pytest.raises(MienetError, match="do not fit a frame pack"):
        pack.write_pack(tmp_path / "a.frames", [b"\xff\xd8x\xff\xd9"], meta={"x": "y" * 100})
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- mienet zoo: an unsafe pickle


def test_zoo_names_an_unsafe_pickle_once_and_as_unsafe(tmp_path):
    make_synthetic_dataset(tmp_path / "datasets" / "sljd", clips_per_class=1, frames=16, size=32)
    (tmp_path / "pretrained").mkdir()
    torch.save({"epoch": 1, "state_dict": {"w": torch.zeros(1)}, "hook": os.system},
               tmp_path / "pretrained" / "unsafe.pth.tar")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"data_root": str(tmp_path / "datasets"), "zoo": {"sljd_mienet": {
        "dataset": "sljd", "variant": "mienet", "arch": "resnet50", "segments": 3, "num_classes": 3,
        "size": 32, "file": "unsafe.pth.tar"}}}))
    proc = mienet("zoo", "--params", params, "--pretrained-dir", tmp_path / "pretrained", "--results",
                  tmp_path / "results", "--no-progress")
    line = error_line(proc, "zoo")
    assert line.startswith("mienet zoo: error: zoo sljd_mienet: refused to load ") and "unsafe.pth.tar" in line
    assert "system" in line, line  # what the safe loader stopped at
    assert (proc.stdout + proc.stderr).count("refused to load") == 1, proc.stdout + proc.stderr
    rows = list(csv.DictReader(open(tmp_path / "results" / "tables" / "zoo.csv")))
    assert rows[0]["status"] == "error: unsafe file"
