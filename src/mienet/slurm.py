"""Where SLURM put this process. Light (no torch): every `mienet` command logs it at start."""

from __future__ import annotations

import os


def slurm_job() -> dict[str, str] | None:
    """Where SLURM put this process (job id, partition, node, the GPUs it was given), or None
    outside a SLURM job. ``CUDA_VISIBLE_DEVICES`` is what SLURM set for the job's GPUs."""
    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        return None
    return {"job_id": job, "partition": os.environ.get("SLURM_JOB_PARTITION", "?"),
            "node": os.environ.get("SLURMD_NODENAME", os.environ.get("SLURM_NODELIST", "?")),
            "gpus": os.environ.get("SLURM_JOB_GPUS", os.environ.get("SLURM_STEP_GPUS", "")),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", "")}


def describe_slurm_job() -> str | None:
    """One log line for a process in a SLURM job (None outside one); every `mienet` command logs it,
    so each rule's log names the job that ran it."""
    job = slurm_job()
    if job is None:
        return None
    if job["gpus"] or job["cuda_visible_devices"]:
        gpus = (f", GPUs {job['gpus'] or '?'}"
                f", CUDA_VISIBLE_DEVICES={job['cuda_visible_devices'] or '(unset)'}")
    else:
        gpus = ", no GPU"
    return f"SLURM job {job['job_id']} on node {job['node']}, partition {job['partition']}{gpus}"
