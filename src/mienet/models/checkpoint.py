"""Reading and writing model checkpoints, safely.

Two layouts are read:

- this project's own: ``{"model": state_dict, ...metadata}`` (written by
  :func:`save_checkpoint`), or a bare state dict;
- the authors' released ``.pth.tar`` files: ``{"epoch", "arch", "state_dict",
  "optimizer", "best_prec1"}``, every key prefixed ``module.`` by DataParallel,
  plus parameters the released modules declare but never use.

Every file is unpickled with ``weights_only=True``: tensors and plain Python
types only, so a file whose pickle would run code is refused before anything runs.
"""

from __future__ import annotations

import errno
import fnmatch
import logging
import os
import pickle
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mienet.errors import MienetError
from mienet.io import atomic_path

log = logging.getLogger(__name__)

# Parameters of the released model that its forward never uses (PA's three
# conv + BN blocks, DPTAM's conv_mask); skipped when loading released files.
RELEASED_UNUSED_PATTERNS: tuple[str, ...] = (
    "PA.conv1.*",
    "PA.conv2.*",
    "PA.conv3.*",
    "base_model.*.tlam.conv_mask.*",
)

MAX_KEYS_IN_MESSAGE = 20


class CheckpointReadError(MienetError):
    """A checkpoint file that cannot be read; ``kind`` says why in a few words ("missing",
    "unsafe file", "unreadable file"): the status ``mienet zoo`` shows for it."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind

    def __reduce__(self):
        return type(self), (str(self), self.kind)


def read_checkpoint_file(path: str | os.PathLike) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with errors a user
    can act on; a pickle that would build anything but tensors and plain types is refused."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise CheckpointReadError(f"checkpoint {os.fspath(path)!r} does not exist", "missing") from exc
    except pickle.UnpicklingError as exc:
        # torch re-raises the restricted unpickler's own error with a long preamble;
        # that original error says what was refused.
        reason = str(exc.__context__ or exc).strip().splitlines()[-1].rstrip(".")
        raise CheckpointReadError(
            f"refused to load {os.fspath(path)!r} as unsafe or corrupt: the safe loader "
            f"(weights_only=True) accepts only tensors and plain Python types and stopped at: "
            f"{reason}. Load it any other way only if you trust where it came from.",
            "unsafe file",
        ) from exc
    except Exception as exc:  # truncated or not a torch file at all
        reason = " ".join(str(exc).split())  # one line
        raise CheckpointReadError(
            f"cannot read {os.fspath(path)!r} as a PyTorch checkpoint ({type(exc).__name__}: {reason})",
            "unreadable file",
        ) from exc


def save_checkpoint(model: nn.Module, path: str | os.PathLike, **metadata: Any) -> None:
    """Write ``{"model": state_dict, **metadata}`` atomically; metadata must be plain
    Python types (numbers, strings, lists, dicts) or tensors, so it loads with
    ``weights_only=True``.

    A full disk is an ``OSError(ENOSPC, ..., path)`` (torch reports it as a bare
    ``RuntimeError`` from its zip writer); the file at ``path``, if any, stays as it was."""
    model = getattr(model, "_orig_mod", model)  # the module under torch.compile, if any
    save_state(model.state_dict(), path, **metadata)


def save_state(state_dict: Mapping[str, torch.Tensor], path: str | os.PathLike, **metadata: Any) -> None:
    """:func:`save_checkpoint` of a state dict (the ``model`` entry of another checkpoint, say)."""
    if "model" in metadata:
        raise ValueError("metadata may not use the key 'model'")
    payload = {"model": state_dict, **metadata}
    with atomic_path(path) as tmp:  # an OSError inside names path
        try:
            torch.save(payload, tmp)
        except RuntimeError as exc:
            if not _out_of_space(Path(tmp), _tensor_bytes(payload)):
                raise
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(path)) from exc


def _tensor_bytes(obj: Any) -> int:
    """Bytes of the tensors in ``obj`` (dicts, lists), the bulk of a checkpoint file."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, Mapping):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


def _out_of_space(tmp: Path, needed: int) -> bool:
    """Whether a failed write of ``needed`` bytes to ``tmp`` ran out of room (the partial file
    still holds what it took)."""
    try:
        free = shutil.disk_usage(tmp.parent).free
        written = tmp.stat().st_size if tmp.exists() else 0
    except OSError:
        return False
    return free < (1 << 20) or free + written < needed


def load_checkpoint(model: nn.Module, path: str | os.PathLike) -> dict[str, Any]:
    """Load a project or released checkpoint into ``model``; return its metadata
    (every top-level entry but the weights and the optimizer state).

    Strips DataParallel's ``module.`` prefix and skips the released model's unused
    parameters with one log line. Any other missing, unexpected or mis-shaped key is
    a :class:`MienetError` naming the keys, and then nothing is loaded.
    """
    model = getattr(model, "_orig_mod", model)  # the module under torch.compile, if any
    checkpoint = read_checkpoint_file(path)
    state, metadata = _split_checkpoint(checkpoint, path)
    state = {k.removeprefix("module."): v for k, v in state.items()}

    unused = [k for k in state if any(fnmatch.fnmatchcase(k, p) for p in RELEASED_UNUSED_PATTERNS)]
    if unused:
        log.info(
            "%s: skipping %d entries the released model declares but never uses (%s)",
            os.fspath(path),
            len(unused),
            ", ".join(RELEASED_UNUSED_PATTERNS),
        )
        for k in unused:
            del state[k]

    problems = [
        f"{len(keys)} {what}: {_some(keys)}"
        for what, keys in state_differences(state, model.state_dict()).items()
        if keys
    ]
    if problems:
        raise MienetError(
            f"checkpoint {os.fspath(path)!r} does not fit the model ({_describe(model)}): "
            + "; ".join(problems)
        )
    model.load_state_dict(state, strict=True)
    return metadata


def state_differences(state: Mapping[str, Any], expected: Mapping[str, Any]) -> dict[str, list[str]]:
    """The keys of ``state`` that do not fit a model whose state dict is ``expected``:
    ``{"missing": [...], "unexpected": [...], "mis-shaped": ["key (shape) (model: (shape))", ...]}``."""
    return {
        "missing": [k for k in expected if k not in state],
        "unexpected": [k for k in state if k not in expected],
        "mis-shaped": [
            f"{k} {tuple(state[k].shape)} (model: {tuple(expected[k].shape)})"
            for k in expected
            if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
        ],
    }


def released_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The weights of a released file (or of any accepted layout) as the model names them:
    ``module.`` stripped, the released model's unused parameters left out."""
    ckpt = read_checkpoint_file(path)
    if isinstance(ckpt, dict) and isinstance(ckpt.get("state_dict"), dict):
        state = ckpt["state_dict"]
    elif isinstance(ckpt, dict) and isinstance(ckpt.get("model"), dict):
        state = ckpt["model"]
    elif isinstance(ckpt, dict) and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        state = ckpt
    else:
        raise MienetError(f"{os.fspath(path)} holds no state_dict (expected epoch, arch, state_dict, "
                          "optimizer, best_prec1)")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    return {k: v for k, v in state.items()
            if not any(fnmatch.fnmatchcase(k, p) for p in RELEASED_UNUSED_PATTERNS)}


def _split_checkpoint(checkpoint: Any, path: str | os.PathLike) -> tuple[dict, dict]:
    """(state dict, metadata) of any of the accepted layouts."""
    if not isinstance(checkpoint, Mapping):
        raise MienetError(
            f"{os.fspath(path)!r} holds a {type(checkpoint).__name__}, not a checkpoint dict"
        )
    for key in ("model", "state_dict"):  # project layout, then the released one
        if isinstance(checkpoint.get(key), Mapping):
            metadata = {k: v for k, v in checkpoint.items() if k not in (key, "optimizer")}
            return dict(checkpoint[key]), metadata
    if checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        return dict(checkpoint), {}
    raise MienetError(
        f"{os.fspath(path)!r} is neither a state dict nor a dict with a 'model' or "
        f"'state_dict' entry (its keys: {_some(list(checkpoint))})"
    )


def _some(keys: list[str]) -> str:
    shown = ", ".join(str(k) for k in keys[:MAX_KEYS_IN_MESSAGE])
    more = len(keys) - MAX_KEYS_IN_MESSAGE
    return shown + (f" and {more} more" if more > 0 else "")


def _describe(model: nn.Module) -> str:
    variant = getattr(model, "variant", None)
    if variant is None:
        return type(model).__name__
    return f"{type(model).__name__}, variant {variant.name} on {model.arch}"
