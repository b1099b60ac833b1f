# MIE-Net from raw videos to paper tables.
#   snakemake --cores all reproduce_all      everything enabled in params.yaml
#   snakemake --cores all data               frames and annotations of every enabled dataset
#   snakemake --cores all dataset_synthetic  one dataset
# The rules live in workflow/rules/; every shell line calls the `mienet` tool.

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "params.yaml"


validate(config, "workflow/schemas/params.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"


rule reproduce_all:
    input:
        data_targets(),
    default_target: True


rule data:
    input:
        data_targets(),


for _name in ENABLED:

    rule:
        name:
            f"dataset_{_name}"
        input:
            annotation_files(_name),
