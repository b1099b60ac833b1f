# Optuna studies and the final training with their best parameters.


rule search:
    input:
        lambda w: annotation_files(w.dataset),
    output:
        best=f"{RESULTS}/{{dataset}}/search/{{variant}}/best_params.yaml",
        summary=f"{RESULTS}/{{dataset}}/search/{{variant}}/summary.json",
        trials=f"{RESULTS}/{{dataset}}/search/{{variant}}/trials.csv",
    params:
        # The study (its journal) is not an output: an interrupted search resumes.
        file=PARAMS_FILE,
        study=lambda w: {**config["search"], **DATASETS[w.dataset].get("search", {})},
        recipe=lambda w: DATASETS[w.dataset]["train"],
        ann=lambda w: annotation_dir(w.dataset),
        root=lambda w: dataset_root(w.dataset),
        out=lambda w: f"{RESULTS}/{w.dataset}/search/{w.variant}",
        trials=lambda w: f"{RUNS}/{w.dataset}/search/{w.variant}",
    log:
        f"{RESULTS}/logs/{{dataset}}/search_{{variant}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/search_{{variant}}.tsv"
    threads: config["resources"]["train_threads"]
    resources:
        gpu=1,
        mem_mb=config["resources"]["train_mem_mb"],
        runtime=config["resources"]["train_runtime_min"],
    conda:
        MIENET_ENV
    shell:
        "mienet search --params {params.file:q} --dataset {wildcards.dataset} --variant {wildcards.variant}"
        " --annotations {params.ann:q} --root {params.root:q} --out {params.out:q}"
        " --trials-dir {params.trials:q} --restart-if-changed --threads {threads} --no-progress > {log} 2>&1"


rule train_tuned:
    input:
        ann=lambda w: annotation_files(w.dataset),
        hparams=f"{RESULTS}/{{dataset}}/search/{{variant}}/best_params.yaml",
    output:
        best=f"{RUNS}/{{dataset}}/{{variant}}/tuned/checkpoints/best.pt",
        curve=f"{RUNS}/{{dataset}}/{{variant}}/tuned/log.csv",
    params:
        file=PARAMS_FILE,
        recipe=lambda w: recipe_args(w.dataset),
        ann=lambda w: annotation_dir(w.dataset),
        root=lambda w: dataset_root(w.dataset),
        out=lambda w: run_dir(w.dataset, w.variant, "tuned"),
    log:
        f"{RESULTS}/logs/{{dataset}}/train_{{variant}}_tuned.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/train_{{variant}}_tuned.tsv"
    threads: config["resources"]["train_threads"]
    resources:
        gpu=1,
        mem_mb=config["resources"]["train_mem_mb"],
        runtime=config["resources"]["train_runtime_min"],
    conda:
        MIENET_ENV
    shell:
        # The recipe first, then the searched settings on top (--hparams wins over the recipe
        # but not over options, so the recipe goes through params.yaml, not options).
        "mienet train --params {params.file:q} --dataset {wildcards.dataset} --variant {wildcards.variant}"
        " --hparams {input.hparams:q} --annotations {params.ann:q} --root {params.root:q}"
        " --out {params.out:q} --resume --restart-if-changed --threads {threads} --no-progress"
        " > {log} 2>&1"
