"""One fact, one place: the typed configuration model, the generated files, the dataset layout."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from mienet.config import TRAIN_DEFAULTS, TUNABLE, load_params, params_schema, schema_errors
from mienet.errors import MienetError
from mienet.layout import dataset_layout
from mienet.registry.variants import VARIANTS

BIN = Path(sys.executable).parent


def test_generated_schema_and_dvc_yaml_are_current():
    """workflow/schemas/params.schema.yaml and dvc.yaml are what `mienet generate` writes."""
    proc = subprocess.run([BIN / "mienet", "generate", "--check"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_generate_check_names_a_stale_file(tmp_path):
    for name in ("params.yaml",):
        (tmp_path / name).write_text((REPO / name).read_text())
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    proc = subprocess.run([BIN / "mienet", "generate", "--check", "--root", str(tmp_path), "--params",
                           str(tmp_path / "params.yaml")], capture_output=True, text=True)
    assert proc.returncode == 1 and "dvc.yaml" in proc.stderr and "mienet generate" in proc.stderr


def test_schema_names_come_from_the_model():
    schema = params_schema()
    assert schema["$defs"]["variant"]["enum"] == list(VARIANTS)
    assert set(schema["$defs"]["tunable"]["enum"]) == set(TUNABLE)
    recipe = schema["$defs"]["recipe"]["properties"]
    assert recipe["dropout"]["exclusiveMaximum"] == 1 and "seed" not in recipe
    assert schema["properties"]["synth"]["$ref"] == "#/$defs/synth"


def test_one_default_for_the_model_and_the_trainer():
    import inspect

    from mienet.models import build_model

    sig = inspect.signature(build_model).parameters
    assert sig["dropout"].default == TRAIN_DEFAULTS.dropout
    assert sig["frames_per_segment"].default == TRAIN_DEFAULTS.frames_per_segment
    from mienet.data import synth, synth_design
    from mienet.config import SYNTH_CLASSES, SYNTH_DEFAULTS
    assert (synth.DEFAULT_CLASSES, synth.DEFAULT_FRAMES, synth.MIN_FRAMES) == (
        SYNTH_DEFAULTS.classes, SYNTH_DEFAULTS.frames, 16)
    assert len(synth_design.CLASS_LEVELS) == SYNTH_CLASSES


def _source_files():
    for base in ("src", "workflow"):
        for path in (REPO / base).rglob("*"):
            if path.is_file() and path.suffix in (".py", ".smk", ".yaml", ".sh") and "schemas" not in path.parts:
                yield path
    yield REPO / "Snakefile"
    yield REPO / "params.yaml"


def test_facts_are_written_once():
    """The variant list and the reported numbers each live in one file."""
    variant_list = re.compile(r"tsn\W+dptam\W+pa\W+naive_fusion")
    hits = [p.relative_to(REPO) for p in _source_files()
            if p.name != "params.yaml" and variant_list.search(p.read_text())]  # params.yaml: a choice
    assert hits == [], f"variant list written out in {hits}; import mienet.models.VARIANTS"
    for number in ("94.48", "90.69", "77.61", "98.17", "86.9"):
        hits = [str(p.relative_to(REPO)) for p in _source_files() if number in p.read_text()]
        assert hits == ["src/mienet/registry/published.py"], (number, hits)


def test_yaml_number_trap_gets_a_hint():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["datasets"]["synthetic"]["train"]["lr"] = "1e-3"  # what PyYAML makes of `lr: 1e-3`
    errors = schema_errors(params)
    assert len(errors) == 1 and "datasets.synthetic.train.lr" in errors[0] and "1.0e-3" in errors[0]


def test_load_params_names_file_line_and_key(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("profile: default\nprofiles: [\n")
    with pytest.raises(MienetError, match=r"p.yaml, line \d+"):
        load_params(bad)
    bad.write_text((REPO / "params.yaml").read_text().replace("  jobs: 2", "  jobs: two"))
    with pytest.raises(MienetError, match=r"extract.jobs: 'two' is not of type 'integer'"):
        load_params(bad)


def test_dataset_layouts():
    params = {"data_root": "data", "datasets": {
        "sljd": {"format": "sljd", "source": "/d/SLJD/lists"},
        "sljd2": {"format": "sljd", "source": "/d/SLJD/lists", "root": "/e/frames"},
        "d48": {"format": "diving48", "source": "/d/D48", "videos": "/d/D48/rgb"},
        "syn": {"format": "synth"},
        "bad": {"format": "sthv2", "source": "/s"}}}
    sljd = dataset_layout(params, "sljd")
    assert (sljd.root, sljd.frames, sljd.annotations, sljd.extracted) == ("/d/SLJD", "/d/SLJD", "data/sljd/annotations",
                                                                          False)
    assert dataset_layout(params, "sljd2").root == "/e/frames"
    d48 = dataset_layout(params, "d48")
    assert (d48.videos, d48.frames, d48.root) == ("/d/D48/rgb", "data/d48/frames", "data/d48")
    assert dataset_layout(params, "syn").videos == "data/syn/videos"
    with pytest.raises(MienetError, match=r"datasets.bad.videos is required for format 'sthv2'"):
        dataset_layout(params, "bad")
    with pytest.raises(MienetError, match=r"no datasets.nope"):
        dataset_layout(params, "nope")
