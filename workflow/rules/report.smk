# Tables, figures and the results page from everything under results/.
from mienet.report import expected_outputs

# Caption file and category of each output family, for `snakemake --report`.
_FAMILIES = {
    "ablation_bars": "Figures", "curves": "Figures", "confusion": "Figures", "per_class": "Figures",
    "accuracy_gflops": "Figures", "ablation": "Tables", "comparison": "Tables", "search": "Tables",
    "efficiency": "Tables",
}


def report_output(path):
    stem = Path(path).stem
    family = next((f for f in sorted(_FAMILIES, key=len, reverse=True) if stem.startswith(f)), None)
    full = f"{RESULTS}/{path}"
    if family is None or not path.endswith((".png", ".md")):
        return full  # PDF, LaTeX, CSV and the page itself: in results/, not in the HTML report
    return report(full, caption=f"../report/{family}.rst", category=_FAMILIES[family],
                  subcategory=stem.removeprefix(family).strip("_") or "all")


def report_inputs(wildcards):
    inputs = ablation_targets() + search_targets()
    inputs += [f"{RESULTS}/bench/train_{d}_{v}.json" for d in ENABLED for v in ("tsn", "mienet")]
    return inputs


rule report:
    input:
        report_inputs,
    output:
        [report_output(p) for p in expected_outputs(ENABLED)],
    params:
        datasets=" ".join(ENABLED),
        sync_dvc=config["profile"] == "default",
    log:
        f"{RESULTS}/logs/report.log",
    benchmark:
        f"{RESULTS}/benchmarks/report.tsv"
    shell:
        "mienet report --results {RESULTS} --datasets {params.datasets} > {log} 2>&1"
        # Record what Snakemake made in dvc.lock too, so that `dvc status` agrees (default profile).
        " && if [ {params.sync_dvc} = True ] && [ -d .dvc ]; then dvc commit --force --quiet >> {log} 2>&1"
        " || echo 'warning: dvc commit failed, see the log' >&2; fi"
