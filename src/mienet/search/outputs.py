"""What a study leaves in OUT_DIR, every file written atomically::

    best_params.yaml        `params:` the best trial's settings (read by `mienet train --hparams`)
    trials.csv              one row per trial: state, value, epochs trained, duration, parameters
    summary.json            counts, best and default value, epochs saved by pruning, timings
    plots/optimization_history.png, plots/param_importances.png, plots/parallel_coordinate.png
"""

from __future__ import annotations

import csv
import io
import json
import logging
import warnings
from pathlib import Path

import optuna
import yaml
from optuna.trial import TrialState

from mienet.io import atomic_path, write_text_atomic
from mienet.search.storage import describe
from mienet.search.study import METRIC, SearchPlan, max_epochs, tally

log = logging.getLogger(__name__)

PLOTS = ("optimization_history", "param_importances", "parallel_coordinate")


def _last_step(trial: optuna.trial.FrozenTrial) -> int:
    return max(trial.intermediate_values, default=0)


def _epochs_trained(trial: optuna.trial.FrozenTrial) -> int:
    return int(trial.user_attrs.get("epochs_trained", len(trial.intermediate_values)))


def efficiency(trials: list[optuna.trial.FrozenTrial], default_max: int) -> dict:
    """Epochs trained against the epochs the same trials would have trained without pruning."""
    trained = sum(_epochs_trained(t) for t in trials)
    saved = sum(max(int(t.user_attrs.get("max_epochs", default_max)) - _last_step(t), 0)
                for t in trials if t.state == TrialState.PRUNED)
    without = trained + saved
    return {"epochs_trained": trained, "epochs_without_pruning": without, "epochs_saved": saved,
            "epochs_saved_pct": round(100.0 * saved / without, 1) if without else 0.0}


def trial_rows(trials: list[optuna.trial.FrozenTrial], names: list[str]) -> list[dict]:
    rows = []
    for t in trials:
        duration = (t.datetime_complete - t.datetime_start).total_seconds() \
            if t.datetime_complete and t.datetime_start else None
        worker = t.user_attrs.get("worker") or {}
        row = {
            "number": t.number, "state": t.state.name, "value": t.value,
            "epochs_trained": _epochs_trained(t), "max_epochs": t.user_attrs.get("max_epochs"),
            "last_epoch": _last_step(t) or None,
            "duration_s": round(duration, 2) if duration is not None else None,
            "default": bool(t.user_attrs.get("default", False)),
            "retry_of": t.system_attrs.get("failed_trial"),
            "worker": f"{worker.get('machine', '').split('/')[0]}:{worker.get('pid', '')}" if worker else "",
            "error": t.user_attrs.get("error", ""),
        }
        row.update({f"params_{n}": t.params.get(n) for n in names})
        rows.append(row)
    return rows


def write_trials_csv(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    fieldnames = list(rows[0]) if rows else ["number", "state", "value"]
    writer = csv.DictWriter(buf, fieldnames=fieldnames, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
    write_text_atomic(path, buf.getvalue())


def write_best_params(path: Path, study: optuna.Study, best: optuna.trial.FrozenTrial, plan: SearchPlan,
                      default_value: float | None) -> None:
    header = (f"# Best trial of the Optuna study {study.study_name} (mienet search).\n"
              "# `mienet train --hparams` reads the settings under `params`; the rest is a record.\n")
    body = {
        "params": dict(best.params),
        "study": study.study_name,
        "trial": best.number,
        "value": best.value,
        "metric": f"{METRIC} (best validation top-1 %, over {best.user_attrs.get('max_epochs')} epochs)",
        "default_value": default_value,
        "fixed": dict(plan.settings.train),
    }
    write_text_atomic(path, header + yaml.safe_dump(body, sort_keys=False))


def write_plots(study: optuna.Study, plots: Path, n_complete: int) -> dict[str, str]:
    """The three matplotlib figures; a figure that cannot be drawn is reported, not raised."""
    # lazy: matplotlib costs 0.7 s, which a worker job (no plots) never pays; the backend is set here
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    status = {}
    for name in PLOTS:
        path = plots / f"{name}.png"
        if n_complete < (2 if name == "param_importances" else 1):
            status[name] = f"skipped: needs at least {2 if name == 'param_importances' else 1} complete trials"
            path.unlink(missing_ok=True)
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ax = getattr(ovm, f"plot_{name}")(study)
            fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
            fig.set_size_inches(8, 5)
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
            plt.close(fig)
            status[name] = str(path)
        except Exception as exc:  # e.g. importances of parameters that never varied
            status[name] = f"skipped: {type(exc).__name__}: {exc}"
            path.unlink(missing_ok=True)
            plt.close("all")
    for name, state in status.items():
        if state.startswith("skipped"):
            log.info("plot %s %s", name, state)
    return status


def write_outputs(study: optuna.Study, plan: SearchPlan, seconds: float, workers: int = 1,
                  worker_errors: list[str] | None = None, jobs: dict[str, list[int]] | None = None) -> dict:
    """best_params.yaml (when a trial completed), trials.csv, summary.json and the plots.
    ``jobs``: the trials each worker job of a spread study ran (job -> trial numbers)."""
    out = Path(plan.out)
    s = plan.settings
    trials = study.get_trials(deepcopy=False)
    t = tally(trials)
    complete = [x for x in trials if x.state == TrialState.COMPLETE]
    best = max(complete, key=lambda x: x.value) if complete else None
    defaults = [x for x in trials if x.user_attrs.get("default") and x.number not in t.replaced]
    default = defaults[-1] if defaults else None
    default_value = default.value if default is not None and default.state == TrialState.COMPLETE else None
    names = list(s.space) + sorted({n for x in trials for n in x.params} - set(s.space))
    write_trials_csv(out / "trials.csv", trial_rows(trials, names))
    if best is not None:
        write_best_params(out / "best_params.yaml", study, best, plan, default_value)
    plots = write_plots(study, out / "plots", len(complete))
    durations = [(x.datetime_complete - x.datetime_start).total_seconds() for x in trials
                 if x.datetime_complete and x.datetime_start]
    summary = {
        "study_name": study.study_name,
        "storage": describe(plan.storage),
        "dataset": plan.dataset,
        "variant": plan.variant,
        "metric": METRIC,
        "direction": "maximize",
        "n_trials": s.n_trials,
        "finished": t.finished,
        "complete": t.complete,
        "pruned": t.pruned,
        "failed": t.failed - t.retried,  # raised: they count against n_trials
        "retried": t.retried,  # lost with their worker and queued again: their retry counts instead
        "running": t.running,
        "waiting": t.waiting,
        "best_value": best.value if best else None,
        "best_trial": best.number if best else None,
        "best_params": dict(best.params) if best else None,
        "default_trial": default.number if default is not None else None,
        "default_state": default.state.name if default is not None else None,
        "default_value": default_value,
        **efficiency(trials, max_epochs(s)),
        "max_epochs": max_epochs(s),
        "trial_seconds": round(sum(durations), 1),
        "seconds": round(seconds, 1),
        "workers": workers,
        "worker_errors": worker_errors or [],
        **({"jobs": jobs} if jobs else {}),
        "sampler": s.sampler,
        "pruner": s.pruner,
        "plots": plots,
    }
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary
