# Every stage of the pipeline, one rule a stage spec (mienet.stages.STAGES): its command, inputs,
# outputs, log, benchmark, threads, GPUs and the settings whose change re-runs it come from the
# spec, the same one dvc.yaml is written from (`mienet generate`). A new stage is a new spec, not a
# new rule here. The rules read the specs rather than being generated as text, so nothing here
# can drift from them.


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
            SHELL


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
