"""ppassign.analysis.assignment: grids and the assignment maps of every method."""
import numpy as np
import paddle
import pytest

import ppassign  # noqa: F401
from ppassign.analysis import assignment as A
from ppassign.assigners.atss_assigner import ATSSAssigner
from ppassign.heads.autoassign_head import AutoAssignHead
from ppassign.heads.dw_head import DWHead
from ppassign.assigners.task_aligned_assigner import TaskAlignedAssigner

BOXES = np.array([[10, 12, 60, 50], [30, 30, 90, 100], [70, 5, 76, 11]], np.float32)
LABELS = np.array([0, 1, 0])


def test_make_grid_points_and_levels():
    grid = A.make_grid(40, 24, [8, 16])
    assert grid.shapes == [(5, 3), (3, 2)]
    assert grid.counts == [15, 6]
    assert grid.points[:2].tolist() == [[4, 4], [12, 4]]
    assert grid.points[15].tolist() == [8, 8]
    assert grid.level_index().tolist() == [0] * 15 + [1] * 6
    assert grid.anchors(5.0)[0].tolist() == [-16, -16, 24, 24]


def test_make_grid_rejects_bad_strides():
    with pytest.raises(ValueError, match="strides"):
        A.make_grid(32, 32, [])


def test_check_objects_names_the_problem():
    with pytest.raises(ValueError, match="labels must have one entry per box"):
        A.check_objects(BOXES, [0], 2)
    with pytest.raises(ValueError, match="x2 > x1"):
        A.check_objects([[5, 5, 1, 9]], [0], 2)
    with pytest.raises(ValueError, match="num_classes=2"):
        A.check_objects(BOXES, [0, 1, 2], 2)


def test_ppassign_and_ppdet_atss_maps_agree():
    from ppdet.modeling.assigners import ATSSAssigner as PPDetATSS
    grid = A.make_grid(128, 128, [8, 16, 32])
    ours = A.atss_map(ATSSAssigner(topk=9, num_classes=2, return_mask_positive=True), grid, BOXES, LABELS, 2)
    ppdet = A.atss_map(PPDetATSS(topk=9, num_classes=2), grid, BOXES, LABELS, 2)
    np.testing.assert_array_equal(ours.positive, ppdet.positive)
    assert ours.positive.sum() > 0 and ours.hard and ours.negative is None
    assert (ours.positive.sum(0) <= 1).all()  # one object per location


def test_map_from_three_outputs_equals_the_mask_positive_output():
    """PaddleDetection 2.7+ assigners return no mask_positive: it is rebuilt from the assigned boxes/labels."""
    grid = A.make_grid(128, 128, [8, 16, 32])
    four = A.atss_map(ATSSAssigner(topk=9, num_classes=2, return_mask_positive=True), grid, BOXES, LABELS, 2)
    three = A.atss_map(ATSSAssigner(topk=9, num_classes=2, return_mask_positive=False), grid, BOXES, LABELS, 2)
    np.testing.assert_array_equal(three.positive, four.positive)
    assert four.positive.sum() > 0


def test_task_aligned_proxy_map_keeps_topk_inside_boxes():
    grid = A.make_grid(128, 128, [8, 16, 32])
    scores, boxes = A.proxy_predictions(grid, 2)
    amap = A.task_aligned_map(TaskAlignedAssigner(topk=5, return_mask_positive=True), grid, BOXES, LABELS,
                              scores, boxes)
    counts = amap.positive.sum(1)
    assert counts[0] == 5 and counts[1] == 5
    for j, (x1, y1, x2, y2) in enumerate(BOXES):
        pts = grid.points[amap.positive[j] > 0]
        assert ((pts[:, 0] > x1) & (pts[:, 0] < x2) & (pts[:, 1] > y1) & (pts[:, 1] < y2)).all()


def test_task_aligned_map_rejects_predictions_of_another_grid():
    grid = A.make_grid(64, 64, [8])
    with pytest.raises(ValueError, match="L = 64"):
        A.task_aligned_map(TaskAlignedAssigner(topk=5), grid, BOXES, LABELS, np.zeros([10, 2]), np.zeros([10, 4]))


def test_empty_image_gives_empty_maps():
    grid = A.make_grid(64, 64, [8])
    amap = A.atss_map(ATSSAssigner(topk=3, num_classes=2), grid, np.zeros([0, 4]), np.zeros([0]), 2)
    assert amap.positive.shape == (0, 64)


def _random_predictions(grid, num_classes, seed=0):
    rng = np.random.default_rng(seed)
    scores = rng.uniform(0.01, 0.9, [len(grid.points), num_classes]).astype(np.float32)
    ltrb = rng.uniform(2, 40, [len(grid.points), 4]).astype(np.float32)
    return scores, ltrb


def test_autoassign_map_positive_weights_sum_to_one_over_candidates():
    paddle.seed(0)
    head = AutoAssignHead(num_classes=2, in_channels=8, feat_channels=8, num_convs=1, num_groups=4,
                          fpn_stride=[8, 16, 32])
    grid = A.make_grid(128, 128, [8, 16, 32])
    scores, ltrb = _random_predictions(grid, 2)
    boxes = np.concatenate([grid.points - ltrb[:, :2], grid.points + ltrb[:, 2:]], axis=1)
    amap = A.autoassign_map(head, grid, BOXES, LABELS, scores, boxes)
    assert not amap.hard
    np.testing.assert_allclose(amap.positive.sum(1), 1.0, rtol=1e-4)
    inside = np.isfinite(amap.negative)
    assert (amap.positive[~inside] == 0).all()
    assert (amap.negative[inside] >= 0).all() and (amap.negative[inside] <= 1).all()
    # w- is 0 at each object's best-IoU location
    assert np.nanmin(amap.negative, axis=1) == pytest.approx(np.zeros(3), abs=1e-6)


def test_dw_map_weights_live_on_candidates_only():
    head = DWHead(num_classes=2, in_channels=8, feat_channels=8, num_convs=1, norm_groups=4, fpn_stride=[8, 16, 32])
    grid = A.make_grid(128, 128, [8, 16, 32])
    scores, ltrb = _random_predictions(grid, 2, seed=1)
    amap = A.dw_map(head, grid, BOXES, LABELS, scores, ltrb)
    inside = np.isfinite(amap.negative)
    assert (amap.positive[~inside] == 0).all()
    assert (np.where(inside, amap.positive, 0) > 0).any(axis=1).all()  # each object has candidates at stride 8
    assert (amap.negative[inside] >= 0).all() and (amap.negative[inside] <= 1).all()


def test_fcos_map_hand_case_smallest_box_wins_shared_location():
    """4 x 4 locations of stride 8 (centres 4, 12, 20, 28), one scale range, no centre sampling.
    Box A [0, 0, 16, 16] holds 4 centres; box B [10, 10, 30, 30] holds 9, one of them (12, 12) shared with the
    smaller A, which gets it: 4 and 8 positives."""
    from ppdet.data.transform.batch_operators import Gt2FCOSTarget
    op = Gt2FCOSTarget(object_sizes_boundary=[], center_sampling_radius=0.0, downsample_ratios=[8],
                       norm_reg_targets=True)
    grid = A.make_grid(32, 32, [8])
    amap = A.fcos_map(op, grid, np.array([[0, 0, 16, 16], [10, 10, 30, 30]], np.float32), np.array([0, 1]), 2)
    assert amap.positive.sum(1).tolist() == [4, 8]
    assert grid.points[amap.positive[0] > 0].tolist() == [[4, 4], [12, 4], [4, 12], [12, 12]]
    assert amap.positive[1, 5] == 0  # (12, 12)


def test_fcos_map_rejects_op_of_other_strides():
    from ppdet.data.transform.batch_operators import Gt2FCOSTarget
    op = Gt2FCOSTarget(object_sizes_boundary=[64], center_sampling_radius=1.5, downsample_ratios=[8, 16])
    with pytest.raises(ValueError, match="downsample_ratios"):
        A.fcos_map(op, A.make_grid(32, 32, [8]), BOXES, LABELS, 2)
