"""The benchmark's report shape and FLOP counts (speed itself is measured, never asserted)."""

import json

import pytest

from ticketlab import bench
from ticketlab.cli import main

LENET_FORWARD = 2 * (784 * 300 + 300 * 100 + 100 * 10)          # 2 x 266,200 MACs per example
CONV2_FORWARD = 2 * (32 * 32 * 64 * 3 * 9 + 32 * 32 * 64 * 64 * 9 + 16 * 16 * 64 * 256 + 256 * 256 + 256 * 10)


@pytest.fixture(scope="module")
def report():
    # tiny runs (a Conv-2 step takes ~0.25 s on one thread); the peak is a constant here: timing 2048^3
    # matmuls would take longer than the rest
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bench, "peak_matmul_gflops", lambda dtype: 100.0)
        return bench.run(sizes={"lenet": (5, 45, 1), "conv2": (1, 3, 1)}, ks={"lenet": (1, 3), "conv2": (2,)},
                         synthetic=True)


def test_bench_report_structure(report):
    engines = {(r["model"], r["engine"], r["K"], r["precision"]) for r in report["results"]}
    assert engines == {("lenet", "stock", 1, "fp32"), ("lenet", "single", 1, "fp32"), ("lenet", "batched", 1, "fp32"),
                       ("lenet", "batched", 3, "fp32"), ("conv2", "stock", 1, "fp32"), ("conv2", "single", 1, "fp32"),
                       ("conv2", "single", 1, "bf16"), ("conv2", "batched", 2, "fp32")}
    for r in report["results"]:
        assert r["model_steps_per_s"] > 0 and r["gflops"] > 0 and r["fraction_of_peak"] > 0 and r["max_rss_mib"] > 0
        assert r["gflops"] == pytest.approx(r["model_steps_per_s"] * r["flops_per_step"] / 1e9)
    assert {r["batched_engine"] for r in report["results"] if r["engine"] == "batched"} == {"mlp", "mlp+sparse", "sequential"}
    late = [(r["batched_engine"], r["K"]) for r in report["results"] if r["imp_level"] == 15]
    assert late == [("mlp", 3), ("mlp+sparse", 3)]  # Lenet at IMP level 15: dense stack, then sparse layers
    assert report["machine"]["peak_matmul_gflops"] > 0
    assert set(report["datasets"]) == {"lenet", "conv2"}
    text = bench.format_report(report)
    assert "lenet" in text and "conv2" in text and "bf16" in text


def test_flops_per_step(report):
    setup = report["setup"]["lenet"]
    assert setup["forward_flops_per_example"] == LENET_FORWARD
    # synthetic data: 5,000 val + 1,000 test examples, evaluated every 100 iterations
    assert setup["eval_examples"] == 6000 and setup["eval_every"] == 100
    lenet = 3 * 2 * 266_200 * 60 + 6000 * LENET_FORWARD // 100
    assert {r["flops_per_step"] for r in report["results"] if r["model"] == "lenet"} == {lenet}
    assert report["setup"]["conv2"]["forward_flops_per_example"] == CONV2_FORWARD
    assert {r["flops_per_step"] for r in report["results"] if r["model"] == "conv2"} == {3 * 60 * CONV2_FORWARD}


def test_peak_matmul_is_positive():
    assert bench.peak_matmul_gflops(n=64, repeats=2) > 0


def test_unknown_model_is_an_error():
    with pytest.raises(bench.TicketlabError, match="lenet"):
        bench.run(models=("resnet",))


def test_cli_bench(report, capsys, monkeypatch):
    calls = []
    monkeypatch.setattr(bench, "run", lambda **kwargs: calls.append(kwargs) or report)
    assert main(["bench", "--json", "--quick", "--models", "conv2"]) == 0
    assert json.loads(capsys.readouterr().out)["results"] == report["results"]
    assert calls == [{"quick": True, "data_dir": None, "models": ("conv2",)}]
    assert main(["bench"]) == 0
    assert "steps/s" in capsys.readouterr().out and calls[-1]["models"] == ("lenet", "conv2")
