"""benchmarks.compare.results: saved results (results.json folders, experiment record files) read for the
tables, and runs' lines appended to a record file."""
import json

import pytest

from benchmarks.compare import launch, results, tables
from benchmarks.compare.errors import CompareError
from compare_cases import record_file, record_line, saved_run


def test_collect_results_merges_runs_of_one_budget_and_rejects_another(tmp_path):
    row = lambda method, ap: {"method": method, "label": method.upper(), "ok": True, "AP": ap, "AP50": ap,
                              "AP75": ap, "sec_per_iter": 1.0}
    budget = launch.default_budget()
    a = saved_run(tmp_path / "a", budget, {"0": [row("fcos", 0.1)], "1": [row("fcos", 0.2)]})
    b = saved_run(tmp_path / "b", budget, {"0": [row("dw", 0.3)], "1": [row("dw", 0.5)]})
    found, _ = results.collect_results([a, b])
    assert sorted(found) == [0, 1] and [r["method"] for r in found[1]] == ["fcos", "dw"]
    assert "| DW | 30.0 | 50.0 | 40.0 | 20.0 |" in tables.seeds_table(found)
    c = saved_run(tmp_path / "c", dict(budget, epochs=99), {"0": [row("dw", 0.3)]})
    with pytest.raises(CompareError, match="another budget"):
        results.collect_results([a, c])
    with pytest.raises(CompareError, match="no results.json"):
        results.collect_results([str(tmp_path)])


def test_runs_table_lists_each_seed_with_its_curve_from_the_seed_folders(tmp_path):
    row = lambda method, ap: {"method": method, "label": method.upper(), "ok": True, "AP": ap, "AP50": ap,
                              "AP75": ap, "APs": ap, "APm": ap, "APl": -1.0, "sec_per_iter": 1.0}
    budget = launch.default_budget()
    seeds_dir = saved_run(tmp_path / "a", budget, {"0": [row("fcos", 0.1)], "1": [row("fcos", 0.2)]})
    (tmp_path / "a" / "seed1").mkdir()
    (tmp_path / "a" / "seed1" / "results.json").write_text(json.dumps(
        {"budget": budget, "seed": 1, "rows": [row("fcos", 0.2)],
         "curves": {"fcos": {"loss": [], "evals": [[3, [0.05] + [0.0] * 11], [7, [0.2] + [0.0] * 11]]}}}))
    single = tmp_path / "b"
    single.mkdir()
    (single / "results.json").write_text(json.dumps(
        {"budget": budget, "seed": 0, "rows": [row("dw", 0.3)],
         "curves": {"dw": {"loss": [], "evals": [[7, [0.3] + [0.0] * 11]]}}}))
    dirs = [seeds_dir, str(single)]
    found, _ = results.collect_results(dirs)
    curves = results.collect_curves(dirs)
    assert curves == {1: {"fcos": [(4, 0.05), (8, 0.2)]}, 0: {"dw": [(8, 0.3)]}}
    table = tables.runs_table(found, curves)
    assert "| FCOS | 0 | 10.0 | 10.0 | 10.0 | 10.0 | 10.0 | n/a | - |" in table  # seed 0 kept no curve
    assert "| FCOS | 1 | 20.0 | 20.0 | 20.0 | 20.0 | 20.0 | n/a | 4: 5.0, 8: 20.0 |" in table
    assert "| DW | 0 | 30.0 |" in table and table.index("| FCOS | 1 |") < table.index("| DW | 0 |")


def test_record_file_reads_as_rows_and_curves_per_seed(tmp_path):
    path = record_file(tmp_path / "e.jsonl", record_line("fcos", 0, 0.1), record_line("fcos", 1, 0.2),
                       record_line("dw", 0, 0.3), record_line("dw", 0, 0.4))  # a method and seed's later line wins
    found, budget = results.collect_results([path])
    assert budget == launch.default_budget() and sorted(found) == [0, 1]
    assert [(r["method"], r["AP"], r["ok"]) for r in found[0]] == [("fcos", 0.1, True), ("dw", 0.4, True)]
    assert "experiment" not in found[0][0] and "curve" not in found[0][0]
    assert results.collect_curves([path]) == {0: {"fcos": [(4, 0.05), (8, 0.1)], "dw": [(4, 0.2), (8, 0.4)]},
                                              1: {"fcos": [(4, 0.1), (8, 0.2)]}}


def test_record_file_and_results_folder_tabulate_together(tmp_path):
    budget = launch.default_budget()
    folder = saved_run(tmp_path / "a", budget, {"1": [{"method": "dw", "label": "DW", "ok": True, "AP": 0.5}]})
    path = record_file(tmp_path / "e.jsonl", record_line("dw", 0, 0.3))
    found, _ = results.collect_results([path, folder])
    assert "| DW | 30.0 | 50.0 | 40.0 | 20.0 |" in tables.seeds_table(found)


def test_runs_that_differ_only_in_the_evaluation_interval_tabulate_together(tmp_path):
    budget = launch.default_budget()
    path = record_file(tmp_path / "e.jsonl", record_line("fcos", 0, 0.1, budget),
                        record_line("fcos", 1, 0.2, dict(budget, eval_interval=1)))
    assert sorted(results.collect_results([path])[0]) == [0, 1]
    other = record_file(tmp_path / "f.jsonl", record_line("fcos", 0, 0.1, budget),
                         record_line("fcos", 1, 0.2, dict(budget, image_size=96)))
    with pytest.raises(CompareError, match="another budget"):
        results.collect_results([other])


def test_record_file_errors_name_the_file_and_line(tmp_path):
    with pytest.raises(CompareError, match="no record file"):
        results.collect_results([str(tmp_path / "missing.jsonl")])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(record_line("dw", 0, 0.3)) + "\n{oops\n")
    with pytest.raises(CompareError, match="bad.jsonl line 2 is not JSON"):
        results.collect_results([str(bad)])


def test_parse_sweep_splits_labels_and_names_a_bad_item():
    assert results.parse_sweep(["1x=a,b", "3x=c"]) == [("1x", ["a", "b"]), ("3x", ["c"])]
    for bad in (["1x"], ["=a"], ["1x="], ["1x=a", "1x=b"], []):
        with pytest.raises(ValueError, match="--sweep"):
            results.parse_sweep(bad)


def test_experiment_line_has_the_record_schema():
    row = {"method": "dw", "label": "DW", "ok": True, "commit": "abc1234", "AP": 0.3, "AP50": 0.5, "AP75": 0.2,
           "APs": 0.1, "APm": 0.4, "APl": -1.0, "AR1": 0.2, "sec_per_iter": 0.7, "iterations": 96,
           "train_seconds": 70.0, "final_loss": 1.2, "stalled": ["loss_loc"], "resumed": [4]}
    line = results.experiment_line("exp", row, 1, launch.default_budget(), [(4, 0.1), (8, 0.3)])
    assert list(line) == ["experiment", "method", "label", "seed", "budget", "commit", "AP", "AP50", "AP75", "APs",
                          "APm", "APl", "curve", "sec_per_iter", "iterations", "train_seconds", "stalled",
                          "stopped", "resumed"]
    assert line["experiment"] == "exp" and line["seed"] == 1 and line["commit"] == "abc1234"
    assert line["curve"] == [[4, 0.1], [8, 0.3]] and line["stalled"] == ["loss_loc"] and line["resumed"] == [4]
    assert line["stopped"] is None and line["budget"] == launch.default_budget()
    line = results.experiment_line("exp", dict(row, commit=None), 1, {}, [], commit="def5678")
    assert line["commit"] == "def5678"


def test_append_records_adds_new_lines_once_and_refuses_another_experiment(tmp_path):
    path = str(tmp_path / "results" / "e.jsonl")
    assert results.append_records(path, [record_line("dw", 0, 0.3), record_line("dw", 1, 0.4)]) == \
        [record_line("dw", 0, 0.3), record_line("dw", 1, 0.4)]
    assert results.append_records(path, [record_line("dw", 0, 0.3)]) == []  # same method, seed, budget and commit
    assert len(results.append_records(path, [record_line("dw", 0, 0.3, commit="fff0000")])) == 1
    assert [line["seed"] for line in results.read_record_file(path)] == [0, 1, 0]
    with pytest.raises(CompareError, match="experiment 'other' does not belong"):
        results.append_records(path, [record_line("dw", 2, 0.3, experiment="other")])
    with pytest.raises(ValueError, match="<experiment>.jsonl"):
        results.append_records(str(tmp_path / "e.json"), [])


def test_record_runs_appends_the_finished_and_stopped_runs_of_saved_results(tmp_path):
    budget = launch.default_budget()
    ok = {"method": "dw", "label": "DW", "ok": True, "AP": 0.3, "commit": "abc1234"}
    stopped = {"method": "fcos", "label": "FCOS", "ok": False, "AP": None, "stopped": "regression stalled"}
    failed = {"method": "tal_only", "label": "TAL", "ok": False, "AP": None}
    folder = tmp_path / "a"
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps(
        {"budget": budget, "seed": 2, "rows": [ok, stopped, failed],
         "curves": {"dw": {"loss": [], "evals": [[1, [0.2] + [0.0] * 11], [3, [0.3] + [0.0] * 11]]}}}))
    path = str(tmp_path / "exp.jsonl")
    new, lines = results.record_runs([str(folder)], path, commit="def5678")
    assert [(line["method"], line["seed"], line["commit"]) for line in new] == \
        [("dw", 2, "abc1234"), ("fcos", 2, "def5678")]
    assert new == lines and new[0]["curve"] == [[2, 0.2], [4, 0.3]] and new[1]["curve"] == []
    assert new[1]["stopped"] == "regression stalled" and new[0]["experiment"] == "exp"
    assert results.record_runs([str(folder)], path, commit="def5678")[0] == []


def test_only_methods_keeps_the_named_runs_in_that_order():
    found = {0: [{"method": "fcos"}, {"method": "dw"}, {"method": "retina_atss"}], 1: [{"method": "dw"}]}
    curves = {0: {"fcos": [(8, 0.1)], "dw": [(8, 0.2)], "retina_atss": [(8, 0.3)]}, 1: {"dw": [(8, 0.2)]}}
    kept, kept_curves = results.only_methods(found, curves, ["retina_atss", "fcos"])
    assert kept == {0: [{"method": "retina_atss"}, {"method": "fcos"}]}
    assert kept_curves == {0: {"fcos": [(8, 0.1)], "retina_atss": [(8, 0.3)]}, 1: {}}
