"""MIE-Net and its ablation variants on torchvision ResNets.

Public API:

- :func:`build_model` and the variant table :data:`VARIANTS` (backbones: :data:`ARCHS`);
- :func:`load_checkpoint` / :func:`save_checkpoint` for this project's and the
  authors' released checkpoints;
- :func:`model_stats`: parameters and FLOPs of a variant;
- the modules: :class:`PersistenceOfAppearance`, :class:`AdaptiveFusion`,
  :class:`DoublePoolingTemporalAttention`, :class:`SegmentConsensus`.
"""

from mienet.models.backbone import ARCHS, TemporalAttentionBlock
from mienet.models.builder import MIENet, build_model
from mienet.models.checkpoint import RELEASED_UNUSED_PATTERNS, load_checkpoint, save_checkpoint
from mienet.models.flops import model_stats
from mienet.models.modules import (
    AdaptiveFusion,
    DoublePoolingTemporalAttention,
    PersistenceOfAppearance,
    SegmentConsensus,
)
from mienet.models.variants import VARIANTS, Variant

__all__ = [
    "ARCHS",
    "RELEASED_UNUSED_PATTERNS",
    "VARIANTS",
    "AdaptiveFusion",
    "DoublePoolingTemporalAttention",
    "MIENet",
    "PersistenceOfAppearance",
    "SegmentConsensus",
    "TemporalAttentionBlock",
    "Variant",
    "build_model",
    "load_checkpoint",
    "model_stats",
    "save_checkpoint",
]
