"""The evaluation protocol: which split is reported, which checkpoint scores it (never one
selected on the reported split), and the per-factor scores of a factor design."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from mienet.cli import main
from mienet.engine.evaluate import choose_checkpoint, score_factors
from mienet.errors import MienetError
from mienet.layout import SELECTION_SPLIT, dataset_layout
from mienet.registry.formats import FORMATS
from mienet.pipeline import Commands

TINY = ["--variant", "mienet", "--arch", "resnet10_half", "--segments", "2", "--size", "32", "--epochs", "2",
        "--batch-size", "4", "--lr", "0.002", "--workers", "0", "--no-progress", "--pa-init-std", "0.3"]


@pytest.fixture(scope="module")
def run_with_test_split(tmp_path_factory) -> tuple[Path, Path]:
    """3 classes x 6 synthetic clips split 2/2/2, and a 2-epoch run on them."""
    from mienet.data.annotations import make_annotations
    from mienet.data.frames import extract_frames
    from mienet.data.synth import synthesize

    root = tmp_path_factory.mktemp("protocol")
    synthesize(root / "videos", classes=3, clips_per_class=6, frames=16, size=32, jobs=1, progress=False)
    extract_frames(root / "videos", root / "frames", jobs=1, progress=False)
    make_annotations("folder", root / "annotations", videos=root / "videos", frames=root / "frames",
                     val_ratio=0.34, test_ratio=0.34, seed=0)
    run = root / "run"
    assert main(["train", "--annotations", str(root / "annotations"), "--out", str(run), *TINY]) == 0
    return root, run


def test_a_checkpoints_folder_never_scores_the_split_it_was_selected_on(run_with_test_split, tmp_path):
    root, run = run_with_test_split
    ckpts = run / "checkpoints"
    assert choose_checkpoint(ckpts, "test") == (ckpts / "best.pt", SELECTION_SPLIT)
    assert choose_checkpoint(ckpts, "val") == (ckpts / "last.pt", "none (last epoch)")
    for split in {f.standard_split for f in FORMATS.values()}:
        _, selection = choose_checkpoint(ckpts, split)
        assert selection != split
    # a checkpoints folder without the file the split needs is an error naming it
    partial = tmp_path / "checkpoints"
    partial.mkdir()
    shutil.copy(ckpts / "last.pt", partial / "last.pt")
    with pytest.raises(MienetError, match=r"best.pt does not exist"):
        choose_checkpoint(partial, "test")
    # any other folder is passed on as it is (load_model names it and suggests the checkpoint)
    assert choose_checkpoint(run, "test") == (run, "none (last epoch)")


def test_evaluate_reports_test_selected_on_val_with_factor_scores(run_with_test_split, tmp_path):
    root, run = run_with_test_split
    out = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(run / "checkpoints"), "--annotations",
                 str(root / "annotations"), "--split", "test", "--out", str(out), "--no-progress"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert (m["split"], m["selection_split"], m["clips"]) == ("test", "val", 6)
    assert m["checkpoint"].endswith("best.pt")
    # the design beside the lists: each factor scored, the variant's ceiling stated
    assert set(m["factors"]) == {"appearance", "motion", "order"} == set(m["factor_design"])
    assert m["ceiling"]["top1"] == 100.0  # mienet sees every factor of the first 3 classes
    header = (out / "predictions.csv").read_text().splitlines()[0].split(",")
    assert header[-3:] == ["appearance_correct", "motion_correct", "order_correct"]
    test_paths = {line.split()[0] for line in (root / "annotations" / "test.txt").read_text().splitlines()}
    scored = {line.split(",")[0] for line in (out / "predictions.csv").read_text().splitlines()[1:]}
    assert scored == test_paths  # the reported clips are the test list's, none of val's


def test_evaluate_on_val_takes_the_last_epoch_and_warns_when_told_otherwise(run_with_test_split, tmp_path,
                                                                             caplog):
    root, run = run_with_test_split
    args = ["--annotations", str(root / "annotations"), "--split", "val", "--no-progress"]
    assert main(["evaluate", "--checkpoint", str(run / "checkpoints"), "--out", str(tmp_path / "a"), *args]) == 0
    m = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert (m["split"], m["selection_split"]) == ("val", "none (last epoch)")
    assert m["checkpoint"].endswith("last.pt")
    with caplog.at_level(logging.WARNING):
        assert main(["evaluate", "--checkpoint", str(run / "checkpoints" / "best.pt"),
                     "--out", str(tmp_path / "b"), *args]) == 0
    assert "was selected on val and is scored on val: the number is optimistically biased" in caplog.text
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["selection_split"] == "val"


def test_every_format_has_a_standard_split_and_the_workflow_uses_it():
    params = {"data_root": "datasets", "runs_root": "runs", "results_root": "results",
              "evaluate": {"split": "standard", "clips": 1, "crops": 1},
              "datasets": {"a": {"format": "synth"}, "b": {"format": "sljd", "source": "/x/lists"},
                           "c": {"format": "diving48", "source": "/d", "videos": "/d/rgb"},
                           "d": {"format": "sthv2", "source": "/s", "videos": "/s/v"},
                           "e": {"format": "folder", "videos": "/f"}}}
    assert {name: dataset_layout(params, name).standard_split for name in params["datasets"]} == {
        "a": "test", "b": "test", "c": "val", "d": "val", "e": "test"}
    cmd = Commands(params, "params.yaml").evaluate("c", "mienet", "seed0")
    assert "--checkpoint runs/c/mienet/seed0/checkpoints " in cmd and "--split standard" in cmd


def test_split_standard_needs_the_dataset(tmp_path, capsys):
    assert main(["evaluate", "--checkpoint", str(tmp_path), "--annotations", str(tmp_path),
                 "--split", "standard"]) == 2
    assert "--split standard needs --params and --dataset" in capsys.readouterr().err


def test_factor_scores_on_hand_made_predictions():
    design = {"factors": [{"name": "colour", "description": "c"}, {"name": "speed", "description": "s"}],
              "classes": [{"name": n, "levels": {"colour": c, "speed": s}}
                          for n, c, s in (("rf", "red", "fast"), ("rs", "red", "slow"), ("bf", "blue", "fast"))],
              "ceilings": {"tsn": {"top1": 66.6667, "factors": {"colour": 100.0, "speed": 66.6667}}}}
    rows = [{"label": 0, "prediction": 0}, {"label": 0, "prediction": 1},  # right; colour right, speed wrong
            {"label": 1, "prediction": 2}, {"label": 2, "prediction": 1}]  # both wrong; both wrong
    out = score_factors(design, rows, ["rf", "rs", "bf"], "tsn", "design.json")
    assert out["factors"] == {"colour": 50.0, "speed": 25.0}
    assert out["ceiling"]["top1"] == 66.6667 and out["factor_design"] == {"colour": "c", "speed": "s"}
    assert [r["speed_correct"] for r in rows] == [1, 0, 0, 0]
    with pytest.raises(MienetError, match="design.json describes the classes"):
        score_factors(design, rows, ["a", "b", "c"], "tsn", "design.json")


def test_cached_frames_give_identical_items(run_with_test_split):
    """cache_frames decodes each frame once; the items (augmentation included) do not change."""
    import torch

    from mienet.engine.dataset import ClipDataset

    root, _ = run_with_test_split
    kw = dict(root=root, num_segments=3, frames_per_segment=4, size=32, train=True)
    plain = ClipDataset(root / "annotations" / "train.txt", **kw)
    cached = ClipDataset(root / "annotations" / "train.txt", cache_frames=True, **kw)
    for epoch in range(2):  # the second epoch reads from memory
        for i in range(len(plain)):
            a, b = plain[(i, 100 * epoch + i)], cached[(i, 100 * epoch + i)]
            assert torch.equal(a[0], b[0]) and a[1:] == b[1:]
    assert len(cached.cache) == len({p for p in cached.cache}) > 0
