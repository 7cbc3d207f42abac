"""benchmarks.compare.tables: the Markdown tables of one seed's runs, of the seeds, of every run, of a sweep."""
from benchmarks.compare import tables


def test_markdown_table_prints_percent_n_a_cost_time_and_iterations():
    row = {"method": "x", "label": "x", "ok": True, "AP": 0.1, "AP50": 0.2, "AP75": 0.3, "APs": 0.01, "APm": 0.02,
           "APl": -1.0, "sec_per_iter": 1.5, "train_seconds": 12.0, "iterations": 4, "stalled": []}
    assert "| x | 10.0 | 20.0 | 30.0 | 1.0 | 2.0 | n/a | 1.50 | 12 | 4 |" in tables.markdown_table([row])


def test_tables_mark_a_run_whose_regression_stalled():
    row = {"method": "fcos", "label": "FCOS", "ok": True, "AP": 0.0, "AP50": 0.0, "AP75": 0.0,
           "sec_per_iter": 0.5, "stalled": ["loss_box"]}
    mark = "| FCOS (regression stalled: loss_box) |"
    assert mark in tables.markdown_table([row])
    assert mark in tables.seeds_table({0: [row], 1: [dict(row, stalled=[])]})
    assert "| FCOS |" in tables.seeds_table({0: [dict(row, stalled=[])]})  # rows of older records: no key
    assert mark in tables.runs_table({0: [row]})


def test_tables_mark_a_resumed_run():
    row = {"method": "fcos", "label": "FCOS", "ok": True, "AP": 0.3, "AP50": 0.5, "AP75": 0.3,
           "sec_per_iter": 0.5, "stalled": [], "resumed": [12]}
    assert "| FCOS (resumed after epoch 12) |" in tables.markdown_table([row])
    assert "| FCOS (resumed after epoch 12) |" in tables.seeds_table({0: [row]})


def test_tables_mark_a_stopped_run():
    row = {"method": "fcos", "label": "FCOS", "ok": False, "stopped": "regression stalled (loss_box) at iteration 60",
           "stalled": ["loss_box"], "AP": None, "AP50": None, "AP75": None, "iterations": 60}
    assert "| FCOS (stopped) (regression stalled: loss_box) |" in tables.markdown_table([row])


def test_seeds_table_shows_every_seed_mean_and_spread():
    row = lambda seed, ap: {"method": "m", "label": "M", "ok": True, "AP": ap, "AP50": 2 * ap, "AP75": ap / 2,
                            "sec_per_iter": 0.5}
    table = tables.seeds_table({0: [row(0, 0.10)], 1: [row(1, 0.14)]})
    assert "| M | 10.0 | 14.0 | 12.0 | 4.0 | 24.0 | 8.0 | 6.0 | 0.50 |" in table


def test_sweep_table_puts_each_budget_in_a_column_with_mean_and_seeds():
    row = lambda method, ap: {"method": method, "label": method.upper(), "ok": True, "AP": ap}
    b1 = {0: [row("fcos", 0.1)], 1: [row("fcos", 0.2)]}
    b3 = {0: [row("dw", 0.4), row("fcos", 0.3)]}
    table = tables.sweep_table([("1x", b1), ("3x", b3)])
    assert "| method | 1x: AP mean (per seed) | 3x: AP mean (per seed) |" in table
    assert "| FCOS | 15.0 (s0 10.0 / s1 20.0) | 30.0 (s0 30.0) |" in table
    assert "| DW | - | 40.0 (s0 40.0) |" in table and table.index("| FCOS") < table.index("| DW")


def test_method_labels_over_every_seed():
    results = {0: [{"method": "dw", "label": "DW"}], 1: [{"method": "fcos", "label": "FCOS"}]}
    assert tables.method_labels(results) == {"dw": "DW", "fcos": "FCOS"}
