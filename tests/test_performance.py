"""The speed path: lighter PA, channels-last and bfloat16 autocast, the training step,
and ``mienet bench train``. Real torch on CPU; no timing assertions."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch

from mienet.cli import main as cli_main
from mienet.engine.performance import (
    EAGER_FP32,
    SpeedConfig,
    autocast,
    default_speed_config,
    make_grad_scaler,
    prepare_model,
    to_device,
    train_step,
)
from mienet.errors import MienetError
from mienet.models import PersistenceOfAppearance, build_model

CPU = torch.device("cpu")


def _random_pa(seed: int) -> tuple[PersistenceOfAppearance, PersistenceOfAppearance]:
    """The same PA weights, direct and lighter; a bias that would matter if it did not cancel."""
    torch.manual_seed(seed)
    direct = PersistenceOfAppearance(convolve_differences=False)
    with torch.no_grad():
        direct.shallow_conv.weight.normal_(0.0, 0.1)
        direct.shallow_conv.bias.normal_(0.0, 1.0)
    lighter = copy.deepcopy(direct)
    lighter.convolve_differences = True
    return direct, lighter


def test_lighter_pa_equals_the_direct_formula_in_values_and_gradients():
    direct, lighter = _random_pa(0)
    frames = torch.randn(3, 4, 3, 20, 24)
    upstream = torch.randn(3, 3, 20, 24)
    outputs = []
    for pa in (direct, lighter):
        x = frames.clone().requires_grad_(True)
        out = pa(x)
        (out * upstream).sum().backward()
        outputs.append((out, pa.shallow_conv.weight.grad, x.grad, pa.shallow_conv.bias.grad))
    (out_d, w_d, x_d, b_d), (out_l, w_l, x_l, b_l) = outputs
    assert out_l.shape == (3, 3, 20, 24)
    assert (out_l - out_d).abs().max().item() < 1e-5 * out_d.abs().max().item()
    assert (w_l - w_d).abs().max().item() < 1e-5 * w_d.abs().max().item()
    assert (x_l - x_d).abs().max().item() < 1e-5 * x_d.abs().max().item()
    # The bias cancels: the direct gradient is rounding noise, the lighter one exactly zero,
    # but present (DistributedDataParallel expects a gradient for every parameter).
    assert b_d.abs().max().item() < 1e-4 * w_d.abs().max().item()
    assert b_l is not None and torch.equal(b_l, torch.zeros(8))


def test_lighter_pa_keeps_the_released_parameter_names_and_the_static_epsilon():
    direct, lighter = _random_pa(1)
    assert list(lighter.state_dict()) == ["shallow_conv.weight", "shallow_conv.bias"]
    still = torch.randn(1, 1, 3, 16, 16).expand(1, 4, 3, 16, 16)
    torch.testing.assert_close(lighter(still), direct(still), rtol=1e-3, atol=0)


def test_pa_runs_in_float32_under_bfloat16_autocast():
    _, lighter = _random_pa(2)
    frames = torch.randn(2, 4, 3, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = lighter(frames)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, lighter(frames))


def _scaled_model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model("mienet", "resnet18", 5, 2, dropout=0.0)
    with torch.no_grad():  # clear logit margins, so rounding cannot swap the top class
        model.new_fc.weight.normal_(0.0, 1.0)
    return model.eval()


def test_bf16_channels_last_gives_the_float32_prediction():
    model = _scaled_model(0)
    reference_model = copy.deepcopy(model)
    torch.manual_seed(1)
    clips = torch.randn(4, 2, 4, 3, 40, 40)
    with torch.no_grad():
        reference = reference_model(clips)
    speed = SpeedConfig(amp="bf16", channels_last=True)
    model = prepare_model(model, CPU, speed)
    assert model.base_model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert list(model.state_dict()) == list(reference_model.state_dict())
    with torch.no_grad(), autocast(CPU, speed):
        fast = model(to_device(clips, CPU, speed))
    assert fast.dtype == torch.bfloat16
    top2 = reference.topk(2, dim=1).values
    assert ((top2[:, 0] - top2[:, 1]) > 0.05 * reference.abs().max()).all(), "margins too small"
    assert torch.equal(fast.float().argmax(dim=1), reference.argmax(dim=1))
    spread = (reference.max() - reference.min()).item()
    assert (fast.float() - reference).abs().max().item() < 0.05 * spread


def test_one_training_step_of_the_default_path_changes_the_parameters():
    speed = default_speed_config(CPU)
    torch.manual_seed(0)
    model = build_model("mienet", "resnet18", 3, 2, dropout=0.0).train()
    model = prepare_model(model, CPU, speed)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scaler = make_grad_scaler(CPU, speed)
    clips = to_device(torch.randn(2, 2, 4, 3, 32, 32), CPU, speed)
    loss = train_step(model, optimizer, scaler, clips, torch.tensor([0, 2]), CPU, speed, max_grad_norm=20.0)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert "new_fc.weight" in changed and "PA.shallow_conv.weight" in changed
    assert "base_model.layer4.1.tlam.p1_conv1.weight" in changed
    assert "PA.shallow_conv.bias" not in changed  # it cancels: zero gradient, no decay here


def test_grad_scaler_is_disabled_on_cpu_and_amp_choices_are_checked():
    for speed in (default_speed_config(CPU), SpeedConfig(amp="bf16"), EAGER_FP32):
        assert not make_grad_scaler(CPU, speed).is_enabled()
    assert default_speed_config("cpu").lighter_pa
    with pytest.raises(MienetError, match="unknown mixed-precision mode"):
        SpeedConfig(amp="fp8")
    with pytest.raises(MienetError, match="float16 mixed precision is for CUDA"):
        autocast(CPU, SpeedConfig(amp="fp16"))
    assert not EAGER_FP32.lighter_pa and EAGER_FP32.amp is None and not EAGER_FP32.channels_last


def test_bench_train_prints_both_figures_as_json(capsys):
    argv = [
        "bench", "train", "--variant", "mienet", "--arch", "resnet18", "--segments", "2",
        "--size", "32", "--batch", "2", "--steps", "2", "--warmup", "1", "--device", "cpu", "--json",
    ]
    assert cli_main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("clips_per_s", "eager_fp32_clips_per_s", "speedup", "threads"):
        assert result[key] > 0, key
    assert result["device"] == "cpu" and result["torch"] == torch.__version__
    assert result["speed"] == default_speed_config(CPU).as_dict()
    assert [len(r["step_times_s"]) for r in result["runs"]] == [2, 2]
    assert cli_main(argv[:-1]) == 0
    assert "speedup" in capsys.readouterr().out


def test_bench_train_compare_without_compile_measures_every_other_lever(capsys):
    argv = [
        "bench", "train", "--variant", "mienet", "--arch", "resnet10", "--segments", "2",
        "--size", "32", "--batch", "2", "--steps", "1", "--warmup", "1", "--device", "cpu",
        "--compare", "--no-compile", "--json",
    ]
    assert cli_main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    names = [r["name"] for r in result["runs"]]
    assert "eager fp32 (released)" in names and "+channels-last" in names
    assert not any("compile" in name or name == "all" for name in names)
    assert all(not r["speed"]["compile"] for r in result["runs"])


def _write_frame_list(tmp_path, clips: int = 2, frames: int = 8) -> tuple:
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    lines = []
    for c in range(clips):
        folder = tmp_path / "frames" / f"clip_{c}"
        folder.mkdir(parents=True)
        for i in range(frames):
            image = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
            assert cv2.imwrite(str(folder / f"img_{i + 1:05d}.jpg"), image)
        lines.append(f"frames/clip_{c} {frames} {c % 2}\n")
    list_file = tmp_path / "train.txt"
    list_file.write_text("".join(lines))
    return list_file, tmp_path


def test_bench_loader_reports_clips_per_second_and_the_ratio_to_the_step(tmp_path, capsys):
    list_file, root = _write_frame_list(tmp_path)
    argv = [
        "bench", "loader", "--list", str(list_file), "--root", str(root), "--segments", "2",
        "--size", "32", "--batch", "2", "--workers", "0", "--batches", "2", "--compare-train",
        "--arch", "resnet18", "--steps", "1", "--warmup", "0", "--device", "cpu", "--json",
    ]
    assert cli_main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["clips_per_s"] > 0 and result["train_clips_per_s"] > 0
    assert result["loader_over_train"] == pytest.approx(
        result["clips_per_s"] / result["train_clips_per_s"]
    )


def test_bench_loader_before_and_after_in_one_run_and_the_workers_a_gpu_needs(tmp_path, capsys):
    """--worker-output both: float32 clips normalised in the workers (the path before) and uint8
    clips (the path now), measured in one run; --train-rate: the workers one GPU needs."""
    list_file, root = _write_frame_list(tmp_path)
    argv = ["bench", "loader", "--list", str(list_file), "--root", str(root), "--segments", "2", "--size", "32",
            "--batch", "2", "--workers", "2", "--batches", "3", "--worker-output", "both", "--train-rate", "1000"]
    assert cli_main(argv + ["--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["float_path"]["worker_output"] == "float" and result["worker_output"] == "uint8"
    assert result["clips_per_s_per_worker"] == pytest.approx(result["clips_per_s"] / 2, abs=0.01)
    assert result["uint8_over_float"] == pytest.approx(
        result["clips_per_s"] / result["float_path"]["clips_per_s"], abs=0.01)
    assert result["workers_per_gpu"] == math.ceil(1000 / result["clips_per_s_per_worker"])
    assert cli_main(argv) == 0
    out = capsys.readouterr().out
    assert "loader (float from the workers)" in out and "uint8 / float workers:" in out
    assert "workers one GPU needs at 1000.0 training clips/s:" in out


def test_workers_needed_rounds_up():
    from mienet.sizing import workers_needed

    assert workers_needed(100, 25) == 4 and workers_needed(101, 25) == 5 and workers_needed(1, 25) == 1
    with pytest.raises(MienetError, match="delivered nothing"):
        workers_needed(100, 0)


def test_bf16_peaks_by_device_name_and_the_cuda_only_levers_on_cpu():
    from mienet.bench.training import bf16_peak_tflops, unavailable_reason
    from mienet.engine.performance import precision_flags

    assert bf16_peak_tflops("NVIDIA H200") == 989.0
    assert bf16_peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert bf16_peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert bf16_peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert bf16_peak_tflops("NVIDIA L4") == 121.0
    assert bf16_peak_tflops("NVIDIA L40S") is None and bf16_peak_tflops("AMD EPYC 9B14") is None
    assert unavailable_reason(SpeedConfig(tf32=True), CPU).startswith("CUDA only")
    assert unavailable_reason(SpeedConfig(cuda_graphs=True), CPU).startswith("CUDA only")
    assert unavailable_reason(default_speed_config(CPU), CPU) is None
    with pytest.raises(MienetError, match="CUDA"):
        prepare_model(torch.nn.Linear(2, 2), CPU, SpeedConfig(tf32=True))
    flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    with precision_flags(CPU, SpeedConfig(tf32=True)):  # nothing on CPU
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == flags
    assert SpeedConfig(amp="bf16", channels_last=True, cuda_graphs=True).describe() == \
        "bf16+channels-last+cuda-graphs+lighter-PA"
    assert default_speed_config(CPU).describe() in ("fp32+channels-last+lighter-PA",
                                                     "bf16+channels-last+lighter-PA")
