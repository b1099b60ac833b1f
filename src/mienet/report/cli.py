"""``mienet report``: paper tables and figures from the results folder."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mienet.config import name_arg

    parser.add_argument("--results", type=Path, default=Path("results"),
                        help="results folder the workflow writes (default: results)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where tables/, plots/ and README.md go (default: the --results folder)")
    parser.add_argument("--datasets", nargs="+", metavar="NAME", type=name_arg, default=None,
                        help="datasets to report, in this order; fixes the set of files written "
                             "(default: every dataset with results)")
    parser.add_argument("--published", default="builtin",
                        help="published numbers for the comparison tables: 'builtin' (docs/mie-net.md), "
                             "'none', or a CSV file with columns "
                             "dataset,model,counterpart,frames,top1,top5,source")
    parser.add_argument("--params", default=None,
                        help="params.yaml whose `evaluate` settings (split, clips, crops) every metrics.json "
                             "must have been made with, else an error (default: params.yaml when it exists and "
                             "its results_root is --results; 'none': no check)")
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
    from mienet.config import load_params

    params_file, params = args.params, None
    if params_file is None and Path("params.yaml").is_file():
        # by default only the results folder params.yaml describes is checked against it
        candidate = load_params("params.yaml")
        if Path(candidate.get("results_root", "results")).resolve() == Path(args.results).resolve():
            params_file, params = "params.yaml", candidate
    elif params_file not in (None, "none"):
        params = load_params(params_file)
    result = write_report(args.results, args.out, datasets=args.datasets, published=args.published,
                          figures=not args.no_figures, params=params, params_name=str(params_file))
    out = args.out or args.results
    datasets = ", ".join(result["datasets"]) or "none found"
    print(f"report: {len(result['files']) + len(result['search_plots'])} files under {out} "
          f"(datasets: {datasets}); open {Path(out) / 'README.md'}")
    for problem in result["problems"]:
        print(f"report: skipped {problem}")
    return 0
