"""The ``mienet`` command-line tool.

Each sub-command lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported only when their command runs, so
``mienet synth --help`` does not pay for importing torch.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import sys

from mienet.errors import MienetError
from mienet.slurm import describe_slurm_job

# command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("mienet.data.synth", "write the synthetic diagnostic videos (three factors, known ceilings)"),
    "extract-frames": ("mienet.data.frames", "decode videos into numbered image folders"),
    "make-annotations": ("mienet.data.annotations", "write TSN frame-list annotations"),
    "bench-extract": ("mienet.bench.extract", "measure frame extraction speed against ffmpeg"),
    "model-info": ("mienet.models.info", "parameters and GFLOPs of a model variant"),
    "fetch-weights": ("mienet.models.backbone", "download ImageNet backbone weights into the torch hub cache"),
    "bench": ("mienet.bench.cli", "training and data-loading speed"),
    "train": ("mienet.engine.train", "train a model with the released recipe (CPU, GPU, torchrun)"),
    "evaluate": ("mienet.engine.evaluate", "test protocol: top-1/5, per-class accuracy, confusion"),
    "predict": ("mienet.engine.predict", "the most likely classes of a raw video"),
    "search": ("mienet.search.cli", "Optuna study over the training settings"),
    "report": ("mienet.report.cli", "paper tables and figures from the results"),
    "zoo": ("mienet.zoo", "evaluate the authors' released checkpoints"),
    "generate": ("mienet.generate", "write dvc.yaml and the params schema from their one definition"),
    "sizing": ("mienet.sizing", "jobs, GPU-hours and disk of a profile on a cluster (docs/clusters.md)"),
    "devices": ("mienet.engine.runtime", "the GPUs a training here would use (PyTorch, CUDA_VISIBLE_DEVICES, SLURM)"),
}


def describe_os_error(exc: OSError) -> str:
    """'<path>: <cause>' with a hint for the common causes; what was written stays as it was
    (outputs are written atomically), so the command can simply be run again."""

    where = exc.filename if exc.filename is not None else ""
    if exc.filename2 is not None:
        where = f"{where} -> {exc.filename2}"
    cause = exc.strerror or str(exc)
    hint = {
        errno.ENOSPC: "free some space (or point the output elsewhere) and run the command again; "
                      "finished outputs are intact and the work resumes",
        errno.EDQUOT: "the disk quota is exhausted; free some space and run the command again",
        errno.EACCES: "check the permissions of the file and its folder",
        errno.EPERM: "check the permissions of the file and its folder",
        errno.EROFS: "the file system is read-only; write the outputs elsewhere",
    }.get(exc.errno)
    return f"{where + ': ' if where else ''}{cause}" + (f" ({hint})" if hint else "")


def commands(command: str | None = None) -> dict[str, tuple[str, str]]:
    """:data:`COMMANDS`, and the commands stage specs add (``Stage.module``, :mod:`mienet.stages`).
    The specs are read only when ``command`` is not one of COMMANDS (help, or a stage's own
    command): importing them takes about 0.1 s, which every other command's start is spared."""
    if command in COMMANDS:
        return COMMANDS
    from mienet.stages import stage_commands

    return {**COMMANDS, **stage_commands()}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported to add its arguments."""
    parser = argparse.ArgumentParser(
        prog="mienet", description="Reproduce, ablate and tune MIE-Net from raw videos to paper tables.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module_name, help_text) in commands(command).items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module_name)
        if name == command:
            importlib.import_module(module_name).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    args._argv = argv  # the command line as given (mienet train relaunches itself under torchrun)
    module = importlib.import_module(args._module)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if os.environ.get("SLURM_JOB_ID"):  # each rule's log names the SLURM job that ran it

        logging.getLogger("mienet").info("%s", describe_slurm_job())
    try:
        return int(module.run(args) or 0)
    except MienetError as exc:
        print(f"mienet {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, a permission, a read-only file system: one line, no traceback
        print(f"mienet {args.command}: error: {describe_os_error(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"mienet {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
