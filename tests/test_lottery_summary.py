"""The paper's summaries of a level table (PROTOCOL §4.6, §4.14): speed-ups, gains, winning tickets."""

import json

import pytest

from ticketlab import TicketlabError, api, cli
from ticketlab.analysis.lottery_tables import format_summary, summary


def row(family, level, pm, es, test, final, n=2):
    return {"family": family, "level": level, "pm": pm, "n": n, "early_stop_iteration": es,
            "test_accuracy_at_early_stop": test, "final_test_accuracy": final}


TABLE = [row("ticket", 0, 100.0, 3000, 0.680, 0.670),
         row("ticket", 1, 80.0, 2000, 0.690, 0.675),     # faster and better: winning
         row("ticket", 2, 64.0, 1200, 0.700, 0.690),     # best speed-up 2.5x, best gain +2.0
         row("ticket", 3, 51.0, 2500, 0.675, 0.695),     # faster, less accurate: not winning; best final gain +2.5
         row("ticket", 4, 41.0, 2900, 0.681, 0.660),     # winning, smallest
         row("reinit", 1, 80.0, 3000, 0.680, 0.660, n=6),  # ties dense: winning (no later, no lower)
         row("reinit", 2, 64.0, 3600, 0.670, 0.650, n=6)]


def test_summary_against_dense_and_ticket_by_hand():
    s = summary(TABLE)
    assert s["dense"]["early_stop_iteration"] == 3000
    rows = {(r["family"], r["level"]): r for r in s["rows"]}
    assert rows[("ticket", 2)]["speedup"] == pytest.approx(2.5)
    assert rows[("ticket", 2)]["gain"] == pytest.approx(2.0)
    assert rows[("ticket", 3)]["final_gain"] == pytest.approx(2.5)
    assert [rows[("ticket", k)]["winning"] for k in range(1, 5)] == [True, True, False, True]
    assert rows[("reinit", 1)]["winning"] is True
    assert rows[("reinit", 2)]["ticket_speedup"] == pytest.approx(3.0)      # 3600 / 1200
    assert rows[("reinit", 2)]["ticket_advantage"] == pytest.approx(3.0)    # 70.0 - 67.0
    assert "ticket_speedup" not in rows[("ticket", 2)]
    t = s["families"]["ticket"]
    assert t["best_speedup"] == {"value": pytest.approx(2.5), "level": 2, "pm": 64.0}
    assert t["best_gain"]["level"] == 2 and t["best_final_gain"]["level"] == 3
    assert t["winning_levels"] == [1, 2, 4] and t["smallest_winning"] == {"level": 4, "pm": 41.0}  # no counts given
    r = s["families"]["reinit"]
    assert r["winning_levels"] == [1] and r["best_speedup"]["value"] == pytest.approx(1.0)
    text = format_summary(s)
    assert "ticket: best speed-up 2.50x at level 2 (Pm 64.00%)" in text
    assert "winning at levels 1-2, 4, smallest Pm 41.00% (level 4)" in text
    assert "3.00x" in text and "+3.00" in text


def test_summary_needs_the_dense_network():
    with pytest.raises(TicketlabError, match="dense network"):
        summary([r for r in TABLE if r["level"] != 0])


def test_summary_of_a_real_run_from_the_cli(tmp_path, capsys):
    exp = api.make_experiment("lenet", overrides={
        "data.dataset": "synthetic", "data.val_size": 200, "model.hidden": "32,16", "training.steps": "60it",
        "training.eval_every": "20it", "lottery.levels": 2, "lottery.trials": 2, "lottery.reinits": 1})
    root = api.lottery(exp, tmp_path, progress=False, log=lambda *a: None)
    assert cli.main(["tables", root.name, "--store", str(tmp_path), "--kind", "summary", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert {(r["family"], r["level"]) for r in s["rows"]} == {("ticket", 0), ("ticket", 1), ("ticket", 2),
                                                              ("reinit", 1), ("reinit", 2)}
    dense = s["dense"]
    for r in s["rows"]:
        assert r["n"] == 2
        assert r["speedup"] == pytest.approx(dense["early_stop_iteration"] / r["early_stop_iteration"]) \
            if r["early_stop_iteration"] else r["speedup"] is None
    assert cli.main(["tables", root.name, "--store", str(tmp_path), "--kind", "summary"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("against the dense network (level 0, n=2)") and "\nreinit: " in out


def test_lottery_command_ends_with_the_family_summaries(tmp_path, capsys):
    args = ["lottery", "--model", "lenet", "--store", str(tmp_path)]
    for setting in ("data.dataset=synthetic", "data.val_size=200", "model.hidden=32,16", "training.steps=40it",
                    "training.eval_every=20it", "lottery.levels=1", "lottery.trials=1", "lottery.reinits=1"):
        args += ["--set", setting]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "\nagainst the dense network (level 0, n=1)" in out
    assert "\nticket: best speed-up" in out and "\nreinit: best speed-up" in out


def test_oneshot_summary_against_the_dense_run(tmp_path, capsys):
    exp = api.make_experiment("lenet", overrides={
        "data.dataset": "synthetic", "data.val_size": 200, "model.hidden": "32,16", "training.steps": "40it",
        "training.eval_every": "20it", "lottery.levels": 0, "lottery.trials": 1, "lottery.reinits": 1,
        "lottery.oneshot": "0.5,0.8"})
    root = api.lottery(exp, tmp_path, progress=False, log=lambda *a: None)
    assert cli.main(["tables", root.name, "--store", str(tmp_path), "--kind", "summary", "--oneshot", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert {(r["family"], r["level"]) for r in s["rows"]} == {("ticket", 0.5), ("ticket", 0.8), ("reinit", 0.5), ("reinit", 0.8)}
    assert s["dense"]["level"] == 0 and s["dense"]["pm"] == 100.0
    for r in s["rows"]:
        assert r["gain"] == pytest.approx(100 * (r["test_accuracy_at_early_stop"] - s["dense"]["test_accuracy_at_early_stop"]))
    assert cli.main(["tables", root.name, "--store", str(tmp_path), "--kind", "summary", "--oneshot"]) == 0
    out = capsys.readouterr().out
    assert "\nticket                0.5 " in out and "best speed-up" in out and "at fraction 0.5" in out
    plain = api.lottery(api.make_experiment("lenet", overrides={
        "data.dataset": "synthetic", "data.val_size": 200, "model.hidden": "32,16", "training.steps": "40it",
        "training.eval_every": "20it", "lottery.levels": 1, "lottery.trials": 1, "lottery.reinits": 0}),
        tmp_path, progress=False, log=lambda *a: None)
    assert cli.main(["tables", plain.name, "--store", str(tmp_path), "--kind", "summary", "--oneshot"]) == 2
    assert "no one-shot runs" in capsys.readouterr().err
    assert cli.main(["tables", root.name, "--store", str(tmp_path), "--oneshot"]) == 2
    assert "--kind oneshot" in capsys.readouterr().err


def test_summary_says_which_run_is_dense_when_tickets_are_separate_jobs():
    table = TABLE + [row("find", 1, 80.0, 2500, 0.685, 0.672)]
    text = format_summary(summary(table))
    assert text.splitlines()[1].startswith("dense = the level-0 IMP run")
    assert "dense = " not in format_summary(summary(TABLE))
    assert format_summary(summary(table), rows=False).splitlines()[1].startswith("dense = ")


def test_api_summary_and_report(tmp_path):
    exp = api.make_experiment("lenet", overrides={
        "data.dataset": "synthetic", "data.val_size": 200, "model.hidden": "32,16", "training.steps": "40it",
        "training.eval_every": "20it", "lottery.levels": 1, "lottery.trials": 1, "lottery.reinits": 0})
    root = api.lottery(exp, tmp_path, progress=False, log=lambda *a: None)
    by_spec, by_folder = api.lottery_summary(exp, tmp_path), api.lottery_summary(root)
    assert by_spec == by_folder and by_spec["families"]["ticket"]["best_speedup"]["level"] == 1
    with pytest.raises(TicketlabError, match="needs the store"):
        api.lottery_summary(exp)
    with pytest.raises(TicketlabError, match="no one-shot runs"):
        api.lottery_summary(root, oneshot=True)
    paths = api.lottery_report(root, tmp_path / "out")
    assert {p.name for p in paths} >= {"summary.txt", "table.txt", "jobs.csv", "levels.png"}
