import os
import re

from mienet.config import write_effective_params
from mienet.registry.variants import IMAGENET_FILES, VARIANTS as _VARIANTS
from mienet.stages import SHELL, STAGES, Workflow, stage_threads
from mienet.report.outputs import output_files, write_captions

# Rules call `mienet` from PATH: the active environment's, or this checkout's .venv/bin,
# which .venv's own `snakemake` puts first (workflow/scripts/setup_env.sh); a rule's conda
# environment, when used (--software-deployment-method conda), is activated on top.
#
# The software of every rule: environment.yml (through workflow/envs/mienet.yaml, a link to
# it) plus this checkout's `mienet`, installed by mienet.post-deploy.sh. Only used with
# `--software-deployment-method conda`; by default the rules run in the environment that
# runs Snakemake (.venv).
MIENET_ENV = "../envs/mienet.yaml"

# params.yaml with the `--config key=value` / `--configfile more.yaml` overrides of this run
# (checked in the Snakefile); every job reads this one configuration, and the commands
# that take `--params` get it as a file (rewritten only when it changes).
PARAMS_FILE = write_effective_params(config, ".snakemake/mienet/params.yaml")
WF = Workflow(config, PARAMS_FILE)  # the stages' view of this configuration (mienet.stages)
RESULTS = WF.roots.results
ENABLED = WF.enabled


# The report's files by path (mienet.report.outputs, the registry of its tables and figures), and
# each output's caption for `snakemake --report`, written from the registry at parse time.
_REPORT_FILES = {f"{RESULTS}/{f.path}": f for f in output_files(ENABLED)}
_CAPTIONS = write_captions(".snakemake/mienet/report")


def report_output(path):
    """A file of the report stage (``path`` as the stage lists it, under results/): a table's
    Markdown and a figure's PNG go into Snakemake's report, under their output's caption and
    category."""
    file = _REPORT_FILES.get(path)
    if file is None or not file.shown:
        return path  # PDF, LaTeX, CSV and the page itself: in results/, not in the HTML report
    return report(path, caption=_CAPTIONS[file.output.name], category=file.output.category,
                  subcategory=file.dataset or "all")


# How a stage spec (mienet.stages) becomes a rule of workflow/rules/stages.smk.
def _rule_inputs(stage):
    def inputs(wildcards):
        found = stage.inputs(WF, wildcards) if stage.inputs else []
        return found if isinstance(found, dict) else {"files": found}

    return inputs


def _rule_command(stage):
    return lambda wildcards, threads: stage.command(WF, wildcards, threads)


def _rule_watch(stage):
    return (lambda wildcards: stage.watch(WF, wildcards)) if stage.watch else ""


def _rule_gpus(stage):
    return {"gpu": (lambda wildcards: stage.gpus(WF, wildcards)) if callable(stage.gpus) else stage.gpus}


def _rule_outputs(stage):
    """(positional, named) outputs; the report's tables and figures go into Snakemake's report."""
    outputs = stage.outputs(WF)
    named = outputs if isinstance(outputs, dict) else {}
    listed = [] if named else [report_output(p) if stage.name == "report" else p
                               for p in outputs]
    return listed, named


wildcard_constraints:
    dataset="|".join(ENABLED) or "none",
    variant="|".join(_VARIANTS),
    seed=r"\d+",
    run=r"seed\d+|tuned",
    worker=r"\d+",
    weights_file="|".join(re.escape(f) for f in IMAGENET_FILES.values()),


OTHER_DATASETS = [d for d in config["datasets"] if d not in ENABLED]


def refuse_other_dataset(w):
    """Input of the catch-all rule for files of a dataset the active profile does not run."""
    others = [p for p, names in config["profiles"].items() if w.other in names]
    # One line and exit 1, as for a bad params.yaml: an exception here would be printed by
    # Snakemake as an InputFunctionException with its traceback.
    import sys

    print(
        f"Error: dataset {w.other!r} is not in profile {config['profile']!r} (it runs: {', '.join(ENABLED)}); "
        + (f"run it with `--config profile={others[0]}` after the targets" if others
           else f"add it to a profile in params.yaml (profiles.<name>: [..., {w.other}])"), file=sys.stderr)
    raise SystemExit(1)
