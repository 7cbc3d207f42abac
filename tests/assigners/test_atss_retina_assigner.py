"""PPAssignATSSRetinaAssigner: ATSS's rule with RetinaNet's (matches, labels)."""
import numpy as np
import paddle
import pytest

from assign_cases import reference_assigners
from ppassign.assigners import ATSSRetinaAssigner
from ppassign.assigners.atss_retina_assigner import anchors_per_location
from retina_cases import assert_batch_equals_per_image, np_atss, random_boxes, retina_anchors, t


def run(gt, anchors, counts, k=9, unit="locations"):
    m, lab = ATSSRetinaAssigner(k, unit)(t(anchors), t(np.asarray(gt, "float32").reshape(-1, 4)),
                                         num_anchors_list=counts)
    return m.numpy(), lab.numpy()


@pytest.mark.parametrize("seed", range(4))
def test_matches_numpy_atss_with_one_anchor_per_location(seed):
    rng = np.random.default_rng(seed)
    anchors, counts = retina_anchors(96, scales=(8.0,))        # the ATSS paper's RetinaNet: one 8S anchor
    gt = random_boxes(rng, int(rng.integers(1, 8)), 96, min_size=4)
    m, lab = run(gt, anchors, counts)
    candidates, iou = np_atss(gt, anchors, counts, 9)
    positive = candidates.any(0)
    np.testing.assert_array_equal(lab, positive.astype("int32"))
    best = np.where(candidates, iou, -1).argmax(0)
    np.testing.assert_array_equal(m[positive], best[positive])


@pytest.mark.parametrize("seed", range(3))
def test_same_positives_as_ppdets_atss_with_nine_anchors(seed):
    rng = np.random.default_rng(seed)
    anchors, counts = retina_anchors(96, scales=(4.0, 5.04, 6.35), ratios=(0.5, 1.0, 2.0))
    gt = random_boxes(rng, 5, 96, min_size=4)
    m, lab = run(gt, anchors, counts, unit="anchors")
    ppdet_atss = reference_assigners()[0](topk=9, num_classes=1)
    out = ppdet_atss(t(anchors), counts, paddle.zeros([1, 5, 1], "int32"), t(gt)[None], paddle.ones([1, 5, 1]), 1)
    assigned_labels, assigned_bboxes = out[0][0].numpy(), out[1][0].numpy()
    np.testing.assert_array_equal(lab, (assigned_labels == 0).astype("int32"))
    np.testing.assert_array_equal(gt[m[lab == 1]], assigned_bboxes[lab == 1])


# one level, four locations on a row (centres x = 5, 15, 25, 35; y = 5), three squares each (10, 20, 40 px),
# location-major as ppdet lays anchors out
ROW = np.array([[x - s / 2, 5 - s / 2, x + s / 2, 5 + s / 2] for x in (5, 15, 25, 35) for s in (10, 20, 40)],
               "float32")


def test_hand_counted_topk_counts_locations_as_the_atss_code():
    gt = np.array([[2, 0, 20, 10]], "float32")       # centre (11, 5): nearest locations x = 15 (4 px), 5 (6 px)
    # k = 2 locations = 6 candidates, IoUs 0.556 0.349 0.113 (x = 15) and 0.4 0.289 0.113 (x = 5):
    # mean 0.303 + std 0.172 = 0.475 -> only anchor 3 (x = 15, 10 px, IoU 0.556; centre inside) is positive
    m, lab = run(gt, ROW, [12], k=2)
    assert lab.tolist() == [0, 0, 0, 1] + [0] * 8
    # k = 2 anchors: candidates anchors 3, 4 (IoU 0.556, 0.349): threshold 0.452 + 0.146 = 0.598 -> none
    assert run(gt, ROW, [12], k=2, unit="anchors")[1].sum() == 0
    # 2 locations = 6 anchors; and both agree with the NumPy ATSS given 6 candidates per level
    np.testing.assert_array_equal(run(gt, ROW, [12], k=6, unit="anchors")[1], lab)
    np.testing.assert_array_equal(np_atss(gt, ROW, [12], 6)[0].any(0).astype("int32"), lab)


@pytest.mark.parametrize("seed", range(3))
def test_nine_anchors_per_location_take_k_locations_of_every_level(seed):
    rng = np.random.default_rng(seed)
    anchors, counts = retina_anchors(96, scales=(4.0, 5.04, 6.35), ratios=(0.5, 1.0, 2.0))
    gt = random_boxes(rng, 5, 96, min_size=4)
    assert anchors_per_location(t(anchors), counts) == 9
    m, lab = run(gt, anchors, counts, k=3)
    np.testing.assert_array_equal(lab, run(gt, anchors, counts, k=27, unit="anchors")[1])
    candidates, iou = np_atss(gt, anchors, counts, 27)
    positive = candidates.any(0)
    np.testing.assert_array_equal(lab, positive.astype("int32"))
    np.testing.assert_array_equal(m[positive], np.where(candidates, iou, -1).argmax(0)[positive])


def test_locations_need_location_major_anchors():
    by_size = np.concatenate([ROW[i::3] for i in range(3)])          # size-major: centres repeat every 4
    with pytest.raises(ValueError, match="location-major"):
        run(np.array([[2, 0, 20, 10]]), by_size, [12], k=2)
    assert run(np.array([[2, 0, 20, 10]]), by_size, [12], k=2, unit="anchors")[1].shape == (12,)
    with pytest.raises(ValueError, match="topk_unit"):
        ATSSRetinaAssigner(9, "cells")


def test_no_objects_and_missing_levels():
    anchors, counts = retina_anchors(32)
    m, lab = run(np.zeros((0, 4)), anchors, counts)
    assert (lab == 0).all() and (m == 0).all()
    with pytest.raises(ValueError, match="num_anchors_list"):
        ATSSRetinaAssigner()(t(anchors), t(np.array([[0, 0, 8, 8]], "float32")))
    with pytest.raises(ValueError, match="num_anchors_list"):
        run(np.array([[0, 0, 8, 8]]), anchors, [1, 2])


def test_degenerate_and_tiny_boxes_never_crash_and_stay_binary():
    anchors, counts = retina_anchors(64, scales=(8.0,))
    gt = np.array([[10, 10, 10, 30], [20, 20, 20.5, 20.5], [0, 0, 64, 64]], "float32")
    m, lab = run(gt, anchors, counts)
    candidates, _ = np_atss(gt, anchors, counts, 9)
    np.testing.assert_array_equal(lab, candidates.any(0).astype("int32"))



@pytest.mark.parametrize("seed", range(3))
def test_assign_batch_equals_per_image_assign(seed):
    assert_batch_equals_per_image(ATSSRetinaAssigner(topk=3), seed, scales=(4.0, 6.35))
