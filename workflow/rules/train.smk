# Training and evaluation: every dataset x variant x seed of the ablation.


rule train:
    input:
        lambda w: annotation_files(w.dataset),
    output:
        best=f"{RUNS}/{{dataset}}/{{variant}}/seed{{seed}}/checkpoints/best.pt",
        curve=f"{RUNS}/{{dataset}}/{{variant}}/seed{{seed}}/log.csv",
    params:
        recipe=lambda w: recipe_args(w.dataset),
        ann=lambda w: annotation_dir(w.dataset),
        root=lambda w: dataset_root(w.dataset),
        out=lambda w: run_dir(w.dataset, w.variant, f"seed{w.seed}"),
    log:
        f"{RESULTS}/logs/{{dataset}}/train_{{variant}}_seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/train_{{variant}}_seed{{seed}}.tsv"
    threads: config["resources"]["train_threads"]
    resources:
        gpu=1,
        mem_mb=config["resources"]["train_mem_mb"],
        runtime=config["resources"]["train_runtime_min"],
    conda:
        MIENET_ENV
    shell:
        # --resume: an interrupted job continues from its last epoch; --restart-if-changed:
        # a run made with other parameters starts over.
        "mienet train --dataset {wildcards.dataset} --variant {wildcards.variant} --seed {wildcards.seed}"
        " {params.recipe} --annotations {params.ann:q} --root {params.root:q} --out {params.out:q}"
        " --resume --restart-if-changed --threads {threads} --no-progress > {log} 2>&1"


rule evaluate:
    input:
        ckpt=f"{RUNS}/{{dataset}}/{{variant}}/{{run}}/checkpoints/best.pt",
        curve=f"{RUNS}/{{dataset}}/{{variant}}/{{run}}/log.csv",
    output:
        result_files("{dataset}", "{variant}", "{run}"),
    params:
        ann=lambda w: annotation_dir(w.dataset),
        root=lambda w: dataset_root(w.dataset),
        out=lambda w: f"{RESULTS}/{w.dataset}/{w.variant}/{w.run}",
        e=config["evaluate"],
    log:
        f"{RESULTS}/logs/{{dataset}}/evaluate_{{variant}}_{{run}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/evaluate_{{variant}}_{{run}}.tsv"
    threads: config["resources"]["train_threads"]
    conda:
        MIENET_ENV
    shell:
        "mienet evaluate --checkpoint {input.ckpt:q} --annotations {params.ann:q} --root {params.root:q}"
        " --split {params.e[split]} --clips {params.e[clips]} --crops {params.e[crops]}"
        " --out {params.out:q} --workers 1 --no-progress > {log} 2>&1"


rule bench_train:
    output:
        f"{RESULTS}/bench/train_{{dataset}}_{{variant}}.json",
    params:
        t=lambda w: DATASETS[w.dataset]["train"],
    log:
        f"{RESULTS}/logs/bench/train_{{dataset}}_{{variant}}.log",
    threads: config["resources"]["train_threads"]
    conda:
        MIENET_ENV
    shell:
        "mienet bench train --variant {wildcards.variant} --arch {params.t[arch]}"
        " --segments {params.t[segments]} --size {params.t[size]} --batch {params.t[batch_size]}"
        " --threads {threads} --json > {output}.tmp 2> {log} && mv {output}.tmp {output}"
