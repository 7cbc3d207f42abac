"""PPAssignHAMBoxAssigner: 0.35 matching without ignore band + compensation from regressed boxes."""
import numpy as np
import pytest

import ppassign  # noqa: F401
from ppassign.assigners import HAMBoxAssigner
from retina_cases import np_hambox, random_boxes, retina_anchors, t


def run(assigner, gt, anchors, boxes):
    return [o.numpy() for o in assigner.assign(t(anchors), t(np.asarray(gt, "float32").reshape(-1, 4)),
                                                pred_bboxes=t(boxes))]


def test_hand_counted_compensation():
    # five 10x10 anchors in a row; object [0, 0, 10, 10] matches anchor 0 only (IoU 1; anchor 1: 0)
    anchors = np.array([[10 * i, 0, 10 * i + 10, 10] for i in range(5)], "float32")
    gt = np.array([[0, 0, 10, 10]], "float32")
    boxes = anchors.copy()
    boxes[2] = [0, 0, 10, 10]       # regressed onto the object: IoU 1
    boxes[3] = [1, 0, 11, 10]       # IoU 9/11 = 0.82
    boxes[4] = [4, 0, 14, 10]       # IoU 6/14 = 0.43 < T
    m, lab, target, w_cls, w_reg = run(HAMBoxAssigner(num_compensate=3, compensate_iou=0.5), gt, anchors, boxes)
    # 1 matched, K = 3 -> 2 compensated: anchors 2 and 3 (best regressed IoU first); anchor 4 stays negative
    assert lab.tolist() == [1, 0, 1, 1, 0]
    np.testing.assert_allclose(w_cls, [1, 1, 1, 9 / 11, 1], atol=1e-5)
    np.testing.assert_allclose(w_reg, [1, 0, 1, 1, 0])
    # K = 2: only the best one
    assert run(HAMBoxAssigner(num_compensate=2), gt, anchors, boxes)[1].tolist() == [1, 0, 1, 0, 0]
    # an object that already has K anchors gets none
    assert run(HAMBoxAssigner(num_compensate=1), gt, anchors, boxes)[1].tolist() == [1, 0, 0, 0, 0]


def test_no_ignore_band_at_035():
    anchors = np.array([[0, 0, 10, 10], [0, 0, 10, 10 / 0.36], [0, 0, 10, 10 / 0.3]], "float32")
    gt = np.array([[0, 0, 10, 10]], "float32")     # IoUs 1, 0.36, 0.3
    lab = run(HAMBoxAssigner(num_compensate=1), gt, anchors, anchors)[1]
    assert lab.tolist() == [1, 1, 0]


def test_compensating_anchor_wanted_by_two_objects_goes_to_higher_regressed_iou():
    anchors = np.array([[100, 100, 110, 110], [0, 0, 10, 10], [50, 0, 60, 10]], "float32")
    gt = np.array([[0, 0, 10, 10], [50, 0, 60, 10]], "float32")
    boxes = anchors.copy()
    boxes[0] = [49, 0, 60, 10]      # IoU 10/11 with object 1, 0 with object 0
    m, lab, *_ = run(HAMBoxAssigner(num_compensate=2), gt, anchors, boxes)
    assert lab.tolist() == [1, 1, 1] and m.tolist() == [1, 0, 1]


@pytest.mark.parametrize("seed", range(4))
def test_matches_numpy_reference_on_random_images(seed):
    rng = np.random.default_rng(seed)
    anchors, _ = retina_anchors(64, scales=(4.0, 6.35))
    gt = random_boxes(rng, int(rng.integers(1, 6)), 64)
    # regressed boxes: anchors moved towards random objects, so that compensation happens
    target = gt[rng.integers(0, len(gt), len(anchors))]
    mix = rng.uniform(0, 1, (len(anchors), 1))
    boxes = (anchors * (1 - mix) + target * mix).astype("float32")
    m, lab, _, w_cls, _ = run(HAMBoxAssigner(num_compensate=6), gt, anchors, boxes)
    rm, rp, rw = np_hambox(gt, anchors, boxes, 0.35, 6, 0.5)
    np.testing.assert_array_equal(lab, rp.astype("int32"))
    np.testing.assert_array_equal(m[rp], rm[rp])
    np.testing.assert_allclose(w_cls, rw, rtol=1e-4, atol=1e-5)
    assert (rw < 1).any()   # the case does compensate


def test_no_objects_and_bad_arguments():
    anchors, _ = retina_anchors(32)
    out = run(HAMBoxAssigner(), np.zeros((0, 4)), anchors, anchors)
    assert (out[1] == 0).all()
    with pytest.raises(ValueError, match="pred_bboxes"):
        HAMBoxAssigner()(t(anchors), t(np.array([[0, 0, 8, 8]], "float32")))
    for kwargs in ({"num_compensate": 0}, {"compensate_iou": 2.0}, {"iou_threshold": -1}):
        with pytest.raises(ValueError):
            HAMBoxAssigner(**kwargs)
