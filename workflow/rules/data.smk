# Data preparation: synthetic videos, frame extraction, annotation lists.
# Paths come from mienet.layout, commands from mienet.pipeline (the same as dvc.yaml's).


rule synth:
    output:
        # The completion file, not the folder: Snakemake deletes a folder output before a
        # re-run, while `mienet synth` resumes an interrupted run from its finished clips.
        f"{DATA}/{{dataset}}/videos/{SYNTH_DONE}",
    params:
        s=config["synth"],  # a changed setting re-runs the rule
        cmd=lambda w, threads: CMD.synth(w.dataset, threads),
    log:
        f"{RESULTS}/logs/{{dataset}}/synth.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/synth.tsv"
    threads: config["extract"]["jobs"]
    conda:
        MIENET_ENV
    shell:
        "{params.cmd} > {log:q} 2>&1"


rule extract_frames:
    input:
        lambda w: layout(w).videos_ready,
    output:
        # The manifest is written last; the frame folders themselves are kept across
        # interrupted runs so that a re-run resumes instead of starting over.
        f"{DATA}/{{dataset}}/frames/manifest.csv",
    params:
        e=config["extract"],
        cmd=lambda w, threads: CMD.extract_frames(w.dataset, threads),
    log:
        f"{RESULTS}/logs/{{dataset}}/extract_frames.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/extract_frames.tsv"
    threads: config["extract"]["jobs"]
    conda:
        MIENET_ENV
    shell:
        "{params.cmd} > {log:q} 2>&1"


rule make_annotations:
    input:
        lambda w: [layout(w).manifest] if layout(w).extracted else [layout(w).source],
    output:
        [f"{DATA}/{{dataset}}/annotations/{f}" for f in ANNOTATION_FILES],
    params:
        cmd=lambda w: CMD.make_annotations(w.dataset),
    log:
        f"{RESULTS}/logs/{{dataset}}/make_annotations.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/make_annotations.tsv"
    conda:
        MIENET_ENV
    shell:
        "{params.cmd} > {log:q} 2>&1"


rule dataset_not_in_profile:
    # Asking for a file of a dataset outside the active profile gets a message saying so,
    # rather than Snakemake's "No rule to produce".
    input:
        refuse_other_dataset,
    output:
        "{area}/{other}/{rest}",
    wildcard_constraints:
        area="|".join(re.escape(a) for a in (DATA, RUNS, RESULTS)),
        other="|".join(OTHER_DATASETS) or "(?!)",
        rest=".+",
    log:
        f"{RESULTS}/logs/not_in_profile/{{area}}/{{other}}/{{rest}}.log",
    localrule: True
    conda:
        MIENET_ENV
    shell:
        "false > {log:q}"
