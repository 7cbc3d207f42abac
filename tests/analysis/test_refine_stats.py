"""ppassign/analysis/refine_stats.py and tools/dw_refine_stats.py on a tiny generated dataset."""
import os

import numpy as np
import pytest

from ppassign.analysis import refine_stats
from ppassign.engine.common import PipelineError
from tool_runs import AUTOASSIGN, DW, REPO, run_tool, tiny

DW_REFINE = os.path.join(REPO, "benchmarks", "configs", "dw.yml")


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


# --- refine_iou: coarse vs refined boxes at each object's best-scoring candidates ---------------------------------

def test_object_box_ious_ranks_candidates_by_the_objects_class_score():
    points = np.array([[5.0, 5.0], [15.0, 5.0], [50.0, 50.0]])       # the third is outside the object
    half = [5.0, 5.0, 5.0, 5.0]                                        # a 10x10 box: IoU 0.5 with the object
    coarse = np.array([half, half, half])
    refined = np.array([half, [15.0, 5.0, 5.0, 5.0], half])           # point 1's refined box is the object
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [1.0, 1.0]])
    gt = np.array([[0.0, 0.0, 20.0, 10.0]])
    top1 = refine_stats.object_box_ious(points, coarse, refined, scores, gt, np.array([1]), topk=1)
    # the best class-1 candidate is point 1 (class-0 would pick point 0); point 2 is no candidate
    assert top1 == [{"index": 0, "area": 200.0, "coarse": 0.5, "refined": 1.0, "top1_coarse": 0.5,
                     "top1_refined": 1.0}]
    both = refine_stats.object_box_ious(points, coarse, refined, scores, gt, np.array([1]), topk=9)
    assert both[0]["coarse"] == pytest.approx(0.5) and both[0]["refined"] == pytest.approx(0.75)
    assert both[0]["top1_refined"] == 1.0


def test_object_box_ious_skips_objects_without_a_location_inside():
    points = np.array([[5.0, 5.0]])
    ltrb = np.ones([1, 4])
    gt = np.array([[30.0, 30.0, 40.0, 40.0], [0.0, 0.0, 10.0, 10.0]])
    out = refine_stats.object_box_ious(points, ltrb, ltrb, np.ones([1, 1]), gt, np.array([0, 0]))
    assert [o["index"] for o in out] == [1]


def test_refine_iou_rows_per_size_and_refined_equals_coarse_without_refinement(tmp_path):
    data = tiny(tmp_path / "data")
    rows = refine_stats.refine_iou(DW_REFINE, data, max_images=2, topk=3)
    assert [r["size"] for r in rows] == ["all", "small", "medium", "large"]
    assert rows[0]["objects"] == sum(r["objects"] for r in rows[1:]) > 0
    assert all(0 <= r[k] <= 1 for r in rows if r["objects"] for k in ("coarse", "refined", "refined_better"))
    plain = refine_stats.refine_iou(DW, data, max_images=2, topk=3)[0]
    assert plain["coarse"] == plain["refined"] and plain["refined_better"] == 0.0


def test_tool_iou_table_and_bad_topk(tmp_path):
    data = tiny(tmp_path / "data")
    proc = run_tool("dw_refine_stats.py", "-c", DW_REFINE, "--iou", "--max_images", "1", "-o", *data, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| objects | count | IoU coarse (top-9) |" in proc.stdout and "\n| all | " in proc.stdout
    bad = run_tool("dw_refine_stats.py", "-c", DW_REFINE, "--iou", "--topk", "0", "-o", *data, cwd=tmp_path)
    assert bad.returncode == 2 and "topk must be >= 1, got 0" in bad.stderr


def test_refine_iou_needs_a_dw_head(tmp_path):
    with pytest.raises(PipelineError, match="needs a DWHead"):
        refine_stats.refine_iou(AUTOASSIGN, tiny(tmp_path / "data"), max_images=1)
