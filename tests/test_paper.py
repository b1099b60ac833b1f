"""The paper path end to end: miniature SLJD, Diving48 and SSv2 copies in their real file formats
through `snakemake reproduce_all --config profile=paper`, `dvc repro` of paper stages, the zoo
on stand-in released checkpoints, and the report with the reported numbers beside the measured ones."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from minidata import build_paper_datasets
from test_workflow import BIN, MICRO_TRAIN, project_copy, run, write_params
from test_zoo import RELEASED_MANIFEST, released_checkpoint

PAPER = ("sljd", "diving48", "sthv2")
TINY = {**MICRO_TRAIN, "segments": 3}  # 3 segments: the released SLJD protocol


@pytest.fixture(scope="module")
def paper(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("paper")
    # One variant: what this file tests is each format's path, and a variant takes the same path
    # in every format (tests/test_workflow.py runs two through the default profile). The
    # efficiency benchmark still times its two ends, TSN and MIE-Net, on each dataset.
    work = project_copy(base, variants=("mienet",), seeds=(0,), vcs=True)
    params = yaml.safe_load((work / "params.yaml").read_text())
    for name, entry in build_paper_datasets(base / "data").items():
        params["datasets"][name].update(entry)
        params["datasets"][name]["train"] = {**TINY, "flip": name != "sthv2"}
        params["datasets"][name]["search"] = {"subset": None}
    # The searches are off here: each is the same rules and command as the default profile's
    # (tests/test_workflow.py runs them); one runs on SLJD's layout below, and the SLURM plan of
    # the paper's searches is checked by the last test.
    params["search"].update(enabled=False, n_trials=1)
    # Released-layout stand-ins (ResNet-50, PAN's names) for two zoo entries, scored at 32 px.
    manifest = json.loads(RELEASED_MANIFEST.read_text())
    for key in ("sljd_mienet", "diving48_mienet"):
        params["zoo"][key]["size"] = 32
        released_checkpoint(work / "pretrained" / params["zoo"][key]["file"], manifest,
                            num_classes=params["zoo"][key]["num_classes"])
    write_params(work, params)  # profile stays `default`: the paper one comes from --config
    run([BIN / "mienet", "generate", "--profile", "paper"], work)  # dvc.yaml for the paper profile
    run([BIN / "snakemake", "--cores", "2", "reproduce_all", "--config", "profile=paper"], work)
    return work


STANDARD = {"sljd": ("test", "val"), "diving48": ("val", "none (last epoch)"),
            "sthv2": ("val", "none (last epoch)")}


def test_the_paper_profile_runs_every_format_to_the_report(paper):
    for name in PAPER:
        ann = paper / "datasets" / name / "annotations"
        assert (ann / "train.txt").read_text().strip() and (ann / "classes.txt").is_file()
        m = json.loads((paper / "results" / name / "mienet" / "seed0" / "metrics.json").read_text())
        assert m["dataset"] == name and m["variant"] == "mienet" and m["test_clips"] >= 1
        # each dataset's protocol: SLJD's test list (best epoch on val); Diving48 and SSv2 report
        # val, scored with the last epoch so that no epoch is chosen on the reported clips
        assert (m["split"], m["selection_split"]) == STANDARD[name], name
        assert "factors" not in m  # no factor design for real datasets
        ablation = (paper / "results" / "tables" / f"ablation_{name}.md").read_text()
        assert "MIE-Net" in ablation and f"scored on `{STANDARD[name][0]}`" in ablation
    # the frames of SLJD are read where its root says, never copied into datasets/
    assert not (paper / "datasets" / "sljd" / "frames").exists()
    # SSv2 came as VP9 .webm files and was decoded into frames
    manifest = (paper / "datasets" / "sthv2" / "frames" / "manifest.csv").read_text()
    assert ".webm" in manifest and "failed" not in manifest
    comparison = {n: (paper / "results" / "tables" / f"comparison_{n}.md").read_text() for n in PAPER}
    assert "94.48" in comparison["sljd"] and "80.2" in comparison["diving48"] and "60.9" in comparison["sthv2"]
    zoo = (paper / "results" / "tables" / "zoo.md").read_text()
    assert "94.48" in zoo and "80.2" in zoo and "not evaluated" in zoo
    assert json.loads((paper / "results" / "zoo" / "sljd_mienet" / "metrics.json").read_text())["top1"] >= 0


def test_dvc_agrees_and_repro_runs_a_paper_stage(paper):
    status = run([BIN / "dvc", "status"], paper)
    assert "up to date" in status.stdout, status.stdout
    for name in PAPER:
        out = run([BIN / "dvc", "repro", "--single-item", "--force", f"make_annotations_{name}"], paper).stdout
        assert f"Running stage 'make_annotations_{name}'" in out
    out = run([BIN / "dvc", "repro", "--single-item", "--force", "evaluate@sljd-mienet-0"], paper).stdout
    assert "Running stage 'evaluate@sljd-mienet-0'" in out
    metrics = run([BIN / "dvc", "metrics", "show", "--json"], paper).stdout
    assert "results/diving48/mienet/seed0/metrics.json" in metrics


def test_train_and_search_find_the_paper_layouts_from_params_alone(paper, tmp_path):
    """No path flag: --params and --dataset are enough for SLJD's separate root."""
    params = paper / ".snakemake" / "mienet" / "params.yaml"
    out = run([BIN / "mienet", "train", "--params", params, "--dataset", "sljd", "--variant", "tsn",
               "--epochs", "1", "--out", tmp_path / "run"], paper)
    assert "best val top-1" in out.stdout
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["root"].endswith("SLJD") and cfg["annotations"] == "datasets/sljd/annotations"
    run([BIN / "mienet", "search", "--params", params, "--dataset", "sljd", "--variant", "mienet",
         "--out", tmp_path / "search", "--trials-dir", tmp_path / "trials", "--no-progress"], paper)
    assert json.loads((tmp_path / "search" / "summary.json").read_text())["finished"] == 1  # n_trials: 1
    (trial,) = (tmp_path / "trials").glob("*/config.json")
    cfg = json.loads(trial.read_text())
    assert cfg["root"].endswith("SLJD") and cfg["annotations"] == "datasets/sljd/annotations"


def test_on_slurm_the_paper_searches_run_as_worker_jobs_after_a_local_weights_fetch(paper, tmp_path):
    """The paper recipes' committed cluster settings (search.jobs, SSv2's gpus, ImageNet weights)
    over the miniature datasets: a dry run of `snakemake --workflow-profile profiles/slurm
    reproduce_all` plans each search as worker jobs and a final step, SSv2's trainings on 2 GPUs,
    and the weights fetched by a local rule (on the submitting node) before any training."""
    from conftest import REPO

    committed = yaml.safe_load((REPO / "params.yaml").read_text())["datasets"]
    overlay = {"search": {"enabled": True},  # off in the fixture's own run
               "datasets": {name: {"search": {"jobs": (committed[name].get("search") or {}).get("jobs", 1)},
                                   "train": {"arch": "resnet18", "pretrained": "imagenet",
                                             "gpus": committed[name]["train"].get("gpus", 1)}}
                            for name in PAPER}}
    (tmp_path / "cluster.yaml").write_text(yaml.safe_dump(overlay))
    proc = run([BIN / "snakemake", "-n", "--workflow-profile", "profiles/slurm", "reproduce_all", "--configfile",
                "params.yaml", tmp_path / "cluster.yaml", "--config", "profile=paper"], paper,
               env_extra={"TORCH_HOME": str(tmp_path / "torch")})
    out = proc.stdout + proc.stderr
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", out[out.index("Job stats"):], re.M))
    jobs = {n: committed[n].get("search", {}).get("jobs", 1) for n in PAPER}
    assert jobs["sthv2"] > 1 and jobs["diving48"] > 1
    assert int(stats["search_worker"]) == sum(k for k in jobs.values() if k > 1), stats
    assert int(stats["fetch_weights"]) == 1  # one backbone: one file, for every dataset
    assert "rule fetch_weights:" in out  # that it runs on the submitting node: tests/test_slurm.py
    weights = str(tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    blocks = out.split("\n\n")
    for block in blocks:
        if re.search(r"^rule (train|train_tuned):", block, re.M):
            assert weights in block, block  # every training waits for the weights
            wants = 2 if "dataset=sthv2" in block else 1
            assert re.search(rf"\bgpu={wants}\b", block), block
        if re.search(r"^rule search:", block, re.M) and "dataset=sljd" not in block:
            assert "--after-workers" in block, block
