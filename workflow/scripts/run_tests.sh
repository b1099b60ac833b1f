#!/usr/bin/env bash
# `make test`: the whole suite as three pytest sessions at once, so that both cores work:
#   - the `slurm` tests, which spend most of their 6 minutes waiting on the scheduler;
#   - beside them, the three heaviest workflow files (BESIDE: the README's commands, the paper
#     profile, the workflow), about 350 s of the suite's 800;
#   - the rest, in the foreground.
# Each keeps its own --basetemp; files are split whole, so module fixtures stay as they are.
# With arguments (PYTEST_ARGS: a subset, a marker), one plain pytest runs them as given.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
pytest=(.venv/bin/python -m pytest -q -p no:cacheprovider)
if [ "$#" -gt 0 ]; then
    exec "${pytest[@]}" "$@"
fi
BESIDE=(tests/test_readme.py tests/test_paper.py tests/test_workflow.py)
scratch="$(mktemp -d /tmp/mienet-tests-XXXXXX)"
started=$SECONDS
"${pytest[@]}" -m slurm --basetemp "$scratch/slurm" >"$scratch/slurm.log" 2>&1 &
slurm_pid=$!
"${pytest[@]}" -m "not slurm" --basetemp "$scratch/beside" "${BESIDE[@]}" >"$scratch/beside.log" 2>&1 &
beside_pid=$!
ignore=()
for f in "${BESIDE[@]}"; do ignore+=("--ignore=$f"); done
"${pytest[@]}" -m "not slurm" "${ignore[@]}"
main=$?
wait "$beside_pid"
beside=$?
wait "$slurm_pid"
slurm=$?
echo "== run beside the others: ${BESIDE[*]}"
cat "$scratch/beside.log"
echo "== the slurm tests, run beside the others (pytest -m slurm):"
cat "$scratch/slurm.log"
echo "== the whole suite: $((SECONDS - started)) s"
rm -rf "$scratch"
# all must pass; pytest's 5 (nothing collected) is a failure here: the full suite has every kind
[ "$main" -eq 0 ] && [ "$beside" -eq 0 ] && [ "$slurm" -eq 0 ] && exit 0
echo "test run failed: pytest (the rest) exited $main, pytest ${BESIDE[*]} exited $beside," \
     "pytest -m slurm exited $slurm" >&2
for code in "$main" "$beside" "$slurm"; do [ "$code" -ne 0 ] && exit "$code"; done
