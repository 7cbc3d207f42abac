"""tools/compare.py's command line: training, --tabulate (folders and record files), --plot, --sweep, --record,
--list and --help (its library: tests/benchmarks/compare/)."""
import json

import pytest

from benchmarks.compare import catalogue, launch, results
from compare_cases import record_file, record_line, saved_run
from tool_runs import run_tool


@pytest.mark.slow
def test_compare_tool_trains_two_methods_and_writes_table_and_curves(tmp_path):
    out = tmp_path / "cmp"
    proc = run_tool("compare.py", "--output_dir", str(out), "--methods", "fcos,dw_norefine", "--epochs", "1",
                    "--train_images", "4", "--val_images", "2", "--image_size", "64", "--batch_size", "4",
                    "--eval_interval", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    table = (out / "results.md").read_text()
    assert "| FCOS (ppdet FCOSHead, baseline) |" in table and "| DW without refinement |" in table
    assert "(failed)" not in table
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [r["method"] for r in rows] == ["fcos", "dw_norefine"]
    assert all(r["AP"] is not None and r["sec_per_iter"] > 0 and r["iterations"] == 1 for r in rows)
    assert (out / "curves.png").stat().st_size > 0


def test_compare_tool_tabulate_prints_both_tables(tmp_path):
    row = {"method": "dw", "label": "DW", "ok": True, "AP": 0.3, "AP50": 0.5, "AP75": 0.2, "sec_per_iter": 1.0}
    folder = saved_run(tmp_path / "a", launch.default_budget(), {"0": [row]})
    proc = run_tool("compare.py", "--tabulate", folder, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| DW | 30.0 | 30.0 | - | 50.0 |" in proc.stdout and "| DW | 0 | 30.0 | 50.0 | 20.0 |" in proc.stdout
    missing = run_tool("compare.py", "--tabulate", str(tmp_path / "none"), cwd=tmp_path)
    assert missing.returncode == 2 and "no results.json" in missing.stderr


def test_compare_tool_tabulate_plot_draws_the_runs_curves_and_needs_tabulate(tmp_path):
    budget = launch.default_budget()
    row = {"method": "dw", "label": "DW", "ok": True, "AP": 0.3, "AP50": 0.5, "AP75": 0.2, "sec_per_iter": 1.0}
    folder = tmp_path / "a"
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps(
        {"budget": budget, "seed": 0, "rows": [row],
         "curves": {"dw": {"loss": [], "evals": [[3, [0.1] + [0.0] * 11], [7, [0.3] + [0.0] * 11]]}}}))
    png = tmp_path / "ap.png"
    proc = run_tool("compare.py", "--tabulate", str(folder), "--plot", str(png), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "| DW | 0 | 30.0 |" in proc.stdout
    alone = run_tool("compare.py", "--plot", str(tmp_path / "b.png"), cwd=tmp_path)
    assert alone.returncode == 2 and "--plot" in alone.stderr and "--tabulate" in alone.stderr
    assert not (tmp_path / "b.png").exists()


def test_compare_tool_sweep_reads_dirs_per_budget_and_rejects_a_bad_item(tmp_path):
    row = {"method": "dw", "label": "DW", "ok": True, "AP": 0.3, "AP50": 0.5, "AP75": 0.2, "sec_per_iter": 1.0}
    budget = launch.default_budget()
    a = saved_run(tmp_path / "a", budget, {"0": [row]})
    b = saved_run(tmp_path / "b", dict(budget, train_images=576), {"1": [dict(row, AP=0.5)]})
    proc = run_tool("compare.py", "--sweep", f"1x={a}", f"3x={b}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| DW | 30.0 (s0 30.0) | 50.0 (s1 50.0) |" in proc.stdout
    bad = run_tool("compare.py", "--sweep", "1x", cwd=tmp_path)
    assert bad.returncode == 2 and "LABEL=DIR" in bad.stderr


def test_compare_tool_help_lists_each_method_on_one_line_and_the_variants_apart(tmp_path):
    proc = run_tool("compare.py", "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    for name in catalogue.METHODS:
        listed = [line for line in lines if line.split()[:1] == [name]]
        assert len(listed) == (0 if name in catalogue.VARIANTS else 1), name
    assert "--list shows them" in proc.stdout and "Got different data type" not in proc.stderr
    listing = run_tool("compare.py", "--list", cwd=tmp_path)
    assert listing.returncode == 0 and all(
        [line for line in listing.stdout.splitlines() if line.split()[:1] == [name]] for name in catalogue.METHODS)


def test_compare_tool_tabulates_a_record_file_with_its_curves(tmp_path):
    path = record_file(tmp_path / "e.jsonl", record_line("dw", 0, 0.3), record_line("dw", 1, 0.5))
    png = tmp_path / "ap.png"
    proc = run_tool("compare.py", "--tabulate", path, "--plot", str(png), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| DW | 30.0 | 50.0 | 40.0 | 20.0 |" in proc.stdout
    assert "| DW | 1 | 50.0 | 50.0 | 50.0 | 50.0 | 50.0 | n/a | 4: 25.0, 8: 50.0 |" in proc.stdout
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_compare_tool_records_tabulated_runs_in_an_experiment_file(tmp_path):
    row = {"method": "dw", "label": "DW", "ok": True, "AP": 0.3, "AP50": 0.5, "AP75": 0.2, "sec_per_iter": 1.0}
    folder = saved_run(tmp_path / "a", launch.default_budget(), {"0": [row], "1": [dict(row, AP=0.4)]})
    record = tmp_path / "results" / "my_budget.jsonl"
    proc = run_tool("compare.py", "--tabulate", folder, "--record", str(record), "--commit", "abc1234", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "2 of 2 runs appended" in proc.stderr
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert [(line["experiment"], line["seed"], line["AP"], line["commit"]) for line in lines] == \
        [("my_budget", 0, 0.3, "abc1234"), ("my_budget", 1, 0.4, "abc1234")]
    again = run_tool("compare.py", "--tabulate", folder, "--record", str(record), "--commit", "abc1234", cwd=tmp_path)
    assert "0 of 2 runs appended" in again.stderr and len(record.read_text().splitlines()) == 2
    assert results.collect_results([str(record)])[0][1][0]["AP"] == 0.4


@pytest.mark.parametrize("args, message", [
    (["--record", "x.json"], "<experiment>.jsonl"),
    (["--commit", "abc1234"], "--commit"),
    (["--sweep", "1x=a", "--record", "x.jsonl"], "not of --sweep"),
])
def test_compare_tool_refuses_record_options_it_cannot_use(tmp_path, args, message):
    proc = run_tool("compare.py", *args, cwd=tmp_path)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    assert not list(tmp_path.iterdir())  # nothing trained or written
