#!/usr/bin/env bash
# The loader at the paper's input (T = 8 segments x L = 4 frames, 224 px crops) on SSv2-sized
# frames (456x256: SSv2's 427x240 at short side 256), before and after in one run:
# float32 clips normalised in the workers (the path before) against uint8 clips normalised on
# the device (`mienet train`'s path). Frames come from the four real clips in
# tests/fixtures/videos, scaled with FFmpeg and packed by `mienet extract-frames`.
#
#     bash workflow/scripts/bench_loader_paper.sh [WORK_DIR] [WORKERS]
#
# WORK_DIR (default $LOADER_BENCH_DIR, else /tmp/mienet-loader-bench) is reused when it holds the frames; WORKERS
# (default 1) is the DataLoader worker count of the measurement; further arguments go to
# `mienet bench loader` (e.g. --json, --train-rate 1000). Preparation messages go to stderr.
# Prints figures; asserts nothing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
work="${1:-${LOADER_BENCH_DIR:-/tmp/mienet-loader-bench}}"
workers="${2:-1}"
bin="$root/.venv/bin"
mkdir -p "$work/videos"
if [ ! -f "$work/train.txt" ]; then
    for video in "$root"/tests/fixtures/videos/*.mp4 "$root"/tests/fixtures/videos/*.avi; do
        name="$(basename "${video%.*}")_${video##*.}"  # test.mp4 and test.avi: two ids
        ffmpeg -loglevel error -y -i "$video" -vf scale=456:256 -c:v libx264 -crf 18 -pix_fmt yuv420p "$work/videos/$name.mp4"
    done
    "$bin/mienet" extract-frames "$work/videos" -o "$work/frames" --quality 95 --no-progress >&2
    # one list line per clip: path, frames, label; each pack also under 3 more names (hard
    # links), so that a batch of 8 and `bench e2e` have 16 clips to sample
    "$bin/python" - "$work" <<'EOF'
import os
import sys
from pathlib import Path

from mienet.data.pack import frame_count

work = Path(sys.argv[1])
packs = sorted((work / "frames").glob("*.frames"))
lines = []
for label, pack in enumerate(packs):
    for copy in range(4):
        name = pack if copy == 0 else pack.with_name(f"{pack.stem}_copy{copy}.frames")
        if not name.exists():
            os.link(pack, name)
        lines.append(f"frames/{name.stem} {frame_count(pack)} {label}")
(work / "train.txt").write_text("\n".join(lines) + "\n")
print(f"{len(lines)} clips from {len(packs)} videos: " + ", ".join(f"{p.stem} ({frame_count(p)} frames)" for p in packs),
      file=sys.stderr)
EOF
fi
"$bin/mienet" bench loader --list "$work/train.txt" --root "$work" --segments 8 --frames-per-segment 4 \
    --size 224 --batch 8 --workers "$workers" --batches 30 --worker-output both "${@:3}"
