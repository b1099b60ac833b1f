#!/usr/bin/env bash
# Snakemake runs this once inside a conda environment it has just created from
# mienet.yaml (= environment.yml), with `--software-deployment-method conda`, from the
# workflow's directory: it installs this checkout's `mienet` tool into that environment.
set -euo pipefail
python -m pip install --quiet --no-deps -e .
