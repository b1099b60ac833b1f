# Tables, figures and the results page from everything under results/.


rule report:
    input:
        report_inputs,
        # the zoo table too, so that the `dvc commit` below finds every stage's outputs
        ROOTS.zoo_tables(),
    output:
        [report_output(p) for p in expected_outputs(ENABLED)],
    params:
        cmd=CMD.report(ENABLED),
        # Record what Snakemake made in dvc.lock too, so that `dvc status` agrees; only when
        # dvc.yaml describes this very configuration (`mienet generate` writes it).
        sync_dvc=DVC_CURRENT,
    log:
        f"{RESULTS}/logs/report.log",
    benchmark:
        f"{RESULTS}/benchmarks/report.tsv"
    conda:
        MIENET_ENV
    shell:
        "{params.cmd} > {log:q} 2>&1"
        " && if [ {params.sync_dvc:q} = True ] && [ -d .dvc ]; then dvc commit --force --quiet >> {log:q} 2>&1"
        " || echo 'warning: dvc commit failed, see the log' >&2; fi"
