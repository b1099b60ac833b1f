#!/usr/bin/env bash
# What the tests need beyond the Python environment, installed with apt-get when missing:
# - a PostgreSQL server binary, for the distributed-search test (the test starts its own
#   throw-away server on loopback);
# - slurm-wlm and munge, for the `slurm` tests (tests/test_slurm.py starts a one-node cluster
#   with workflow/scripts/slurm_cluster.sh and stops it afterwards).
# Both need root; as another user the PostgreSQL test and the slurm tests are skipped (said so).
set -euo pipefail
packages=()
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
    packages+=(postgresql)
fi
for bin in slurmctld slurmd sbatch munged; do
    if ! command -v "$bin" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$bin" ]; then
        packages+=(slurm-wlm munge)
        break
    fi
done
[ ${#packages[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing ${packages[*]} with apt-get (for the search and SLURM tests)" >&2
    apt-get update -qq
    # their services are not started here: the tests start (and stop) their own
    DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq "${packages[@]}" >/dev/null
else
    echo "[setup] note: ${packages[*]} not installed (needs root and apt-get); the PostgreSQL" \
         "search test and the slurm tests will be skipped" >&2
fi
