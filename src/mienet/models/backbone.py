"""torchvision ResNets as MIE-Net backbones: DPTAM inside every residual block,
a first convolution for the variant's input, and ImageNet weights on request.

The ResNet itself is torchvision's; DPTAM is inserted by wrapping each of its
``BasicBlock`` / ``Bottleneck`` blocks (:class:`TemporalAttentionBlock`), which
keeps the state-dict names of the released checkpoints
(``layer1.0.net.conv1.weight``, ``layer1.0.tlam.p1_conv1.weight``).
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torchvision import models
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from mienet.errors import MienetError
from mienet.models.checkpoint import read_checkpoint_file
from mienet.models.modules import DoublePoolingTemporalAttention
from mienet.registry.variants import ARCH_NAMES, FETCH_RULE, IMAGENET_FILES, imagenet_weights_file

log = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT_S = 20.0  # per socket operation; an unreachable host fails instead of hanging


@dataclass(frozen=True)
class ResNetSpec:
    """A torchvision ResNet constructor and its ImageNet weights (``None``: none exist)."""

    build: Callable[..., ResNet]
    weights: models.WeightsEnum | None


def resnet10(*, weights: None = None) -> ResNet:
    """torchvision's ResNet with one ``BasicBlock`` per stage (ResNet-18 halved in depth):
    the small CPU backbone of the embedded synthetic default. No ImageNet weights exist."""
    return ResNet(BasicBlock, [1, 1, 1, 1])


class NarrowResNet(ResNet):
    """torchvision's ResNet with other stage widths than 64-128-256-512, built with its own
    ``_make_layer`` (the blocks are torchvision's) and initialised as torchvision does."""

    def __init__(self, block, layers: list[int], widths: tuple[int, int, int, int]) -> None:
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.dilation, self.groups, self.base_width = 1, 1, 64
        self.inplanes = widths[0]
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, widths[0], layers[0])
        self.layer2 = self._make_layer(block, widths[1], layers[1], stride=2)
        self.layer3 = self._make_layer(block, widths[2], layers[2], stride=2)
        self.layer4 = self._make_layer(block, widths[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[3] * block.expansion, 1000)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


def resnet10_half(*, weights: None = None) -> ResNet:
    """ResNet-10 at half width (32-64-128-256 channels, about a quarter of the FLOPs): the
    CPU backbone of the embedded synthetic default. No ImageNet weights exist."""
    return NarrowResNet(BasicBlock, [1, 1, 1, 1], (32, 64, 128, 256))


ARCHS: dict[str, ResNetSpec] = {
    "resnet10": ResNetSpec(resnet10, None),
    "resnet10_half": ResNetSpec(resnet10_half, None),
    "resnet18": ResNetSpec(models.resnet18, models.ResNet18_Weights.IMAGENET1K_V1),
    "resnet34": ResNetSpec(models.resnet34, models.ResNet34_Weights.IMAGENET1K_V1),
    "resnet50": ResNetSpec(models.resnet50, models.ResNet50_Weights.IMAGENET1K_V1),
    "resnet101": ResNetSpec(models.resnet101, models.ResNet101_Weights.IMAGENET1K_V1),
}
assert tuple(ARCHS) == ARCH_NAMES, "mienet.registry.variants.ARCH_NAMES and ARCHS must name the same backbones"
assert {a for a, spec in ARCHS.items() if spec.weights is not None} == set(IMAGENET_FILES), \
    "mienet.registry.variants.IMAGENET_FILES must name the backbones that have ImageNet weights"


class TemporalAttentionBlock(nn.Module):
    """A torchvision residual block (``net``) with DPTAM (``tlam``) applied right
    after its first conv + BN + ReLU and before its second conv.

    Runs the wrapped block's own layers in torchvision's order. Input and output
    ``(N * T, C, H, W)`` like the block itself.
    """

    def __init__(self, block: nn.Module, num_segments: int) -> None:
        super().__init__()
        self.net = block
        self.tlam = DoublePoolingTemporalAttention(block.conv1.out_channels, num_segments)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.net
        identity = x if b.downsample is None else b.downsample(x)
        out = b.relu(b.bn1(b.conv1(x)))
        out = self.tlam(out)
        out = b.bn2(b.conv2(out))
        if isinstance(b, Bottleneck):
            out = b.bn3(b.conv3(b.relu(out)))
        return b.relu(out + identity)


def build_backbone(
    arch: str,
    in_channels: int,
    *,
    rgb_input: bool,
    pretrained: str | None,
    dptam_segments: int | None,
) -> tuple[ResNet, int]:
    """A torchvision ResNet without its classifier, and its feature width: the
    network maps ``(B, in_channels, H, W)`` to ``(B, feature_dim)`` features after
    global average pooling (512 for ResNet-18/34, 2048 for ResNet-50/101).

    ``rgb_input``: the input is an RGB frame, so pretrained first-layer kernels are
    kept as they are; otherwise (PA or fused input) the first conv is rebuilt and,
    when pretrained, initialised with the pretrained kernels averaged over their
    input channels and repeated on all ``in_channels``. ``dptam_segments``: wrap
    every residual block with DPTAM over that many segments; ``None`` for none.
    """
    if arch not in ARCHS:
        raise MienetError(f"unknown backbone {arch!r}; choose one of {', '.join(ARCHS)}")
    spec = ARCHS[arch]
    if pretrained == "imagenet" and spec.weights is None:
        raise _no_weights(arch)
    resnet = spec.build(weights=None)
    if pretrained == "imagenet":
        resnet.load_state_dict(imagenet_state_dict(arch))
    elif pretrained is not None:
        raise MienetError(f"unknown pretrained weights {pretrained!r}; use 'imagenet' or none")
    feature_dim = resnet.fc.in_features
    resnet.fc = nn.Identity()

    if in_channels != 3 or (pretrained is not None and not rgb_input):
        resnet.conv1 = _first_conv(resnet.conv1, in_channels, average=pretrained is not None)
    if dptam_segments is not None:
        for stage in (resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4):
            for i, block in enumerate(stage):
                stage[i] = TemporalAttentionBlock(block, dptam_segments)
    return resnet, feature_dim


def _first_conv(old: nn.Conv2d, in_channels: int, *, average: bool) -> nn.Conv2d:
    conv = nn.Conv2d(
        in_channels, old.out_channels, old.kernel_size, old.stride, old.padding, bias=False
    )
    with torch.no_grad():
        if average:
            conv.weight.copy_(old.weight.mean(dim=1, keepdim=True).expand_as(conv.weight))
        else:  # torchvision's own initialisation of ResNet convolutions
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return conv


def _no_weights(arch: str) -> MienetError:
    with_weights = ", ".join(name for name, other in ARCHS.items() if other.weights is not None)
    return MienetError(f"backbone {arch!r} has no ImageNet weights; train it from scratch (pretrained: none) "
                       f"or pick one of {with_weights}")


def imagenet_weights_path(arch: str) -> Path:
    """Where the ImageNet weights of ``arch`` live in the torch hub cache
    (``$TORCH_HOME/hub/checkpoints/<file name of the weights' URL>``)."""
    return Path(imagenet_weights_file(arch))


def require_imagenet_weights(arch: str) -> Path:
    """The weights file of ``arch``, or one line naming it and the way to get it. Trainings never
    download: on a cluster they run on compute nodes, which mostly have no internet."""
    if arch not in IMAGENET_FILES:
        raise _no_weights(arch)
    path = imagenet_weights_path(arch)
    if not path.is_file():
        raise MienetError(
            f"ImageNet weights of {arch} not found: {path}. Fetch them on a machine with internet "
            f"with `mienet fetch-weights {arch}` (the workflow's local rule {FETCH_RULE} runs it on the "
            f"submitting node before any training), or copy the file {path.name} there; TORCH_HOME "
            "moves the folder")
    return path


def imagenet_state_dict(arch: str) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet state dict of ``arch``, from the hub cache (read with
    ``weights_only=True`` like any checkpoint); never downloaded here (:func:`fetch_imagenet_weights`)."""
    return read_checkpoint_file(require_imagenet_weights(arch))


def fetch_imagenet_weights(arch: str) -> Path:
    """Download ``arch``'s ImageNet weights into the hub cache unless they are there (checked
    against the hash in their file name). Without network access the error names the file to
    place and the folder to place it in."""
    path = imagenet_weights_path(arch)
    if path.is_file():
        log.info("%s: already there", path)
        return path
    url = ARCHS[arch].weights.url
    log.info("downloading %s to %s", url, path)
    hash_prefix = re.search(r"-([a-f0-9]+)\.", path.name)
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(
            url, str(path), hash_prefix.group(1) if hash_prefix else None, progress=False
        )
    except Exception as exc:  # no network, a timeout, a full disk, a hash mismatch
        raise MienetError(
            f"could not download the ImageNet weights {url} ({type(exc).__name__}: {exc}). "
            f"On a machine without network access, download that file elsewhere and place it "
            f"as {path.name!r} in the directory {str(path.parent)!r} (the torch hub cache; "
            f"TORCH_HOME moves it), then run again."
        ) from exc
    finally:
        socket.setdefaulttimeout(previous_timeout)
    return path


# ---------------------------------------------------------------- mienet fetch-weights

def add_arguments(parser) -> None:
    parser.add_argument("arch", nargs="+", choices=sorted(IMAGENET_FILES),
                        help="backbones whose ImageNet weights to download into the torch hub cache")


def run(args) -> int:
    for arch in dict.fromkeys(args.arch):
        print(f"fetch-weights: {arch}: {fetch_imagenet_weights(arch)}")
    return 0
