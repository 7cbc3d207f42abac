"""PPAssignNoisyAnchorAssigner: cleanliness soft targets and re-weighting (NumPy reference, hand-counted)."""
import numpy as np
import pytest

import ppassign  # noqa: F401
from ppassign.assigners import NoisyAnchorAssigner
from retina_cases import np_noisy, random_boxes, retina_anchors, t


def run(assigner, gt, classes, anchors, boxes, scores):
    return [o.numpy() for o in assigner.assign(t(anchors), t(np.asarray(gt, "float32").reshape(-1, 4)),
                                                gt_class=t(np.asarray(classes, "int64")), pred_bboxes=t(boxes),
                                                pred_scores=t(scores))]


def test_hand_counted_cleanliness_targets_and_weights():
    anchors = np.array([[0, 0, 10, 10], [10, 0, 20, 10], [40, 40, 50, 50]], "float32")
    gt = np.array([[0, 0, 20, 10]], "float32")          # anchors 0, 1 overlap (IoU 0.5 each), anchor 2 not
    boxes = np.array([[0, 0, 20, 10], [10, 0, 20, 10], [40, 40, 50, 50]], "float32")  # regressed IoU 1, 0.5
    scores = np.array([[0.2, 0.6], [0.9, 0.4], [0.5, 0.5]], "float32")              # class 1: 0.6, 0.4
    m, lab, target, w_cls, w_reg = run(NoisyAnchorAssigner(topk_candidates=2, alpha=0.75, gamma=1.0),
                                       gt, [1], anchors, boxes, scores)
    assert lab.tolist() == [1, 1, 0]
    c = np.array([0.75 * 1 + 0.25 * 0.6, 0.75 * 0.5 + 0.25 * 0.4])                 # 0.9, 0.475
    np.testing.assert_allclose(target, [c[0], c[1], 0], atol=1e-5)
    r = 1 / (1 - c)                                                                  # 10, 1.905 -> sum to 2
    np.testing.assert_allclose(w_reg, [*(2 * r / r.sum()), 0], rtol=1e-4)
    np.testing.assert_allclose(w_cls, [*(2 * r / r.sum()), 1], rtol=1e-4)
    # the survey's product: 1 * 0.6, 0.5 * 0.4
    target = run(NoisyAnchorAssigner(2, combine="product"), gt, [1], anchors, boxes, scores)[2]
    np.testing.assert_allclose(target, [0.6, 0.2, 0], atol=1e-5)
    # gamma = 0: no re-weighting
    np.testing.assert_allclose(run(NoisyAnchorAssigner(2, gamma=0.0), gt, [1], anchors, boxes, scores)[4],
                               [1, 1, 0], atol=1e-5)


@pytest.mark.parametrize("seed", range(4))
def test_matches_numpy_reference_on_random_images(seed):
    rng = np.random.default_rng(seed)
    anchors, _ = retina_anchors(64, scales=(4.0, 6.35))
    gt = random_boxes(rng, int(rng.integers(1, 6)), 64)
    classes = rng.integers(0, 3, len(gt))
    boxes = (anchors + rng.normal(0, 3, anchors.shape)).astype("float32")
    scores = rng.uniform(0, 1, (len(anchors), 3)).astype("float32")
    got = run(NoisyAnchorAssigner(topk_candidates=12), gt, classes, anchors, boxes, scores)
    ref = np_noisy(gt, classes, anchors, boxes, scores, 12, 0.75, 1.0)
    np.testing.assert_array_equal(got[1], ref[1].astype("int32"))
    np.testing.assert_array_equal(got[0][ref[1]], ref[0][ref[1]])
    for a, b in zip(got[2:], ref[2:]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got[4].sum(), ref[1].sum(), rtol=1e-4)   # weights sum to the positives


def test_no_objects_and_missing_predictions():
    anchors, _ = retina_anchors(32)
    out = run(NoisyAnchorAssigner(), np.zeros((0, 4)), [], anchors, anchors, np.full((len(anchors), 2), 0.5, "float32"))
    assert (out[1] == 0).all() and (out[3] == 1).all() and (out[4] == 0).all()
    with pytest.raises(ValueError, match="pred_bboxes"):
        NoisyAnchorAssigner()(t(anchors), t(np.array([[0, 0, 8, 8]], "float32")), gt_class=t(np.array([0])))


def test_bad_inputs_raise():
    anchors, _ = retina_anchors(32)
    gt = t(np.array([[0, 0, 8, 8]], "float32"))
    scores = t(np.full((len(anchors), 2), 0.5, "float32"))
    with pytest.raises(ValueError, match="gt_class must lie"):
        NoisyAnchorAssigner().assign(t(anchors), gt, gt_class=t(np.array([5])), pred_bboxes=t(anchors),
                                     pred_scores=scores)
    with pytest.raises(ValueError, match="pred_bboxes"):
        NoisyAnchorAssigner().assign(t(anchors), gt, gt_class=t(np.array([0])), pred_bboxes=t(anchors[:3]),
                                     pred_scores=scores)
    for kwargs in ({"alpha": 1.5}, {"combine": "mean"}, {"topk_candidates": 0}):
        with pytest.raises(ValueError):
            NoisyAnchorAssigner(**kwargs)
