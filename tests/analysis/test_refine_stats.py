"""ppassign/analysis/refine_stats.py and tools/dw_refine_stats.py on a tiny generated dataset."""
import os

import pytest

from ppassign.analysis import refine_stats
from ppassign.engine.common import PipelineError
from test_tools_vis_stats_compare import AUTOASSIGN, DW, REPO, run_tool, tiny

DW_REFINE = os.path.join(REPO, "configs", "compare", "dw.yml")


def test_tool_counts_every_p5_point_outside_a_3x3_map(tmp_path):
    # 96 px input: P5 is 3x3 and the coarse sides start at 4 strides (regression bias 4), so every boundary
    # point of every location lies beyond the map (the initial offsets are far below one cell).
    proc = run_tool("dw_refine_stats.py", "-c", DW_REFINE, "--max_images", "2", "-o", *tiny(tmp_path / "data"),
                    cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| 32 | 3x3 | 100% | 100% | 100% | 100% |" in proc.stdout
    assert proc.stdout.count("\n| ") == 5  # header, separator, 3 levels


def test_shares_are_fractions_per_level_and_side(tmp_path):
    rows = refine_stats.refine_stats(DW_REFINE, tiny(tmp_path / "data"), max_images=2)
    assert [r["stride"] for r in rows] == [8, 16, 32]
    assert all(0 <= v <= 1 for r in rows for v in r["all"])
    assert rows[0]["all"][2] < rows[2]["all"][2]  # the finest map has the fewest points outside


@pytest.mark.parametrize("config", [AUTOASSIGN, DW])
def test_needs_a_dw_head_with_refinement(tmp_path, config):
    with pytest.raises(PipelineError, match="with_refine: true"):
        refine_stats.refine_stats(config, tiny(tmp_path / "data"), max_images=1)
