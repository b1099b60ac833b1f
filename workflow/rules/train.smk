# Training and evaluation: every dataset x variant x seed of the ablation.
# Paths come from mienet.layout, commands from mienet.pipeline (the same as dvc.yaml's).


# ImageNet weights, downloaded on the submitting node: compute nodes mostly have no internet, and
# a training never downloads (it fails at once naming the file and this rule). The torch hub
# cache ($TORCH_HOME) must be on a file system the compute nodes see.
rule:
    name:
        FETCH_RULE  # fetch_weights: the name the trainings' error gives (mienet.registry.variants)
    localrule: True
    output:
        f"{os.path.dirname(imagenet_weights_file('resnet50'))}/{{weights_file}}",
    params:
        cmd=lambda w: CMD.fetch_weights({f: a for a, f in IMAGENET_FILES.items()}[w.weights_file]),
    log:
        f"{RESULTS}/logs/fetch_weights_{{weights_file}}.log",
    conda:
        MIENET_ENV
    shell:
        "{params.cmd} > {log:q} 2>&1"


rule train:
    input:
        lambda w: annotation_files(w.dataset) + weights_files(w.dataset),
    output:
        best=f"{ROOTS.run_dir('{dataset}', '{variant}', 'seed{seed}')}/checkpoints/best.pt",
        curve=f"{ROOTS.run_dir('{dataset}', '{variant}', 'seed{seed}')}/log.csv",
    params:
        recipe=lambda w: DATASETS[w.dataset]["train"],  # a changed recipe re-runs the job
        # --resume: an interrupted job continues from its last epoch; --restart-if-changed:
        # a run made with other parameters starts over.
        cmd=lambda w, threads: CMD.train(w.dataset, w.variant, w.seed, threads),
    log:
        f"{RESULTS}/logs/{{dataset}}/train_{{variant}}_seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/train_{{variant}}_seed{{seed}}.tsv"
    threads: config["resources"]["train_threads"]
    resources:
        gpu=lambda w: gpus(w.dataset),  # the recipe's gpus; memory and time: profiles/slurm (per rule family)
    conda:
        MIENET_ENV
    shell:
        "{params.cmd} > {log:q} 2>&1"


rule evaluate:
    input:
        ckpt=f"{ROOTS.run_dir('{dataset}', '{variant}', '{run}')}/checkpoints/best.pt",
        curve=f"{ROOTS.run_dir('{dataset}', '{variant}', '{run}')}/log.csv",
    output:
        ROOTS.result_files("{dataset}", "{variant}", "{run}"),
    params:
        e=config["evaluate"],
        cmd=lambda w: CMD.evaluate(w.dataset, w.variant, w.run),
    log:
        f"{RESULTS}/logs/{{dataset}}/evaluate_{{variant}}_{{run}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/evaluate_{{variant}}_{{run}}.tsv"
    threads: config["resources"]["train_threads"]
    conda:
        MIENET_ENV
    shell:
        "{params.cmd} > {log:q} 2>&1"


rule bench_train:
    output:
        ROOTS.bench_file("{dataset}", "{variant}"),
    params:
        cmd=lambda w, threads: CMD.bench_train(w.dataset, w.variant, threads, DATASETS[w.dataset]["train"]),
    log:
        f"{RESULTS}/logs/bench/train_{{dataset}}_{{variant}}.log",
    threads: config["resources"]["train_threads"]
    conda:
        MIENET_ENV
    shell:
        "({params.cmd}) 2> {log:q}"
