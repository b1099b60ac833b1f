# Data preparation: synthetic videos, frame extraction, annotation lists.


rule synth:
    output:
        directory(f"{DATA}/{{dataset}}/videos"),
    params:
        s=config["synth"],
    log:
        f"{RESULTS}/logs/{{dataset}}/synth.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/synth.tsv"
    threads: config["extract"]["jobs"]
    conda:
        MIENET_ENV
    shell:
        "mienet synth {output} --classes {params.s[classes]}"
        " --clips-per-class {params.s[clips_per_class]} --frames {params.s[frames]}"
        " --size {params.s[size]} --fps {params.s[fps]} --seed {params.s[seed]}"
        " -j {threads} > {log} 2>&1"


rule extract_frames:
    input:
        lambda w: videos_dir(w.dataset),
    output:
        # The manifest is written last; the frame folders themselves are kept across
        # interrupted runs so that a re-run resumes instead of starting over.
        f"{DATA}/{{dataset}}/frames/manifest.csv",
    params:
        frames=lambda w: frames_dir(w.dataset),
        resize=lambda w: (f"--short-side {DATASETS[w.dataset]['short_side']}"
                          if DATASETS[w.dataset].get("short_side") else ""),
        e=config["extract"],
    log:
        f"{RESULTS}/logs/{{dataset}}/extract_frames.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/extract_frames.tsv"
    threads: config["extract"]["jobs"]
    conda:
        MIENET_ENV
    shell:
        "mienet extract-frames {input:q} -o {params.frames:q} -j {threads} --ext {params.e[ext]}"
        " --quality {params.e[quality]} {params.resize} --no-progress > {log} 2>&1"


rule make_annotations:
    input:
        annotation_inputs,
    output:
        annotation_files("{dataset}"),
    params:
        args=annotation_args,
        out=lambda w: f"{DATA}/{w.dataset}/annotations",
    log:
        f"{RESULTS}/logs/{{dataset}}/make_annotations.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/make_annotations.tsv"
    conda:
        MIENET_ENV
    shell:
        "mienet make-annotations {params.args} -o {params.out:q} > {log} 2>&1"

