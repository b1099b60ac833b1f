#!/usr/bin/env bash
# Per-worker loader throughput at the paper's input before and after a change, in one run:
# the same frames (workflow/scripts/bench_loader_paper.sh prepares them), the same `mienet bench
# loader` call, once with the code of commit BEFORE (a git worktree) and once with this
# checkout, alternating ROUNDS times; prints each measurement and the medians' ratio.
#
#     bash workflow/scripts/loader_before_after.sh BEFORE [ROUNDS] [WORKERS] [BATCHES]
#
# e.g. `bash workflow/scripts/loader_before_after.sh 75e560b 3 1` (defaults: 3 rounds, 1 worker,
# 20 timed batches; frames in $LOADER_BENCH_DIR, else /tmp/mienet-loader-bench). Asserts nothing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
before="${1:?commit before the change}"
rounds="${2:-3}"
workers="${3:-1}"
batches="${4:-20}"
work="$(realpath -m "${LOADER_BENCH_DIR:-/tmp/mienet-loader-bench}")"
tree="$(mktemp -d /tmp/mienet-before-XXXXXX)"
trap 'git -C "$root" worktree remove --force "$tree" >/dev/null 2>&1 || true' EXIT
git -C "$root" worktree add --detach --force "$tree" "$before" >/dev/null 2>&1
bash "$root/workflow/scripts/bench_loader_paper.sh" "$work" "$workers" --batches 1 --worker-output uint8 >/dev/null
args=(bench loader --list "$work/train.txt" --root "$work" --segments 8 --frames-per-segment 4 --size 224
      --batch 8 --workers "$workers" --batches "$batches" --json)
py="$root/.venv/bin/python"
declare -a old new
for r in $(seq "$rounds"); do
    o=$(cd "$tree" && PYTHONPATH="$tree/src" "$py" -m mienet "${args[@]}" | "$py" -c 'import json,sys; print(json.load(sys.stdin)["clips_per_s"])')
    n=$("$py" -m mienet "${args[@]}" | "$py" -c 'import json,sys; print(json.load(sys.stdin)["clips_per_s"])')
    old+=("$o"); new+=("$n")
    echo "round $r: before ($before) $o clips/s, after $n clips/s ($workers worker(s))"
done
"$py" - "$workers" "${old[*]}" "${new[*]}" <<'EOF'
import statistics, sys
w = max(int(sys.argv[1]), 1)
old, new = (statistics.median(map(float, s.split())) for s in sys.argv[2:4])
print(f"median per worker: before {old / w:.2f} clips/s, after {new / w:.2f} clips/s: {new / old:.2f}x")
EOF
