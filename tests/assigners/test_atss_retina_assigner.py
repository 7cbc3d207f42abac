"""PPAssignATSSRetinaAssigner: ATSS's rule with RetinaNet's (matches, labels)."""
import numpy as np
import paddle
import pytest

from assign_cases import reference_assigners
from ppassign.assigners import ATSSRetinaAssigner
from retina_cases import np_atss, random_boxes, retina_anchors, t


def run(gt, anchors, counts, k=9):
    m, lab = ATSSRetinaAssigner(k)(t(anchors), t(np.asarray(gt, "float32").reshape(-1, 4)),
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
    m, lab = run(gt, anchors, counts)
    ppdet_atss = reference_assigners()[0](topk=9, num_classes=1)
    out = ppdet_atss(t(anchors), counts, paddle.zeros([1, 5, 1], "int32"), t(gt)[None], paddle.ones([1, 5, 1]), 1)
    assigned_labels, assigned_bboxes = out[0][0].numpy(), out[1][0].numpy()
    np.testing.assert_array_equal(lab, (assigned_labels == 0).astype("int32"))
    np.testing.assert_array_equal(gt[m[lab == 1]], assigned_bboxes[lab == 1])


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
