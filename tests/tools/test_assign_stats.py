"""tools/assign_stats.py (ppassign.analysis.runner.assignment_stats) on a tiny generated dataset."""
import json

import pytest

import ppassign  # noqa: F401
from ppassign.engine.common import PipelineError
from ppassign.analysis import runner
from tool_runs import AUTOASSIGN, DW, PPYOLOE, run_tool, tiny


def test_assign_stats_tool_writes_table_and_histogram(tmp_path):
    out = tmp_path / "stats"
    proc = run_tool("assign_stats.py", "-c", PPYOLOE, "--methods", "atss,tal_proxy", "--output_dir", str(out),
                    "-o", *tiny(tmp_path / "data"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = (out / "assign_stats.md").read_text()
    assert "| atss (count) |" in text and "| tal_proxy (count) |" in text
    summary = json.loads((out / "assign_stats.json").read_text())["summary"]
    assert summary["atss"]["all"]["objects"] > 0
    assert (out / "assign_stats.png").stat().st_size > 0


def test_assign_stats_puts_several_configs_in_one_table(tmp_path):
    summary = runner.assignment_stats([PPYOLOE, DW], tiny(tmp_path / "data"), methods=["atss", "dw"],
                                      max_images=2, output_dir=str(tmp_path / "stats"))
    assert sorted(summary) == ["atss", "dw"]
    assert summary["atss"]["all"]["objects"] == summary["dw"]["all"]["objects"] > 0
    with pytest.raises(PipelineError, match="'autoassign' is not supported"):
        runner.assignment_stats([PPYOLOE, DW], tiny(tmp_path / "data"), methods=["atss", "autoassign"],
                                max_images=1, output_dir=str(tmp_path / "stats"))


def test_assign_stats_tool_rejects_unknown_method(tmp_path):
    proc = run_tool("assign_stats.py", "-c", AUTOASSIGN, "--methods", "dw", "--output_dir", str(tmp_path),
                    "-o", *tiny(tmp_path / "data"), cwd=tmp_path)
    assert proc.returncode == 2
    assert "error: method 'dw' needs another head" in proc.stderr and "supports autoassign" in proc.stderr
