"""Parameters and FLOPs of a model variant, measured rather than derived by hand.

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode``, which counts the
matrix products and convolutions of one real forward pass (a multiply-accumulate
is 2 FLOPs; element-wise ops, pooling and normalisation are not counted).
Papers often call multiply-accumulates "FLOPs", so both figures are given.
The pass runs on PyTorch's meta device: shapes only, no arithmetic, no memory.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from mienet.models.backbone import TemporalAttentionBlock
from mienet.models.builder import MIENet, build_model

# Parameters the released modules declare but never use: PA's three conv + BN
# blocks, 3x3 convs 3->3, 3->8, 8->1 without bias, each with BN weight and bias:
# (81 + 6) + (216 + 16) + (72 + 2).
RELEASED_PA_UNUSED_PARAMETERS = 393


def released_unused_parameters(model: MIENet) -> int:
    """How many parameters the released implementation of this model would add that
    its forward never uses: PA's three blocks, and per DPTAM a ``Conv2d(C -> 1, k 1)``
    with bias (``conv_mask``)."""
    count = RELEASED_PA_UNUSED_PARAMETERS if model.PA is not None else 0
    for module in model.modules():
        if isinstance(module, TemporalAttentionBlock):
            count += module.tlam.p1_conv1.in_channels + 1
    return count


def model_stats(
    variant: str,
    arch: str,
    segments: int,
    size: int,
    frames_per_segment: int = 4,
    num_classes: int = 10,
) -> dict[str, Any]:
    """Parameters and FLOPs for one clip of ``segments x frames_per_segment`` frames
    of ``size x size`` pixels, as a JSON-ready dict:

    - ``params``: parameters of the model as built (``params_m`` in millions);
    - ``params_released_layout``: the same plus the parameters the released code
      declares but never uses (what a released checkpoint holds);
    - ``flops`` / ``gflops``: FlopCounterMode's count, FLOPs = 2 x multiply-accumulates;
    - ``gmacs``: multiply-accumulates / 1e9 (what many papers call "GFLOPs").
    """
    with torch.device("meta"):
        model = build_model(
            variant, arch, num_classes, segments, frames_per_segment=frames_per_segment
        )
        clip = torch.zeros(1, segments, frames_per_segment, 3, size, size)
    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(clip)
    flops = counter.get_total_flops()
    params = sum(p.numel() for p in model.parameters())
    released = params + released_unused_parameters(model)
    return {
        "variant": variant,
        "arch": arch,
        "segments": segments,
        "frames_per_segment": frames_per_segment,
        "size": size,
        "num_classes": num_classes,
        "params": params,
        "params_m": params / 1e6,
        "params_released_layout": released,
        "params_released_layout_m": released / 1e6,
        "flops": flops,
        "gflops": flops / 1e9,
        "gmacs": flops / 2e9,
        "flop_counter": "torch.utils.flop_counter.FlopCounterMode; FLOPs = 2 x MACs",
    }
