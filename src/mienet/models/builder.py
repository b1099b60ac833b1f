"""The assembled network and :func:`build_model`.

One class serves the whole ablation family; the variant (``variants.py``)
decides which modules exist. Attribute names (``PA``, ``w``, ``base_model``,
``new_fc``) are those of the released checkpoints.
"""

from __future__ import annotations

import torch
from torch import nn

from mienet.config import TRAIN_DEFAULTS
from mienet.errors import MienetError
from mienet.models.backbone import ARCHS, build_backbone
from mienet.models.modules import (
    PAN_INIT_STD,
    AdaptiveFusion,
    PersistenceOfAppearance,
    SegmentConsensus,
    fusion_weights,
)
from mienet.registry.variants import VARIANTS, Variant


class MIENet(nn.Module):
    """MIE-Net (Motion Information Enhancement Network) and its ablation variants:
    PA motion cue, AFM fusion with the RGB frame, a ResNet with DPTAM in every
    residual block, dropout, a linear classifier per segment and the average of the
    segment scores (TSN consensus).

    Input ``(N, T, L, 3, H, W)``: ``T`` segments of ``L`` consecutive normalised RGB
    frames; the RGB branch uses each segment's first frame, so ``L = 1`` suffices
    for variants without PA. Output ``(N, num_classes)`` logits.
    """

    def __init__(
        self,
        variant: Variant,
        arch: str,
        num_classes: int,
        num_segments: int,
        frames_per_segment: int,
        dropout: float,
        pretrained: str | None,
        freeze_fusion_weights: bool,
        pa_init_std: float = PAN_INIT_STD,
    ) -> None:
        super().__init__()
        self.variant = variant
        self.arch = arch
        self.num_segments = num_segments
        self.frames_per_segment = frames_per_segment

        self.PA = PersistenceOfAppearance(init_std=pa_init_std) if variant.uses_pa else None
        if variant.backbone_input == "afm":
            self.fusion = AdaptiveFusion()
            # Released name and place: top level, initialised to ones (weights 0.5 / 0.5).
            # Frozen as released: it keeps requires_grad (its gradient counts in the clip
            # norm) and is left out of the optimiser's groups (recipe.parameter_groups).
            self.w = nn.Parameter(torch.ones(2))
        else:
            self.fusion = None
            self.w = None
        self.freeze_fusion_weights = bool(freeze_fusion_weights) and self.w is not None
        self.base_model, width = build_backbone(
            arch,
            variant.in_channels(frames_per_segment),
            rgb_input=variant.backbone_input == "rgb",
            pretrained=pretrained,
            dptam_segments=num_segments if variant.dptam else None,
        )
        self.dropout = nn.Dropout(p=dropout)
        self.new_fc = nn.Linear(width, num_classes)
        nn.init.normal_(self.new_fc.weight, 0.0, 0.001)
        nn.init.zeros_(self.new_fc.bias)
        self.consensus = SegmentConsensus()

    def fusion_weights(self) -> torch.Tensor | None:
        """AFM's ``(a_r, a_p)`` (they sum to one), or ``None`` without AFM."""
        return None if self.w is None else fusion_weights(self.w)

    def backbone_input(self, clips: torch.Tensor) -> torch.Tensor:
        """What the backbone sees: ``(N, T, L, 3, H, W)`` to ``(N * T, C_in, H, W)``."""
        self._check_input(clips)
        segments = clips.flatten(0, 1)  # (N * T, L, 3, H, W)
        rgb = segments[:, 0]
        if self.PA is None:
            return rgb
        pa = self.PA(segments)  # (N * T, L - 1, H, W)
        if self.variant.backbone_input == "pa":
            return pa
        if self.variant.backbone_input == "concat":
            return torch.cat([rgb, pa], dim=1)
        return self.fusion(rgb, pa, self.w)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        n, t = clips.shape[:2]
        features = self.base_model(self.backbone_input(clips))  # (N * T, feature_dim)
        scores = self.new_fc(self.dropout(features))  # (N * T, num_classes)
        return self.consensus(scores.view(n, t, -1))

    def _check_input(self, clips: torch.Tensor) -> None:
        if clips.dim() != 6 or clips.shape[3] != 3:
            raise MienetError(
                f"expected clips of shape (N, T, L, 3, H, W), got {tuple(clips.shape)}"
            )
        if self.variant.dptam and clips.shape[1] != self.num_segments:
            raise MienetError(
                f"variant {self.variant.name!r} was built for {self.num_segments} segments "
                f"(DPTAM mixes them), got clips with {clips.shape[1]}"
            )
        if self.PA is not None and clips.shape[2] != self.frames_per_segment:
            raise MienetError(
                f"variant {self.variant.name!r} was built for {self.frames_per_segment} frames "
                f"per segment, got clips with {clips.shape[2]}"
            )


def build_model(
    variant: str,
    arch: str,
    num_classes: int,
    num_segments: int,
    frames_per_segment: int = TRAIN_DEFAULTS.frames_per_segment,
    dropout: float = TRAIN_DEFAULTS.dropout,
    pretrained: str | None = None,
    freeze_fusion_weights: bool = False,
    pa_init_std: float = PAN_INIT_STD,
) -> MIENet:
    """Build one variant of MIE-Net.

    - ``variant``: a key of :data:`VARIANTS` (:mod:`mienet.registry.variants`).
    - ``arch``: ``resnet18``, ``resnet34``, ``resnet50`` or ``resnet101``.
    - ``frames_per_segment``: ``L``; variants with PA need ``L >= 2``, and those that
      fuse RGB with PA need ``L = 4`` (three PA maps beside three RGB channels).
    - ``pretrained``: ``None`` (random initialisation) or ``"imagenet"``
      (torchvision's ImageNet weights for the backbone, from the torch hub cache).
    - ``freeze_fusion_weights``: keep AFM's ``w`` at its initial ``(1, 1)``, exactly as the
      released code did by accident: ``w`` keeps ``requires_grad`` and is left out of the
      optimiser's parameter groups (:func:`mienet.engine.recipe.parameter_groups`), so its
      gradient still counts in the gradient-norm clip, and, never cleared by
      ``optimizer.zero_grad()``, adds up over the steps.
    - ``pa_init_std``: std of the normal initialisation of PA's filters (PAN's 0.001
      by default); it only matters when training, checkpoints carry the weights.

    The model maps ``(N, num_segments, L, 3, H, W)`` clips to ``(N, num_classes)``.
    """
    pretrained = None if pretrained in (None, "none") else pretrained
    if variant not in VARIANTS:
        raise MienetError(f"unknown model variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    if arch not in ARCHS:
        raise MienetError(f"unknown backbone {arch!r}; choose one of {', '.join(ARCHS)}")
    spec = VARIANTS[variant]
    if num_classes < 1 or num_segments < 1 or frames_per_segment < 1:
        raise MienetError(
            "num_classes, num_segments and frames_per_segment must be positive, got "
            f"{num_classes}, {num_segments}, {frames_per_segment}"
        )
    if spec.uses_pa and frames_per_segment < 2:
        raise MienetError(
            f"variant {variant!r} computes PA between neighbouring frames and needs at least "
            f"2 frames per segment, got {frames_per_segment}"
        )
    if spec.fuses_rgb_and_pa and frames_per_segment != 4:
        raise MienetError(
            f"variant {variant!r} adds or stacks the PA image onto the 3 RGB channels, so it "
            f"needs 4 frames per segment (3 PA maps), got {frames_per_segment}"
        )
    if not 0.0 <= dropout < 1.0:
        raise MienetError(f"dropout must be in [0, 1), got {dropout}")
    if not pa_init_std > 0.0:
        raise MienetError(f"pa_init_std must be positive, got {pa_init_std}")
    return MIENet(
        spec,
        arch,
        num_classes,
        num_segments,
        frames_per_segment,
        dropout,
        pretrained,
        freeze_fusion_weights,
        pa_init_std,
    )
