"""Facts defined once: where docs/reference.md's "Where each fact lives" names a place, a second
literal of the same fact elsewhere fails here (issue 24, item 8, in part)."""

from __future__ import annotations

import re

from conftest import REPO
from mienet.config import TRAIN_DEFAULTS
from mienet.pipeline import BENCH_VARIANTS, PRETRAINED_DIR
from mienet.registry.published import BUILTIN

RULES = sorted((REPO / "workflow" / "rules").glob("*.smk")) + [REPO / "Snakefile"]


def code_lines(path):
    """A file's lines without comments (whole-line or trailing)."""
    return [line.split("#", 1)[0] for line in path.read_text().splitlines()]


def test_the_reported_numbers_are_the_ones_docs_mie_net_md_records():
    """src/mienet/registry/published.py (BUILTIN) against the table "What was reported" of
    docs/mie-net.md, row by row, both ways."""
    names = {"SLJD": "sljd", "Diving48": "diving48", "SSv2": "sthv2"}
    text = (REPO / "docs" / "mie-net.md").read_text()
    table = text[text.index("## What was reported"):]
    rows = re.findall(r"^\| (DPTAM|MIE-Net) \| (\w+) \| ([\d+*]+) \| ([\d.]+) \| ([\d.]+) \|$", table, re.M)
    documented = {(names[d], m, f, t1, t5) for m, d, f, t1, t5 in rows}
    builtin = {(r.dataset, r.model, r.frames, r.top1, r.top5) for r in BUILTIN if r.source == "paper/README"}
    assert len(documented) == 5 and documented == builtin
    context = [r for r in BUILTIN if r.source != "paper/README"]
    assert [(r.dataset, r.top1) for r in context] == [("sthv2", "62.7")] and "near 62.7" in text


def test_the_rules_take_the_bench_variants_and_the_checkpoint_folder_from_python():
    bench = "(" + ", ".join(f'"{v}"' for v in BENCH_VARIANTS) + ")"
    for path in RULES:
        for n, line in enumerate(code_lines(path), 1):
            assert bench not in line, f"{path.name}:{n} repeats mienet.pipeline.BENCH_VARIANTS"
            assert f'"{PRETRAINED_DIR}/' not in line and f"'{PRETRAINED_DIR}/" not in line, \
                f"{path.name}:{n} repeats mienet.pipeline.PRETRAINED_DIR"


def test_no_second_default_dropout():
    """The recipe's default dropout is mienet.config.TrainConfig's; a loader of older checkpoints
    once said 0.5 beside it."""
    for path in sorted((REPO / "src" / "mienet").rglob("*.py")):
        if path.name == "config.py":
            continue
        for n, line in enumerate(code_lines(path), 1):
            assert not re.search(r"""["']dropout["'],\s*0\.\d""", line), f"{path}:{n}: a default dropout literal"
    assert TRAIN_DEFAULTS.dropout == 0.6  # the released recipes' SLJD and Diving48 value (docs/mie-net.md)


def test_the_frame_file_name_template_is_written_once():
    """mienet.registry.frames.IMAGE_TEMPLATE; the recipe's default, the loader's and the benchmarks'
    come from it (it was written four times)."""
    from mienet.registry.frames import FRAME_TEMPLATE, IMAGE_TEMPLATE

    places = [p.relative_to(REPO).as_posix() for p in sorted((REPO / "src" / "mienet").rglob("*.py"))
              for line in code_lines(p) if "img_{:05d}" in line or "img_{i" in line]
    assert places == ["src/mienet/registry/frames.py"], places
    assert TRAIN_DEFAULTS.template == FRAME_TEMPLATE and FRAME_TEMPLATE.format(1) == "img_00001.jpg"
    assert IMAGE_TEMPLATE.format(1, ext="png") == "img_00001.png"


def test_the_report_outputs_and_their_captions_are_written_once(tmp_path):
    """Every table and figure is one entry of mienet.report.outputs.OUTPUTS: the Snakemake report's
    captions are written from it (no caption file by hand beside workflow.rst) and no rule lists
    the outputs again (the families and their captions were written in three places)."""
    from mienet.report.outputs import OUTPUTS, write_captions

    captions = write_captions(tmp_path)
    assert list(captions) == [o.name for o in OUTPUTS]
    for o in OUTPUTS:
        assert (tmp_path / f"{o.name}.rst").read_text() == o.caption + "\n"
    assert [p.name for p in (REPO / "workflow" / "report").iterdir()] == ["workflow.rst"]
    for path in RULES:
        text = "\n".join(code_lines(path))
        for o in OUTPUTS:
            assert f'"{o.name}"' not in text and f"{o.name}.rst" not in text, f"{path.name} names {o.name} again"


def test_the_zoo_table_is_named_once_and_is_what_mienet_zoo_writes(tmp_path):
    """mienet.layout.Roots.zoo_tables: the zoo rule's outputs, the report's inputs and dvc.yaml's
    outs (they were listed three times), and the files mienet.zoo.write_tables writes."""
    from mienet.layout import Roots
    from mienet.zoo import write_tables

    written = write_tables([], tmp_path)
    assert sorted(str(p) for p in written.values()) == sorted(Roots(results=str(tmp_path), runs="runs").zoo_tables())
    for path in RULES + [REPO / "src" / "mienet" / "pipeline.py"]:
        for n, line in enumerate(code_lines(path), 1):
            assert "tables/zoo." not in line, f"{path.name}:{n} names the zoo table again"


def test_no_module_tests_a_dataset_format_by_name():
    """What a format is lives in mienet.registry.formats (FORMATS); the code asks the entry
    (extracted, synthesized, standard_split, reader ...) instead of comparing names."""
    names = "|".join(["synth", "folder", "sljd", "diving48", "sthv2"])
    pattern = re.compile(rf"""(format|fmt)\s*(==|!=|in)\s*\(?["'](?:{names})["']|\(["'](?:{names})["'],\s*["'](?:{names})["']""")
    found = [f"{p.relative_to(REPO)}:{n}" for p in sorted((REPO / "src" / "mienet").rglob("*.py"))
             if "registry" not in p.parts for n, line in enumerate(code_lines(p), 1) if pattern.search(line)]
    assert found == []


def test_the_full_model_and_the_baseline_are_named_once():
    """mienet.registry.variants FULL_MODEL and BASELINE; no default or comparison writes them again."""
    pattern = re.compile(r"""(default=|setting\(|== |!= |\bin )["'](mienet|tsn)["']|["'](mienet|tsn)["'] (in|if)\b""")
    found = [f"{p.relative_to(REPO)}:{n}" for p in sorted((REPO / "src" / "mienet").rglob("*.py"))
             if "registry" not in p.parts for n, line in enumerate(code_lines(p), 1) if pattern.search(line)]
    assert found == []

