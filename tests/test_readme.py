"""Every command line of the documentation's ```bash blocks (README.md and every page of docs/),
exercised in a micro copy of the project; the README a front page; every relative link resolving.

``EXERCISES`` maps each documented command line (continuations joined, comment dropped, ``a ; b``
split) to how it is exercised, in the order the commands run:

``run``    the line as written, by ``bash -c`` in the micro project with ``.venv/bin`` first on
           ``PATH`` (what ``source .venv/bin/activate`` does). ``subs`` are the visible text
           replacements (things that cannot exist here, or micro sizes), ``env`` the variables
           added, ``before`` what is prepared first; ``fails`` says the command must exit non-zero
           with that message.
``dry``    too heavy or unreachable here: ``snakemake`` lines run with ``-n`` added (the DAG is
           built, the config validated, nothing runs); ``make X`` checks the Makefile target and
           runs ``make -n X`` in the repository.
``setup``  a line that configures the shell: the file it reads exists.

A command of any page without an entry fails, naming the page (no page can grow an untested
command line), and so does an entry whose command is on no page. The one ```python block (in
docs/models-and-training.md) runs too. The README stays a front page (``FRONT_PAGE_LINES``) that
links every page of docs/, and every relative link of the pages reaches an existing file and, for
a ``#anchor`` into a Markdown file, one of its headings (GitHub's slugs).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from urllib.parse import unquote
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
import yaml

from conftest import FIXTURE_VIDEOS, RELEASED_MANIFEST, REPO
from test_workflow import BIN, project_copy, run, write_params

README = REPO / "README.md"
DOCS = REPO / "docs"
FRONT_PAGE_LINES = 200
GIT_ID = {"GIT_AUTHOR_NAME": "readme", "GIT_AUTHOR_EMAIL": "readme@example.org",
          "GIT_COMMITTER_NAME": "readme", "GIT_COMMITTER_EMAIL": "readme@example.org"}
# Where the micro project keeps the paper datasets' downloads (as the documented examples do):
# miniature copies in their real formats, written by tests/minidata.py.
PAPER_PATHS = {"sljd": {"source": "data/SLJD/lists", "root": "data/SLJD"},
               "diving48": {"source": "data/Diving48", "videos": "data/Diving48/rgb"},
               "sthv2": {"source": "data/sthv2/labels", "videos": "data/sthv2/videos"}}


# --------------------------------------------------------------------------- the documented commands

def pages() -> list[Path]:
    """The documentation: the README and every Markdown page under docs/."""
    return [README, *sorted(DOCS.rglob("*.md"))]


def page_name(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def bash_commands(text: str) -> list[str]:
    """The command lines of the ```bash blocks: continuations joined, comments and blank lines
    dropped, ``a ; b`` split into two commands, white space normalised."""
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, re.S | re.M):
        block = re.sub(r"\\\n", " ", block)
        for line in block.splitlines():
            line = re.sub(r"(^|\s)#.*$", "", line)
            for part in line.split(";"):
                part = " ".join(part.split())
                if part:
                    commands.append(part)
    return commands


def documented_commands() -> list[str]:
    """Every page's command lines, page after page."""
    return [c for page in pages() for c in bash_commands(page.read_text())]


def python_blocks() -> list[tuple[str, str]]:
    """(page, code) of every ```python block of the documentation."""
    return [(page_name(page), code) for page in pages()
            for code in re.findall(r"^```python\n(.*?)^```", page.read_text(), re.S | re.M)]


def test_commands_are_parsed():
    text = "x\n```bash\na b \\\n    c   # note\n# only a comment\n\nd ; e  # two\n```\n```\nnot bash\n```\n"
    assert bash_commands(text) == ["a b c", "d", "e"]
    assert len(documented_commands()) >= 40
    names = [page_name(p) for p in pages()]
    for page in ("README.md", "docs/workflow-and-dvc.md", "docs/models-and-training.md"):
        assert page in names and bash_commands((REPO / page).read_text()), page


# --------------------------------------------------------------------------- the pages and their links

def prose(text: str) -> str:
    """A page without its fenced code blocks and inline code (neither holds links or headings)."""
    text = re.sub(r"^(```|~~~).*?^\1[ \t]*$", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text (link targets, tags and markup dropped),
    lower case, every character but letters, digits, ``_``, ``-`` and spaces removed, spaces
    turned into ``-``."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text)
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors of a page's headings; a repeated slug gets ``-1``, ``-2``, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for line in re.sub(r"^(```|~~~).*?^\1[ \t]*$", "", text, flags=re.S | re.M).splitlines():
        match = re.match(r" {0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$", line)
        if match:
            slug = github_slug(match.group(1))
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            found.add(slug if n == 0 else f"{slug}-{n}")
    return found


def links(text: str) -> list[str]:
    """The targets of a page's inline links and images, and of its link definitions."""
    body = prose(text)
    inline = re.findall(r"\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'(][^)]*)?\)", body)
    return inline + re.findall(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$", body, re.M)


def broken_links(page: Path, text: str | None = None) -> list[str]:
    """The relative links of a page whose file, or whose ``#anchor`` in a Markdown file, does not
    exist; a link out of the repository counts as broken."""
    text = page.read_text() if text is None else text
    broken = []
    for target in links(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("//"):
            continue  # http:, https:, mailto:
        path, _, anchor = unquote(target).partition("#")
        if not path:  # on the page itself
            if anchor not in anchors(text):
                broken.append(f"{target}: no heading #{anchor} on the page")
            continue
        file = (page.parent / path).resolve()
        if not file.is_relative_to(REPO.resolve()) or not file.exists():
            broken.append(f"{target}: no file {path}")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file.read_text()):
            broken.append(f"{target}: no heading #{anchor} in {file.relative_to(REPO.resolve()).as_posix()}")
    return broken


def test_headings_get_github_anchors():
    assert github_slug("`mienet synth`: the embedded default dataset") == "mienet-synth-the-embedded-default-dataset"
    assert github_slug("Clusters (SLURM)") == "clusters-slurm"
    assert github_slug("Profiles: the synthetic default and the paper's datasets") == \
        "profiles-the-synthetic-default-and-the-papers-datasets"
    assert github_slug("What was reported (seed README, model zoo)") == "what-was-reported-seed-readme-model-zoo"
    assert github_slug("Data at scale & [packs](scale.md)") == "data-at-scale--packs"
    text = "# A\n\n```bash\n# not a heading\n```\n## A\n### `b_c` d\n"
    assert anchors(text) == {"a", "a-1", "b_c-d"}


def test_a_broken_link_is_found():
    page = DOCS / "any-page.md"  # resolved beside the real pages; never written
    text = ("[ok](../README.md#the-default-run) [ok](scale.md) [web](https://example.org/x.md#y)\n"
            "[gone](no-such-page.md) [bad anchor](../README.md#no-such-heading) ![img](../nothing.png)\n"
            "[self](#here) [not here](#there)\n\n## Here\n\n`[code](not-a-link.md)`\n```\n[block](not-a-link.md)\n```\n")
    broken = broken_links(page, text)
    assert [b.split(":")[0] for b in broken] == ["no-such-page.md", "../README.md#no-such-heading",
                                                  "../nothing.png", "#there"]


@pytest.mark.parametrize("page", pages(), ids=page_name)
def test_every_relative_link_resolves(page):
    broken = broken_links(page)
    assert not broken, f"{page_name(page)}: " + "; ".join(broken)


def test_the_readme_is_a_front_page_that_links_every_page():
    lines = README.read_text().splitlines()
    assert len(lines) <= FRONT_PAGE_LINES, f"README.md has {len(lines)} lines; move sections into docs/"
    assert bash_commands(README.read_text())[:2] == ["make reproduce", "make test"]  # the two commands first
    linked = {(README.parent / unquote(t).partition("#")[0]).resolve() for t in links(README.read_text())}
    unlinked = [page_name(p) for p in pages()[1:] if p.resolve() not in linked]
    assert not unlinked, f"README.md does not link {unlinked}"


# --------------------------------------------------------------------------- how each is exercised

@dataclass(frozen=True)
class Exercise:
    kind: str                                   # run | dry | setup
    subs: tuple[tuple[str, str], ...] = ()      # (documented text, what runs instead)
    env: dict = field(default_factory=dict)     # values; "{tmp}" is a fresh empty folder
    before: Callable[[Path], None] | None = None
    after: Callable[[Path], None] | None = None
    check: Callable[[Path, str], None] | None = None   # (project, stdout + stderr)
    fails: str | None = None                    # the command must fail with this message
    why: str = ""


def manifest() -> dict:
    return json.loads(RELEASED_MANIFEST.read_text())


def stand_in(path: Path, num_classes: int) -> None:
    """A released-layout checkpoint (tests/test_zoo.py's ``released_checkpoint``)."""
    from test_zoo import released_checkpoint

    path.parent.mkdir(parents=True, exist_ok=True)
    released_checkpoint(path, manifest(), num_classes=num_classes)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def expect_in(*needles: str) -> Callable[[Path, str], None]:
    def check(work: Path, out: str) -> None:
        for needle in needles:
            assert needle in out, f"{needle!r} not in the output:\n{out[-3000:]}"
    return check


def check_full_synth(work: Path, out: str) -> None:
    import cv2

    classes = sorted(p for p in (work / "synth-full" / "videos").iterdir() if p.is_dir())
    assert len(classes) == 8  # "8 classes"
    cap = cv2.VideoCapture(str(next(classes[0].glob("*.mp4"))))
    frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    assert (frames, size) == (40, (64, 64))  # "40 frames, 64x64"
    helptext = run([BIN / "mienet", "synth", "--help"], work).stdout
    assert "clips per class (default: 150)" in helptext  # "x 150 clips"
    assert (work / "synth-full" / "videos" / "factors.json").is_file()


def check_small_synth(work: Path, out: str) -> None:
    videos = work / "datasets" / "small" / "videos"
    assert len([p for p in videos.iterdir() if p.is_dir()]) == 4
    assert len(list(videos.rglob("*.mp4"))) == 32


def check_frames(name: str, short_side: int | None = None) -> Callable[[Path, str], None]:
    def check(work: Path, out: str) -> None:
        import cv2
        import numpy as np

        from mienet.data.pack import read_frames

        frames = work / "datasets" / name / "frames"
        rows = lines(frames / "manifest.csv")
        assert len(rows) > 1 and not any(",failed," in r for r in rows), rows
        if short_side:  # the first frame of a pack (extract.layout: packed) or of a folder
            packs = sorted(frames.rglob("*.frames"))
            data = read_frames(packs[0], [0])[0] if packs else next(frames.rglob("img_00001.jpg")).read_bytes()
            img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            assert min(img.shape[:2]) == short_side
    return check


def check_annotations(name: str, splits=("train", "val")) -> Callable[[Path, str], None]:
    def check(work: Path, out: str) -> None:
        ann = work / "datasets" / name / "annotations"
        assert (ann / "classes.txt").read_text().strip() and (ann / "summary.json").is_file()
        for split in splits:
            assert lines(ann / f"{split}.txt"), split
    return check


def check_reproduced(work: Path, out: str) -> None:
    metrics = json.loads((work / "results" / "synthetic" / "mienet" / "seed0" / "metrics.json").read_text())
    assert metrics["variant"] == "mienet" and metrics["epochs"] == 1
    assert "MIE-Net" in (work / "results" / "tables" / "ablation_synthetic.md").read_text()
    assert (work / "results" / "tables" / "zoo.md").is_file() and (work / "results" / "README.md").is_file()


def check_report_html(work: Path, out: str) -> None:
    assert (work / "results" / "report.html").stat().st_size > 100_000


def write_overrides(work: Path) -> None:
    (work / "my-overrides.yaml").write_text("datasets:\n  synthetic:\n    train:\n      epochs: 2\n")


def check_override_reaches_training(work: Path, out: str) -> None:
    assert re.search(r"params have changed since last execution:\s*\n\s*train\b", out), out[-3000:]


def check_paper_plan(work: Path, out: str) -> None:
    for name in ("sljd", "diving48", "sthv2"):
        assert f"runs/{name}/mienet/seed0/checkpoints/best.pt" in out, name  # a training per dataset


def check_plots(work: Path, out: str) -> None:
    assert (work / "dvc_plots" / "index.html").is_file()


def forget_local_data(work: Path) -> None:
    """So that `dvc pull` has to fetch from the remote (../mienet-dvc-storage, from .dvc/config)."""
    shutil.rmtree(work / ".dvc" / "cache")
    shutil.rmtree(work / "datasets" / "synthetic" / "annotations")


def check_pulled(work: Path, out: str) -> None:
    assert lines(work / "datasets" / "synthetic" / "annotations" / "train.txt")
    assert (work.parent / "mienet-dvc-storage").is_dir()


def git_commit(work: Path) -> None:
    """`dvc exp run` needs a commit to base the experiment on."""
    run(["git", "add", "-A"], work)
    run(["git", "commit", "-q", "-m", "micro project"], work, env_extra=GIT_ID)


def check_paper_dvc_yaml(work: Path, out: str) -> None:
    stages = yaml.safe_load((work / "dvc.yaml").read_text())["stages"]
    assert {"make_annotations_sljd", "extract_frames_diving48", "extract_frames_sthv2"} <= set(stages)


def generate_paper(work: Path) -> None:
    run([BIN / "mienet", "generate", "--profile", "paper"], work)


def check_default_dvc_yaml(work: Path, out: str) -> None:
    assert "wrote dvc.yaml" in out, out
    stages = yaml.safe_load((work / "dvc.yaml").read_text())["stages"]
    assert "make_annotations_synthetic" in stages and "make_annotations_sljd" not in stages


def generate_default(work: Path) -> None:
    run([BIN / "mienet", "generate"], work)  # back to dvc.yaml of params.yaml's profile


def check_search(work: Path, out: str) -> None:
    out_dir = work / "results" / "synthetic" / "search" / "mienet"
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["complete"] + summary["pruned"] + summary["failed"] == 1
    assert (out_dir / "best_params.yaml").is_file()


def check_run(run_dir: str) -> Callable[[Path, str], None]:
    def check(work: Path, out: str) -> None:
        assert (work / run_dir / "checkpoints" / "best.pt").is_file()
        assert "best val top-1" in out
    return check


def check_ddp(work: Path, out: str) -> None:
    check_run("runs/ddp")(work, out)
    assert "world size 2" in out
    loss = re.search(r"epoch 1/1: train loss ([0-9.]+)", out)
    assert loss and float(loss.group(1)) > 0, out[-2000:]  # the ranks did train


def check_evaluated(work: Path, out: str) -> None:
    metrics = json.loads((work / "runs" / "x" / "eval-test" / "metrics.json").read_text())
    assert metrics["variant"] == "mienet" and 0 <= metrics["top1"] <= 100
    assert (metrics["split"], metrics["selection_split"], metrics["views"]) == ("test", "val", 6)


def standin_diving48(work: Path) -> None:
    """pretrained/diving48_mienet.pth.tar: a stand-in with the released layout and 48 classes."""
    stand_in(work / "pretrained" / "diving48_mienet.pth.tar", num_classes=48)


def check_zoo(work: Path, out: str) -> None:
    metrics = json.loads((work / "results" / "zoo" / "diving48_mienet" / "metrics.json").read_text())
    assert metrics["variant"] == "mienet" and metrics["segments"] == 8
    assert "not evaluated" in (work / "results" / "tables" / "zoo.md").read_text()


def check_zoo_three_crops(work: Path, out: str) -> None:
    metrics = json.loads((work / "results" / "zoo" / "diving48_mienet" / "metrics.json").read_text())
    assert metrics["views"] == 3


def check_diving48_names(work: Path, out: str) -> None:
    assert re.search(r"\w\+\w", out), out  # Diving48's class names, e.g. Back+15som+05Twis+FREE


SAMPLE_CLIP = str(FIXTURE_VIDEOS / "part_0.mp4")
NO_DOWNLOAD = {"TORCH_HOME": "{tmp}", "https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}
QUICK_BENCH = " --steps 1 --warmup 0"

# In the order they run (the micro project is shared, so later lines see earlier results).
EXERCISES: dict[str, Exercise] = {
    "source .venv/bin/activate": Exercise(
        "setup", why="configures the shell: .venv/bin/activate exists; every `run` line runs with "
                     ".venv/bin first on PATH, as after it"),
    "make reproduce": Exercise("dry", why="the whole default run (minutes): make -n reproduce",
                               check=expect_in("snakemake --cores all reproduce_all")),
    "make test": Exercise("dry", why="the whole test suite, this file included: make -n test",
                          check=expect_in("workflow/scripts/run_tests.sh")),
    # --- data preparation
    "mienet synth datasets/synthetic/videos": Exercise(
        "run", subs=(("datasets/synthetic/videos", "synth-full/videos --clips-per-class 1"),),
        check=check_full_synth,
        why="1200 clips take ~15 s on 2 cores: one clip per class, outside datasets/synthetic (the "
            "workflow's); the comment's 8 classes, 40 frames, 64x64 and the default of 150 clips "
            "per class are checked"),
    "mienet synth datasets/small/videos --classes 4 --clips-per-class 8 --frames 24 --size 64 --seed 1 -j 2":
        Exercise("run", check=check_small_synth),
    "mienet extract-frames datasets/small/videos -o datasets/small/frames -j 2":
        Exercise("run", check=check_frames("small")),
    "mienet extract-frames data/Diving48/rgb -o datasets/diving48/frames -j 2":
        Exercise("run", check=check_frames("diving48"), why="data/Diving48: tests/minidata.py"),
    "mienet extract-frames data/sthv2/videos -o datasets/sthv2/frames -j 2 --short-side 256 --quality 90":
        Exercise("run", check=check_frames("sthv2", short_side=256), why="data/sthv2: tests/minidata.py"),
    "mienet make-annotations --format folder --videos datasets/small/videos --frames datasets/small/frames "
    "-o datasets/small/annotations --val-ratio 0.25 --test-ratio 0.25 --seed 0":
        Exercise("run", check=check_annotations("small", ("train", "val", "test"))),
    "mienet make-annotations --format sljd --source data/SLJD/lists --root data/SLJD -o datasets/sljd/annotations":
        Exercise("run", check=check_annotations("sljd", ("train", "val", "test")),
                 why="data/SLJD: tests/minidata.py"),
    "mienet make-annotations --format diving48 --source data/Diving48 --frames datasets/diving48/frames "
    "-o datasets/diving48/annotations": Exercise("run", check=check_annotations("diving48")),
    "mienet make-annotations --format sthv2 --source data/sthv2/labels --frames datasets/sthv2/frames "
    "-o datasets/sthv2/annotations": Exercise("run", check=check_annotations("sthv2")),
    # --- the workflow (micro params: see the `micro` fixture)
    "snakemake reproduce_all": Exercise("run", check=check_reproduced),
    "snakemake data ablation report": Exercise("run", check=expect_in("Nothing to be done")),
    "snakemake dataset_synthetic": Exercise("run", check=expect_in("Nothing to be done")),
    "snakemake -n reproduce_all": Exercise("run", check=expect_in("Nothing to be done")),
    "snakemake --report results/report.html": Exercise("run", check=check_report_html),
    "snakemake reproduce_all --config profile=paper": Exercise(
        "dry", check=check_paper_plan,
        why="ResNet-50 trainings on three datasets: -n, on the miniature SLJD, Diving48 and SSv2"),
    "snakemake reproduce_all --configfile my-overrides.yaml": Exercise(
        "dry", before=write_overrides, check=check_override_reaches_training,
        why="my-overrides.yaml sets datasets.synthetic.train.epochs: 2, so the training would rerun"),
    "snakemake reproduce_all --resources gpu=4": Exercise("dry", check=expect_in("Nothing to be done"),
                                                          why="no GPU here"),
    "snakemake --workflow-profile profiles/slurm reproduce_all --config profile=paper": Exercise(
        "dry", check=expect_in("Using workflow specific profile profiles/slurm", "slurm_partition=gpu"),
        why="no SLURM cluster here; tests/test_slurm.py runs the profile on a real one"),
    "mienet sizing --profile paper --clips-per-s 100 --gpus 32 --job-limit 24": Exercise(
        "run", check=expect_in("Wall-clock on 32 GPUs", "| **all together** |", "Jobs over the 24 h limit:")),
    "mienet sizing --profile paper --clips-per-s 100": Exercise(
        "run", check=expect_in("| sthv2 |", "GPU-h total", "100 training clips/s")),
    "bash workflow/scripts/bench_loader_paper.sh": Exercise(
        "run", subs=(("bash workflow/scripts/bench_loader_paper.sh", f"bash {REPO}/workflow/scripts/bench_loader_paper.sh"
                      " loaderbench 0 --batches 1"),),
        check=expect_in("16 clips from 4 videos", "loader (float from the workers)", "uint8 / float workers:"),
        why="the repository's script (the micro project has no sample videos), one batch, no workers"),
    "bash workflow/scripts/loader_before_after.sh 75e560b": Exercise(
        "run", subs=(("bash workflow/scripts/loader_before_after.sh 75e560b",
                      f"bash {REPO}/workflow/scripts/loader_before_after.sh HEAD 1 0 1"),),
        env={"LOADER_BENCH_DIR": "loaderbench"},
        check=expect_in("round 1: before (HEAD)", "median per worker: before"),
        why="against HEAD (a clone's history may be shallow), one round of one batch, on the frames the "
            "line above prepared"),
    "mienet bench scale --sizes 500,2000,8000 --frames-per-segment 1": Exercise(
        "run", subs=(("--sizes 500,2000,8000", "--sizes 2,4 --frames 16 --size 32 --classes 2 --workers 0 "
                                               "--no-dvc --no-snakemake --no-containers --out scale-run/scale"),),
        check=expect_in("packed", "folders"),
        why="28 minutes at the real sizes: two tiny sizes without DVC and Snakemake (tests/test_scale.py "
            "runs those), written to scale-run/ rather than results/bench"),
    "mienet devices": Exercise("run", check=expect_in("CUDA_VISIBLE_DEVICES:", "SLURM: not in a SLURM job",
                                                      "training runs on: the CPU (no CUDA device)"),
                               why="no GPU here: it says so; tests/test_slurm.py claims GPUs inside SLURM jobs"),
    "dvc repro": Exercise("run", check=expect_in("up to date")),
    "dvc repro train@synthetic-mienet-0": Exercise("run"),
    "dvc metrics show": Exercise("run", check=expect_in("results/synthetic/mienet/seed0/metrics.json")),
    "dvc plots show": Exercise("run", check=check_plots),
    "dvc push": Exercise("run", why="the remote of .dvc/config: ../mienet-dvc-storage, beside the micro project"),
    "dvc pull": Exercise("run", before=forget_local_data, check=check_pulled,
                         why="the DVC cache and datasets/synthetic/annotations are deleted first"),
    "dvc exp run -S ablation.seeds=[0]": Exercise("run", before=git_commit, env=GIT_ID,
                                                  check=expect_in("Ran experiment"),
                                                  why="the micro project is committed first"),
    "mienet generate --profile paper": Exercise("run", check=check_paper_dvc_yaml, after=generate_default,
                                                why="then `mienet generate` restores the default dvc.yaml"),
    "mienet generate": Exercise("run", before=generate_paper, check=check_default_dvc_yaml,
                                why="after `mienet generate --profile paper`: back to the default profile"),
    # --- hyperparameter search (the micro project's workflow has search disabled, so these do it)
    "mienet search --params params.yaml --dataset synthetic --variant mienet "
    "--out results/synthetic/search/mienet --trials-dir runs/synthetic/search/mienet":
        Exercise("run", check=check_search),
    "mienet train --params params.yaml --dataset synthetic --variant mienet "
    "--hparams results/synthetic/search/mienet/best_params.yaml --out runs/synthetic/mienet/tuned":
        Exercise("run", check=check_run("runs/synthetic/mienet/tuned")),
    # --- training, evaluation, prediction
    "mienet train --params params.yaml --dataset synthetic --variant mienet --seed 0 --out runs/x":
        Exercise("run", check=check_run("runs/x")),
    "mienet train --annotations datasets/sljd/annotations --root data/SLJD --variant mienet --arch resnet50 "
    "--segments 3 --size 224 --epochs 60 --lr 0.0025 --lr-steps 36 50 --pretrained imagenet --out runs/sljd":
        Exercise("run", env=NO_DOWNLOAD, fails="ImageNet weights", check=expect_in("resnet50-", "hub"),
                 why="offline (an empty torch hub cache, downloads refused): it must stop with the "
                     "error naming the weights file and where to put it"),
    "python -m torch.distributed.run --standalone --nproc_per_node 4 -m mienet train --params params.yaml "
    "--dataset synthetic --variant mienet --seed 0 --out runs/ddp":
        Exercise("run", subs=(("--nproc_per_node 4", "--nproc_per_node 2"), ("runs/ddp", "runs/ddp --batch-size 1")),
                 check=check_ddp,
                 why="two CPU processes (gloo) on this 2-core machine instead of 4 GPUs; batches of 1 so "
                     "that the 3 micro training clips (one a class) make a step on both ranks"),
    "mienet train --params params.yaml --dataset synthetic --variant mienet --seed 0 --out runs/x --resume":
        Exercise("run", check=check_run("runs/x")),
    "mienet evaluate --checkpoint runs/x/checkpoints --params params.yaml --dataset synthetic "
    "--split standard --crops 3 --clips 2": Exercise("run", check=check_evaluated),
    "mienet predict video.mp4 --checkpoint runs/x/checkpoints/best.pt":
        Exercise("run", subs=(("video.mp4", SAMPLE_CLIP),), why="a sample clip of tests/fixtures/videos"),
    "mienet bench train --variant mienet --arch resnet50 --segments 3 --size 112 --batch 8":
        Exercise("run", subs=(("resnet50", "resnet10"), ("--batch 8", "--batch 8" + QUICK_BENCH)),
                 check=expect_in("clips/s"),
                 why="ResNet-10, one timed step, no warm-up: ResNet-50's 7 steps, twice, take over a minute "
                     "on 2 cores"),
    "mienet bench loader --list datasets/synthetic/annotations/train.txt --root datasets/synthetic "
    "--segments 3 --size 112 --batch 8 --workers 2 --compare-train":
        Exercise("run", subs=(("--compare-train", "--compare-train --arch resnet10 --batches 2" + QUICK_BENCH),),
                 check=expect_in("clips/s"), why="2 batches; the training step of ResNet-10 (not the default "
                                                 "ResNet-50), one timed step"),
    # --- released checkpoints
    "snakemake zoo": Exercise("run", before=standin_diving48, check=check_zoo,
                              why="pretrained/diving48_mienet.pth.tar is a stand-in with the released "
                                  "layout (tests/test_zoo.py), scored at 32 px (micro params)"),
    "mienet zoo --params params.yaml --crops 3": Exercise("run", check=check_zoo_three_crops),
    "mienet predict clip.mp4 --checkpoint pretrained/diving48_mienet.pth.tar --zoo diving48_mienet":
        Exercise("run", subs=(("clip.mp4", SAMPLE_CLIP),), check=check_diving48_names,
                 why="a sample clip of tests/fixtures/videos"),
}


def as_run(command: str, ex: Exercise) -> str:
    """The command line that actually runs for ``command``."""
    for old, new in ex.subs:
        assert old in command, f"substitution {old!r} does not apply to {command!r}"
        command = command.replace(old, new, 1)
    if ex.kind == "dry" and command.startswith("snakemake "):
        command = "snakemake -n " + command[len("snakemake "):]
    elif ex.kind == "dry" and command.startswith("make "):
        command = "make -n " + command[len("make "):]
    return command


def unexercised(text: str) -> list[str]:
    """The command lines of a page's ```bash blocks that ``EXERCISES`` has no entry for."""
    return [c for c in bash_commands(text) if c not in EXERCISES]


@pytest.mark.parametrize("page", pages(), ids=page_name)
def test_every_command_of_the_page_is_exercised(page):
    missing = unexercised(page.read_text())
    assert not missing, "\n".join(f"{page_name(page)}: command {c!r} is not exercised by tests/test_readme.py"
                                  for c in missing)


def test_a_page_with_a_command_that_is_not_exercised_fails():
    page = ("# A page\n\n```bash\nmienet synth datasets/synthetic/videos   # exercised\n"
            "mienet frobnicate --all \\\n    --now\n```\n")
    assert unexercised(page) == ["mienet frobnicate --all --now"]


def test_every_exercise_is_a_documented_command():
    documented = set(documented_commands())
    stale = [c for c in EXERCISES if c not in documented]
    assert not stale, "\n".join(f"tests/test_readme.py exercises {c!r}, which is on no page (README.md, docs/)"
                                for c in stale)


def test_the_python_example_is_the_only_python_block():
    """A ```python block elsewhere would not be run: the one that is, is the Models section's."""
    assert [page for page, _ in python_blocks()] == ["docs/models-and-training.md"]


def test_the_exercise_table_is_well_formed():
    for command, ex in EXERCISES.items():
        assert ex.kind in ("run", "dry", "setup"), command
        as_run(command, ex)
        if ex.kind == "dry":
            assert command.split()[0] in ("snakemake", "make"), command
        if ex.subs or ex.env or ex.kind != "run":
            assert ex.why, f"{command!r}: say why it is not run as written"


# --------------------------------------------------------------------------- the micro project

class Session:
    """Runs the exercises in table order in one micro project, each once."""

    def __init__(self, work: Path, tmp: Path):
        self.work, self.tmp = work, tmp
        self.order = list(EXERCISES)
        self.done: dict[str, tuple[str, subprocess.CompletedProcess]] = {}
        self.pending: Callable[[Path], None] | None = None  # the last command's `after`, run before the next

    def result(self, command: str):
        for earlier in self.order[: self.order.index(command) + 1]:
            if earlier not in self.done:
                self.done[earlier] = self.execute(earlier, EXERCISES[earlier])
        return self.done[command]

    def execute(self, command: str, ex: Exercise):
        actual = as_run(command, ex)
        if self.pending:
            self.pending(self.work)
            self.pending = None
        if ex.before:
            ex.before(self.work)
        env = {k: (str(self.tmp / f"env{len(self.done)}") if v == "{tmp}" else v) for k, v in ex.env.items()}
        for value in env.values():
            if value.startswith(str(self.tmp)):
                Path(value).mkdir(parents=True, exist_ok=True)
        cwd = REPO if actual.startswith("make ") else self.work
        proc = run(["bash", "-c", actual], cwd, check=False, env_extra=env)
        self.pending = ex.after
        return actual, proc


@pytest.fixture(scope="module")
def micro(tmp_path_factory) -> Session:
    """The project at micro size in a git + DVC repository (tests/test_workflow.py's
    ``project_copy``): one variant (mienet), one seed, 1-epoch ResNet-10 at 32 px; search off in the
    workflow (the documented `mienet search` line runs the study: 1 trial); the paper datasets'
    paths filled in (PAPER_PATHS, miniature copies from tests/minidata.py); the zoo's Diving48
    entry scored at 32 px; .gitignore and .dvc/config (its remote) as in the repository."""
    from minidata import build_paper_datasets

    base = tmp_path_factory.mktemp("readme")
    work = project_copy(base, variants=("mienet",), seeds=(0,), vcs=True)
    shutil.copy(REPO / ".gitignore", work / ".gitignore")
    shutil.copy(REPO / ".dvc" / "config", work / ".dvc" / "config")
    build_paper_datasets(work / "data")
    params = yaml.safe_load((work / "params.yaml").read_text())
    for name, paths in PAPER_PATHS.items():
        params["datasets"][name].update(paths)
    params["search"].update(enabled=False, n_trials=1)
    params["zoo"]["diving48_mienet"]["size"] = 32
    write_params(work, params)
    run([BIN / "mienet", "generate"], work)  # dvc.yaml of the micro params (no search stages)
    return Session(work, base)


@pytest.mark.parametrize("command", list(EXERCISES), ids=list(EXERCISES))
def test_readme_command(micro, command):
    ex = EXERCISES[command]
    if ex.kind == "setup":
        assert (REPO / command.split()[-1]).is_file()
        return
    if ex.kind == "dry" and command.startswith("make "):
        target = command.split()[1]
        assert re.search(rf"^{target}:", (REPO / "Makefile").read_text(), re.M), target
    actual, proc = micro.result(command)
    out = proc.stdout + proc.stderr
    if ex.fails:
        assert proc.returncode != 0 and ex.fails in out, f"{actual!r} should fail with {ex.fails!r}:\n{out[-4000:]}"
    else:
        assert proc.returncode == 0, f"{actual!r} failed ({proc.returncode}):\n{out[-4000:]}"
    if ex.check:
        ex.check(micro.work, out)


def test_the_python_example_runs(micro, monkeypatch):
    """The Python block of docs/models-and-training.md (Models), with a stand-in
    pretrained/sljd_mienet.pth.tar (10 classes)."""
    stand_in(micro.work / "pretrained" / "sljd_mienet.pth.tar", num_classes=10)
    monkeypatch.chdir(micro.work)
    scope: dict = {}
    ((page, code),) = python_blocks()
    exec(compile(code, page, "exec"), scope)
    import torch

    model = scope["model"].eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 4, 3, 32, 32)).shape == (1, 10)  # (N, T, L, 3, H, W) -> (N, 10)
