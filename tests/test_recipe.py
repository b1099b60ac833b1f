"""The released recipe: parameter groups and learning-rate schedule."""

from __future__ import annotations

import math

import pytest

from mienet.engine.recipe import lr_factor, parameter_groups, scaled_lr
from mienet.models import build_model


def groups_by_name(model, lr=0.01, wd=1e-4):
    return {g["name"]: g for g in parameter_groups(model, lr, wd)}


@pytest.mark.parametrize("variant", ["tsn", "mienet", "fusion_dptam", "pa"])
def test_every_trainable_parameter_is_in_exactly_one_group(variant):
    model = build_model(variant, "resnet18", 5, 2)
    ids = [id(p) for g in parameter_groups(model, 0.01, 1e-4) for p in g["params"]]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in model.parameters() if p.requires_grad}


def test_multipliers_follow_the_recipe():
    model = build_model("mienet", "resnet18", 5, 2)
    g = groups_by_name(model)
    assert g["first_conv_weight"]["params"] == [model.PA.shallow_conv.weight]
    assert g["first_conv_weight"]["lr"] == pytest.approx(0.05) and g["first_conv_weight"]["weight_decay"] == 1e-4
    assert g["first_conv_bias"]["lr"] == pytest.approx(0.1) and g["first_conv_bias"]["weight_decay"] == 0
    assert g["classifier_weight"]["params"] == [model.new_fc.weight] and g["classifier_weight"]["lr"] == pytest.approx(0.05)
    assert g["classifier_bias"]["lr"] == pytest.approx(0.1) and g["classifier_bias"]["weight_decay"] == 0
    assert g["norm"]["weight_decay"] == 0 and g["norm"]["lr"] == pytest.approx(0.01)
    assert any(p is model.base_model.conv1.weight for p in g["weight"]["params"])
    assert g["fusion"]["params"] == [model.w] and g["fusion"]["weight_decay"] == 0
    frozen = build_model("mienet", "resnet18", 5, 2, freeze_fusion_weights=True)
    assert "fusion" not in groups_by_name(frozen)


def test_rgb_variants_treat_the_backbone_conv_as_first_at_x1():
    model = build_model("tsn", "resnet18", 5, 2)
    g = groups_by_name(model)
    assert g["first_conv_weight"]["params"] == [model.base_model.conv1.weight]
    assert g["first_conv_weight"]["lr"] == pytest.approx(0.01)


def test_schedules():
    assert scaled_lr(0.0025, 16) == pytest.approx(0.005)
    assert scaled_lr(0.0025, 8, world_size=4) == pytest.approx(0.01)
    f = [lr_factor(s, 10, 60, "step", [36, 50]) for s in (0, 359, 360, 499, 500)]
    assert f == pytest.approx([1, 1, 0.1, 0.1, 0.01])
    assert lr_factor(0, 10, 4, "cosine", []) == pytest.approx(1)
    assert lr_factor(20, 10, 4, "cosine", []) == pytest.approx(0.5)
    assert lr_factor(4, 10, 4, "step", [], warmup_epochs=1) == pytest.approx(0.5)
    assert lr_factor(15, 10, 4, "cosine", [], warmup_epochs=1) == pytest.approx(
        0.5 * (1 + math.cos(math.pi * 0.5 / 3)))
