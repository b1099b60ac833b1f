# The two commands of the README. Both are idempotent: the environment is built once
# (workflow/scripts/setup_env.sh) and reused; Snakemake and DVC redo only what is missing.
.PHONY: setup reproduce test bench

CORES ?= all

setup:
	@bash workflow/scripts/setup_env.sh

reproduce: setup
	@bash workflow/scripts/unlock_if_stale.sh
	.venv/bin/snakemake --cores $(CORES) reproduce_all

test: setup
	@bash workflow/scripts/setup_test_services.sh
	@bash workflow/scripts/run_tests.sh $(PYTEST_ARGS)

bench: setup
	.venv/bin/mienet bench-extract tests/fixtures/videos
