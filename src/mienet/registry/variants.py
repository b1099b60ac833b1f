"""The ablation variants of MIE-Net as data: what the backbone sees, and whether
its residual blocks carry DPTAM (the table of ``docs/mie-net.md``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

# What each segment feeds to the backbone:
#   rgb    - its first RGB frame (3 channels)
#   pa     - its PA image (L - 1 channels)
#   concat - concat(RGB, PA), 6 channels, no gate, no weights (PAN's "Lite" input)
#   afm    - AFM(RGB, PA), 6 channels
BackboneInput = Literal["rgb", "pa", "concat", "afm"]

# The kinds of evidence a variant can use, by construction (what the synthetic dataset's factors
# are built from, so that each variant's ceiling is known before training):
#   frame              - anything visible in one frame (the RGB input)
#   consecutive_frames - change between consecutive frames (the PA image)
#   segment_order      - the order of the segments (DPTAM's temporal convolution; average
#                        consensus alone is blind to it)
Cue = Literal["frame", "consecutive_frames", "segment_order"]
CUES: tuple[str, ...] = ("frame", "consecutive_frames", "segment_order")


@dataclass(frozen=True)
class Variant:
    """One row of the ablation table."""

    name: str
    backbone_input: BackboneInput
    dptam: bool
    description: str
    label: str  # the name tables and figures print
    colour: int  # index into seaborn's 10-colour "colorblind" palette, the same in every figure

    @property
    def uses_pa(self) -> bool:
        """Whether the variant computes PA, and so needs ``L >= 2`` frames per segment."""
        return self.backbone_input != "rgb"

    @property
    def fuses_rgb_and_pa(self) -> bool:
        """Whether RGB and PA are combined, which needs ``L - 1 == 3`` PA channels."""
        return self.backbone_input in ("concat", "afm")

    def sees(self, cue: Cue) -> bool:
        """Whether the variant can see ``cue`` (see :data:`CUES`), by construction."""
        if cue == "frame":
            return self.backbone_input != "pa"
        if cue == "consecutive_frames":
            return self.uses_pa
        if cue == "segment_order":
            return self.dptam
        raise ValueError(f"unknown cue {cue!r} (known: {', '.join(CUES)})")

    def in_channels(self, frames_per_segment: int) -> int:
        """Input channels of the backbone's first convolution."""
        if self.backbone_input == "rgb":
            return 3
        if self.backbone_input == "pa":
            return frames_per_segment - 1
        return 6


# The backbones (torchvision ResNets; resnet10 has one BasicBlock per stage, resnet10_half
# the same at half width; neither has ImageNet weights). mienet.models.backbone maps each name to its constructor.
ARCH_NAMES: tuple[str, ...] = ("resnet10", "resnet10_half", "resnet18", "resnet34", "resnet50", "resnet101")

# The file of each backbone's ImageNet weights (torchvision's IMAGENET1K_V1) in the torch hub
# cache, <hub>/checkpoints/<file>: named here without importing torch, so that the Snakefile's
# rule fetch_weights knows its outputs (a test checks them against torchvision's URLs).
IMAGENET_FILES: dict[str, str] = {
    "resnet18": "resnet18-f37072fd.pth", "resnet34": "resnet34-b627a593.pth",
    "resnet50": "resnet50-0676ba61.pth", "resnet101": "resnet101-63fe2227.pth",
}
FETCH_RULE = "fetch_weights"  # the workflow's local rule that downloads them (mienet.stages)


def torch_hub_dir() -> str:
    """torch.hub.get_dir() without torch: $TORCH_HOME/hub, else $XDG_CACHE_HOME/torch/hub,
    else ~/.cache/torch/hub."""
    home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "torch")
    return os.path.join(os.path.expanduser(home), "hub")


def imagenet_weights_file(arch: str) -> str:
    """Where ``arch``'s ImageNet weights are read from: <torch hub>/checkpoints/<file>."""
    if arch not in IMAGENET_FILES:
        raise KeyError(arch)
    return os.path.join(torch_hub_dir(), "checkpoints", IMAGENET_FILES[arch])

VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        # Colours: TSN blue, MIE-Net red, the DPTAM twins of each a lighter or purple shade,
        # so that the two ends of the ablation stand apart.
        Variant("tsn", "rgb", False, "TSN baseline: RGB frame per segment", "TSN", 0),
        Variant("dptam", "rgb", True, "RGB frame per segment, DPTAM in every block", "TSN+DPTAM", 9),
        Variant("pa", "pa", False, "PA image per segment only", "PA only", 2),
        Variant("naive_fusion", "concat", False, "concat(RGB, PA), no AFM, no DPTAM", "RGB+PA concat", 1),
        Variant("fusion_dptam", "concat", True, "concat(RGB, PA) with DPTAM: MIE-Net without AFM",
                "RGB+PA concat+DPTAM", 4),
        Variant("afm", "afm", False, "AFM(RGB, PA), no DPTAM", "AFM", 5),
        Variant("mienet", "afm", True, "MIE-Net: AFM(RGB, PA) with DPTAM", "MIE-Net", 3),
    )
}
FULL_MODEL = "mienet"  # the model of the paper: the default variant, the one the report leads with
BASELINE = "tsn"  # what every effect is measured against
