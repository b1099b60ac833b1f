"""``mienet train``: the released recipe on CPU, one GPU or many (``torchrun``).

The command line: the settings come from their defaults, a params.yaml recipe, an ``--hparams``
file and the options given, in that order (:func:`config_from_args`); the training is
:func:`mienet.engine.loop.train`, relaunched under ``torchrun`` for ``gpus`` above 1. What a run
folder holds and how ``--resume`` continues it: :mod:`mienet.engine.run_state`.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import typing
from dataclasses import fields
from pathlib import Path

import yaml

from mienet.config import TRAIN_DEFAULTS, TUNABLE, TrainConfig, name_arg, value_fits
from mienet.errors import MienetError
from mienet.layout import data_paths, from_params_file
from mienet.registry.variants import VARIANTS

log = logging.getLogger(__name__)

UNSET = argparse.SUPPRESS  # only options given on the command line reach the namespace


def add_arguments(parser) -> None:
    """Options of ``mienet train``: defaults and help texts from :class:`mienet.config.TrainConfig`."""
    opt = _option_adder()
    _data_options(parser.add_argument_group("data"), opt)
    _model_options(parser.add_argument_group("model"), opt)
    _optimisation_options(parser.add_argument_group("optimisation"), opt)
    _run_options(parser.add_argument_group("run"), opt)


def _option_adder():
    """``opt(group, flag, help_text=None, **kw)``: adds the option of a TrainConfig field (``field``,
    else the flag's name) with the field's help text, choices (a Literal's values) and default."""
    meta = {f.name: f for f in fields(TrainConfig)}
    hints = typing.get_type_hints(TrainConfig)

    def opt(group, flag, help_text=None, **kw):
        name = kw.pop("field", flag.lstrip("-").replace("-", "_"))
        help_text = help_text or meta[name].metadata.get("help", "")
        choices = typing.get_args(hints[name]) if typing.get_origin(hints[name]) is typing.Literal else None
        if choices and "action" not in kw:
            kw.setdefault("choices", choices)
        default = getattr(TRAIN_DEFAULTS, name, None)
        if kw.get("action") not in ("store_true", "store_false") and default not in (None, ""):
            help_text += f" (default: {' '.join(map(str, default)) if isinstance(default, list) else default})"
        group.add_argument(flag, default=UNSET, help=help_text, **kw)

    return opt


def _data_options(g, opt) -> None:
    g.add_argument("--annotations", type=Path,
                   help="folder with train.txt, val.txt and classes.txt (default with --params: the "
                        "dataset's, see mienet.layout)")
    g.add_argument("--root", type=Path, help="dataset root of the lists' paths (default with --params: the "
                                             "dataset's; else the parent of --annotations)")
    opt(g, "--dataset", "dataset name; with --params also selects datasets.<name>: recipe and files",
        type=name_arg)
    opt(g, "--template")
    opt(g, "--skip-missing", action="store_true")
    opt(g, "--no-flip", "no horizontal flip (SSv2)", action="store_false", field="flip", dest="flip")
    opt(g, "--workers", type=int)
    opt(g, "--cache-frames", action="store_true")


def _model_options(g, opt) -> None:
    opt(g, "--variant", ", ".join(VARIANTS), choices=list(VARIANTS))
    opt(g, "--arch", choices=list(TrainConfig.__dataclass_fields__["arch"].metadata["schema"]["enum"]))
    opt(g, "--segments", type=int)
    opt(g, "--frames-per-segment", type=int)
    opt(g, "--size", type=int)
    opt(g, "--dropout", type=float)
    opt(g, "--pretrained")
    opt(g, "--freeze-fusion-weights", action="store_true")
    opt(g, "--pa-init-std", type=float)


def _optimisation_options(g, opt) -> None:
    opt(g, "--epochs", type=int)
    opt(g, "--batch-size", type=int)
    opt(g, "--gpus", type=int)
    opt(g, "--no-sync-bn", "BatchNorm statistics of each process's own share of the batch",
        action="store_false", field="sync_bn", dest="sync_bn")
    opt(g, "--lr", type=float)
    opt(g, "--lr-steps", type=int, nargs="*")
    opt(g, "--schedule")
    opt(g, "--warmup-epochs", type=float)
    opt(g, "--momentum", type=float)
    opt(g, "--weight-decay", type=float)
    opt(g, "--clip-grad", type=float)
    opt(g, "--seed", type=int)
    g.add_argument("--params", type=Path,
                   help="params.yaml (checked against its schema): the recipe datasets.<--dataset>.train "
                        "and the dataset's files (options given here win)")
    g.add_argument("--hparams", type=Path,
                   help="YAML mapping of settings (lr, weight_decay, dropout, batch_size, ...) that "
                        "override the recipe, e.g. the best_params.yaml of `mienet search`")


def _run_options(g, opt) -> None:
    g.add_argument("--out", required=True, type=Path, help="run folder (checkpoints, logs)")
    g.add_argument("--resume", action="store_true", help="continue the run in --out from checkpoints/last.pt")
    g.add_argument("--restart-if-changed", action="store_true",
                   help="with --resume: start over (not an error) when the run in --out has other settings")
    opt(g, "--device")
    opt(g, "--amp")
    opt(g, "--channels-last")
    opt(g, "--compile")
    opt(g, "--cuda-graphs")
    opt(g, "--decode")
    g.add_argument("--threads", type=int, help="CPU threads for PyTorch (default: PyTorch's choice)")
    g.add_argument("--no-progress", action="store_true")
    g.add_argument("--debug-nan-at-step", type=int, default=UNSET, help=UNSET)
    g.add_argument("--debug-exit-at-step", type=int, default=UNSET, help=UNSET)


def recipe_from_params(path: Path, dataset: str):
    """(``datasets.<dataset>.train`` of a params.yaml, the dataset's :class:`~mienet.layout.DatasetLayout`);
    the file is checked against the params schema first, errors name the file and the key."""
    params, lay = from_params_file(path, dataset)
    return dict(params["datasets"][dataset].get("train") or {}), lay


def config_from_args(args) -> TrainConfig:
    """TrainConfig defaults < params.yaml recipe < --hparams file < options given on the command line.

    With ``--params`` and ``--dataset``, the annotations and the frame root are the dataset's
    (:mod:`mienet.layout`); ``--annotations``/``--root`` override them."""
    values: dict = {}
    dataset = getattr(args, "dataset", None)
    lay = None
    if getattr(args, "params", None):
        if not dataset:
            raise MienetError("--params needs --dataset to know which recipe to take")
        recipe, lay = recipe_from_params(args.params, dataset)
        values.update(recipe)
    if getattr(args, "hparams", None):
        values.update(read_hparams(args.hparams))
    explicit = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    values.update(explicit)
    annotations, root = data_paths(args.annotations, args.root, lay=lay)
    values["annotations"] = str(annotations)
    values["root"] = str(root)
    values["out"] = str(args.out)
    if "lr_steps" in values:
        values["lr_steps"] = list(values["lr_steps"])
    return TrainConfig(**values)


def read_hparams(path: Path) -> dict:
    """Settings from a YAML mapping (best_params.yaml); unknown keys or values out of range are
    an error naming them."""
    if not Path(path).is_file():
        raise MienetError(f"--hparams file {path} does not exist")
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as exc:
        raise MienetError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise MienetError(f"{path}: expected a mapping of setting -> value")
    data = data.get("params", data)  # best_params.yaml keeps them under `params`
    unknown = sorted(set(data) - TUNABLE)
    if unknown:
        raise MienetError(f"{path}: unknown training setting(s) {', '.join(unknown)}; "
                          f"known: {', '.join(sorted(TUNABLE))}")
    bad = [f"{k}: {v!r}" for k, v in data.items() if not value_fits(k, v)]
    if bad:
        raise MienetError(f"{path}: value(s) out of range or of the wrong type: {'; '.join(bad)}")
    return data


def run_under_torchrun(gpus: int, argv: list[str]) -> int:
    """The ``mienet`` command line ``argv`` under ``torchrun --standalone --nproc-per-node gpus``
    (one node), as a child: its exit status. A SLURM job's signals reach every process of the
    job; Ctrl-C reaches the terminal's process group, torchrun included."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(gpus),
           "-m", "mienet", *argv]
    log.info("gpus: %d: starting %d processes with torchrun", gpus, gpus)
    sys.stdout.flush()
    sys.stderr.flush()
    return subprocess.run(cmd).returncode


def run(args) -> int:
    # Imported here, not at the top: ``mienet train --help`` then imports neither torch nor the
    # training (torchvision, the models, dvclive), about 0.3 s against several seconds.
    import torch

    from mienet.engine.loop import check_before_start, train

    cfg = config_from_args(args)
    if cfg.gpus > 1 and "LOCAL_RANK" not in os.environ:
        check_before_start(cfg)  # what can be refused at once is refused here, not by every process
        return run_under_torchrun(cfg.gpus, getattr(args, "_argv", sys.argv[1:]))
    if args.threads:
        torch.set_num_threads(args.threads)
    summary = train(cfg, resume=args.resume, progress=not args.no_progress,
                    restart_if_changed=args.restart_if_changed)
    best = summary["best"]
    print(f"train: {cfg.variant}/{cfg.arch} {cfg.epochs} epochs -> {cfg.out}; best val top-1 "
          f"{best['val_top1']:.2f} at epoch {best['epoch']}")
    return 0
