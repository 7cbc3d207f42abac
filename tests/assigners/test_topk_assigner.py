"""PPAssignTopKAssigner: every object's k best anchors (NumPy reference, hand-counted cases, corners)."""
import numpy as np
import pytest

import ppassign  # noqa: F401
from ppassign.assigners import TopKAssigner
from retina_cases import assert_batch_equals_per_image, np_topk, random_boxes, retina_anchors, t


def run(gt, anchors, k=3, min_iou=0.0):
    m, lab = TopKAssigner(k, min_iou)(t(anchors), t(np.asarray(gt, "float32").reshape(-1, 4)))
    return m.numpy(), lab.numpy()


def test_hand_counted_small_and_large_objects_get_k_each():
    # a row of ten 10x10 anchors at x = 0, 10, ..., 90
    anchors = np.array([[10 * i, 0, 10 * i + 10, 10] for i in range(10)], "float32")
    gt = np.array([[0, 0, 4, 4],        # tiny: overlaps only anchor 0 -> one positive (IoU > 0 needed)
                   [30, 0, 80, 10]], "float32")  # large: anchors 3..7 (IoU 0.2 each), k=3 -> 3, 4, 5 (ties: lower)
    m, lab = run(gt, anchors, k=3)
    assert lab.tolist() == [1, 0, 0, 1, 1, 1, 0, 0, 0, 0]
    assert m[[0, 3, 4, 5]].tolist() == [0, 1, 1, 1]


def test_conflicts_go_to_the_object_of_highest_iou():
    anchors = np.array([[0, 0, 10, 10], [10, 0, 20, 10]], "float32")
    gt = np.array([[0, 0, 12, 10],   # IoU 10/12 with anchor 0, 2/12 with anchor 1
                   [5, 0, 20, 10]], "float32")  # IoU 5/20 with anchor 0, 10/15 with anchor 1
    m, lab = run(gt, anchors, k=2)
    assert lab.tolist() == [1, 1] and m.tolist() == [0, 1]


def test_iou_floor_drops_weak_anchors():
    anchors = np.array([[10 * i, 0, 10 * i + 10, 10] for i in range(4)], "float32")
    gt = np.array([[0, 0, 13, 10]], "float32")   # IoUs 10/13, 3/20, 0, 0
    assert run(gt, anchors, k=3)[1].tolist() == [1, 1, 0, 0]
    assert run(gt, anchors, k=3, min_iou=0.2)[1].tolist() == [1, 0, 0, 0]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("k", [1, 9, 20])
def test_matches_numpy_reference_on_random_images(seed, k):
    rng = np.random.default_rng(seed)
    anchors, _ = retina_anchors(64, scales=(4.0, 6.35), ratios=(0.5, 1.0))
    gt = random_boxes(rng, int(rng.integers(1, 8)), 64)
    m, lab = run(gt, anchors, k=k)
    rm, rp = np_topk(gt, anchors, k)
    np.testing.assert_array_equal(lab, rp.astype("int32"))
    np.testing.assert_array_equal(m[rp], rm[rp])
    assert set(np.unique(lab)) <= {0, 1}   # no ignore band


def test_corner_cases_no_objects_degenerate_and_k_above_num_anchors():
    anchors, _ = retina_anchors(32)
    m, lab = run(np.zeros((0, 4)), anchors)
    assert (lab == 0).all() and (m == 0).all()
    gt = np.array([[5, 5, 5, 20], [8, 8, 8.2, 8.2], [-40, -40, -30, -30]], "float32")  # zero width, tiny, outside
    m, lab = run(gt, anchors, k=len(anchors) + 5)
    rm, rp = np_topk(gt, anchors, len(anchors) + 5)
    np.testing.assert_array_equal(lab, rp.astype("int32"))
    np.testing.assert_array_equal(m[rp], rm[rp])


@pytest.mark.parametrize("kwargs", [{"topk": 0}, {"topk": 2.5}, {"min_iou": -0.1}])
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        TopKAssigner(**kwargs)



@pytest.mark.parametrize("seed", range(3))
def test_assign_batch_equals_per_image_assign(seed):
    assert_batch_equals_per_image(TopKAssigner(9), seed, scales=(4.0, 6.35))
