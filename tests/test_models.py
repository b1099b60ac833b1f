"""Tests of mienet.models: shapes, gradients, the modules' defining properties,
checkpoints (project, released layout, unsafe), ImageNet weights offline, FLOPs."""

from __future__ import annotations

import fnmatch
import json
import logging
import math
import os
from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision import models as tv_models
from torchvision.models.resnet import BasicBlock

from conftest import RELEASED_MANIFEST
from mienet.cli import main as cli_main
from mienet.errors import MienetError
from mienet.models import (
    RELEASED_UNUSED_PATTERNS,
    VARIANTS,
    AdaptiveFusion,
    DoublePoolingTemporalAttention,
    PersistenceOfAppearance,
    SegmentConsensus,
    TemporalAttentionBlock,
    build_model,
    load_checkpoint,
    model_stats,
    save_checkpoint,
)

REPO = Path(__file__).resolve().parents[1]
RELEASED_PARAMETERS = 26_060_133  # sum of the manifest's parameters (buffers excluded)


def clips(n=2, t=2, length=4, size=32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, t, length, 3, size, size, generator=generator)


@pytest.fixture(scope="module")
def manifest() -> dict:
    """The released state-dict manifest, from tests/data/reference."""
    return json.loads(RELEASED_MANIFEST.read_text())


# ---------------------------------------------------------------- shapes and gradients


@pytest.mark.parametrize("arch", ["resnet10", "resnet18", "resnet50"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_maps_clips_to_logits(variant, arch):
    model = build_model(variant, arch, num_classes=5, num_segments=2).eval()
    with torch.no_grad():
        out = model(clips(n=2, t=2, size=32))
    assert out.shape == (2, 5)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("variant", ["tsn", "dptam"])
def test_rgb_variants_take_one_frame_per_segment(variant):
    model = build_model(variant, "resnet18", 3, num_segments=3, frames_per_segment=1).eval()
    x = clips(n=2, t=3, length=4)
    with torch.no_grad():
        # Only the first frame of each segment is used.
        assert torch.equal(model(x[:, :, :1]), model(x))


def test_first_conv_input_channels():
    expected = {
        "tsn": 3,
        "dptam": 3,
        "pa": 3,
        "naive_fusion": 6,
        "fusion_dptam": 6,
        "afm": 6,
        "mienet": 6,
    }
    for variant, channels in expected.items():
        assert build_model(variant, "resnet18", 2, 2).base_model.conv1.in_channels == channels
    assert (
        build_model("pa", "resnet18", 2, 2, frames_per_segment=6).base_model.conv1.in_channels == 5
    )


def test_bad_configurations_are_user_errors():
    with pytest.raises(MienetError, match="4 frames per segment"):
        build_model("mienet", "resnet18", 2, 2, frames_per_segment=3)
    with pytest.raises(MienetError, match="at least 2 frames"):
        build_model("pa", "resnet18", 2, 2, frames_per_segment=1)
    with pytest.raises(MienetError, match="unknown model variant"):
        build_model("tsm", "resnet18", 2, 2)
    with pytest.raises(MienetError, match="unknown backbone"):
        build_model("tsn", "vgg16", 2, 2)
    model = build_model("mienet", "resnet18", 2, 2)
    with pytest.raises(MienetError, match="built for 2 segments"):
        model(clips(t=3))
    with pytest.raises(MienetError, match="4 frames"):
        model(clips(length=2))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_backward_reaches_every_trainable_parameter(variant):
    torch.manual_seed(0)
    model = build_model(variant, "resnet18", 4, num_segments=2, dropout=0.0).train()
    model(clips(n=2, t=2, size=32)).logsumexp(dim=1).sum().backward()
    for name, p in model.named_parameters():
        assert p.requires_grad, name
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"


def test_frozen_fusion_weights_stay_out_of_the_optimiser_and_stay():
    """As released: w keeps requires_grad, is in no parameter group, so it never moves while
    its gradient, never cleared by optimizer.zero_grad(), adds up over the steps."""
    from mienet.engine.recipe import parameter_groups

    model = build_model("mienet", "resnet18", 4, 2, freeze_fusion_weights=True).train()
    assert model.w.requires_grad and model.freeze_fusion_weights
    optimizer = torch.optim.SGD(parameter_groups(model, 0.1, 1e-4), lr=0.1, momentum=0.9, weight_decay=1e-4)
    seen = []
    for _ in range(2):
        optimizer.zero_grad()
        seen.append(None if model.w.grad is None else model.w.grad.clone())  # what zero_grad left
        model(clips()).sum().backward()
        optimizer.step()
    assert seen[0] is None and seen[1].abs().sum() > 0  # the first step's gradient was kept
    assert not torch.equal(model.w.grad, seen[1])  # and the second one's added to it
    assert torch.equal(model.w.detach(), torch.ones(2))
    assert torch.equal(model.fusion_weights(), torch.tensor([0.5, 0.5]))


def test_resnet10_is_torchvisions_resnet_with_one_block_per_stage():
    model = build_model("mienet", "resnet10", 4, 2)
    backbone = model.base_model
    assert [len(stage) for stage in (backbone.layer1, backbone.layer2, backbone.layer3, backbone.layer4)] \
        == [1, 1, 1, 1]
    assert isinstance(backbone.layer4[0].net, BasicBlock)
    assert model.new_fc.in_features == 512
    with pytest.raises(MienetError, match="'resnet10' has no ImageNet weights.*resnet18"):
        build_model("tsn", "resnet10", 4, 2, pretrained="imagenet")


def test_pa_filters_start_at_the_requested_scale():
    torch.manual_seed(0)
    pan = build_model("mienet", "resnet18", 4, 2).PA.shallow_conv.weight
    assert pan.std().item() == pytest.approx(0.001, rel=0.15)  # PAN's initialisation by default
    torch.manual_seed(0)
    wide = build_model("mienet", "resnet18", 4, 2, pa_init_std=1.0).PA.shallow_conv.weight
    torch.testing.assert_close(wide, 1000 * pan)  # same draw, scaled
    with pytest.raises(MienetError, match="pa_init_std must be positive"):
        build_model("pa", "resnet18", 4, 2, pa_init_std=0.0)


def test_classifier_initialisation():
    model = build_model("tsn", "resnet50", 10, 3)
    assert model.new_fc.weight.shape == (10, 2048)
    assert torch.equal(model.new_fc.bias, torch.zeros(10))
    assert model.new_fc.weight.std().item() == pytest.approx(0.001, rel=0.05)


# ---------------------------------------------------------------- module properties


def test_pa_of_a_static_clip_is_the_epsilon_and_grows_with_motion():
    torch.manual_seed(0)
    pa = PersistenceOfAppearance()
    frame = torch.randn(1, 1, 3, 24, 24)
    static = pa(frame.expand(1, 4, 3, 24, 24))
    assert static.shape == (1, 3, 24, 24)
    # eps is added to each of the 8 channels, so the norm is sqrt(8) * eps.
    torch.testing.assert_close(
        static, torch.full_like(static, math.sqrt(8) * 1e-6), rtol=1e-3, atol=0
    )
    small = pa(torch.stack([frame[:, 0] + 0.1 * k for k in range(4)], dim=1))
    large = pa(torch.stack([frame[:, 0] + 1.0 * k for k in range(4)], dim=1))
    assert (small.mean() > 100 * static.mean()) and (large.mean() > 5 * small.mean())


def test_pa_is_the_channel_norm_of_neighbouring_feature_differences():
    torch.manual_seed(1)
    pa = PersistenceOfAppearance()
    frames = torch.randn(2, 4, 3, 8, 8)
    out = pa(frames)
    distance = nn.PairwiseDistance(p=2, eps=1e-6)  # rows of 8 channels, as the authors intended
    for i in range(3):
        f0 = pa.shallow_conv(frames[:, i]).permute(0, 2, 3, 1).reshape(-1, 8)
        f1 = pa.shallow_conv(frames[:, i + 1]).permute(0, 2, 3, 1).reshape(-1, 8)
        torch.testing.assert_close(out[:, i], distance(f0, f1).view(2, 8, 8))


def test_afm_weights_sum_to_one_and_output_follows_the_definition():
    torch.manual_seed(0)
    model = build_model("afm", "resnet18", 2, 2)
    assert model.fusion_weights().sum().item() == pytest.approx(1.0)
    with torch.no_grad():
        model.w.copy_(torch.tensor([0.3, -1.7]))
    a = model.fusion_weights()
    assert a.sum().item() == pytest.approx(1.0)
    rgb, pa = torch.randn(3, 3, 5, 5), torch.rand(3, 3, 5, 5)
    out = AdaptiveFusion()(rgb, pa, model.w)
    gate = torch.sigmoid((rgb + pa).mean(dim=(2, 3), keepdim=True))
    torch.testing.assert_close(out, torch.cat([a[0] * gate * rgb, a[1] * gate * pa], dim=1))


def force_attention(dptam: DoublePoolingTemporalAttention, last_weight: float) -> None:
    """Eval-mode DPTAM whose attention is sigmoid(hidden * last_weight * C/4) everywhere:
    BN with zero scale outputs its bias, so the hidden activations are constant."""
    with torch.no_grad():
        dptam.dptam[1].weight.zero_()
        dptam.dptam[1].bias.fill_(10.0)
        dptam.dptam[3].weight.fill_(last_weight)
    dptam.eval()


def test_dptam_with_attention_forced_to_one_is_the_identity():
    dptam = DoublePoolingTemporalAttention(16, num_segments=3)
    force_attention(dptam, 1.0)  # sigmoid(10 * 1 * 4) == 1.0 in float32
    x = torch.randn(6, 16, 5, 5)
    assert torch.equal(dptam.attention(x), torch.ones(2, 16, 3))
    assert torch.equal(dptam(x), x)
    force_attention(dptam, 0.0)  # sigmoid(0) == 0.5
    assert torch.equal(dptam(x), 0.5 * x)


def test_dptam_matches_the_written_definition():
    torch.manual_seed(0)
    n, t, c = 2, 3, 8
    dptam = DoublePoolingTemporalAttention(c, num_segments=t).eval()
    with torch.no_grad():  # non-trivial BN statistics
        dptam.dptam[1].running_mean.uniform_(-0.5, 0.5)
        dptam.dptam[1].running_var.uniform_(0.5, 2.0)
    x = torch.randn(n * t, c, 4, 4)
    k = dptam.p1_conv1.weight[:, :, 0]  # (C, C)
    expected = torch.empty_like(x)
    for clip in range(n):
        s = torch.stack([x[clip * t + i].mean(dim=(1, 2)) for i in range(t)], dim=1)  # (C, T)
        m = s.mean(dim=1, keepdim=True)
        z = s + (k @ s) * (k @ m)
        attention = torch.sigmoid(dptam.dptam(z.unsqueeze(0)))[0]  # (C, T)
        for i in range(t):
            expected[clip * t + i] = x[clip * t + i] * attention[:, i, None, None]
    torch.testing.assert_close(dptam(x), expected)
    # Segments of one clip never see another clip.
    y = x.clone()
    y[t:] = torch.randn_like(y[t:])
    torch.testing.assert_close(dptam(y)[:t], dptam(x)[:t])


@pytest.mark.parametrize("builder", [tv_models.resnet18, tv_models.resnet50])
def test_wrapped_block_with_unit_attention_is_torchvisions_block(builder):
    torch.manual_seed(0)
    block = builder(weights=None).layer2[0].eval()  # the block with a downsample
    wrapped = TemporalAttentionBlock(block, num_segments=2)
    force_attention(wrapped.tlam, 1.0)
    x = torch.randn(4, block.conv1.in_channels, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(wrapped(x), block(x))


def test_consensus_is_the_mean_over_segments():
    scores = torch.randn(2, 5, 7)
    torch.testing.assert_close(SegmentConsensus()(scores), scores.mean(dim=1))
    model = build_model("tsn", "resnet18", 4, 3).eval()
    x = clips(n=2, t=3)
    with torch.no_grad():
        per_segment = torch.stack([model(x[:, i : i + 1]) for i in range(3)], dim=1)
        torch.testing.assert_close(model(x), per_segment.mean(dim=1))


def test_channels_last_and_bfloat16_autocast_agree_on_top1():
    torch.manual_seed(0)
    model = build_model("mienet", "resnet18", 4, num_segments=2).eval()
    x = clips(n=4, t=2, size=48, seed=3)
    with torch.no_grad():
        # A nearest-centroid classifier on the four clips' own features, so that
        # each clip has a clear top-1 (its own class).
        features = model.base_model(model.backbone_input(x)).view(4, 2, -1).mean(dim=1)
        centred = features - features.mean(dim=0)
        weight = centred / centred.norm(dim=1, keepdim=True)
        model.new_fc.weight.copy_(weight)
        model.new_fc.bias.copy_(-(weight @ features.mean(dim=0)))
        reference = model(x)
        top2 = reference.topk(2, dim=1).values
        assert reference.argmax(dim=1).tolist() == [0, 1, 2, 3]
        assert (top2[:, 0] - top2[:, 1]).min() > 0.05

        model = model.to(memory_format=torch.channels_last)
        channels_last = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bfloat16 = model(x)
    torch.testing.assert_close(channels_last, reference, rtol=1e-4, atol=1e-5)
    assert torch.equal(channels_last.argmax(dim=1), reference.argmax(dim=1))
    assert torch.equal(bfloat16.float().argmax(dim=1), reference.argmax(dim=1))
    assert (bfloat16.float() - reference).abs().max() < 0.02


# ---------------------------------------------------------------- checkpoints


def released_state_dict(manifest: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in manifest["entries"]:
        if name.endswith("num_batches_tracked"):
            state[f"module.{name}"] = torch.tensor(100)
        else:
            state[f"module.{name}"] = torch.randn(shape, generator=generator)
    return state


def save_released(path: Path, state: dict) -> Path:
    params = list(range(3))
    optimizer = {
        "state": {i: {"momentum_buffer": torch.zeros(2)} for i in params},
        "param_groups": [
            {
                "lr": 0.0025,
                "momentum": 0.9,
                "dampening": 0,
                "weight_decay": 1e-4,
                "nesterov": False,
                "params": params,
            }
        ],
    }
    checkpoint = {
        "epoch": 42,
        "arch": "resnet50",
        "state_dict": state,
        "optimizer": optimizer,
        "best_prec1": 94.48,
    }
    torch.save(checkpoint, path)
    return path


def test_unused_patterns_match_the_manifest(manifest):
    assert list(RELEASED_UNUSED_PATTERNS) == manifest["unused_in_forward"]


def test_mienet_has_exactly_the_released_names_and_shapes_minus_unused(manifest):
    model = build_model("mienet", "resnet50", 10, 3)
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    released = {
        name: shape
        for name, shape in manifest["entries"]
        if not any(fnmatch.fnmatchcase(name, p) for p in manifest["unused_in_forward"])
    }
    assert ours == released
    total = sum(
        math.prod(shape)
        for name, shape in manifest["entries"]
        if not name.endswith(("running_mean", "running_var", "num_batches_tracked"))
    )
    assert total == RELEASED_PARAMETERS


def test_released_checkpoint_loads_with_one_log_line(tmp_path, manifest, caplog):
    state = released_state_dict(manifest)
    path = save_released(tmp_path / "mienet_sljd.pth.tar", state)
    model = build_model("mienet", "resnet50", 10, 3)
    with caplog.at_level(logging.INFO, logger="mienet.models.checkpoint"):
        metadata = load_checkpoint(model, path)
    assert metadata == {"epoch": 42, "arch": "resnet50", "best_prec1": 94.48}
    records = [r for r in caplog.records if r.name == "mienet.models.checkpoint"]
    assert len(records) == 1 and "never uses" in records[0].getMessage()
    assert torch.equal(model.w, state["module.w"])
    assert torch.equal(
        model.base_model.layer3[2].tlam.p1_conv1.weight,
        state["module.base_model.layer3.2.tlam.p1_conv1.weight"],
    )


def test_released_checkpoint_with_a_wrong_shape_names_the_key(tmp_path, manifest):
    state = released_state_dict(manifest)
    state["module.base_model.layer2.1.tlam.dptam.0.weight"] = torch.zeros(32, 128, 5)
    path = save_released(tmp_path / "bad.pth.tar", state)
    model = build_model("mienet", "resnet50", 10, 3)
    before = model.new_fc.weight.clone()
    with pytest.raises(
        MienetError, match=r"mis-shaped: base_model\.layer2\.1\.tlam\.dptam\.0\.weight"
    ):
        load_checkpoint(model, path)
    assert torch.equal(model.new_fc.weight, before)  # nothing was loaded


def test_released_checkpoint_with_unknown_or_missing_keys_names_them(tmp_path, manifest):
    state = released_state_dict(manifest)
    state["module.base_model.layer1.0.tlam.extra.weight"] = torch.zeros(3)
    del state["module.new_fc.bias"]
    path = save_released(tmp_path / "odd.pth.tar", state)
    with pytest.raises(MienetError) as error:
        load_checkpoint(build_model("mienet", "resnet50", 10, 3), path)
    assert "unexpected: base_model.layer1.0.tlam.extra.weight" in str(error.value)
    assert "missing: new_fc.bias" in str(error.value)


def test_project_checkpoint_round_trip_and_plain_state_dict(tmp_path):
    source = build_model("fusion_dptam", "resnet18", 4, 2)
    save_checkpoint(source, tmp_path / "ours.pt", epoch=3, variant="fusion_dptam", top1=51.5)
    target = build_model("fusion_dptam", "resnet18", 4, 2)
    assert load_checkpoint(target, tmp_path / "ours.pt") == {
        "epoch": 3,
        "variant": "fusion_dptam",
        "top1": 51.5,
    }
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key

    torch.save(source.state_dict(), tmp_path / "plain.pt")
    load_checkpoint(build_model("fusion_dptam", "resnet18", 4, 2), tmp_path / "plain.pt")
    with pytest.raises(MienetError, match="missing: w"):  # a checkpoint of another variant
        load_checkpoint(build_model("mienet", "resnet18", 4, 2), tmp_path / "plain.pt")


class CreatesADirectory:
    """Unpickling this runs os.mkdir: a stand-in for arbitrary code in a checkpoint."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (str(self.path),))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "payload_ran"
    path = tmp_path / "evil.pth.tar"
    torch.save({"state_dict": {"w": torch.ones(2)}, "epoch": CreatesADirectory(marker)}, path)
    with pytest.raises(MienetError, match="refused .* as unsafe") as error:
        load_checkpoint(build_model("mienet", "resnet18", 4, 2), path)
    assert str(path) in str(error.value) and "posix.mkdir" in str(error.value)
    assert not marker.exists()
    # The file really carries the payload: a trusting load runs it.
    torch.load(path, weights_only=False)
    assert marker.is_dir()


def test_missing_or_garbage_checkpoint_is_a_user_error(tmp_path):
    model = build_model("tsn", "resnet18", 4, 2)
    with pytest.raises(MienetError, match="does not exist"):
        load_checkpoint(model, tmp_path / "nope.pth")
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(MienetError, match="refused .* as unsafe or corrupt"):
        load_checkpoint(model, tmp_path / "garbage.pth")
    save_checkpoint(model, tmp_path / "whole.pt")
    (tmp_path / "truncated.pt").write_bytes((tmp_path / "whole.pt").read_bytes()[:5000])
    with pytest.raises(MienetError, match="cannot read"):
        load_checkpoint(model, tmp_path / "truncated.pt")


# ---------------------------------------------------------------- ImageNet weights


def test_missing_imagenet_weights_name_the_file_and_the_rule_that_fetches_them(tmp_path, monkeypatch):
    """Nothing downloads while a model is built (a training on a compute node without internet):
    one line naming the file, `mienet fetch-weights` and the workflow's local rule."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(MienetError) as error:
        build_model("tsn", "resnet18", 4, 2, pretrained="imagenet")
    message = str(error.value)
    assert str(tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in message and "\n" not in message
    assert "mienet fetch-weights resnet18" in message and "local rule fetch_weights" in message
    assert not (tmp_path / "hub").exists()  # no download was tried


def test_fetch_weights_offline_names_the_file_and_the_folder(tmp_path, monkeypatch, capsys):
    from mienet.cli import main

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    if main(["fetch-weights", "resnet18"]) == 0:
        pytest.skip("this machine could download the ImageNet weights")
    err = capsys.readouterr().err
    assert "'resnet18-f37072fd.pth'" in err and repr(str(tmp_path / "hub" / "checkpoints")) in err


def test_the_weights_files_named_without_torch_are_torchvisions(tmp_path, monkeypatch):
    """mienet.registry.variants names the files (the Snakefile imports no torch): the same names as
    torchvision's weight URLs, in the folder torch.hub uses."""
    from urllib.parse import urlparse

    from mienet.models.backbone import ARCHS
    from mienet.registry.variants import IMAGENET_FILES, imagenet_weights_file, torch_hub_dir

    for arch, spec in ARCHS.items():
        if spec.weights is not None:
            assert IMAGENET_FILES[arch] == Path(urlparse(spec.weights.url).path).name
    for env in ({"TORCH_HOME": str(tmp_path / "th")}, {"XDG_CACHE_HOME": str(tmp_path / "xdg")}, {}):
        for key in ("TORCH_HOME", "XDG_CACHE_HOME"):
            monkeypatch.delenv(key, raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        assert torch_hub_dir() == torch.hub.get_dir()
    assert imagenet_weights_file("resnet50").endswith("checkpoints/resnet50-0676ba61.pth")


def test_imagenet_weights_are_read_from_the_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.manual_seed(0)
    imagenet = tv_models.resnet18(weights=None).state_dict()  # stands in for the real file
    torch.save(imagenet, cache / "resnet18-f37072fd.pth")

    rgb = build_model("tsn", "resnet18", 4, 2, pretrained="imagenet").base_model
    assert torch.equal(rgb.conv1.weight, imagenet["conv1.weight"])
    assert torch.equal(rgb.layer4[1].conv2.weight, imagenet["layer4.1.conv2.weight"])

    fused = build_model("mienet", "resnet18", 4, 2, pretrained="imagenet").base_model
    averaged = imagenet["conv1.weight"].mean(dim=1, keepdim=True)
    assert torch.equal(fused.conv1.weight, averaged.expand(-1, 6, -1, -1))
    assert torch.equal(fused.layer1[0].net.conv1.weight, imagenet["layer1.0.conv1.weight"])


# ---------------------------------------------------------------- parameters and FLOPs


def test_model_stats_of_released_mienet():
    stats = model_stats("mienet", "resnet50", segments=3, size=224)
    assert stats["params_released_layout"] == RELEASED_PARAMETERS
    assert abs(stats["params"] - (RELEASED_PARAMETERS - 4185)) <= 0.001 * stats["params"]
    assert stats["gflops"] == pytest.approx(2 * stats["gmacs"])
    # Per clip: three ResNet-50 frames of about 4.1 GMACs, plus PA and DPTAM.
    assert 12.3 < stats["gmacs"] < 14


def test_model_info_command_prints_json(capsys):
    argv = [
        "model-info",
        "--variant",
        "tsn",
        "--arch",
        "resnet18",
        "--segments",
        "2",
        "--size",
        "64",
        "--json",
    ]
    assert cli_main(argv) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["params"] == sum(
        p.numel() for p in build_model("tsn", "resnet18", 10, 2).parameters()
    )
    assert stats["gflops"] > 0 and stats["variant"] == "tsn"
    assert cli_main(argv[:-1]) == 0
    assert "GFLOPs per clip" in capsys.readouterr().out
