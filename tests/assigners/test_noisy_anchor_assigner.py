"""PPAssignNoisyAnchorAssigner: the authors' code's soft targets and re-weighting, the paper's plain formulas,
the survey's product (NumPy reference, hand-counted)."""
import numpy as np
import pytest

import ppassign  # noqa: F401
from ppassign.assigners import NoisyAnchorAssigner
from retina_cases import assert_batch_equals_per_image, np_iou, np_noisy, random_boxes, retina_anchors, t


def run(assigner, gt, classes, anchors, boxes, scores):
    return [o.numpy() for o in assigner.assign(t(anchors), t(np.asarray(gt, "float32").reshape(-1, 4)),
                                                gt_class=t(np.asarray(classes, "int64")), pred_bboxes=t(boxes),
                                                pred_scores=t(scores))]


ANCHORS = np.array([[0, 0, 10, 10], [10, 0, 20, 10], [40, 40, 50, 50]], "float32")
GT = np.array([[0, 0, 20, 10]], "float32")              # anchors 0, 1 overlap (IoU 0.5 each), anchor 2 not
BOXES = np.array([[0, 0, 16, 10], [10, 0, 20, 10], [40, 40, 50, 50]], "float32")   # regressed IoU 0.8, 0.5
SCORES = np.array([[0.2, 0.6], [0.9, 0.4], [0.5, 0.5]], "float32")                 # class 1: 0.6, 0.4


def test_hand_counted_targets_and_weights_of_the_authors_code():
    m, lab, target, w_cls, w_reg = run(NoisyAnchorAssigner(topk_candidates=2, alpha=0.75, gamma=1.0),
                                       GT, [1], ANCHORS, BOXES, SCORES)
    assert lab.tolist() == [1, 1, 0]
    # loc 0.8, 0.5 (mean 0.65); cls 0.6, 0.4 (mean 0.5): s = 0.75 loc / 0.65 + 0.25 cls / 0.5 = 1.2231, 0.7769,
    # mapped onto [0.65, 1]: the larger to 1, the smaller to mean(loc)
    np.testing.assert_allclose(target, [1.0, 0.65, 0], atol=1e-5)
    # f(loc) = 5, 2 (mean 3.5); f(cls) = 2.5, 1.667 (mean 2.083): r = 0.75 * (1.4286, 0.5714) + 0.25 * (1.2, 0.8)
    np.testing.assert_allclose(w_reg, [1.371429, 0.628571, 0], rtol=1e-5)
    np.testing.assert_allclose(w_cls, [1.371429, 0.628571, 1], rtol=1e-5)


def test_hand_counted_paper_formulas_and_survey_product():
    out = run(NoisyAnchorAssigner(2, alpha=0.75, gamma=1.0, normalize=False), GT, [1], ANCHORS, BOXES, SCORES)
    np.testing.assert_allclose(out[2], [0.75, 0.475, 0], atol=1e-5)          # 0.75 loc + 0.25 cls
    np.testing.assert_allclose(out[4], [4.375, 1.916667, 0], rtol=1e-5)     # 0.75 f(loc) + 0.25 f(cls)
    out = run(NoisyAnchorAssigner(2, gamma=2.0, normalize=False), GT, [1], ANCHORS, BOXES, SCORES)
    np.testing.assert_allclose(out[4], [4.375 ** 2, 1.916667 ** 2, 0], rtol=1e-5)
    target = run(NoisyAnchorAssigner(2, combine="product"), GT, [1], ANCHORS, BOXES, SCORES)[2]
    np.testing.assert_allclose(target, [0.48, 0.2, 0], atol=1e-5)            # the survey's loc * cls
    np.testing.assert_allclose(run(NoisyAnchorAssigner(2, gamma=0.0), GT, [1], ANCHORS, BOXES, SCORES)[4],
                               [1, 1, 0], atol=1e-5)                          # gamma = 0: no re-weighting


def test_candidate_goes_to_the_object_it_overlaps_most_even_if_that_object_did_not_pick_it():
    anchors = np.array([[0, 0, 10, 10], [0, 0, 8, 8], [40, 40, 50, 50]], "float32")
    gt = np.array([[0, 0, 10, 20], [0, 0, 8, 8]], "float32")
    # top-1 of object 0 is anchor 0 (IoU 0.5); anchor 0 overlaps object 1 more (0.64); top-1 of object 1: anchor 1
    m, lab = run(NoisyAnchorAssigner(topk_candidates=1), gt, [0, 1], anchors, anchors,
                 np.full((3, 2), 0.5, "float32"))[:2]
    assert lab.tolist() == [1, 1, 0] and m[:2].tolist() == [1, 1]


def test_one_candidate_and_equal_candidates_get_mean_loc_target():
    out = run(NoisyAnchorAssigner(topk_candidates=1), GT, [1], ANCHORS, BOXES, SCORES)
    np.testing.assert_allclose(out[2], [0.8, 0, 0], atol=1e-5)
    np.testing.assert_allclose(out[4], [1, 0, 0], atol=1e-5)
    assert np.isfinite(out[3]).all()


@pytest.mark.parametrize("seed", range(4))
def test_matches_numpy_reference_on_random_images(seed):
    rng = np.random.default_rng(seed)
    anchors, _ = retina_anchors(64, scales=(4.0, 6.35))
    gt = random_boxes(rng, int(rng.integers(1, 6)), 64)
    classes = rng.integers(0, 3, len(gt))
    boxes = (anchors + rng.normal(0, 3, anchors.shape)).astype("float32")
    scores = rng.uniform(0, 1, (len(anchors), 3)).astype("float32")
    for normalize in (True, False):
        got = run(NoisyAnchorAssigner(topk_candidates=12, normalize=normalize), gt, classes, anchors, boxes, scores)
        ref = np_noisy(gt, classes, anchors, boxes, scores, 12, 0.75, 1.0, normalize)
        np.testing.assert_array_equal(got[1], ref[1].astype("int32"))
        np.testing.assert_array_equal(got[0], ref[0])
        for a, b in zip(got[2:], ref[2:]):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
        if normalize:   # the code's factors average 1 over the concatenated top-k lists
            picks = _picks(gt, anchors, 12)
            np.testing.assert_allclose((got[4] * picks).sum() / picks.sum(), 1.0, rtol=1e-4)


def _picks(gt, anchors, k):
    """How many objects take each anchor among their k of highest IoU."""
    iou = np_iou(gt, anchors)
    picks = np.zeros(len(anchors))
    for row in iou:
        picks[sorted(range(len(anchors)), key=lambda j: (-row[j], j))[:k]] += 1
    return picks


def test_statistics_count_an_anchor_once_per_object_that_took_it():
    # top-2: object 0 takes anchors 0, 1 (IoU 1, 0.5); object 1 takes anchors 2, 0 (IoU 1, 0.5): anchor 0 twice
    anchors = np.array([[0, 0, 10, 10], [0, 0, 10, 5], [0, 0, 10, 20]], "float32")
    gt = np.array([[0, 0, 10, 10], [0, 0, 10, 20]], "float32")
    boxes = np.array([[0, 0, 10, 9], [0, 0, 10, 5], [0, 0, 10, 10]], "float32")   # loc 0.9, 0.5, 0.5
    scores = np.full((3, 1), 0.5, "float32")
    got = run(NoisyAnchorAssigner(topk_candidates=2, alpha=1.0), gt, [0, 0], anchors, boxes, scores)
    # mean(loc) over the lists [0, 1 | 0, 2] = (0.9 + 0.5 + 0.9 + 0.5) / 4 = 0.7 (over the union: 0.633)
    np.testing.assert_allclose(got[2], [1.0, 0.7, 0.7], atol=1e-5)


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
    for kwargs in ({"alpha": 1.5}, {"combine": "mean"}, {"topk_candidates": 0}, {"normalize": "yes"}):
        with pytest.raises(ValueError):
            NoisyAnchorAssigner(**kwargs)



@pytest.mark.parametrize("seed", range(3))
def test_assign_batch_equals_per_image_assign(seed):
    assert_batch_equals_per_image(NoisyAnchorAssigner(topk_candidates=12), seed, scales=(4.0, 6.35))
