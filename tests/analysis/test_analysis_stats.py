"""ppassign.analysis.stats: positives per object, size buckets, no-positive share, reports."""
import numpy as np
import pytest

import ppassign  # noqa: F401
from ppassign.analysis import assignment as A
from ppassign.analysis import stats
from ppassign.assigners.atss_assigner import ATSSAssigner

# Hand-built case: one FPN level of stride 8 over a 64 x 64 input (8 x 8 locations at 4, 12, ..., 60), PP-YOLOE
# anchors of 5 strides (40 px), ATSS with topk=3.
#   Box A [9, 5, 51, 37], centre (30, 21): its 3 nearest locations are (28, 20), (36, 20), (28, 28) (distances
#   2.24, 6.08, 7.28; the next is 9.22). Their anchors' IoUs with A are 1248/1696 = 0.736, 1120/1824 = 0.614 and
#   1131/1813 = 0.624: mean 0.658 + std 0.068 = 0.726, so only (28, 20) passes -> 1 positive.
#   Box B [0.5, 0.5, 3.5, 3.5] (3 px): no location centre lies inside it -> 0 positives.
BOX_A = [9, 5, 51, 37]
BOX_B = [0.5, 0.5, 3.5, 3.5]


def hand_case():
    grid = A.make_grid(64, 64, [8])
    assigner = ATSSAssigner(topk=3, num_classes=2, return_mask_positive=True)
    return A.atss_map(assigner, grid, np.array([BOX_A, BOX_B], np.float32), np.array([0, 1]), 2)


def test_atss_hand_case_counts_one_positive_and_one_object_without_any():
    amap = hand_case()
    acc = stats.StatsAccumulator([8])
    acc.add(amap)
    summary = acc.summary()["atss"]
    assert amap.grid.points[amap.positive[0] > 0].tolist() == [[28.0, 20.0]]
    assert summary["all"]["objects"] == 2
    assert summary["all"]["mean"] == pytest.approx(0.5)
    assert summary["all"]["no_positive_share"] == pytest.approx(0.5)
    assert summary["all"]["per_level_mean"] == [pytest.approx(0.5)]
    # A is 42 x 32 = 1344 px^2 (medium), B 9 px^2 (small)
    assert summary["medium"]["objects"] == 1 and summary["medium"]["mean"] == 1.0
    assert summary["small"]["objects"] == 1 and summary["small"]["no_positive_share"] == 1.0
    assert summary["large"]["objects"] == 0 and summary["large"]["mean"] is None


def test_hard_counts_per_level():
    positive = np.array([[1, 1, 0, 1, 0], [0, 0, 0, 0, 0]], np.float32)
    total, per_level = stats.object_positives(positive, np.array([0, 0, 0, 1, 1]), 2, hard=True)
    assert total.tolist() == [3, 0]
    assert per_level.tolist() == [[2, 1], [0, 0]]


def test_soft_effective_number_equals_count_for_equal_weights():
    positive = np.array([[0.25, 0.25, 0.25, 0.25, 0.0]])
    total, per_level = stats.object_positives(positive, np.array([0, 0, 1, 1, 1]), 2, hard=False)
    assert total[0] == pytest.approx(4.0)
    assert per_level[0].tolist() == pytest.approx([2.0, 2.0])


def test_soft_single_location_is_one_and_zero_mass_is_no_positive():
    positive = np.array([[0.0, 0.7, 0.0], [0.0, 0.0, 0.0]])
    total, per_level = stats.object_positives(positive, np.array([0, 1, 1]), 2, hard=False)
    assert total.tolist() == pytest.approx([1.0, 0.0])
    np.testing.assert_allclose(per_level, [[0.0, 1.0], [0.0, 0.0]])


def test_object_positives_rejects_wrong_shape_and_negative_weights():
    with pytest.raises(ValueError, match="positive must be"):
        stats.object_positives(np.zeros([2, 3]), np.zeros(4, int), 1, hard=True)
    with pytest.raises(ValueError, match=">= 0"):
        stats.object_positives(-np.ones([1, 2]), np.zeros(2, int), 1, hard=False)


def test_size_buckets_use_coco_limits():
    boxes = [[0, 0, 31, 33], [0, 0, 32, 32], [0, 0, 95, 97], [0, 0, 96, 96]]
    assert stats.size_bucket(boxes).tolist() == ["small", "medium", "medium", "large"]


def test_accumulator_rejects_a_map_with_other_levels():
    acc = stats.StatsAccumulator([8, 16])
    with pytest.raises(ValueError, match="levels"):
        acc.add(hand_case())


def test_report_writes_table_json_and_histogram(tmp_path):
    acc = stats.StatsAccumulator([8])
    acc.add(hand_case())
    text = stats.write_report(acc, str(tmp_path), "note", hard_methods=("atss",))
    assert "| atss (count) | 2 | all | 0.50 |" in text
    assert "50.0%" in text
    for name in ("assign_stats.md", "assign_stats.json", "assign_stats.png"):
        assert (tmp_path / name).stat().st_size > 0
