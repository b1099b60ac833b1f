#!/usr/bin/env bash
# `make test`: the whole suite, with both cores at work:
#   - the `slurm` tests in their own pytest session, in the background: alone they take about
#     5 minutes and keep the 2 cores busy less than half of it (252 CPU-s in 323 s): they wait
#     on the scheduler;
#   - every other test file in a second session spread over 2 pytest-xdist workers, a file a
#     worker at a time (--dist loadfile, so that a module's fixtures are built once), the
#     files with the longest fixtures first (HEAVY_FIRST), so that no long file starts last.
# With arguments (PYTEST_ARGS: a subset, a marker), one plain pytest runs them as given.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
pytest=(.venv/bin/python -m pytest -q -p no:cacheprovider)
if [ "$#" -gt 0 ]; then
    exec "${pytest[@]}" "$@"
fi
# Longest first (seconds in one serial run, `--durations=0`, 2026-12-06): the documented commands
# (226), the paper profile (129; 111 alone since its fixture trains one variant without searches),
# the workflow (100), the search (81 before its journal lock became an flock, ~55 since), the
# engine (55), the trust errors (48, before two of its commands became in-process reader calls),
# the run locks (42).
HEAVY_FIRST=(tests/test_readme.py tests/test_paper.py tests/test_workflow.py tests/test_search.py
             tests/test_engine.py tests/test_trust_errors.py tests/test_runlock.py)
WORKERS="${MIENET_TEST_WORKERS:-2}"
scratch="$(mktemp -d /tmp/mienet-tests-XXXXXX)"
started=$SECONDS
"${pytest[@]}" -m slurm --basetemp "$scratch/slurm" >"$scratch/slurm.log" 2>&1 &
slurm_pid=$!
"${pytest[@]}" -m "not slurm" -n "$WORKERS" --dist loadfile --no-loadscope-reorder \
    --basetemp "$scratch/rest" "${HEAVY_FIRST[@]}" tests
rest=$?
wait "$slurm_pid"
slurm=$?
echo "== the slurm tests, run beside the others (pytest -m slurm):"
cat "$scratch/slurm.log"
echo "== the whole suite: $((SECONDS - started)) s"
rm -rf "$scratch"
# both must pass; pytest's 5 (nothing collected) is a failure here: the full suite has every kind
[ "$rest" -eq 0 ] && [ "$slurm" -eq 0 ] && exit 0
echo "test run failed: pytest -m 'not slurm' exited $rest, pytest -m slurm exited $slurm" >&2
for code in "$rest" "$slurm"; do [ "$code" -ne 0 ] && exit "$code"; done
