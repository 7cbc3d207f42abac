"""tools/compare.py's command line: training, --tabulate, --plot, --sweep (its library: tests/benchmarks/compare/)."""
import json

from benchmarks import compare
from compare_cases import saved_run
from tool_runs import run_tool


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
    folder = saved_run(tmp_path / "a", compare.default_budget(), {"0": [row]})
    proc = run_tool("compare.py", "--tabulate", folder, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| DW | 30.0 | 30.0 | - | 50.0 |" in proc.stdout and "| DW | 0 | 30.0 | 50.0 | 20.0 |" in proc.stdout
    missing = run_tool("compare.py", "--tabulate", str(tmp_path / "none"), cwd=tmp_path)
    assert missing.returncode == 2 and "no results.json" in missing.stderr


def test_compare_tool_tabulate_plot_draws_the_runs_curves_and_needs_tabulate(tmp_path):
    budget = compare.default_budget()
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
    budget = compare.default_budget()
    a = saved_run(tmp_path / "a", budget, {"0": [row]})
    b = saved_run(tmp_path / "b", dict(budget, train_images=576), {"1": [dict(row, AP=0.5)]})
    proc = run_tool("compare.py", "--sweep", f"1x={a}", f"3x={b}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| DW | 30.0 (s0 30.0) | 50.0 (s1 50.0) |" in proc.stdout
    bad = run_tool("compare.py", "--sweep", "1x", cwd=tmp_path)
    assert bad.returncode == 2 and "LABEL=DIR" in bad.stderr
