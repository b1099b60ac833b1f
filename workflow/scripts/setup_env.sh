#!/usr/bin/env bash
# Set up (or reuse) the project's environment at .venv/. Idempotent: a second call only
# checks and does what is missing.
#
# The heavy dependencies (torch + torchvision are ~5 GB) live in a cached virtual environment
# keyed by the hash of requirements.lock and the Python version:
#     ${MIENET_CACHE:-~/.cache/mienet}/venv-<hash>
# .venv/ itself is a small per-checkout environment that sees the cached packages through a
# .pth file and holds this checkout's editable install of `mienet` and the tool entry points,
# so several clones share one download without pointing at each other's sources.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
python="${MIENET_PYTHON:-python3}"
cache="${MIENET_CACHE:-$HOME/.cache/mienet}"
pyver="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
hash="$( (cat requirements.lock; echo "python $pyver") | sha256sum | cut -c1-16)"
deps="$cache/venv-$hash"

say() { printf '[setup] %s\n' "$*" >&2; }

# 1. Cached dependency environment (built once per lock file).
if [ ! -f "$deps/.complete" ]; then
    say "installing the locked dependencies into $deps (once per lock file; torch is ~5 GB)"
    mkdir -p "$cache"
    rm -rf "$deps"  # an unfinished earlier attempt has no .complete marker
    "$python" -m venv "$deps"
    "$deps/bin/python" -m pip install --quiet --no-input -r requirements.lock
    touch "$deps/.complete"
else
    say "reusing dependencies in $deps"
fi
deps_site="$("$deps/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"

# 2. The checkout's own small environment.
if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.mienet-deps 2>/dev/null)" != "$deps" ]; then
    say "creating .venv (linked to $deps)"
    rm -rf .venv
    "$python" -m venv --without-pip .venv
    site="$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    echo "import site; site.addsitedir('$deps_site')" > "$site/_mienet_deps.pth"
    echo "$deps" > .venv/.mienet-deps
fi
if ! .venv/bin/python -c 'import mienet, sys, pathlib; sys.exit(pathlib.Path(mienet.__file__).resolve().parents[1] != pathlib.Path("src").resolve())' 2>/dev/null \
   || [ ! -x .venv/bin/mienet ]; then
    say "installing mienet (editable) into .venv"
    .venv/bin/python -m pip install --quiet --no-input --no-deps --no-build-isolation -e . >/dev/null
fi
# Entry points of the tools the workflow drives, bound to .venv's interpreter. Each puts
# .venv/bin first on PATH, so that the `mienet` commands Snakemake and DVC run are this
# checkout's even when .venv is not activated (`.venv/bin/snakemake ...`).
for tool in snakemake dvc optuna optuna-dashboard pytest; do
    [ -f "$deps/bin/$tool" ] || continue
    {
        echo "#!$root/.venv/bin/python"
        echo "import os; os.environ['PATH'] = os.pathsep.join([os.path.dirname(os.path.abspath(__file__)), os.environ.get('PATH', '')])"
        tail -n +2 "$deps/bin/$tool"
    } > ".venv/bin/$tool.new"
    chmod +x ".venv/bin/$tool.new"
    if cmp -s ".venv/bin/$tool.new" ".venv/bin/$tool"; then rm ".venv/bin/$tool.new"; else mv ".venv/bin/$tool.new" ".venv/bin/$tool"; fi
done

# 3. System tools: ffmpeg and ffprobe (OpenCV decodes the videos; the pipeline itself does not
# need them). The tests do: the miniature Something-Something V2 (tests/minidata.py) is VP9 in
# WebM, written with ffmpeg's libvpx-vp9 and checked with ffprobe; 'mienet bench-extract' too.
if ! command -v ffmpeg >/dev/null 2>&1 || ! command -v ffprobe >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing ffmpeg with apt-get (for the tests' VP9 videos and the extraction benchmark)"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null) \
            || say "warning: ffmpeg could not be installed; the tests and 'mienet bench-extract' need it"
    else
        say "note: ffmpeg/ffprobe not found; the tests (tests/test_minidata.py) and 'mienet bench-extract'" \
            "need them: install ffmpeg (e.g. sudo apt-get install ffmpeg)"
    fi
fi
say "ready: $(.venv/bin/python -c 'import torch, torchvision; print(f"torch {torch.__version__}, torchvision {torchvision.__version__}")')"
