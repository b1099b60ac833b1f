# Every stage of the pipeline, one rule a stage spec (mienet.stages.STAGES): its command, inputs,
# outputs, log, benchmark, threads, GPUs and the settings whose change re-runs it come from the
# spec, the same one dvc.yaml is written from (`mienet generate`). A new stage is a new spec, not a
# new rule here. The rules read the specs rather than being generated as text, so nothing here
# can drift from them.


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
    listed = [] if named else [report_output(p.removeprefix(f"{RESULTS}/")) if stage.name == "report" else p
                               for p in outputs]
    return listed, named


for _stage in STAGES.values():
    _listed, _named = _rule_outputs(_stage)

    rule:
        name:
            _stage.name
        input:
            unpack(_rule_inputs(_stage)),
        output:
            *_listed,
            **_named,
        params:
            cmd=_rule_command(_stage),
            watch=_rule_watch(_stage),  # a changed setting re-runs the job
            **(_stage.extra(WF) if _stage.extra else {}),
        log:
            _stage.log_file(RESULTS),
        benchmark:
            _stage.benchmark_file(RESULTS)
        threads: stage_threads(_stage, config)
        resources:
            **(_rule_gpus(_stage) if _stage.gpus else {}),  # memory and time: profiles/slurm (per rule family)
        localrule: _stage.local
        conda:
            MIENET_ENV
        shell:
            _stage.shell


rule dataset_not_in_profile:
    # Asking for a file of a dataset outside the active profile gets a message saying so,
    # rather than Snakemake's "No rule to produce".
    input:
        refuse_other_dataset,
    output:
        "{area}/{other}/{rest}",
    wildcard_constraints:
        area="|".join(re.escape(a) for a in (WF.data, WF.roots.runs, RESULTS)),
        other="|".join(OTHER_DATASETS) or "(?!)",
        rest=".+",
    log:
        f"{RESULTS}/logs/not_in_profile/{{area}}/{{other}}/{{rest}}.log",
    localrule: True
    conda:
        MIENET_ENV
    shell:
        "false > {log:q}"
