"""The dependency lists agree: pyproject (direct), requirements.lock (pins), environment.yml (conda)."""

from __future__ import annotations

import re
import tomllib

import yaml

from conftest import REPO


def _name(spec: str) -> str:
    return re.split(r"[=<>!\[ ;]", spec.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _lock() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[_name(name)] = version.strip()
    return pins


def test_environment_yml_pins_every_direct_dependency_at_the_locked_version():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    direct = project["dependencies"] + project["optional-dependencies"]["test"]
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_pins = dict(spec.split("==") for spec in pip)
    lock = _lock()
    assert {_name(d) for d in direct} == set(conda_pins)
    for name, version in conda_pins.items():
        assert lock[name] == version, f"environment.yml pins {name}=={version}, the lock {lock[name]}"
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert python == "python=3.11"


def test_torch_and_torchvision_are_a_matching_pinned_pair():
    lock = _lock()
    assert lock["torch"] == "2.14.1" and lock["torchvision"] == "0.29.1"
    import torch
    import torchvision

    assert torch.__version__.split("+")[0] == lock["torch"]
    assert torchvision.__version__.split("+")[0] == lock["torchvision"]
    # the pair imports and runs a torchvision operator on this machine (CPU)
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    assert torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8]), 0.5).tolist() == [0]
