# Training and evaluation: every dataset x variant x seed of the ablation.
# Paths come from mienet.layout, commands from mienet.pipeline (the same as dvc.yaml's).


rule train:
    input:
        lambda w: annotation_files(w.dataset),
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
        gpu=1,  # memory and time: profiles/slurm (per rule family)
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
