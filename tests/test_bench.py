"""The benchmark's report shape (speed itself is measured, never asserted)."""

from ticketlab import bench


def test_bench_report_structure(shared_data):
    report = bench.run(data_dir=str(shared_data), sizes=(5, 25, 1), ks=(1, 3))
    engines = {(r["model"], r["engine"], r["K"]) for r in report["results"]}
    assert engines == {("lenet", "stock", 1), ("lenet", "single", 1), ("lenet", "batched", 1), ("lenet", "batched", 3)}
    assert all(r["model_steps_per_s"] > 0 for r in report["results"])
    assert "Lenet" in bench.format_report(report)
