"""How long the report's hierarchical bootstrap takes (a benchmark: it prints, it asserts nothing).

    .venv/bin/python workflow/scripts/bench_bootstrap.py [--seeds 3] [--clips 720] [--repeat 7]

The report computes one interval per variant and per module effect; the default run has 3 seeds
x 720 test clips. Before this script a test asserted 7 intervals of 3 x 400 under 2 s, which a
busy machine could fail (issue 24): the figure is printed here instead.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from mienet.report.stats import REPLICATES, hierarchical_bootstrap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--clips", type=int, default=720)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    x = (np.random.default_rng(0).uniform(size=(args.seeds, args.clips)) < 0.7).astype(float)
    hierarchical_bootstrap(x)  # warm-up
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        hierarchical_bootstrap(x)
        times.append(time.perf_counter() - t0)
    print(f"hierarchical bootstrap, {args.seeds} seeds x {args.clips} clips, {REPLICATES} replicates: "
          f"median {1000 * float(np.median(times)):.1f} ms, max {1000 * max(times):.1f} ms over {args.repeat} runs")


if __name__ == "__main__":
    main()
