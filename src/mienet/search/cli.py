"""``mienet search``: an Optuna study over the training settings of one dataset and variant.

The study's settings come from the ``search:`` mapping of ``--params`` (params.yaml), the fixed
training settings from the dataset's recipe ``datasets.<name>.train`` under ``search.train``; the
options below override both. Re-running the command continues the study up to ``n_trials``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import socket
import time
from pathlib import Path

from mienet.config import name_arg
from mienet.errors import MienetError
from mienet.io import write_text_atomic
from mienet.layout import data_paths
from mienet.registry.variants import FULL_MODEL
from mienet.runlock import run_lock
from mienet.search.space import parse_pruner, read_search_settings

log = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    g = parser.add_argument_group("data and model")
    g.add_argument("--annotations", type=Path,
                   help="folder with train.txt, val.txt and classes.txt (default with --params: "
                        "<data_root>/<dataset>/annotations)")
    g.add_argument("--root", type=Path, help="dataset root of the lists' paths (default: parent of --annotations)")
    g.add_argument("--dataset", default="custom", type=name_arg,
                   help="dataset name: the study's name, and with --params its recipe datasets.<name>.train")
    g.add_argument("--variant", default=FULL_MODEL, help="model variant every trial trains")
    g = parser.add_argument_group("study (override the `search:` mapping of --params)")
    g.add_argument("--params", type=Path,
                   help="params.yaml: the `search:` mapping, over the dataset's recipe datasets.<name>.train")
    g.add_argument("--out", required=True, type=Path,
                   help="output folder: best_params.yaml, trials.csv, summary.json, plots/, trials/")
    g.add_argument("--trials-dir", type=Path,
                   help="where the trials' training runs go, trials/<number>/ (default OUT/trials)")
    g.add_argument("--n-trials", type=int, help="trials in the study (ended + running), over all runs")
    g.add_argument("--timeout", type=float, help="seconds after which this run starts no new trial")
    g.add_argument("--workers", type=int, help="worker processes on this machine (default: search.workers or 1)")
    g.add_argument("--storage", help="journal file path (default OUT/journal.log) or a database URL, "
                                     "e.g. postgresql://user:pw@host/db")
    g.add_argument("--study-name", type=name_arg, help="default: <dataset>-<variant>")
    g.add_argument("--restart-if-changed", action="store_true",
                   help="a journal-file study started with another space or other fixed training "
                        "settings is renamed *.old (its trial runs deleted) and a new one starts")
    g.add_argument("--seed", type=int, help="sampler seed")
    g.add_argument("--pruner", choices=("median", "percentile", "hyperband", "none"),
                   help="pruner type (its settings from --params when the type matches)")
    g.add_argument("--report-only", action="store_true",
                   help="run no trial: write the outputs from the study as it stands")
    g.add_argument("--worker-record", type=Path, metavar="FILE",
                   help="run as one of several worker jobs on the study: take trials until the study has "
                        "n_trials, then write FILE (the trials this job ran) instead of the study's outputs")
    g.add_argument("--after-workers", type=Path, nargs="+", metavar="RECORD",
                   help="the final step of a spread study, after the worker jobs that wrote these records: "
                        "check them, wait for a lost worker's trial to be reaped, run what is left of the "
                        "budget (its retries), then write the outputs")
    g = parser.add_argument_group("fixed training settings (override `search.train`)")
    g.add_argument("--arch", help="resnet10, resnet18, resnet34, resnet50 or resnet101")
    g.add_argument("--segments", type=int)
    g.add_argument("--size", type=int, help="crop size in pixels")
    g.add_argument("--epochs", type=int, help="epochs of a trial that is not pruned")
    g.add_argument("--batch-size", type=int, help="clips per batch when batch_size is not searched")
    g.add_argument("--loader-workers", type=int, help="data-loading processes of each trial")
    g.add_argument("--device", help="auto, cpu or cuda")
    g.add_argument("--threads", type=int,
                   help="CPU threads for PyTorch in each worker (default: cores / workers with --workers > 1, "
                        "else PyTorch's choice)")
    g.add_argument("--no-progress", action="store_true", help="no per-epoch progress bars")
    g.add_argument("--debug-fail-trial", type=int, action="append", default=[], help=argparse.SUPPRESS)
    g.add_argument("--debug-exit-trial", type=int, action="append", default=[], help=argparse.SUPPRESS)


def build_plan(args):
    # lazy, as in the functions below: optuna (0.3 s) would slow `mienet search --help`
    from mienet.search.storage import JOURNAL_NAME, check_reachable
    from mienet.search.study import SearchPlan

    s, data_root = read_search_settings(args.params, args.dataset)
    if args.n_trials is not None:
        if args.n_trials < 0:
            raise MienetError("--n-trials must be >= 0")
        s.n_trials = args.n_trials
    if args.timeout is not None:
        s.timeout = args.timeout
    if args.seed is not None:
        s.sampler = {**s.sampler, "seed": args.seed}
    if args.pruner is not None and args.pruner != s.pruner["type"]:
        s.pruner = parse_pruner({"type": args.pruner}, "--pruner")
    for opt, key in (("arch", "arch"), ("segments", "segments"), ("size", "size"), ("epochs", "epochs"),
                     ("batch_size", "batch_size"), ("loader_workers", "workers"), ("device", "device")):
        if getattr(args, opt) is not None:
            s.train[key] = getattr(args, opt)
    if args.workers is not None:
        if args.workers < 1:
            raise MienetError("--workers must be >= 1")
        s.workers = args.workers
    if not s.space and not args.report_only:
        raise MienetError("no search space: pass --params FILE whose `search.space` maps training settings "
                          "to distributions, e.g. lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}")
    out = Path(args.out)
    # a params.yaml gives the dataset's files (mienet.layout); a search-only file gives none
    annotations, root = data_paths(args.annotations, args.root,
                                   args.params if data_root is not None else None, args.dataset)
    storage = args.storage or s.storage or str(out / JOURNAL_NAME)
    if "://" not in storage and args.report_only and not Path(storage).is_file():
        raise MienetError(f"--report-only: no study journal at {storage}")
    if not args.report_only:
        check_reachable(storage)  # an unreachable database: one line, and nothing written to OUT
    study_name = args.study_name or s.study_name or f"{args.dataset}-{args.variant}"
    if args.worker_record is not None and (args.report_only or args.after_workers):
        raise MienetError("--worker-record runs trials: it goes with neither --report-only nor --after-workers")
    return SearchPlan(annotations=str(annotations), root=str(root), out=str(out), dataset=args.dataset,
                      variant=args.variant, storage=storage, study_name=study_name, settings=s,
                      progress=not args.no_progress, debug_fail_trials=tuple(args.debug_fail_trial),
                      debug_exit_trials=tuple(args.debug_exit_trial),
                      threads=args.threads, trials_dir=str(args.trials_dir) if args.trials_dir else None,
                      restart_if_changed=args.restart_if_changed,
                      job=args.worker_record.stem if args.worker_record is not None else None)


def run(args) -> int:
    from mienet.search.study import subset_annotations  # lazy: optuna

    plan = build_plan(args)
    if args.report_only:
        return _run_locked(args, plan)
    # One study a folder: the commands of one study (the same storage, study name, dataset and
    # variant: K workers of a distributed search) share OUT; anything else is refused with the
    # holder named. The key is hashed: a storage URL's password is not written to the lock.
    key = hashlib.sha256("\0".join((plan.storage, plan.study_name, plan.dataset, plan.variant)).encode()).hexdigest()
    with run_lock(plan.out, "search folder", key=key[:16], purpose=f"study {plan.study_name}"):
        if plan.settings.subset:
            plan = dataclasses.replace(plan, annotations=str(subset_annotations(Path(plan.annotations), Path(plan.out),
                                                                                plan.settings.subset)))
        return _run_locked(args, plan)


def _run_locked(args, plan) -> int:
    from mienet.search.outputs import write_outputs  # lazy: optuna
    from mienet.search.study import (check_worker_records, load_existing_study, run_search,  # lazy: optuna
                                     settle_lost_trials)

    t0 = time.monotonic()
    jobs = None
    if args.report_only:
        study = load_existing_study(plan)
        result = {"study": study, "workers": 0, "worker_errors": []}
    else:
        if args.after_workers:
            # The records are checked once, before anything runs: the trials the final step runs
            # (a lost worker's retry) belong to no worker job, so they do not change the answer.
            jobs = check_worker_records(load_existing_study(plan), args.after_workers)
            settle_lost_trials(plan)
        result = run_search(plan, workers=plan.settings.workers)
    if args.worker_record is not None:
        return _write_worker_record(args.worker_record, plan, result, time.monotonic() - t0)
    summary = write_outputs(result["study"], plan, time.monotonic() - t0, result["workers"],
                            result["worker_errors"], jobs)
    best = summary["best_value"]
    print(f"search: study {summary['study_name']}: {summary['finished']} of {summary['n_trials']} trials "
          f"({summary['complete']} complete, {summary['pruned']} pruned, {summary['failed']} failed"
          + (f", {summary['retried']} retried after a lost worker" if summary["retried"] else "")
          + (f", {summary['running']} running" if summary["running"] else "") + "); "
          + (f"best val top-1 {best:.2f} (trial {summary['best_trial']})" if best is not None else "no trial complete")
          + (f", untuned default {summary['default_value']:.2f}" if summary["default_value"] is not None else "")
          + f"; pruning saved {summary['epochs_saved']} of {summary['epochs_without_pruning']} epochs "
          f"({summary['epochs_saved_pct']:.1f}%) -> {plan.out}")
    for err in result["worker_errors"]:
        print(f"search: {err}")
    if result["worker_errors"]:
        return 1
    if best is None and summary["finished"] > 0 and not summary["running"]:
        raise MienetError(f"no trial of study {summary['study_name']} completed, so there is no "
                          f"best_params.yaml; the errors are in {Path(plan.out) / 'trials.csv'}")
    return 0


def _write_worker_record(path: Path, plan, result: dict, seconds: float) -> int:
    """A worker job's record: the trials it ran (the final step checks them) and its errors."""
    from mienet.search.study import job_trials  # lazy: optuna

    trials = job_trials(result["study"], plan.job)
    write_text_atomic(path, json.dumps({"job": plan.job, "study_name": plan.study_name, "host": socket.gethostname(),
                                        "trials": trials, "seconds": round(seconds, 1),
                                        "worker_errors": result["worker_errors"]}, indent=2) + "\n")
    print(f"search: worker job {plan.job} of study {plan.study_name} ran {len(trials)} trial(s) "
          f"({', '.join(str(t['number']) for t in trials) or 'none'}) -> {path}")
    for err in result["worker_errors"]:
        print(f"search: {err}")
    return 1 if result["worker_errors"] else 0
