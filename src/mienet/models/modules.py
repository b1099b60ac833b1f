"""The building blocks of MIE-Net: PA, AFM, DPTAM and the segment consensus.

Each module computes exactly what ``docs/mie-net.md`` specifies. Shapes use
``N`` clips, ``T`` segments per clip, ``L`` frames per segment, ``C`` channels
and ``H x W`` pixels; the backbone sees the ``N * T`` segments as one batch.

Parameter names follow the authors' released checkpoints (``shallow_conv``,
``p1_conv1``, ``dptam``), so that those load without renaming.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PA_EPSILON = 1e-6
# PAN initialises the PA filters with normal(0, 0.001). The PA image is then about 400
# times smaller than a normalised RGB frame (std 0.002 against 0.8 on the synthetic
# clips): a network that fuses the two (AFM, concat) starts out seeing the RGB frame
# only. ``init_std`` (``mienet train --pa-init-std``) changes it; docs in docs/models-and-training.md.
from mienet.config import PAN_INIT_STD  # noqa: E402  (PAN's value, one place)


class PersistenceOfAppearance(nn.Module):
    """PA motion cue, from PAN (Zhang et al., "PAN: Towards Fast Action Recognition
    via Learning Persistence of Appearance", 2020), as used by MIE-Net.

    One ``Conv2d(3 -> 8, kernel 7, padding 3)`` is applied to every frame; for each
    pair of neighbouring frames the map is, at every pixel, the Euclidean norm over
    the 8 feature channels of ``f_i - f_{i+1} + 1e-6``.

    ``convolve_differences=True`` computes the same map the lighter way: the
    convolution is linear and its bias cancels in the difference, so
    ``f_i - f_{i+1} = conv_without_bias(x_i - x_{i+1})``, which convolves the ``L - 1``
    frame differences instead of the ``L`` frames. The bias stays a parameter
    (``shallow_conv.bias``, present in released checkpoints) but cannot affect the
    output either way; on this path its gradient is exactly zero instead of
    rounding noise. The training engine's speed path switches it on
    (``mienet.engine.performance.prepare_model``); the default is the direct
    formula, as the released code computes it. Not saved in the state dict.

    ``init_std``: standard deviation of the filters' normal initialisation (PAN's
    0.001 by default; see :data:`PAN_INIT_STD`).

    Input ``(B, L, 3, H, W)``, ``L >= 2`` frames per segment; output ``(B, L - 1, H, W)``,
    the "PA image" with one channel per pair of frames.
    """

    def __init__(self, convolve_differences: bool = False, init_std: float = PAN_INIT_STD) -> None:
        super().__init__()
        self.convolve_differences = convolve_differences
        self.shallow_conv = nn.Conv2d(3, 8, kernel_size=7, stride=1, padding=3, bias=True)
        # PAN's initialisation by default: tiny random filters (std 0.001), no bias.
        nn.init.normal_(self.shallow_conv.weight, 0.0, init_std)
        nn.init.zeros_(self.shallow_conv.bias)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        # Float32 even under autocast: the map is a norm over small features (PAN
        # initialises the filters at std 0.001) whose squares underflow float16 and lose
        # digits in bfloat16; the 3 -> 8 convolution is a few percent of a training step.
        device_type = frames.device.type
        if torch.amp.is_autocast_available(device_type) and torch.is_autocast_enabled(device_type):
            with torch.autocast(device_type, enabled=False):
                return self._pa(frames.float())
        return self._pa(frames)

    def _pa(self, frames: torch.Tensor) -> torch.Tensor:
        b, length = frames.shape[:2]
        conv = self.shallow_conv
        if self.convolve_differences:
            frame_differences = (frames[:, :-1] - frames[:, 1:]).flatten(0, 1)
            difference = F.conv2d(frame_differences, conv.weight, None, conv.stride, conv.padding)
            difference = difference.unflatten(0, (b, length - 1))  # (B, L - 1, 8, H, W)
            # "0 * bias" keeps the cancelled bias in the autograd graph with a zero
            # gradient: DistributedDataParallel expects every parameter to get one.
            epsilon = PA_EPSILON + 0.0 * conv.bias
            difference = difference + epsilon.view(1, 1, -1, 1, 1)
        else:
            features = conv(frames.flatten(0, 1)).unflatten(0, (b, length))  # (B, L, 8, H, W)
            difference = features[:, :-1] - features[:, 1:] + PA_EPSILON
        return torch.linalg.vector_norm(difference, ord=2, dim=2)  # norm over the 8 channels


class AdaptiveFusion(nn.Module):
    """AFM, the adaptive fusion module of MIE-Net (Motion Information Enhancement Network).

    ``S = R + P``; ``g = sigmoid(GAP(S))`` is a per-channel gate applied to both
    inputs; two learnable scalars ``w`` become weights ``a = softmax(w)``, and the
    output is ``concat(a_r * g * R, a_p * g * P)``.

    The scalars ``w`` are passed in rather than owned: the released model keeps
    them at its top level (state-dict key ``w``), and this module has no state.

    Inputs: ``rgb`` and ``pa`` ``(B, 3, H, W)``, ``w`` of shape ``(2,)``.
    Output ``(B, 6, H, W)``.
    """

    def forward(self, rgb: torch.Tensor, pa: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid((rgb + pa).mean(dim=(2, 3), keepdim=True))  # (B, 3, 1, 1)
        a_rgb, a_pa = fusion_weights(w)
        return torch.cat([a_rgb * gate * rgb, a_pa * gate * pa], dim=1)


def fusion_weights(w: torch.Tensor) -> torch.Tensor:
    """AFM's weights ``(a_r, a_p) = softmax(w)``; they sum to one."""
    return torch.softmax(w, dim=0)


class DoublePoolingTemporalAttention(nn.Module):
    """DPTAM, the double pooling temporal attention module of MIE-Net.

    With ``s`` the spatial average of the input, ``(N, C, T)``, and ``K`` one shared
    ``Conv1d(C -> C, kernel 1, no bias)`` (``p1_conv1``)::

        z = s + K(s) * K(mean_T(s))
        attention = sigmoid(Conv1d(C/4 -> C, k 1)(ReLU(BN(Conv1d(C -> C/4, k 3)(z)))))

    and the output is the input scaled by the attention of its channel and segment.

    Input and output ``(N * T, C, H, W)``, segments of one clip consecutive;
    ``num_segments`` is ``T``.
    """

    def __init__(self, channels: int, num_segments: int) -> None:
        super().__init__()
        self.num_segments = num_segments
        self.p1_conv1 = nn.Conv1d(channels, channels, kernel_size=1, bias=False)
        hidden = channels // 4
        # Indices 0, 1, 3 carry parameters; they match the released state-dict names.
        self.dptam = nn.Sequential(
            nn.Conv1d(channels, hidden, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv1d(hidden, channels, kernel_size=1, bias=False),
        )

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The attention in ``(0, 1)`` for every segment and channel: ``(N, C, T)``."""
        nt, c = x.shape[:2]
        s = x.mean(dim=(2, 3)).view(nt // self.num_segments, self.num_segments, c).transpose(1, 2)
        m = s.mean(dim=2, keepdim=True)  # (N, C, 1), the temporal pooling
        z = s + self.p1_conv1(s) * self.p1_conv1(m)
        return torch.sigmoid(self.dptam(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attention = self.attention(x)  # (N, C, T)
        return x * attention.transpose(1, 2).reshape(x.shape[0], x.shape[1], 1, 1)


class SegmentConsensus(nn.Module):
    """TSN's average consensus (Wang et al., "Temporal Segment Networks", 2016).

    Input ``(N, T, K)`` per-segment scores; output ``(N, K)``, their mean over ``T``.
    """

    def forward(self, scores: torch.Tensor) -> torch.Tensor:
        return scores.mean(dim=1)
