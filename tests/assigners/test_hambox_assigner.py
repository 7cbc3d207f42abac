"""PPAssignHAMBoxAssigner: 0.35 matching without ignore band + compensation from regressed boxes."""
import numpy as np
import pytest

import ppassign  # noqa: F401
from ppassign.assigners import HAMBoxAssigner
from retina_cases import assign_both_ways, np_hambox, np_iou, random_batch, random_boxes, retina_anchors, t


def run(assigner, gt, anchors, boxes):
    return [o.numpy() for o in assigner.assign(t(anchors), t(np.asarray(gt, "float32").reshape(-1, 4)),
                                                pred_bboxes=t(boxes))]


def test_hand_counted_compensation_ignore_and_weights():
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
    # matched and negatives: (1 + 2) / 1 matched; compensated: (1 + 2) / 2 compensated, x regressed IoU for cls
    np.testing.assert_allclose(w_cls, [3, 3, 1.5, 1.5 * 9 / 11, 3], atol=1e-5)
    np.testing.assert_allclose(w_reg, [3, 0, 1.5, 1.5, 0])
    # K = 2: only the best one; anchor 3 (regressed IoU 0.82, not taken) is ignored
    m, lab, _, w_cls, w_reg = run(HAMBoxAssigner(num_compensate=2), gt, anchors, boxes)
    assert lab.tolist() == [1, 0, 1, -1, 0]
    np.testing.assert_allclose(w_cls, [2, 2, 2, 0, 2], atol=1e-5)
    # an object that already has K anchors gets none; well-regressed anchors are ignored
    m, lab, _, w_cls, w_reg = run(HAMBoxAssigner(num_compensate=1), gt, anchors, boxes)
    assert lab.tolist() == [1, 0, -1, -1, 0]
    np.testing.assert_allclose(w_cls, [1, 1, 0, 0, 1])
    np.testing.assert_allclose(w_reg, [1, 0, 0, 0, 0])


def test_compensation_threshold_is_inclusive():
    anchors = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], "float32")
    gt = np.array([[0, 0, 10, 10]], "float32")
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 5]], "float32")     # anchor 1 regressed: IoU exactly 0.5
    assert run(HAMBoxAssigner(num_compensate=2), gt, anchors, boxes)[1].tolist() == [1, 1]


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
    m, lab, _, w_cls, w_reg = run(HAMBoxAssigner(num_compensate=6), gt, anchors, boxes)
    rm, rl, rw, rr = np_hambox(gt, anchors, boxes, 0.35, 6, 0.5)
    np.testing.assert_array_equal(lab, rl)
    np.testing.assert_array_equal(m[rl == 1], rm[rl == 1])
    np.testing.assert_allclose(w_cls, rw, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(w_reg, rr, rtol=1e-5)
    assert ((rl == 1) & (np_iou(gt, anchors).max(0) < 0.35)).any()   # the case compensates


def test_no_objects_and_bad_arguments():
    anchors, _ = retina_anchors(32)
    out = run(HAMBoxAssigner(), np.zeros((0, 4)), anchors, anchors)
    assert (out[1] == 0).all()
    with pytest.raises(ValueError, match="pred_bboxes"):
        HAMBoxAssigner()(t(anchors), t(np.array([[0, 0, 8, 8]], "float32")))
    for kwargs in ({"num_compensate": 0}, {"compensate_iou": 2.0}, {"iou_threshold": -1}):
        with pytest.raises(ValueError):
            HAMBoxAssigner(**kwargs)


@pytest.mark.parametrize("seed", range(3))
def test_assign_batch_equals_per_image_assign_with_weights_normalised_over_the_batch(seed):
    anchors, counts = retina_anchors(64, scales=(4.0, 6.35))
    case = random_batch(np.random.default_rng(seed), anchors, image_size=64)
    (m, lab, target, w_cls, w_reg), single = assign_both_ways(HAMBoxAssigner(), anchors, counts, case)
    np.testing.assert_array_equal(m, single[0])
    np.testing.assert_array_equal(lab, single[1])
    np.testing.assert_array_equal(target, single[2])
    # the weights use the batch's counts of matched (M) and compensated (C) anchors
    ref = [np_hambox(case["boxes"][b, :c], anchors, case["pred_bboxes"][b], 0.35, 5, 0.5) if c else None
           for b, c in enumerate(case["counts"])]
    iou = [np_iou(case["boxes"][b, :c], anchors).max(0) if c else np.zeros(len(anchors))
           for b, c in enumerate(case["counts"])]
    matched = np.stack([(i >= 0.35) for i in iou])
    added = (lab == 1) & ~matched
    total = max(1, matched.sum() + added.sum())
    np.testing.assert_allclose(w_reg, np.where(matched, total / max(1, matched.sum()),
                                               np.where(added, total / max(1, added.sum()), 0)), rtol=1e-5)
    np.testing.assert_allclose(w_cls[lab == 0], total / max(1, matched.sum()), rtol=1e-5)
    assert added.any() and ref[1] is None
