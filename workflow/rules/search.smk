# Optuna studies and the final training with their best parameters.
# Paths come from mienet.layout, commands from mienet.pipeline (the same as dvc.yaml's).


rule search:
    input:
        lambda w: annotation_files(w.dataset),
    output:
        best=f"{ROOTS.search_dir('{dataset}', '{variant}')}/best_params.yaml",
        summary=f"{ROOTS.search_dir('{dataset}', '{variant}')}/summary.json",
        trials=f"{ROOTS.search_dir('{dataset}', '{variant}')}/trials.csv",
    params:
        # The study (its journal) is not an output: an interrupted search resumes.
        study=lambda w: {**config["search"], **DATASETS[w.dataset].get("search", {})},
        recipe=lambda w: DATASETS[w.dataset]["train"],
        cmd=lambda w, threads: CMD.search(w.dataset, w.variant, threads),
    log:
        f"{RESULTS}/logs/{{dataset}}/search_{{variant}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/search_{{variant}}.tsv"
    threads: config["resources"]["train_threads"]
    resources:
        gpu=1,  # memory and time: profiles/slurm (per rule family)
    conda:
        MIENET_ENV
    shell:
        "{params.cmd} > {log:q} 2>&1"


rule train_tuned:
    input:
        ann=lambda w: annotation_files(w.dataset),
        hparams=f"{ROOTS.search_dir('{dataset}', '{variant}')}/best_params.yaml",
    output:
        best=f"{ROOTS.run_dir('{dataset}', '{variant}', 'tuned')}/checkpoints/best.pt",
        curve=f"{ROOTS.run_dir('{dataset}', '{variant}', 'tuned')}/log.csv",
    params:
        recipe=lambda w: DATASETS[w.dataset]["train"],
        # The recipe from --params, then the searched settings on top (--hparams).
        cmd=lambda w, threads: CMD.train_tuned(w.dataset, w.variant, threads),
    log:
        f"{RESULTS}/logs/{{dataset}}/train_{{variant}}_tuned.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/train_{{variant}}_tuned.tsv"
    threads: config["resources"]["train_threads"]
    resources:
        gpu=1,  # memory and time: profiles/slurm (per rule family)
    conda:
        MIENET_ENV
    shell:
        "{params.cmd} > {log:q} 2>&1"
