"""The GPU-throughput plumbing, tested on CPU with real PyTorch: the static-shape handling
of CUDA graphs (padding with a loss mask), the cuda_graphs switch's rule, the CPU training
path left untouched by it, `mienet bench train --compare --fill-batch`, `mienet bench e2e`
and `mienet bench summary` with the report's efficiency table reading its JSON."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import make_synthetic_dataset
from mienet.bench.training import print_train
from mienet.cli import main as cli_main
from mienet.engine.performance import (
    AUTO_GRAPH_MAX_BATCH,
    GraphedForward,
    SpeedConfig,
    capture_cuda_graphs,
    choose_cuda_graphs,
    default_speed_config,
    has_batch_coupling,
    masked_cross_entropy,
    pad_batch,
    setup_cuda_graphs,
)
from mienet.errors import MienetError
from mienet.report.collect import collect
from mienet.report.efficiency import efficiency_table
from mienet.report.spec import Inputs

CPU = torch.device("cpu")


def _tiny(norm: str) -> nn.Module:
    """A small convolutional classifier of (N, 3, 12, 12) images; ``norm``: ``group`` (per
    sample) or ``batch`` (BatchNorm: the samples of a batch interact in training mode)."""
    torch.manual_seed(0)
    layer = nn.GroupNorm(2, 8) if norm == "group" else nn.BatchNorm2d(8)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), layer, nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, 4))


def _loss_and_grads(model: nn.Module, clips, labels, static: int | None):
    model.zero_grad(set_to_none=True)
    if static is None:
        loss = F.cross_entropy(model(clips), labels)
    else:
        padded, padded_labels, mask = pad_batch(clips, labels, static)
        assert padded.shape[0] == static and mask.sum().item() == clips.shape[0]
        loss = masked_cross_entropy(model(padded), padded_labels, mask)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_padding_with_a_loss_mask_gives_the_unpadded_loss_and_gradients():
    model = _tiny("group").train()
    assert not has_batch_coupling(model)
    torch.manual_seed(1)
    clips, labels = torch.randn(5, 3, 12, 12), torch.tensor([0, 3, 1, 2, 3])
    loss, grads = _loss_and_grads(model, clips, labels, None)
    padded_loss, padded_grads = _loss_and_grads(model, clips, labels, 8)
    torch.testing.assert_close(padded_loss, loss, rtol=1e-6, atol=1e-7)
    for name, grad in grads.items():
        torch.testing.assert_close(padded_grads[name], grad, rtol=1e-5, atol=1e-7, msg=name)
    # A full batch is left as it is, with an all-ones mask.
    same, same_labels, mask = pad_batch(clips, labels, 5)
    assert same is clips and same_labels is labels and torch.equal(mask, torch.ones(5))
    with pytest.raises(MienetError, match="cannot pad"):
        pad_batch(clips, labels, 4)


def test_padding_would_change_a_batchnorm_model_so_training_keeps_drop_last():
    model = _tiny("batch").train()
    assert has_batch_coupling(model)
    torch.manual_seed(1)
    clips, labels = torch.randn(5, 3, 12, 12), torch.tensor([0, 3, 1, 2, 3])
    loss, grads = _loss_and_grads(copy.deepcopy(model), clips, labels, None)
    padded_loss, padded_grads = _loss_and_grads(copy.deepcopy(model), clips, labels, 8)
    assert not torch.allclose(padded_loss, loss, rtol=1e-4)  # the zeros entered the batch statistics
    assert not torch.allclose(padded_grads["0.weight"], grads["0.weight"], rtol=1e-3)
    # In evaluation BatchNorm uses its running statistics: samples are independent again.
    model.eval()
    assert not has_batch_coupling(model)
    padded, _, _ = pad_batch(clips, labels, 8)
    with torch.no_grad():
        torch.testing.assert_close(model(padded)[:5], model(clips), rtol=1e-5, atol=1e-6)


def test_graphed_forward_replays_only_training_batches_of_the_static_shape():
    model = _tiny("group").train()
    eager = model.forward
    replayed = []

    def graphed(x):  # stands in for the captured graph: the same computation, counted
        replayed.append(tuple(x.shape))
        return eager(x)

    forward = GraphedForward(model, graphed, eager, torch.Size((4, 3, 12, 12)), torch.float32, pad_partial=True)
    model.forward = forward
    torch.manual_seed(2)
    full, partial = torch.randn(4, 3, 12, 12), torch.randn(3, 3, 12, 12)
    torch.testing.assert_close(model(full), eager(full))
    out = model(partial)  # padded to the static batch, the padding's rows cut off
    assert out.shape == (3, 4) and replayed == [(4, 3, 12, 12), (4, 3, 12, 12)]
    torch.testing.assert_close(out, eager(partial), rtol=1e-5, atol=1e-6)
    model.eval()
    model(full)  # evaluation: eager
    model.train()
    model(full[:, :, :8])  # another image size: eager
    assert forward.replays == 2 and forward.eager_calls == 2 and len(replayed) == 2
    forward.pad_partial = False
    model(partial)  # without padding a partial batch runs eagerly (MIE-Net: BatchNorm)
    assert forward.eager_calls == 3


def test_the_cuda_graphs_switch_is_off_on_cpu_and_follows_its_rule_on_cuda():
    speed = default_speed_config(CPU)
    assert choose_cuda_graphs("auto", CPU, speed, 8)[0] is False
    assert choose_cuda_graphs("off", "cuda", SpeedConfig(), 8)[0] is False
    with pytest.raises(MienetError, match="no CUDA device"):
        choose_cuda_graphs("on", CPU, speed, 8)
    gpu = SpeedConfig(amp="bf16", channels_last=True)
    assert choose_cuda_graphs("auto", "cuda", gpu, 8)[0] is None  # measured at the start
    assert choose_cuda_graphs("auto", "cuda", gpu, AUTO_GRAPH_MAX_BATCH)[0] is None
    assert choose_cuda_graphs("auto", "cuda", gpu, AUTO_GRAPH_MAX_BATCH + 1)[0] is False
    assert choose_cuda_graphs("auto", "cuda", gpu, 8, world_size=2)[0] is False
    assert choose_cuda_graphs("auto", "cuda", SpeedConfig(compile=True), 8)[0] is False
    assert choose_cuda_graphs("auto", "cuda", gpu, 8, accumulating=True)[0] is False
    assert choose_cuda_graphs("on", "cuda", gpu, 64)[0] is True
    with pytest.raises(MienetError, match="DistributedDataParallel"):
        choose_cuda_graphs("on", "cuda", gpu, 8, world_size=2)
    with pytest.raises(MienetError, match="exclusive"):
        SpeedConfig(compile=True, cuda_graphs=True)
    with pytest.raises(MienetError, match="CUDA"):
        capture_cuda_graphs(_tiny("group"), CPU, SpeedConfig(), (2, 3, 12, 12))
    # On CPU the switch touches nothing: the model keeps its own forward.
    model = _tiny("batch")
    state = copy.deepcopy(model.state_dict())
    decision = setup_cuda_graphs(model, CPU, speed, "auto", (2, 3, 12, 12), 4)
    assert decision["cuda_graphs"] is False and "no CUDA device" in decision["reason"]
    assert "forward" not in model.__dict__
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_synthetic_dataset(tmp_path_factory.mktemp("gpu") / "ds", clips_per_class=4, frames=16, size=32)


TINY = ["--variant", "mienet", "--arch", "resnet10", "--segments", "2", "--size", "32", "--epochs", "1",
        "--batch-size", "2", "--lr", "0.002", "--lr-steps", "10", "--workers", "0", "--no-progress",
        "--dropout", "0.0", "--seed", "3", "--device", "cpu"]


def test_cpu_training_is_the_same_with_the_switch_on_auto_or_off(dataset, tmp_path, capsys):
    runs = {}
    for switch in ("auto", "off"):
        out = tmp_path / switch
        assert cli_main(["train", "--annotations", str(dataset / "annotations"), "--out", str(out),
                         "--dataset", "tiny", *TINY, "--cuda-graphs", switch]) == 0
        with (out / "log.csv").open() as fh:
            rows = [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(fh)]
        weights = torch.load(out / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)["model"]
        runs[switch] = rows, weights
        assert json.loads((out / "config.json").read_text())["cuda_graphs"] == switch
    assert runs["auto"][0] == runs["off"][0]
    assert all(torch.equal(v, runs["off"][1][k]) for k, v in runs["auto"][1].items())
    assert cli_main(["train", "--annotations", str(dataset / "annotations"), "--out", str(tmp_path / "on"),
                     "--dataset", "tiny", *TINY, "--cuda-graphs", "on"]) != 0
    assert "--cuda-graphs on cannot be honoured: no CUDA device" in capsys.readouterr().err


def test_bench_train_compare_at_two_batches_reports_ratios_tflops_and_skips_cuda_rows(capsys, tmp_path):
    argv = ["bench", "train", "--variant", "mienet", "--arch", "resnet10", "--segments", "2", "--size", "32",
            "--batch", "2", "--fill-batch", "3", "--steps", "2", "--warmup", "1", "--device", "cpu",
            "--compare", "--no-compile", "--json"]
    assert cli_main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["train_flops_per_clip"] > 0 and result["peak_bf16_tflops"] is None  # a CPU: no peak
    assert result["tflops"] == pytest.approx(result["clips_per_s"] * result["train_flops_per_clip"] / 1e12)
    for batch, runs in ((2, result["runs"]), (3, result["fill"]["runs"])):
        by_name = {r["name"]: r for r in runs}
        assert set(by_name) >= {"eager fp32 (released)", "+TF32", "+channels-last", "+bf16 autocast",
                                "+CUDA graphs", "bf16+channels-last+CUDA graphs"}
        released = by_name["eager fp32 (released)"]
        assert released["vs_released"] == 1.0 and released["batch"] == batch
        for name in ("+TF32", "+CUDA graphs", "bf16+channels-last+CUDA graphs"):
            assert by_name[name]["skipped"].startswith("CUDA only") and by_name[name]["clips_per_s"] is None
        measured = [r for r in runs if not r.get("skipped")]
        assert len(measured) >= 4 and all(len(r["step_times_s"]) == 2 for r in measured)
        for r in measured:
            assert r["batch"] == batch and r["share_of_peak"] is None
            assert r["vs_released"] == pytest.approx(r["clips_per_s"] / released["clips_per_s"])
            assert r["tflops"] == pytest.approx(r["clips_per_s"] * result["train_flops_per_clip"] / 1e12)
    (tmp_path / "train.json").write_text(json.dumps(result))
    print_train(result, tables=True)  # what the command prints without --json, from the same run
    text = capsys.readouterr().out
    assert "batch 3:" in text and "skipped: CUDA only" in text and "TFLOP/s" in text


def test_dropping_the_page_cache_writes_3_and_reports_a_refusal(tmp_path, monkeypatch):
    from mienet.bench import e2e

    target = tmp_path / "drop_caches"  # stands in for /proc/sys/vm/drop_caches (root only)
    target.write_text("0\n")
    monkeypatch.setattr(e2e, "DROP_CACHES", str(target))
    assert e2e.drop_page_cache()[0] is True and target.read_text() == "3\n"
    monkeypatch.setattr(e2e, "DROP_CACHES", str(tmp_path / "missing" / "drop_caches"))
    dropped, why = e2e.drop_page_cache()
    assert dropped is False and why.startswith("not dropped")


def test_bench_e2e_on_a_synthetic_dataset_and_the_summary_in_the_efficiency_table(dataset, tmp_path, capsys):
    argv = ["bench", "e2e", "--list", str(dataset / "annotations" / "train.txt"), "--root", str(dataset),
            "--variant", "mienet", "--arch", "resnet10", "--segments", "2", "--size", "32", "--batch", "2",
            "--workers", "0", "1", "--trial-batches", "2", "--warmup", "1", "--device", "cpu", "--no-drop-cache",
            "--json"]
    assert cli_main(argv) == 0
    e2e = json.loads(capsys.readouterr().out)
    assert e2e["clips_per_s"] > 0 and e2e["steps"] >= 1 and e2e["clips"] == 2 * e2e["steps"]
    assert 0 <= e2e["data_wait_share"] <= 1 and 0 < e2e["compute_share"] <= 1
    assert e2e["data_wait_share"] + e2e["compute_share"] <= 1 + 1e-6
    assert e2e["gpu_busy_share"] is None and e2e["pin_memory"] is False
    assert [t["workers"] for t in e2e["worker_trials"]] == [0, 1]
    best = max(e2e["worker_trials"], key=lambda t: t["clips_per_s"])["workers"]
    assert e2e["workers"] == best
    assert e2e["page_cache_dropped"] is False and "not asked" in e2e["page_cache"]
    assert e2e["cuda_graphs"]["cuda_graphs"] is False and e2e["decode"] == "cpu"
    assert cli_main(argv[:-1] + ["--decode", "gpu"]) == 2  # the byte path decodes on a CUDA device only
    assert "decode: gpu needs a CUDA device; this run trains on cpu" in capsys.readouterr().err
    assert cli_main(argv[:-1] + ["--max-steps", "1"]) == 0
    text = capsys.readouterr().out
    assert "over 1 steps" in text and "waiting for data" in text and "-> " in text

    # bench summary: one record of both, as the GPU check writes it
    assert cli_main(["bench", "train", "--variant", "mienet", "--arch", "resnet10", "--segments", "2",
                     "--size", "32", "--batch", "2", "--steps", "1", "--warmup", "0", "--device", "cpu",
                     "--compare", "--no-compile", "--json"]) == 0
    (tmp_path / "train.json").write_text(capsys.readouterr().out)
    (tmp_path / "e2e.json").write_text(json.dumps(e2e))
    results = tmp_path / "results"
    assert cli_main(["bench", "summary", "--train", str(tmp_path / "train.json"), "--e2e", str(tmp_path / "e2e.json"),
                     "--out", str(results / "bench" / "gpu_summary")]) == 0
    assert "| eager fp32 (released) | 2 |" in capsys.readouterr().out
    summary = json.loads((results / "bench" / "gpu_summary.json").read_text())
    assert summary["kind"] == "gpu_summary" and summary["data_wait_share"] == e2e["data_wait_share"]
    assert {c["name"] for c in summary["configurations"]} >= {"eager fp32 (released)", "+CUDA graphs"}
    assert summary["fastest"]["clips_per_s"] == max(c["clips_per_s"] for c in summary["configurations"]
                                                    if c["clips_per_s"] is not None)
    assert "skipped: CUDA only" in (results / "bench" / "gpu_summary.md").read_text()

    rows = efficiency_table(Inputs(collect(results))).frame["csv"]
    (row,) = rows[rows["bench_file"] == "gpu_summary.json"].to_dict("records")
    assert float(row["tflops"]) == pytest.approx(summary["tflops"], abs=1e-3)
    assert float(row["data_wait_share"]) == pytest.approx(e2e["data_wait_share"], abs=1e-4)
