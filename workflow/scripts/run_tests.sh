#!/usr/bin/env bash
# `make test`: the whole suite, with the `slurm` tests in a second pytest beside the others.
# The SLURM tests spend most of their 3 minutes waiting on the scheduler (submission, polling,
# job start-up), so they overlap the rest instead of adding to it; their own --basetemp keeps
# the two sessions' temporary folders apart. With arguments (PYTEST_ARGS: a subset, a marker),
# one plain pytest runs them as given.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
pytest=(.venv/bin/python -m pytest -q -p no:cacheprovider)
if [ "$#" -gt 0 ]; then
    exec "${pytest[@]}" "$@"
fi
scratch="$(mktemp -d /tmp/mienet-slurm-tests-XXXXXX)"
"${pytest[@]}" -m slurm --basetemp "$scratch/base" >"$scratch/slurm.log" 2>&1 &
slurm_pid=$!
"${pytest[@]}" -m "not slurm"
main=$?
wait "$slurm_pid"
slurm=$?
echo "== the slurm tests, run beside the others (pytest -m slurm):"
cat "$scratch/slurm.log"
rm -rf "$scratch"
# both must pass; pytest's 5 (nothing collected) is a failure here: the full suite has both kinds
[ "$main" -eq 0 ] && [ "$slurm" -eq 0 ] && exit 0
echo "test run failed: pytest -m 'not slurm' exited $main, pytest -m slurm exited $slurm" >&2
exit $(( main != 0 ? main : slurm ))
