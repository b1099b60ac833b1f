#!/usr/bin/env bash
# What the tests need beyond the Python environment: a PostgreSQL server binary for the
# distributed-search test (the test starts its own throw-away server on loopback).
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing postgresql with apt-get (for the search tests)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
else
    echo "[setup] note: PostgreSQL not found; the PostgreSQL search test will be skipped" >&2
fi
