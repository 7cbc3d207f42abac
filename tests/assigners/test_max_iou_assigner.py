"""PPAssignMaxIoUAssigner: the max-IoU rule (NumPy reference, hand-counted) and identity with ppdet's."""
import numpy as np
import paddle
import pytest

import ppassign  # noqa: F401
from ppassign.assigners import MaxIoUAssigner
from ppdet.modeling.assigners.max_iou_assigner import MaxIoUAssigner as PPDetMaxIoUAssigner
from retina_cases import assert_batch_equals_per_image, np_iou, np_max_iou, random_boxes, retina_anchors, t

SETTINGS = [(0.5, 0.4, True), (0.5, 0.4, False), (0.7, 0.3, True), (0.35, 0.35, False)]


def both(gt, anchors, pos=0.5, neg=0.4, low=True):
    ours = MaxIoUAssigner(pos, neg, low)(t(anchors), t(gt, "float32").reshape([-1, 4]))
    theirs = PPDetMaxIoUAssigner(pos, neg, low)(t(anchors), t(gt, "float32").reshape([-1, 4]))
    return [o.numpy() for o in ours], [o.numpy() for o in theirs]


def assert_same_as_ppdet(gt, anchors, pos=0.5, neg=0.4, low=True):
    (m, lab), (pm, plab) = both(gt, anchors, pos, neg, low)
    np.testing.assert_array_equal(lab, plab)
    assert m.dtype == pm.dtype == np.int64 and lab.dtype == plab.dtype == np.int32
    gt = np.asarray(gt, "float32").reshape(-1, 4)
    rm, rl = np_max_iou(gt, anchors, pos, neg, low)
    np.testing.assert_array_equal(lab, rl)
    # where an anchor overlaps no object, which index ppdet's topk reports is arbitrary (it matters nowhere;
    # it depends on the row's values, e.g. [0, 0, 0, 0, 0] -> 1 on CPU); ours is 0, the first object
    overlaps = np_iou(gt, anchors).max(axis=0) > 0 if len(gt) else np.zeros(len(anchors), bool)
    np.testing.assert_array_equal(m[overlaps], pm[overlaps])
    np.testing.assert_array_equal(m[overlaps], rm[overlaps])
    assert (m[~overlaps] == 0).all()


def test_hand_counted_case():
    # anchors: [0,0,10,10] [5,0,15,10] [20,0,30,10] [40,40,50,50]; object [0,0,10,10]
    anchors = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 0, 30, 10], [40, 40, 50, 50]], "float32")
    gt = np.array([[0, 0, 10, 10]], "float32")
    # IoUs 1, 50/150 = 1/3, 0, 0 -> positive, negative (< 0.4), negative, negative
    m, lab = MaxIoUAssigner(0.5, 0.4)(t(anchors), t(gt))
    assert lab.numpy().tolist() == [1, 0, 0, 0] and m.numpy().tolist() == [0, 0, 0, 0]
    # band 0.3 .. 0.5: the 1/3 anchor is ignored
    _, lab = MaxIoUAssigner(0.5, 0.3)(t(anchors), t(gt))
    assert lab.numpy().tolist() == [1, -1, 0, 0]


def test_low_quality_makes_each_objects_best_anchor_positive():
    anchors = np.array([[0, 0, 10, 10], [5, 0, 15, 10]], "float32")
    gt = np.array([[4, 0, 12, 10]], "float32")   # IoUs 60/140 = 0.43, 70/110 = 0.64 ... best is anchor 1
    gt_small = np.array([[0, 0, 4, 4]], "float32")  # IoU 0.16 with anchor 0 only
    assert MaxIoUAssigner(0.7, 0.3, True)(t(anchors), t(gt))[1].numpy().tolist() == [-1, 1]
    assert MaxIoUAssigner(0.7, 0.3, False)(t(anchors), t(gt))[1].numpy().tolist() == [-1, -1]
    assert MaxIoUAssigner(0.5, 0.4, True)(t(anchors), t(gt_small))[1].numpy().tolist() == [1, 0]
    assert_same_as_ppdet(gt_small, anchors, 0.5, 0.4, True)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("setting", SETTINGS)
def test_identical_to_ppdet_on_random_images(seed, setting):
    rng = np.random.default_rng(seed)
    anchors, _ = retina_anchors(96, scales=(4.0, 5.04, 6.35), ratios=(0.5, 1.0, 2.0))
    assert_same_as_ppdet(random_boxes(rng, int(rng.integers(1, 12))), anchors, *setting)


def test_no_objects_all_negative_like_ppdet():
    anchors, _ = retina_anchors(64)
    (m, lab), (pm, plab) = both(np.zeros((0, 4), "float32"), anchors)
    assert (lab == 0).all() and (m == 0).all()
    np.testing.assert_array_equal(lab, plab)
    np.testing.assert_array_equal(m, pm)


def test_degenerate_tiny_and_outside_boxes_like_ppdet():
    anchors, _ = retina_anchors(64)
    gt = np.array([[10, 10, 10, 30],      # zero width
                   [20, 20, 20, 20],      # a point
                   [30, 30, 30.5, 30.5],  # tiny
                   [-20, -20, 5, 5],      # partly outside the image
                   [100, 100, 120, 130]], "float32")  # fully outside
    for setting in SETTINGS:
        assert_same_as_ppdet(gt, anchors, *setting)


def test_ties_between_objects_and_exact_thresholds_like_ppdet():
    anchors = np.array([[0, 0, 10, 10], [10, 0, 20, 10], [0, 0, 20, 10]], "float32")
    # two identical objects (every IoU tied between them) and one at IoU exactly 0.5 with anchor 2
    gt = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [10, 0, 20, 10]], "float32")
    assert_same_as_ppdet(gt, anchors, 0.5, 0.4, True)
    assert_same_as_ppdet(gt, anchors, 0.5, 0.5, False)
    m, lab = MaxIoUAssigner(0.5, 0.4, False)(t(anchors), t(gt))
    assert lab.numpy().tolist() == [1, 1, 1] and m.numpy()[0] == 0   # tie to the first object; 0.5 >= 0.5


@pytest.mark.parametrize("kwargs, match", [({"positive_overlap": 1.5, "negative_overlap": 0.4}, "positive_overlap"),
                                           ({"positive_overlap": 0.4, "negative_overlap": 0.5}, "negative_overlap")])
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MaxIoUAssigner(**kwargs)


@pytest.mark.parametrize("gt, match", [(np.array([[0, 0, np.nan, 4]], "float32"), "NaN"),
                                       (np.array([[5, 0, 1, 4]], "float32"), "x2 >= x1"),
                                       (np.zeros((2, 3), "float32"), "gt_bbox")])
def test_bad_input_raises_value_error(gt, match):
    anchors, _ = retina_anchors(32)
    with pytest.raises(ValueError, match=match):
        MaxIoUAssigner(0.5, 0.4)(t(anchors), t(gt))


def test_bad_anchors_raise_value_error():
    with pytest.raises(ValueError, match="anchors"):
        MaxIoUAssigner(0.5, 0.4)(paddle.zeros([4, 3]), paddle.zeros([1, 4]))



@pytest.mark.parametrize("seed", range(3))
def test_assign_batch_equals_per_image_assign(seed):
    assert_batch_equals_per_image(MaxIoUAssigner(0.5, 0.4, True), seed, scales=(4.0, 6.35), ratios=(0.5, 1.0, 2.0))
