"""``mienet report``: paper tables and figures from the results folder."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", type=Path, default=Path("results"),
                        help="results folder the workflow writes (default: results)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where tables/, plots/ and README.md go (default: the --results folder)")
    parser.add_argument("--datasets", nargs="+", metavar="NAME", default=None,
                        help="datasets to report, in this order; fixes the set of files written "
                             "(default: every dataset with results)")
    parser.add_argument("--published", default="builtin",
                        help="published numbers for the comparison tables: 'builtin' (docs/mie-net.md), "
                             "'none', or a CSV file with columns "
                             "dataset,model,counterpart,frames,top1,top5,source")
    parser.add_argument("--no-figures", action="store_true",
                        help="write the tables and README.md only (no plots/)")
    parser.add_argument("--list-outputs", action="store_true",
                        help="print the files the report writes for --datasets, one a line, and exit")


def run(args: argparse.Namespace) -> int:
    from mienet.report import expected_outputs, write_report

    if args.list_outputs:
        if args.datasets is None:
            from mienet.report.collect import collect

            args.datasets = collect(args.results).datasets
        for path in expected_outputs(args.datasets, figures=not args.no_figures):
            print(path)
        return 0
    result = write_report(args.results, args.out, datasets=args.datasets, published=args.published,
                          figures=not args.no_figures)
    out = args.out or args.results
    datasets = ", ".join(result["datasets"]) or "none found"
    print(f"report: {len(result['files']) + len(result['search_plots'])} files under {out} "
          f"(datasets: {datasets}); open {Path(out) / 'README.md'}")
    for problem in result["problems"]:
        print(f"report: skipped {problem}")
    return 0
