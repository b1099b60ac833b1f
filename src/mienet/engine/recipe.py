"""The training recipe of the released scripts: parameter groups, learning-rate schedule.

Parameter groups (TSN/TSM family, ``docs/mie-net.md``): the first convolution the model
meets is PA's when the variant has PA (weight x5 lr, bias x10 lr and no decay); for
the RGB-only variants it is the backbone's first convolution at x1, as TSN does for RGB.
Other convolution and linear weights x1; other biases x2 lr, no decay; every BatchNorm
parameter no decay; the classifier (not fine-tuned from the same dataset) weight x5 and
bias x10. AFM's two fusion scalars ``w`` train at x1 without decay.

``freeze_fusion_weights`` reproduces the released code exactly: there ``w`` is attached to
the top-level model and ends up in no parameter group, so it is never updated, but it keeps
``requires_grad``. Its gradient is therefore part of ``clip_grad_norm_(model.parameters(),
20)``, and since ``optimizer.zero_grad()`` only clears the optimiser's parameters, that
gradient is never reset: it is the sum of every step's gradient so far (scaled in place
whenever the clip acts). The training loop does exactly that (``optimizer.zero_grad`` is the
only clearing), and ``last.pt`` carries the accumulated gradient so a resumed run stays exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from mienet.errors import MienetError

REFERENCE_BATCH = 8  # the released learning rates are for batch 8 on one GPU


@dataclass(frozen=True)
class GroupRule:
    name: str
    lr_mult: float
    decay_mult: float


def parameter_groups(model: nn.Module, lr: float, weight_decay: float) -> list[dict]:
    """SGD parameter groups with the recipe's multipliers; every trainable parameter once, but
    AFM's ``w`` of a model built with ``freeze_fusion_weights`` (in no group, as released)."""
    model = getattr(model, "module", model)  # DistributedDataParallel
    model = getattr(model, "_orig_mod", model)  # torch.compile
    first_conv = model.PA.shallow_conv if getattr(model, "PA", None) is not None else model.base_model.conv1
    first_mult = (5.0, 10.0) if getattr(model, "PA", None) is not None else (1.0, 2.0)
    buckets: dict[str, list[torch.nn.Parameter]] = {}
    rules = {
        "first_conv_weight": GroupRule("first_conv_weight", first_mult[0], 1.0),
        "first_conv_bias": GroupRule("first_conv_bias", first_mult[1], 0.0),
        "weight": GroupRule("weight", 1.0, 1.0),
        "bias": GroupRule("bias", 2.0, 0.0),
        "norm": GroupRule("norm", 1.0, 0.0),
        "fusion": GroupRule("fusion", 1.0, 0.0),
        "classifier_weight": GroupRule("classifier_weight", 5.0, 1.0),
        "classifier_bias": GroupRule("classifier_bias", 10.0, 0.0),
    }

    def put(key: str, params) -> None:
        buckets.setdefault(key, []).extend(p for p in params if p.requires_grad)

    seen: set[int] = set()
    for module in model.modules():
        direct = list(module.parameters(recurse=False))
        if not direct:
            continue
        if module is first_conv:
            put("first_conv_weight", [module.weight])
            put("first_conv_bias", [module.bias] if module.bias is not None else [])
        elif module is model.new_fc:
            put("classifier_weight", [module.weight])
            put("classifier_bias", [module.bias])
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            put("norm", direct)
        elif isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            put("weight", [module.weight])
            put("bias", [module.bias] if module.bias is not None else [])
        elif module is model:
            if not getattr(model, "freeze_fusion_weights", False):  # released: in no group
                put("fusion", direct)  # the top-level AFM scalars w
        else:
            raise MienetError(f"no learning-rate rule for the parameters of {type(module).__name__}")
        seen.update(id(p) for p in direct)
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert all(id(p) in seen for p in trainable)
    groups = []
    for key, params in buckets.items():
        if params:
            rule = rules[key]
            groups.append({"params": params, "name": key, "lr": lr * rule.lr_mult,
                           "weight_decay": weight_decay * rule.decay_mult, "lr_mult": rule.lr_mult})
    return groups


def scaled_lr(base_lr: float, batch_size: int, world_size: int = 1) -> float:
    """Linear scaling: the recipe's rates are for batch 8 on one device."""
    return base_lr * batch_size * world_size / REFERENCE_BATCH


def lr_factor(step: int, steps_per_epoch: int, epochs: int, schedule: str, milestones: list[int],
              warmup_epochs: float = 0.0) -> float:
    """Multiplier of the base learning rate at optimisation step ``step`` (0-based)."""
    epoch = step / steps_per_epoch
    warmup = warmup_epochs * steps_per_epoch
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "step":
        return 0.1 ** sum(epoch >= m for m in milestones)
    if schedule == "cosine":
        span = max(epochs - warmup_epochs, 1e-9)
        return 0.5 * (1 + math.cos(math.pi * min((epoch - warmup_epochs) / span, 1.0)))
    raise MienetError(f"unknown learning-rate schedule {schedule!r}: choose step or cosine")
