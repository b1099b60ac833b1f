# The authors' released checkpoints, evaluated where their files are (PRETRAINED_DIR, pretrained/).


rule zoo:
    input:
        # Only the files present: the target succeeds without any, and re-runs when one arrives.
        # With a file present, its dataset's annotations come first when the profile makes them.
        lambda w: [p for p in (f"{PRETRAINED_DIR}/{e['file']}" for e in config["zoo"].values()) if Path(p).exists()],
        lambda w: [f for e in config["zoo"].values() if e["dataset"] in ENABLED and not e.get("list")
                   and Path(f"{PRETRAINED_DIR}/{e['file']}").exists() for f in annotation_files(e["dataset"])],
    output:
        ROOTS.zoo_tables(),
    params:
        entries=config["zoo"],  # a changed entry re-runs the zoo
        cmd=CMD.zoo(),
    log:
        f"{RESULTS}/logs/zoo.log",
    benchmark:
        f"{RESULTS}/benchmarks/zoo.tsv"
    threads: config["resources"]["train_threads"]
    conda:
        MIENET_ENV
    shell:
        "{params.cmd} > {log:q} 2>&1"
