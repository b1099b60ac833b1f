#!/usr/bin/env bash
# A Snakemake killed by a signal leaves its working directory locked, and the next run
# refuses to start. Unlock it, but only when no Snakemake of this checkout is running.
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
if [ -d .snakemake/locks ] && ! pgrep -f "$(pwd)/[.]venv/bin/snakemake|^[^ ]*python[^ ]* [.]venv/bin/snakemake" >/dev/null; then
    .venv/bin/snakemake --unlock >/dev/null 2>&1 && echo "[reproduce] removed the lock of an interrupted run" >&2
fi
exit 0
