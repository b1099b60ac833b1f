"""No setting reaches a shell unquoted: names are refused, paths travel as one shell word.

Every string setting that ends up in a command (dataset, profile, zoo and study names; the
data, runs and results roots; a dataset's source, root, videos and class list) is tried with
shell metacharacters, through the real Snakemake rules, the real DVC pipeline (its own
templating) and bash. A payload that got through would create the file PWNED.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from mienet.config import schema_errors
from mienet.layout import SYNTH_DONE
from mienet.pipeline import Commands
from mienet.stages import dvc_yaml_text
from test_workflow import BIN, MICRO_SYNTH, project_copy, run, write_params

PAYLOADS = {
    "semicolon": ";touch PWNED;",
    "subshell": "$(touch PWNED)",
    "backticks": "`touch PWNED`",
    "variable": "${HOME}",
    "newline": "\ntouch PWNED\n",
    "single quote": "'; touch PWNED; '",
    "double quote": '"; touch PWNED; "',
}
# Paths may hold any character but '{' and '}' (refused: Snakemake wildcards, DVC variables),
# so their variable payload is the brace-less form.
PATH_PAYLOADS = {**PAYLOADS, "variable": "$HOME"}
PATH_KEYS = ("data_root", "runs_root", "results_root")
DATASET_PATH_KEYS = {"sljd": ("source", "root", "classes"), "diving48": ("source", "videos", "classes"),
                     "sthv2": ("source", "videos", "classes")}


def params_of() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def with_paths(payload: str) -> dict:
    """params.yaml with every path setting carrying ``payload`` (the paper profile's datasets too)."""
    params = params_of()
    for key in PATH_KEYS:
        params[key] = f"{key}{payload}x"
    for name, keys in DATASET_PATH_KEYS.items():
        for key in keys:
            params["datasets"][name][key] = f"/data/{name}-{key}{payload}x"
    params["datasets"]["synthetic"]["classes"] = f"classes{payload}.txt"
    return params


def run_recorded(cmd: str, cwd: Path) -> list[list[str]]:
    """Run ``cmd`` in bash with ``mienet`` standing for a recorder of its arguments; returns the
    argument list of every call."""
    record = cwd / "argv.bin"
    record.unlink(missing_ok=True)
    script = f'mienet() {{ printf "%s\\0" "$@" >> {record}; printf "\\1" >> {record}; }}\n{cmd}\n'
    subprocess.run(["bash", "-c", script], cwd=cwd, capture_output=True, text=True)
    if not record.is_file():
        return []
    calls = record.read_bytes().decode().split("\x01")[:-1]
    return [c.split("\0")[:-1] for c in calls]


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def every_command(cmd: Commands) -> dict[str, str]:
    out = {}
    for d in cmd.params["profiles"]["paper"] + ["synthetic"]:
        lay = cmd.layout(d)
        if lay.format == "synth":
            out[f"synth {d}"] = cmd.synth(d, 2)
        if lay.extracted:
            out[f"extract_frames {d}"] = cmd.extract_frames(d, 2)
        out[f"make_annotations {d}"] = cmd.make_annotations(d)
        out[f"train {d}"] = cmd.train(d, "mienet", 0, 2)
        out[f"train_tuned {d}"] = cmd.train_tuned(d, "mienet", 2)
        out[f"evaluate {d}"] = cmd.evaluate(d, "mienet", "seed0")
        out[f"search {d}"] = cmd.search(d, "mienet", 2)
        out[f"bench_train {d}"] = cmd.bench_train(d, "tsn", 2, cmd.params["datasets"][d]["train"])
    out["report"] = cmd.report(["synthetic", "sljd"])
    out["zoo"] = cmd.zoo()
    return out


# --------------------------------------------------------------------------- names


NAME_PLACES = {
    "a dataset": lambda p, bad: p["datasets"].__setitem__(bad, p["datasets"]["synthetic"]),
    "a profile": lambda p, bad: p["profiles"].__setitem__(bad, ["synthetic"]),
    "a profile's dataset": lambda p, bad: p["profiles"].__setitem__("default", [bad]),
    "the active profile": lambda p, bad: p.__setitem__("profile", bad),
    "a zoo entry": lambda p, bad: p["zoo"].__setitem__(bad, p["zoo"]["sljd_dptam"]),
    "a zoo entry's dataset": lambda p, bad: p["zoo"]["sljd_dptam"].__setitem__("dataset", bad),
    "the study name": lambda p, bad: p["search"].__setitem__("study_name", bad),
}


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
@pytest.mark.parametrize("place", NAME_PLACES)
def test_a_name_with_metacharacters_is_refused_by_the_schema(place, payload):
    params = params_of()
    NAME_PLACES[place](params, f"x{payload}y")
    errors = schema_errors(params)
    assert errors and any("does not match" in e and "a name: lower-case letters" in e for e in errors), errors


def test_good_names_pass():
    params = params_of()
    params["datasets"]["my-data_2"] = params["datasets"]["synthetic"]
    params["profiles"]["mine"] = ["my-data_2"]
    params["search"]["study_name"] = "sljd-mienet-v2"
    assert schema_errors(params) == []


def test_snakemake_and_generate_refuse_a_dataset_named_with_a_command(tmp_path):
    """The probe: a dataset renamed `x;touch PWNED;y` and listed in the profile, through a
    --configfile handed to a colleague. Nothing runs and nothing is created."""
    work = project_copy(tmp_path)
    params = yaml.safe_load((work / "params.yaml").read_text())
    bad = "x;touch PWNED;y"
    params["datasets"][bad] = params["datasets"].pop("synthetic")
    params["profiles"]["default"] = [bad]
    write_params(work, params)
    dvc_before = (work / "dvc.yaml").read_text()
    proc = run([BIN / "snakemake", "--cores", "1", "data"], work, check=False)
    assert proc.returncode != 0
    assert "datasets: 'x;touch PWNED;y' does not match" in proc.stderr + proc.stdout
    proc = run([BIN / "mienet", "generate"], work, check=False)
    assert proc.returncode != 0 and "does not match" in proc.stderr
    assert (work / "dvc.yaml").read_text() == dvc_before
    proc = run([BIN / "snakemake", "--cores", "1", "data", "--config", "profile=a;touch PWNED"], work, check=False)
    assert proc.returncode != 0
    assert not list(work.rglob("PWNED")) and not (work / "datasets").exists()


# --------------------------------------------------------------------------- paths


def test_a_path_with_braces_is_refused_by_the_schema():
    """`${HOME}` would be a Snakemake wildcard and a DVC variable: refused, with the reason."""
    errors = schema_errors(with_paths("${HOME}"))
    places = {e.split(": ")[1] for e in errors}
    assert {"data_root", "runs_root", "results_root", "datasets.synthetic.classes",
            "datasets.sljd.source", "datasets.diving48.videos", "datasets.sthv2.classes"} <= places, errors
    assert all("without '{' or '}'" in e for e in errors), errors


@pytest.mark.parametrize("payload", PATH_PAYLOADS.values(), ids=PATH_PAYLOADS.keys())
def test_every_snakemake_command_gets_each_path_as_one_word(tmp_path, payload):
    params = with_paths(payload)
    cmd = Commands(params, f"params{payload}.yaml")
    (tmp_path / params["results_root"] / "bench").mkdir(parents=True)  # bench_train's redirect
    for stage, line in every_command(cmd).items():
        calls = run_recorded(line, tmp_path)
        assert not (tmp_path / "PWNED").exists(), f"{stage}: {line!r} ran the payload"
        assert len(calls) == 1, f"{stage}: {line!r} gave {calls}"
        argv = calls[0]
        if "--params" in argv:
            assert option(argv, "--params") == f"params{payload}.yaml", stage
        if "--out" in argv:
            assert option(argv, "--out").startswith(params["results_root" if "evaluate" in stage
                                                           or "search" in stage else "runs_root"]), stage
        if stage.startswith(("synth", "extract_frames")):
            assert argv[1].startswith(params["data_root"]) or argv[1].startswith("/data/"), stage
        if stage.startswith("make_annotations") and "--source" in argv:
            assert option(argv, "--source") == params["datasets"][stage.split()[1]]["source"], stage
        if stage.startswith("make_annotations") and "--classes" in argv:
            assert option(argv, "--classes") == params["datasets"][stage.split()[1]]["classes"], stage


def dvc_commands(tmp_path: Path, params: dict) -> dict[str, str]:
    """The commands DVC itself resolves from the generated dvc.yaml (its templating included)."""
    from dvc.repo import Repo

    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run([BIN / "dvc", "init", "-q"], cwd=repo, check=True)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (repo / "dvc.yaml").write_text(dvc_yaml_text(params))
    with Repo(str(repo)) as dvc:
        return {stage.name: stage.cmd for stage in dvc.index.stages}


@pytest.mark.parametrize("payload", PATH_PAYLOADS.values(), ids=PATH_PAYLOADS.keys())
@pytest.mark.parametrize("profile", ["default", "paper"])
def test_every_dvc_command_gets_each_path_as_one_word(tmp_path, payload, profile):
    params = {**with_paths(payload), "profile": profile}
    params["ablation"] = {"variants": ["tsn", "mienet"], "seeds": [0]}
    commands = dvc_commands(tmp_path, params)
    assert any(name.startswith("train@") for name in commands)
    work = tmp_path / "work"
    (work / params["results_root"] / "bench").mkdir(parents=True)
    for stage, line in commands.items():
        calls = run_recorded(line, work)
        assert not (work / "PWNED").exists(), f"{stage}: {line!r} ran the payload"
        assert len(calls) == 1, f"{stage}: {line!r} gave {calls}"
        argv = calls[0]
        if stage.startswith("train@"):
            dataset, variant, seed = stage.removeprefix("train@").rsplit("-", 2)
            assert option(argv, "--dataset") == dataset
            assert option(argv, "--out") == f"{params['runs_root']}/{dataset}/{variant}/seed{seed}"
        if stage.startswith("report"):
            assert option(argv, "--results") == params["results_root"]


def test_snakemake_and_dvc_run_a_real_stage_under_hostile_paths(tmp_path):
    """The synth stage for real, with its log, benchmark and outputs under roots full of
    metacharacters: the files land in the folders so named, and no payload runs."""
    work = project_copy(tmp_path, vcs=True)
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["data_root"] = "data;touch PWNED;$(touch PWNED)"
    params["results_root"] = "results`touch PWNED`$HOME'\""
    params["synth"].update({**MICRO_SYNTH, "classes": 2, "clips_per_class": 1})
    write_params(work, params)
    done = f"{params['data_root']}/synthetic/videos/{SYNTH_DONE}"
    run([BIN / "snakemake", "--cores", "1", done], work)
    assert (work / done).is_file()
    assert (work / params["results_root"] / "logs" / "synthetic" / "synth.log").is_file()
    assert not list(work.rglob("PWNED"))
    run([BIN / "mienet", "generate"], work)
    (work / params["data_root"]).rename(work / "elsewhere")
    out = run([BIN / "dvc", "repro", "--single-item", "synth_synthetic"], work).stdout
    assert "Running stage 'synth_synthetic'" in out
    assert (work / done).is_file() and not list(work.rglob("PWNED"))
    assert not Path(os.environ.get("HOME", "/root"), "PWNED").exists()


def test_every_shell_line_of_the_rules_quotes_its_paths():
    """{log}, {input}, {output} and {params.*} other than a ready-made command take :q, in the
    stage specs' shell lines (mienet.stages) and in any shell line of the rules."""
    import re

    from mienet.stages import SHELL

    lines = [("mienet.stages.SHELL", 1, f'"{SHELL}"')]
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        lines += [(smk.name, n, line) for n, line in enumerate(smk.read_text().splitlines(), 1)]
    for where, lineno, line in lines:
        for field in re.findall(r"\{(log|input|output|params\.\w+)(:q)?[^}]*\}", line):
            name, quoted = field
            if name == "params.cmd":  # built by mienet.pipeline.Commands, quoted word by word
                continue
            if '"' in line:  # inside a shell string
                assert quoted, f"{where}:{lineno}: {{{name}}} reaches the shell unquoted"


@pytest.mark.parametrize("argv", [
    ["train", "--dataset"], ["evaluate", "--dataset"], ["search", "--dataset"], ["search", "--study-name"],
    ["report", "--datasets"], ["generate", "--profile"], ["sizing", "--profile"],
], ids=lambda a: " ".join(a))
def test_a_name_on_the_command_line_is_refused_too(argv, capsys):
    """A name given as an option becomes a folder and a stage name as one from params.yaml does."""
    from mienet.cli import main

    with pytest.raises(SystemExit) as exit_:
        main([*argv, "x;touch PWNED;y"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"error: argument {argv[1]}: 'x;touch PWNED;y' is not a name (lower-case letters" in err
