"""The Snakemake workflow and the DVC pipeline, really run on a micro synthetic dataset."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from mienet.data.annotations import read_frame_list
from mienet.data.frames import clip_frames

BIN = Path(sys.executable).parent
MICRO_SYNTH = {"classes": 3, "clips_per_class": 3, "frames": 16, "size": 48, "fps": 25, "seed": 0}
MICRO_ANNOTATIONS = {"val_ratio": 0.34, "test_ratio": 0.34, "seed": 0}  # one train, val, test clip per class
MICRO_TRAIN = {"arch": "resnet10", "segments": 2, "frames_per_segment": 4, "size": 32, "epochs": 1,
               "batch_size": 4, "lr": 0.001, "lr_steps": [5], "schedule": "step", "dropout": 0.0,
               "flip": True, "pretrained": "none", "workers": 0}


def project_copy(tmp_path: Path, variants=("tsn", "mienet"), seeds=(0,), vcs=False) -> Path:
    """The workflow files in a scratch folder, shrunk to a micro configuration."""
    work = tmp_path / "project"
    work.mkdir()
    for name in ("Snakefile", "dvc.yaml", "params.yaml", "workflow", "profiles", "src", "pretrained", ".dvcignore"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, work / name)
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["synth"].update(MICRO_SYNTH)
    params["annotations"].update(MICRO_ANNOTATIONS)
    params["datasets"]["synthetic"]["train"] = dict(MICRO_TRAIN)
    params["ablation"] = {"variants": list(variants), "seeds": list(seeds)}
    params["search"].update(variants=["mienet"], n_trials=2)
    params["datasets"]["synthetic"]["search"] = {"subset": None}
    write_params(work, params)
    if vcs:
        run(["git", "init", "-q"], work)
        run([BIN / "dvc", "init", "-q"], work)
    return work


def write_params(work: Path, params: dict) -> None:
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def run(cmd, cwd, check=True, env_extra=None):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **(env_extra or {})}
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n"
                    f"{proc.stderr[-4000:]}")
    return proc


def check_dataset(root: Path) -> None:
    ann = root / "annotations"
    assert (ann / "classes.txt").read_text().count("\n") == 3
    splits = [read_frame_list(ann / f"{split}.txt") for split in ("train", "val", "test")]
    assert [len(s) for s in splits] == [3, 3, 3]  # one clip of each class in each split
    clips = [c for s in splits for c in s]
    assert len({c.path for c in clips}) == 9  # disjoint
    for clip in clips:  # extract.layout: packed, one file per video
        assert (root / f"{clip.path}.frames").is_file() and not (root / clip.path).exists()
        assert clip_frames(root / clip.path) == ("packed", clip.frames) and clip.frames == 16


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory) -> Path:
    """`snakemake reproduce_all` on the micro configuration, in a git + DVC repository."""
    work = project_copy(tmp_path_factory.mktemp("wf"), vcs=True)
    run([BIN / "snakemake", "--cores", "2", "reproduce_all"], work)
    return work


def test_reproduce_all_runs_everything(reproduced):
    work = reproduced
    check_dataset(work / "datasets" / "synthetic")
    for variant in ("tsn", "mienet"):
        metrics = json.loads((work / "results" / "synthetic" / variant / "seed0" / "metrics.json").read_text())
        assert metrics["variant"] == variant and metrics["epochs"] == 1 and metrics["seed"] == 0
        # the protocol: selected on val, reported on test, each factor scored against its ceiling
        assert (metrics["split"], metrics["selection_split"], metrics["clips"]) == ("test", "val", 3)
        assert set(metrics["factors"]) == {"appearance", "motion", "order"} and "top1" in metrics["ceiling"]
        assert (work / "runs" / "synthetic" / variant / "seed0" / "checkpoints" / "best.pt").is_file()
        assert json.loads((work / "results" / "bench" / f"train_synthetic_{variant}.json").read_text())[
            "clips_per_s"] > 0
    table = (work / "results" / "tables" / "ablation_synthetic.md").read_text()
    assert "MIE-Net" in table and "TSN" in table and "95 % CI" in table
    header = (work / "results" / "tables" / "ablation_synthetic.csv").read_text().splitlines()[0].split(",")
    assert {"top1_ci95_low", "top1_ci95_high", "ceiling_top1"} <= set(header)
    effects = (work / "results" / "tables" / "effects_synthetic.csv").read_text().splitlines()
    assert effects[0].startswith("effect,variant_a,variant_b,delta_top1,ci95_low,ci95_high")
    assert any(",mienet,afm," in row for row in effects)
    assert (work / "results" / "README.md").is_file()
    summary = json.loads((work / "results" / "synthetic" / "search" / "mienet" / "summary.json").read_text())
    assert summary["complete"] + summary["pruned"] + summary["failed"] == 2
    tuned = json.loads((work / "results" / "synthetic" / "mienet" / "tuned" / "metrics.json").read_text())
    assert tuned["variant"] == "mienet"
    assert "mienet" in (work / "results" / "tables" / "search.md").read_text()
    assert (work / "results" / "plots" / "ablation_bars_synthetic.png").stat().st_size > 1000
    for rule in ("synth", "extract_frames", "make_annotations"):
        assert (work / "results" / "logs" / "synthetic" / f"{rule}.log").exists()
        assert (work / "results" / "benchmarks" / "synthetic" / f"{rule}.tsv").exists()
    # lock files a run leaves (the search study's flock file stays by design) are ignored by git
    locks = [p.relative_to(work).as_posix() for p in work.rglob("*mienet-lock*") if ".snakemake" not in p.parts]
    assert "results/synthetic/search/mienet/journal.log.mienet-lock" in locks
    for path in locks:
        assert run(["git", "check-ignore", "-q", "--no-index", path], REPO, check=False).returncode == 0, path


def test_second_run_has_nothing_to_do_and_dvc_agrees(reproduced):
    # plain `snakemake reproduce_all`: profiles/default/ supplies --cores
    again = run([BIN / "snakemake", "reproduce_all"], reproduced)
    assert "Nothing to be done" in again.stdout + again.stderr
    status = run([BIN / "dvc", "status"], reproduced)
    assert "up to date" in status.stdout, status.stdout


def test_snakemake_html_report_builds(reproduced):
    proc = run([BIN / "snakemake", "--report", "results/report.html"], reproduced)
    html = reproduced / "results" / "report.html"
    assert html.stat().st_size > 100_000
    assert "Missing metadata" not in proc.stdout + proc.stderr, proc.stderr
    plots = run([BIN / "dvc", "plots", "show"], reproduced)
    made = {p.relative_to(reproduced).as_posix() for p in (reproduced / "dvc_plots").rglob("*") if p.is_file()}
    assert "dvc_plots/index.html" in made, plots.stdout
    for path in ["results/report.html", *sorted(made)]:  # the repository's .gitignore ignores both pages
        assert run(["git", "check-ignore", "-q", "--no-index", path], REPO, check=False).returncode == 0, path


def snakemake_outputs(work: Path) -> set[str]:
    """Every file the Snakemake DAG of reproduce_all produces (from `--summary`)."""
    out = run([BIN / "snakemake", "--summary", "reproduce_all"], work).stdout
    files = {line.split("\t")[0] for line in out.splitlines()[1:] if line.strip()}
    return {f for f in files if "/logs/" not in f and "/benchmarks/" not in f}


def dvc_outputs(work: Path) -> tuple[set[str], set[str]]:
    """(outputs, parameter keys) of every stage in dvc.lock."""
    lock = yaml.safe_load((work / "dvc.lock").read_text())
    outs, params = set(), set()
    for stage in lock["stages"].values():
        outs.update(o["path"] for o in stage.get("outs", []))
        for keys in stage.get("params", {}).values():
            params.update(keys)
    return outs, params


def test_dvc_and_snakemake_describe_one_pipeline(reproduced):
    smk = snakemake_outputs(reproduced)
    dvc, params = dvc_outputs(reproduced)

    def covered(path: str, by: set[str]) -> bool:
        return any(path == p or path.startswith(p.rstrip("/") + "/") or p.startswith(path + "/") for p in by)

    assert [p for p in dvc if not covered(p, smk)] == []
    assert [p for p in smk if not covered(p, dvc)] == []
    # the commands themselves come from one place (mienet.pipeline, through mienet.stages) for both
    rules = "".join(p.read_text() for p in (REPO / "workflow" / "rules").glob("*.smk"))
    assert not re.search(r'"mienet ', rules), "a rule writes a mienet command itself"
    # every stage's shell line runs its pipeline command; the rules' other shell line is the
    # catch-all that refuses other datasets
    from mienet.stages import SHELL

    assert re.match(r"\(\{params\.cmd\}\)", SHELL)
    assert rules.count("shell:") == 2 and rules.count('"false > {log:q}"') == 1


def test_dvc_repro_of_a_single_stage(reproduced):
    params = yaml.safe_load((reproduced / "params.yaml").read_text())
    params["annotations"]["seed"] = 7
    write_params(reproduced, params)
    out = run([BIN / "dvc", "repro", "--single-item", "make_annotations_synthetic"], reproduced).stdout
    assert "Running stage 'make_annotations_synthetic'" in out and "Running stage 'synth" not in out


def test_mistyped_key_and_wrong_type_stop_before_any_job(tmp_path):
    work = project_copy(tmp_path)
    text = (work / "params.yaml").read_text()
    (work / "params.yaml").write_text(text.replace("clips_per_class:", "clips_per_clas:"))
    proc = run([BIN / "snakemake", "--cores", "1", "reproduce_all"], work, check=False)
    assert proc.returncode != 0 and "'clips_per_clas' was unexpected" in proc.stderr + proc.stdout
    (work / "params.yaml").write_text(text.replace("  jobs: 2", "  jobs: two"))
    proc = run([BIN / "snakemake", "--cores", "1", "reproduce_all"], work, check=False)
    assert proc.returncode != 0 and "'two' is not of type 'integer'" in proc.stderr + proc.stdout
    (work / "params.yaml").write_text(text.replace("variants: [tsn, mienet]", "variants: [tsn, mienett]")
                                      .replace("- mienet\n", "- mienett\n"))
    proc = run([BIN / "snakemake", "--cores", "1", "reproduce_all"], work, check=False)
    assert proc.returncode != 0 and "mienett" in proc.stderr + proc.stdout
    assert not (work / "datasets").exists()


def fake_paper_datasets(root: Path, params: dict) -> None:
    """Tiny stand-ins with the right layout for the paper profile's dry run."""
    sljd = root / "SLJD"
    (sljd / "lists").mkdir(parents=True)
    for split in ("train", "val", "test"):
        (sljd / "lists" / f"{split}.txt").write_text("frames/a 10 0\n")
    d48 = root / "diving48"
    (d48 / "rgb").mkdir(parents=True)
    ssv2 = root / "sthv2"
    (ssv2 / "videos").mkdir(parents=True)
    ds = params["datasets"]
    ds["sljd"].update(source=str(sljd / "lists"), root=str(sljd))
    ds["diving48"].update(source=str(d48), videos=str(d48 / "rgb"))
    ds["sthv2"].update(source=str(ssv2), videos=str(ssv2 / "videos"))


def test_dry_runs_of_the_default_and_paper_profiles(tmp_path):
    work = project_copy(tmp_path, variants=("tsn", "dptam", "pa", "naive_fusion", "afm", "mienet"),
                        seeds=(0, 1, 2))
    default = run([BIN / "snakemake", "-n", "reproduce_all", "--quiet", "rules"], work).stdout
    assert re.search(r"train\s+18\b", default) and re.search(r"evaluate\s+19\b", default)
    assert re.search(r"search\s+1\b", default) and re.search(r"train_tuned\s+1\b", default)
    params = yaml.safe_load((work / "params.yaml").read_text())
    fake_paper_datasets(tmp_path, params)
    params["profile"] = "paper"
    write_params(work, params)
    paper = run([BIN / "snakemake", "-n", "reproduce_all", "--quiet", "rules"], work).stdout
    assert re.search(r"train\s+54\b", paper)  # 3 datasets x 6 variants x 3 seeds
    assert re.search(r"extract_frames\s+2\b", paper)  # Diving48 and SSv2; SLJD comes as frames
    assert "synth" not in paper


def test_slurm_profile_parses_and_dry_runs(tmp_path):
    work = project_copy(tmp_path)
    profile = yaml.safe_load((work / "profiles" / "slurm" / "profile.yaml").read_text())
    assert profile["executor"] == "slurm" and profile["slurm-status-command"] == "squeue"
    assert profile["set-resources"]["train"]["slurm_partition"] == "gpu"
    # the plugin refuses GPU (and other managed) options in slurm_extra: GPUs are the `gpu` resource
    assert not any("slurm_extra" in r for r in profile["set-resources"].values())
    proc = run([BIN / "snakemake", "-n", "--workflow-profile", "slurm", "reproduce_all"], work)
    assert "rule train:" in proc.stdout and "gpu=1" in proc.stdout and "slurm_partition=gpu" in proc.stdout
    # the real cluster: tests/test_slurm.py


def test_snakemake_lint_has_nothing_to_report(tmp_path):
    work = project_copy(tmp_path)
    proc = run([BIN / "snakemake", "--lint"], work)
    assert "Lints for" not in proc.stdout + proc.stderr
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr


def test_every_rule_names_the_conda_environment_of_the_project():
    """workflow/envs/mienet.yaml is environment.yml itself, and its post-deploy script installs mienet."""
    env = REPO / "workflow" / "envs" / "mienet.yaml"
    assert env.resolve() == (REPO / "environment.yml").resolve()
    deploy = (REPO / "workflow" / "envs" / "mienet.post-deploy.sh").read_text()
    assert "pip install" in deploy and "-e ." in deploy
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        text = smk.read_text()
        assert text.count("\n    shell:\n") == text.count("\n    conda:\n        MIENET_ENV\n"), smk.name


def test_config_overrides_reach_the_search_and_the_tuned_training(tmp_path):
    """`--configfile` (nested keys) and `--config key=value` reach every rule: the search and the
    tuned training read the merged configuration, not params.yaml from disk."""
    work = project_copy(tmp_path, variants=("tsn",))
    (work / "over.yaml").write_text(yaml.safe_dump({"search": {"n_trials": 1},
                                                    "datasets": {"synthetic": {"train": {"epochs": 2}}}}))
    run([BIN / "snakemake", "--cores", "2", "results/synthetic/mienet/tuned/metrics.json",
         "--configfile", "over.yaml", "--config", "runs_root=runs2"], work)
    summary = json.loads((work / "results" / "synthetic" / "search" / "mienet" / "summary.json").read_text())
    assert summary["n_trials"] == 1 and summary["finished"] == 1
    trial_configs = list((work / "runs2" / "synthetic" / "search" / "mienet").glob("*/config.json"))
    assert trial_configs and all(json.loads(p.read_text())["epochs"] == 2 for p in trial_configs)
    tuned = json.loads((work / "runs2" / "synthetic" / "mienet" / "tuned" / "config.json").read_text())
    assert tuned["epochs"] == 2
    assert not (work / "runs").exists()
    assert yaml.safe_load((work / "params.yaml").read_text())["datasets"]["synthetic"]["train"]["epochs"] == 1


def test_the_repository_stands_alone():
    """Nothing tracked reads the folder beside the checkout (a user's clone has none)."""
    tracked = run(["git", "ls-files"], REPO).stdout.split()
    offenders = [f for f in tracked if f.endswith((".py", ".smk", ".sh", ".yaml", ".yml", ".md", ".toml"))
                 or f in ("Makefile", "Snakefile", ".ci/run")]
    hits = [f for f in offenders if (REPO / f).is_file() and f != "tests/test_workflow.py" and
            any(s in (REPO / f).read_text(errors="replace") for s in ("../shared", "MIENET_SHARED"))]
    assert hits == [], f"files that read ../shared: {hits}"


def test_generate_parks_lock_entries_of_stages_that_are_gone_and_restores_them(reproduced):
    """A stage renamed away, and a profile switched and back (the probe: 50 entries were lost):
    dvc.lock keeps the current stages only, and the pipeline is up to date again after the switch."""
    lock = reproduced / "dvc.lock"
    status_before = run([BIN / "dvc", "status"], reproduced).stdout  # earlier tests may have changed data
    data = yaml.safe_load(lock.read_text())
    before = dict(data["stages"])
    data["stages"]["train@tsn-0"] = dict(next(iter(data["stages"].values())))  # an old stage name
    lock.write_text(yaml.safe_dump(data, sort_keys=False))
    out = run([BIN / "mienet", "generate"], reproduced).stdout
    assert "parked 1 stage(s) of dvc.lock" in out
    assert "train@tsn-0" not in yaml.safe_load(lock.read_text())["stages"]
    run([BIN / "dvc", "status"], reproduced)  # DVC reads the pruned lock
    out = run([BIN / "mienet", "generate", "--profile", "paper"], reproduced).stdout
    shared = {"report", "zoo"}  # the stages both profiles have stay
    assert f"parked {len(set(before) - shared)} stage(s)" in out
    assert set(before) & set(yaml.safe_load(lock.read_text())["stages"]) == shared
    out = run([BIN / "mienet", "generate"], reproduced).stdout
    assert f"restored {len(set(before) - shared)} stage(s) of dvc.lock" in out
    assert yaml.safe_load(lock.read_text())["stages"] == before
    assert run([BIN / "dvc", "status"], reproduced).stdout == status_before  # nothing more to re-run
