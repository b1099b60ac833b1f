# MIE-Net from raw videos to paper tables.
#   snakemake --cores all reproduce_all      everything of the profile in params.yaml
#   snakemake --cores all data               frames and annotations of every dataset
#   snakemake --cores all ablation           every variant x seed, trained and evaluated
#   snakemake --cores all search_all         Optuna studies and the tuned trainings
#   snakemake --cores all report             tables, figures, results/README.md
#   snakemake --cores all zoo                the released checkpoints in pretrained/ (results/tables/zoo.*)
#   snakemake --cores all dataset_synthetic  one dataset, from videos to its evaluations
#   snakemake --report results/report.html   Snakemake's HTML report of the figures and tables
#   snakemake reproduce_all --config profile=paper     (--config goes after the targets)
# The rules live in workflow/rules/stages.smk, one a stage spec of src/mienet/stages.py, which
# dvc.yaml is written from too (`mienet generate`).

from snakemake.utils import min_version, validate

from mienet.config import check_params

min_version("9.0")


configfile: "params.yaml"


# The schema is generated from the typed configuration model (src/mienet/config.py). Our own
# check first: one line per problem, with hints (YAML's `1e-3` is text, write 1.0e-3);
# Snakemake's validation against the same schema file follows (and then always passes).
check_params(config, "params.yaml")
validate(config, "workflow/schemas/params.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/stages.smk"


rule reproduce_all:
    input:
        rules.report.output,
        rules.zoo.output,
    default_target: True


rule data:
    input:
        WF.data_targets(),


rule ablation:
    input:
        WF.ablation_targets(),


rule search_all:
    input:
        WF.search_targets(),


for _name in ENABLED:

    rule:
        name:
            f"dataset_{_name}"
        input:
            [f for f in WF.ablation_targets() + WF.search_targets() if f.startswith(f"{RESULTS}/{_name}/")],
