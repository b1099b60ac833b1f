# Optuna studies and the final training with their best parameters.
# Paths come from mienet.layout, commands from mienet.pipeline (the same as dvc.yaml's).


rule search_worker:
    input:
        lambda w: annotation_files(w.dataset) + weights_files(w.dataset),
    output:
        ROOTS.search_worker_record("{dataset}", "{variant}", "{worker}"),
    params:
        study=lambda w: {**config["search"], **DATASETS[w.dataset].get("search", {})},
        recipe=lambda w: DATASETS[w.dataset]["train"],
        # one of search.jobs jobs taking trials of one study until it has n_trials
        cmd=lambda w, threads: CMD.search_worker(w.dataset, w.variant, w.worker, threads),
    log:
        f"{RESULTS}/logs/{{dataset}}/search_{{variant}}_worker{{worker}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/search_{{variant}}_worker{{worker}}.tsv"
    threads: config["resources"]["train_threads"]
    resources:
        gpu=1,  # memory and time: profiles/slurm (per rule family)
    conda:
        MIENET_ENV
    shell:
        "{params.cmd} > {log:q} 2>&1"


# The whole study (search.jobs: 1), or the final step after its worker jobs: it runs what they
# left (a lost worker's retry), checks their records and writes the outputs.
rule search:
    input:
        ann=lambda w: annotation_files(w.dataset) + weights_files(w.dataset),
        workers=lambda w: worker_records(w.dataset, w.variant),
    output:
        best=f"{ROOTS.search_dir('{dataset}', '{variant}')}/best_params.yaml",
        summary=f"{ROOTS.search_dir('{dataset}', '{variant}')}/summary.json",
        trials=f"{ROOTS.search_dir('{dataset}', '{variant}')}/trials.csv",
    params:
        # The study (its journal) is not an output: an interrupted search resumes.
        study=lambda w: {**config["search"], **DATASETS[w.dataset].get("search", {})},
        recipe=lambda w: DATASETS[w.dataset]["train"],
        cmd=lambda w, threads: CMD.search(w.dataset, w.variant, threads, worker_records(w.dataset, w.variant)),
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
        ann=lambda w: annotation_files(w.dataset) + weights_files(w.dataset),
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
        gpu=lambda w: gpus(w.dataset),  # the recipe's gpus; memory and time: profiles/slurm (per rule family)
    conda:
        MIENET_ENV
    shell:
        "{params.cmd} > {log:q} 2>&1"
