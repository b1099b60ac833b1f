"""``mienet zoo``: stand-in checkpoints with the released layout, evaluated against reported numbers."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml

from conftest import REPO, RELEASED_MANIFEST, make_synthetic_dataset
from mienet.cli import main
from mienet.errors import MienetError
from mienet.zoo import run_zoo


def released_checkpoint(path: Path, manifest: dict, num_classes: int, seed: int = 0,
                        rename: dict[str, str] | None = None) -> Path:
    """A ``.pth.tar`` with exactly the released layout (manifest names and shapes, ``module.``
    prefix, epoch/arch/state_dict/optimizer/best_prec1), the classifier resized to ``num_classes``."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in manifest["entries"]:
        if name.startswith("new_fc."):
            shape = [num_classes, *shape[1:]]
        if name.endswith("num_batches_tracked"):
            value = torch.tensor(100)
        elif name.endswith("running_var"):
            value = torch.ones(shape)
        else:
            value = 0.05 * torch.randn(shape, generator=g)
        state[f"module.{(rename or {}).get(name, name)}"] = value
    optimizer = {"state": {}, "param_groups": [{"lr": 0.0025, "momentum": 0.9, "dampening": 0,
                                                "weight_decay": 1e-4, "nesterov": False, "params": [0]}]}
    torch.save({"epoch": 42, "arch": "resnet50", "state_dict": state, "optimizer": optimizer,
                "best_prec1": 94.48}, path)
    return path


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads(RELEASED_MANIFEST.read_text())


@pytest.fixture(scope="module")
def zoo_setup(tmp_path_factory, manifest):
    """A 3-class stand-in for SLJD (so that the reported SLJD numbers apply), a stand-in checkpoint,
    an entry whose file is absent and one whose dataset is absent."""
    base = tmp_path_factory.mktemp("zoo")
    make_synthetic_dataset(base / "datasets" / "sljd", clips_per_class=2, frames=16, size=40)
    (base / "pretrained").mkdir()
    released_checkpoint(base / "pretrained" / "sljd_mienet.pth.tar", manifest, num_classes=3)
    entry = {"dataset": "sljd", "variant": "mienet", "arch": "resnet50", "segments": 3,
             "num_classes": 3, "size": 32}
    zoo = {  # no reported numbers here: they come from mienet.registry.published
        "sljd_mienet": {**entry, "file": "sljd_mienet.pth.tar"},
        "sljd_absent": {**entry, "file": "absent.pth.tar"},
        "diving48_mienet": {**entry, "dataset": "diving48", "num_classes": 48, "file": "sljd_mienet.pth.tar"},
    }
    params = base / "params.yaml"
    params.write_text(yaml.safe_dump({"data_root": str(base / "datasets"), "zoo": zoo}))
    return base, params


def test_zoo_evaluates_present_checkpoints_and_skips_absent_ones(zoo_setup, capsys):
    base, params = zoo_setup
    rc = main(["zoo", "--params", str(params), "--pretrained-dir", str(base / "pretrained"),
               "--results", str(base / "results"), "--no-progress", "--batch-size", "4"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "zoo sljd_absent: not evaluated: checkpoint" in out and "absent.pth.tar" in out
    assert "README" in out
    assert "zoo diving48_mienet: not evaluated: dataset diving48 is missing" in out and "val.txt" in out

    m = json.loads((base / "results" / "zoo" / "sljd_mienet" / "metrics.json").read_text())
    # the reported numbers of the one table (mienet.registry.published), by dataset and variant
    assert m["source"] == "released" and m["reported_top1"] == 94.48 and m["reported_top5"] == 99.65
    assert m["views"] == 1 and m["segments"] == 3 and m["variant"] == "mienet" and m["clips"] >= 3
    for key in ("top1", "top5", "mean_class_acc", "params_m", "gflops", "split", "checkpoint"):
        assert key in m
    assert m["top5"] == 100.0  # 3 classes: the true one is always in the top 5

    rows = {r["checkpoint"]: r for r in csv.DictReader(open(base / "results" / "tables" / "zoo.csv"))}
    assert set(rows) == {"sljd_mienet", "sljd_absent", "diving48_mienet"}
    ok = rows["sljd_mienet"]
    assert ok["status"] == "evaluated" and ok["reported_top1"] == "94.48"
    assert float(ok["measured_top1"]) == pytest.approx(m["top1"], abs=0.01)
    assert float(ok["diff_top1"]) == pytest.approx(m["top1"] - 94.48, abs=0.01)
    assert rows["sljd_absent"]["status"] == "not evaluated" and rows["sljd_absent"]["measured_top1"] == ""
    assert rows["diving48_mienet"]["reported_top1"] == "80.20"
    md = (base / "results" / "tables" / "zoo.md").read_text()
    assert "94.48" in md and "not evaluated" in md and f"{m['top1']:.2f}" in md
    tex = (base / "results" / "tables" / "zoo.tex").read_text()
    assert "\\toprule" in tex and "sljd\\_mienet" in tex
    print(md)  # the example table for the closing note (pytest -s)


def test_a_mismatched_checkpoint_names_the_keys_and_the_closest_variant(zoo_setup, manifest, capsys):
    base, params = zoo_setup
    bad = "base_model.layer1.0.net.conv1.weight"
    released_checkpoint(base / "pretrained" / "odd.pth.tar", manifest, num_classes=3,
                        rename={bad: bad + "_renamed"})
    data = yaml.safe_load(params.read_text())
    data["zoo"]["odd"] = {**data["zoo"]["sljd_mienet"], "file": "odd.pth.tar",
                          "variant": "fusion_dptam"}
    odd_params = base / "odd_params.yaml"
    odd_params.write_text(yaml.safe_dump(data))
    with pytest.raises(MienetError) as err:
        run_zoo(odd_params, base / "pretrained", base / "results_odd", only=["odd"], echo=lambda s: None)
    msg = str(err.value)
    assert "fits no variant; the closest is 'mienet'" in msg and bad in msg and bad + "_renamed" in msg
    assert "does not fit variant 'fusion_dptam'" in msg
    rows = list(csv.DictReader(open(base / "results_odd" / "tables" / "zoo.csv")))
    assert rows[0]["status"].startswith("error")
    # the command line: error message, exit code 2
    rc = main(["zoo", "--params", str(odd_params), "--pretrained-dir", str(base / "pretrained"),
               "--results", str(base / "results_odd"), "--only", "odd"])
    assert rc == 2 and "closest is 'mienet'" in capsys.readouterr().err


def test_a_released_file_of_another_variant_names_the_one_it_fits(zoo_setup):
    base, params = zoo_setup
    data = yaml.safe_load(params.read_text())
    data["zoo"]["wrong_variant"] = {**data["zoo"]["sljd_mienet"], "variant": "fusion_dptam"}
    wrong = base / "wrong_params.yaml"
    wrong.write_text(yaml.safe_dump(data))
    with pytest.raises(MienetError) as err:
        run_zoo(wrong, base / "pretrained", base / "results_wrong", only=["wrong_variant"],
                echo=lambda s: None)
    msg = str(err.value)
    assert "does not fit variant 'fusion_dptam'" in msg and "1 unexpected: w" in msg
    assert "fits variant 'mienet' exactly" in msg


def test_the_snakemake_zoo_target_fills_the_table(tmp_path, manifest):
    from test_workflow import BIN, project_copy, run

    work = project_copy(tmp_path)
    make_synthetic_dataset(work / "datasets" / "synthetic", clips_per_class=2, frames=16, size=40)
    (work / "pretrained").mkdir(exist_ok=True)
    released_checkpoint(work / "pretrained" / "stand_in.pth.tar", manifest, num_classes=3)
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["zoo"] = {
        "synthetic_mienet": {"dataset": "synthetic", "variant": "mienet", "arch": "resnet50", "segments": 3,
                             "num_classes": 3, "size": 32, "file": "stand_in.pth.tar"},
        "sthv2_mienet": {"dataset": "sthv2", "variant": "mienet", "arch": "resnet50", "segments": 8,
                         "num_classes": 174, "file": "sthv2_mienet.pth.tar"},
    }
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run([BIN / "snakemake", "--cores", "2", "zoo"], work)
    rows = {r["checkpoint"]: r for r in csv.DictReader(open(work / "results" / "tables" / "zoo.csv"))}
    assert rows["synthetic_mienet"]["status"] == "evaluated" and rows["synthetic_mienet"]["measured_top1"] != ""
    assert rows["sthv2_mienet"]["status"] == "not evaluated"
    log = (work / "results" / "logs" / "zoo.log").read_text()
    assert "sthv2_mienet.pth.tar" in log


def test_predict_with_a_released_checkpoint_prints_the_dataset_class_names(tmp_path, manifest, capsys):
    """An 8-segment Diving48 stand-in: the released layout with 48 classes."""
    from conftest import FIXTURE_VIDEOS

    released_checkpoint(tmp_path / "d48.pth.tar", manifest, num_classes=48)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"data_root": str(tmp_path / "datasets"), "zoo": {
        "diving48_mienet": {"dataset": "diving48", "variant": "mienet", "arch": "resnet50", "segments": 8,
                            "num_classes": 48, "size": 32, "file": "d48.pth.tar"}}}))
    assert main(["predict", str(FIXTURE_VIDEOS / "part_0.mp4"), "--checkpoint", str(tmp_path / "d48.pth.tar"),
                 "--zoo", "diving48_mienet", "--params", str(params), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    names = [p["class"] for p in result["predictions"]]
    assert len(names) == 5 and all("+" in n for n in names)  # Diving48's class names, e.g. Back+15som+05Twis+FREE
    assert main(["predict", str(FIXTURE_VIDEOS / "part_0.mp4"), "--checkpoint", str(tmp_path / "d48.pth.tar"),
                 "--zoo", "nope", "--params", str(params)]) == 2
    assert "no zoo entry 'nope'" in capsys.readouterr().err


def test_the_loader_builds_a_released_model_from_its_entry(zoo_setup):
    from mienet.engine.loading import load_model

    base, _ = zoo_setup
    entry = {"dataset": "synthetic", "variant": "mienet", "arch": "resnet50", "segments": 3, "num_classes": 3,
             "size": 32, "file": "synthetic_mienet.pth.tar"}
    loaded = load_model(base / "pretrained" / "sljd_mienet.pth.tar", zoo_entry=entry, name="s")
    assert not loaded.model.training
    assert loaded.config == {"dataset": "synthetic", "variant": "mienet", "arch": "resnet50", "segments": 3,
                             "frames_per_segment": 4, "size": 32, "num_classes": 3,
                             "template": "img_{:05d}.jpg", "seed": None, "epochs": None}
    assert loaded.classes == ["class_00", "class_01", "class_02"]
    assert loaded.meta["source"] == "released" and loaded.meta["epoch"] == 42
    assert loaded.meta["best_prec1"] == 94.48
    with pytest.raises(MienetError, match="zoo entry 's' has 3 classes, the class list given has 2"):
        load_model(base / "pretrained" / "sljd_mienet.pth.tar", zoo_entry=entry, classes=["a", "b"], name="s")
    with pytest.raises(MienetError, match="not a checkpoint written by `mienet train`"):
        load_model(base / "pretrained" / "sljd_mienet.pth.tar")  # no entry: a training checkpoint expected


def test_the_committed_zoo_table_is_what_the_zoo_writes_now(tmp_path):
    """results/tables/zoo.* as `mienet zoo` writes them from the committed params.yaml and no
    checkpoint (the committed pretrained/ has none; an empty folder here, so that a developer's
    downloaded ones do not count): a table committed before a change of its format is stale,
    and a fresh clone's Snakemake would not remake it (its inputs are not newer)."""
    lines = []
    (tmp_path / "pretrained").mkdir()
    run_zoo(REPO / "params.yaml", tmp_path / "pretrained", tmp_path, echo=lines.append)
    assert all("not evaluated" in line for line in lines[:-1]), lines
    for suffix in ("md", "tex", "csv"):
        rel = f"results/tables/zoo.{suffix}"
        assert (tmp_path / "tables" / f"zoo.{suffix}").read_bytes() == (REPO / rel).read_bytes(), \
            f"{rel} is not what `mienet zoo` writes now: run `dvc repro zoo` and commit it with dvc.lock"
