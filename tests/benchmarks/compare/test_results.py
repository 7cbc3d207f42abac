"""benchmarks.compare: saved results read for the tables."""
import json

import pytest

from benchmarks import compare
from compare_cases import saved_run


def test_collect_results_merges_runs_of_one_budget_and_rejects_another(tmp_path):
    row = lambda method, ap: {"method": method, "label": method.upper(), "ok": True, "AP": ap, "AP50": ap,
                              "AP75": ap, "sec_per_iter": 1.0}
    budget = compare.default_budget()
    a = saved_run(tmp_path / "a", budget, {"0": [row("fcos", 0.1)], "1": [row("fcos", 0.2)]})
    b = saved_run(tmp_path / "b", budget, {"0": [row("dw", 0.3)], "1": [row("dw", 0.5)]})
    results, _ = compare.collect_results([a, b])
    assert sorted(results) == [0, 1] and [r["method"] for r in results[1]] == ["fcos", "dw"]
    assert "| DW | 30.0 | 50.0 | 40.0 | 20.0 |" in compare.seeds_table(results)
    c = saved_run(tmp_path / "c", dict(budget, epochs=99), {"0": [row("dw", 0.3)]})
    with pytest.raises(compare.CompareError, match="another budget"):
        compare.collect_results([a, c])
    with pytest.raises(compare.CompareError, match="no results.json"):
        compare.collect_results([str(tmp_path)])


def test_runs_table_lists_each_seed_with_its_curve_from_the_seed_folders(tmp_path):
    row = lambda method, ap: {"method": method, "label": method.upper(), "ok": True, "AP": ap, "AP50": ap,
                              "AP75": ap, "APs": ap, "APm": ap, "APl": -1.0, "sec_per_iter": 1.0}
    budget = compare.default_budget()
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
    results, _ = compare.collect_results(dirs)
    curves = compare.collect_curves(dirs)
    assert curves == {1: {"fcos": [(4, 0.05), (8, 0.2)]}, 0: {"dw": [(8, 0.3)]}}
    table = compare.runs_table(results, curves)
    assert "| FCOS | 0 | 10.0 | 10.0 | 10.0 | 10.0 | 10.0 | n/a | - |" in table  # seed 0 kept no curve
    assert "| FCOS | 1 | 20.0 | 20.0 | 20.0 | 20.0 | 20.0 | n/a | 4: 5.0, 8: 20.0 |" in table
    assert "| DW | 0 | 30.0 |" in table and table.index("| FCOS | 1 |") < table.index("| DW | 0 |")


def test_parse_sweep_splits_labels_and_names_a_bad_item():
    assert compare.parse_sweep(["1x=a,b", "3x=c"]) == [("1x", ["a", "b"]), ("3x", ["c"])]
    for bad in (["1x"], ["=a"], ["1x="], ["1x=a", "1x=b"], []):
        with pytest.raises(ValueError, match="--sweep"):
            compare.parse_sweep(bad)
