"""MIE-Net and its ablation variants on torchvision ResNets.

Public API:

- :func:`build_model` and the variant table :data:`VARIANTS` (backbones: :data:`ARCHS`);
- :func:`load_checkpoint` / :func:`save_checkpoint` for this project's and the
  authors' released checkpoints;
- :func:`model_stats`: parameters and FLOPs of a variant;
- the modules: :class:`PersistenceOfAppearance`, :class:`AdaptiveFusion`,
  :class:`DoublePoolingTemporalAttention`, :class:`SegmentConsensus`.

Attributes are imported on first use, so that importing the package does not pull in torch.
The variant table itself is :mod:`mienet.registry.variants` (a leaf, read by the configuration
model and the Snakefile).
"""

from __future__ import annotations

import importlib

_WHERE = {
    "ARCHS": "backbone", "TemporalAttentionBlock": "backbone",
    "MIENet": "builder", "build_model": "builder",
    "RELEASED_UNUSED_PATTERNS": "checkpoint", "load_checkpoint": "checkpoint", "save_checkpoint": "checkpoint",
    "model_stats": "flops",
    "AdaptiveFusion": "modules", "DoublePoolingTemporalAttention": "modules",
    "PersistenceOfAppearance": "modules", "SegmentConsensus": "modules",
    "ARCH_NAMES": "mienet.registry.variants", "VARIANTS": "mienet.registry.variants",
    "Variant": "mienet.registry.variants",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'mienet.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name] if "." in _WHERE[name] else f"mienet.models.{_WHERE[name]}"), name)
    globals()[name] = value
    return value
