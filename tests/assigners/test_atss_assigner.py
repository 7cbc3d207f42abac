"""ppassign.ATSSAssigner: parity with PaddleDetection's ATSSAssigner, corner cases, bad input."""
import numpy as np
import paddle
import pytest

from ppassign import ATSSAssigner
from retina_cases import np_atss
from assign_cases import (anchor_grid, assert_same_assignment, random_gt, random_predictions, reference_assigners,
                          tie_gt)

NUM_CLASSES = 5
BG = NUM_CLASSES
RefATSS = reference_assigners()[0]


def _both(anchors, counts, labels, boxes, mask, topk=9, force=False, **kw):
    ref = RefATSS(topk=topk, num_classes=NUM_CLASSES, force_gt_matching=force)(
        anchors, counts, labels, boxes, mask, BG, **kw)
    out = ATSSAssigner(topk=topk, num_classes=NUM_CLASSES, force_gt_matching=force)(
        anchors, counts, labels, boxes, mask, BG, **kw)
    return ref, out


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("force", [False, True])
def test_random_inputs_match_ppdet(seed, force):
    rng = np.random.default_rng(seed)
    anchors, _, counts = anchor_grid(160)
    labels, boxes, mask = random_gt(rng, 4, 10)
    assert_same_assignment(*_both(anchors, counts, labels, boxes, mask, force=force))


@pytest.mark.parametrize("label_dtype", ["int32", "int64"])
def test_label_dtypes_match_ppdet_and_are_kept(label_dtype):
    rng = np.random.default_rng(1)
    anchors, _, counts = anchor_grid(160)
    labels, boxes, mask = random_gt(rng, 3, 8, label_dtype=label_dtype)
    ref, out = _both(anchors, counts, labels, boxes, mask)
    assert_same_assignment(ref, out)
    assert out[0].dtype == labels.dtype


def test_pred_bboxes_scale_scores_by_iou_like_ppdet():
    rng = np.random.default_rng(2)
    anchors, points, counts = anchor_grid(160)
    labels, boxes, mask = random_gt(rng, 4, 10)
    _, pred = random_predictions(rng, 4, points)
    ref, out = _both(anchors, counts, labels, boxes, mask, pred_bboxes=pred)
    assert_same_assignment(ref, out)
    assert 0 < float(out[2].max()) < 1


def test_gt_scores_scale_scores_like_ppdet():
    rng = np.random.default_rng(3)
    anchors, _, counts = anchor_grid(160)
    labels, boxes, mask = random_gt(rng, 4, 10)
    gt_scores = paddle.to_tensor(rng.uniform(0.1, 1, size=mask.shape).astype("float32"))
    assert_same_assignment(*_both(anchors, counts, labels, boxes, mask, gt_scores=gt_scores))


def test_no_gt_in_batch_gives_background_and_ppdet26_arity():
    anchors, _, counts = anchor_grid(160)
    labels, boxes, mask = paddle.zeros([2, 0, 1], "int32"), paddle.zeros([2, 0, 4]), paddle.zeros([2, 0, 1])
    ref, out = _both(anchors, counts, labels, boxes, mask)
    assert_same_assignment(ref, out)
    assert (out[0].numpy() == BG).all() and float(out[2].abs().sum()) == 0
    # as many values as the installed ppdet's heads unpack: paddledet 2.6 adds the empty mask_positive [B, 0, L]
    from ppassign.compat import ASSIGNER_RETURNS_MASK_POSITIVE
    assert len(out) == (4 if ASSIGNER_RETURNS_MASK_POSITIVE else 3)
    assert len(out) == 3 or list(out[3].shape) == [2, 0, anchors.shape[0]]


def test_all_padding_images_match_ppdet():
    rng = np.random.default_rng(4)
    anchors, _, counts = anchor_grid(160)
    labels, boxes, mask = random_gt(rng, 4, 6, fill=[0, 6, 0, 3])
    ref, out = _both(anchors, counts, labels, boxes, mask)
    assert_same_assignment(ref, out)
    assert (out[0].numpy()[[0, 2]] == BG).all()


def test_whole_batch_padding_matches_ppdet():
    rng = np.random.default_rng(5)
    anchors, _, counts = anchor_grid(160)
    labels, boxes, mask = random_gt(rng, 2, 4, fill=[0, 0])
    ref, out = _both(anchors, counts, labels, boxes, mask, force=True)
    assert_same_assignment(ref, out)
    assert (out[0].numpy() == BG).all()


def test_zero_width_and_height_boxes_match_ppdet():
    anchors, _, counts = anchor_grid(160)
    boxes = paddle.to_tensor([[[20.0, 20.0, 20.0, 60.0], [50.0, 70.0, 90.0, 70.0], [5.0, 5.0, 5.0, 5.0],
                               [30.0, 30.0, 80.0, 90.0]]])
    labels = paddle.to_tensor([[[0], [1], [2], [3]]], dtype="int32")
    mask = paddle.ones([1, 4, 1])
    for force in (False, True):
        assert_same_assignment(*_both(anchors, counts, labels, boxes, mask, force=force))


def test_boxes_partly_outside_image_match_ppdet():
    anchors, _, counts = anchor_grid(160)
    boxes = paddle.to_tensor([[[-40.0, -30.0, 30.0, 20.0], [120.0, 100.0, 260.0, 190.0], [-10.0, 60.0, 12.0, 90.0]]])
    labels = paddle.to_tensor([[[0], [1], [2]]], dtype="int64")
    for force in (False, True):
        assert_same_assignment(*_both(anchors, counts, labels, boxes, paddle.ones([1, 3, 1]), force=force))


def test_objects_smaller_than_a_stride_match_ppdet():
    rng = np.random.default_rng(6)
    anchors, _, counts = anchor_grid(160)
    labels, boxes, mask = random_gt(rng, 3, 12, min_size=0.5)
    boxes = paddle.to_tensor(np.concatenate([boxes.numpy()[..., :2], boxes.numpy()[..., :2] + 3.0], -1))
    for force in (False, True):
        assert_same_assignment(*_both(anchors, counts, labels, boxes, mask, force=force))


def test_centres_exactly_between_anchors_match_ppdet():
    anchors, _, counts = anchor_grid(128)
    labels, boxes, mask = tie_gt()
    for force in (False, True):
        ref, out = _both(anchors, counts, labels, boxes, mask, force=force)
        assert_same_assignment(ref, out)


def test_force_gt_matching_gives_every_gt_an_anchor():
    anchors, _, counts = anchor_grid(160)
    # a thin box far from any anchor shape: ATSS alone leaves it without positives
    boxes = paddle.to_tensor([[[70.0, 10.0, 71.5, 150.0]]])
    labels = paddle.to_tensor([[[2]]], dtype="int32")
    mask = paddle.ones([1, 1, 1])
    ref, out = _both(anchors, counts, labels, boxes, mask, force=True)
    assert_same_assignment(ref, out)
    assert (out[0].numpy() == 2).sum() >= 1


def test_level_with_fewer_anchors_than_topk_uses_the_whole_level():
    # 64 px image: the stride-32 level has 4 anchors < topk=9 (ppdet's own assigner raises here)
    anchors, _, counts = anchor_grid(64)
    boxes_np = np.array([[4.0, 6.0, 40.0, 50.0], [30.0, 2.0, 62.0, 20.0]], "float32")
    labels = paddle.to_tensor([[[0], [1]]], dtype="int32")
    out = ATSSAssigner(topk=9, num_classes=NUM_CLASSES)(anchors, counts, labels, paddle.to_tensor(boxes_np[None]),
                                                         paddle.ones([1, 2, 1]), BG)
    expected = np_atss(boxes_np, anchors.numpy(), counts, 9)[0]
    assert not (expected.sum(0) > 1).any()
    positive = out[0].numpy()[0] != BG
    np.testing.assert_array_equal(positive, expected.any(0))
    assert counts[-1] < 9


def test_chunked_path_gives_identical_outputs():
    rng = np.random.default_rng(7)
    anchors, points, counts = anchor_grid(160)
    labels, boxes, mask = random_gt(rng, 3, 12)
    _, pred = random_predictions(rng, 3, points)
    whole = ATSSAssigner(num_classes=NUM_CLASSES, force_gt_matching=True)(anchors, counts, labels, boxes, mask, BG,
                                                                          pred_bboxes=pred)
    chunked = ATSSAssigner(num_classes=NUM_CLASSES, force_gt_matching=True, memory_budget_mb=0)(
        anchors, counts, labels, boxes, mask, BG, pred_bboxes=pred)
    assert_same_assignment(whole, chunked, score_atol=0)


def test_return_arity_can_be_forced_to_ppdet27():
    anchors, _, counts = anchor_grid(64)
    labels, boxes, mask = random_gt(np.random.default_rng(0), 1, 2, image_size=64)
    out = ATSSAssigner(topk=3, num_classes=NUM_CLASSES, return_mask_positive=False)(
        anchors, counts, labels, boxes, mask, BG)
    assert len(out) == 3


# --- bad input --------------------------------------------------------------------------------------------------

def _good():
    anchors, _, counts = anchor_grid(64)
    labels, boxes, mask = random_gt(np.random.default_rng(0), 2, 3, image_size=64, fill=[3, 3])
    return dict(anchor_bboxes=anchors, num_anchors_list=counts, gt_labels=labels, gt_bboxes=boxes,
                pad_gt_mask=mask, bg_index=BG)


def _numpy_edit(tensor, fn):
    arr = tensor.numpy().copy()
    fn(arr)
    return paddle.to_tensor(arr)


@pytest.mark.parametrize("name, edit, message", [
    ("gt_bboxes", lambda a: a.update(gt_bboxes=a["gt_bboxes"][0]), "gt_bboxes must have rank 3"),
    ("gt_labels", lambda a: a.update(gt_labels=a["gt_labels"][:, :2]), "gt_labels must have shape"),
    ("anchor_bboxes", lambda a: a.update(anchor_bboxes=a["anchor_bboxes"][:, :2]), "anchor_bboxes must have last"),
    ("num_anchors_list", lambda a: a.update(num_anchors_list=[64, 16, 3]), "num_anchors_list must sum"),
    ("nan", lambda a: a.update(gt_bboxes=_numpy_edit(a["gt_bboxes"], lambda x: x.__setitem__((0, 1, 2), np.nan))),
     "gt_bboxes contains NaN"),
    ("inf", lambda a: a.update(anchor_bboxes=_numpy_edit(a["anchor_bboxes"], lambda x: x.__setitem__((3, 0), np.inf))),
     "anchor_bboxes contains NaN"),
    ("x2<x1", lambda a: a.update(gt_bboxes=_numpy_edit(a["gt_bboxes"], lambda x: x.__setitem__((1, 0, 2), x[1, 0, 0] - 5.0))),
     "gt_bboxes must be xyxy"),
    ("label", lambda a: a.update(gt_labels=_numpy_edit(a["gt_labels"], lambda x: x.__setitem__((0, 0, 0), 7))),
     "gt_labels must lie in"),
    ("negative label", lambda a: a.update(gt_labels=_numpy_edit(a["gt_labels"], lambda x: x.__setitem__((1, 2, 0), -1))),
     "gt_labels must lie in"),
    ("bg_index", lambda a: a.update(bg_index=NUM_CLASSES + 3), "bg_index must be"),
    ("float labels", lambda a: a.update(gt_labels=a["gt_labels"].astype("float32")), "gt_labels must be int"),
])
def test_bad_input_raises_value_error_naming_argument(name, edit, message):
    args = _good()
    edit(args)
    with pytest.raises(ValueError, match=message):
        ATSSAssigner(topk=3, num_classes=NUM_CLASSES)(**args)


def test_bad_constructor_arguments_raise():
    with pytest.raises(ValueError, match="topk"):
        ATSSAssigner(topk=0)
    with pytest.raises(ValueError, match="sm_use"):
        ATSSAssigner(sm_use=True)


def test_anchors_off_a_regular_grid_use_the_full_path_and_match_ppdet():
    rng = np.random.default_rng(8)
    anchors, _, counts = anchor_grid(160)
    jitter = paddle.to_tensor(rng.uniform(-2, 2, size=(anchors.shape[0], 1)).astype("float32"))
    labels, boxes, mask = random_gt(rng, 3, 8)
    assert_same_assignment(*_both(anchors + jitter, counts, labels, boxes, mask))


def test_integer_boxes_with_many_distance_ties_match_ppdet():
    rng = np.random.default_rng(9)
    anchors, _, counts = anchor_grid(160)
    labels, boxes, mask = random_gt(rng, 4, 16)
    boxes = paddle.to_tensor(np.round(boxes.numpy() / 4) * 4)
    for force in (False, True):
        assert_same_assignment(*_both(anchors, counts, labels, boxes, mask, force=force))


def test_window_candidates_equal_full_level_candidates_where_settled():
    from ppassign.ops import geometry
    from ppassign.assigners import grid
    rng = np.random.default_rng(10)
    anchors, _, counts = anchor_grid(160)
    _, boxes, _ = random_gt(rng, 1, 12, fill=[12])
    centers = geometry.box_centers(boxes[0])
    anchor_centers = geometry.box_centers(anchors)
    layer = ATSSAssigner(topk=9)
    axes = grid.level_axes(anchor_centers.numpy(), counts)
    window, unsettled = layer._window_candidates(centers, centers.numpy(), anchor_centers.numpy(), axes, counts)
    assert unsettled.mean() < 0.2                     # random float boxes: ties and far centres are rare
    full = layer._full_level_candidates(centers, anchor_centers, np.arange(12), geometry.level_slices(counts))
    np.testing.assert_array_equal(window.numpy()[~unsettled], full.numpy()[~unsettled])   # same anchors, same order


def test_objects_with_tied_window_distances_are_unsettled():
    from ppassign.ops import geometry
    from ppassign.assigners import grid
    anchors, _, counts = anchor_grid(128)
    _, boxes, _ = tie_gt(batch=1)
    centers = geometry.box_centers(boxes[0])
    anchor_centers = geometry.box_centers(anchors)
    axes = grid.level_axes(anchor_centers.numpy(), counts)
    _, unsettled = ATSSAssigner(topk=9)._window_candidates(centers, centers.numpy(), anchor_centers.numpy(), axes,
                                                           counts)
    assert unsettled.all()                            # every centre sits exactly between anchors


# --- GPU shape: work per call does not grow with the batch ------------------------------------------------------

def _atss_profile(batch):
    from benchmarks.profiling import profile_call
    from assign_cases import one_object_per_image
    anchors, points, counts = anchor_grid(160)
    labels, boxes, mask = one_object_per_image(batch)
    pred = paddle.to_tensor(np.tile(anchors.numpy()[None], (batch, 1, 1)))
    layer = ATSSAssigner(num_classes=NUM_CLASSES, force_gt_matching=True)
    return profile_call(layer, anchors, counts, labels, boxes, mask, BG, pred_bboxes=pred)[1]


def test_operators_and_host_copies_do_not_grow_with_batch():
    one, many = _atss_profile(1), _atss_profile(12)
    assert many.operators == one.operators
    assert many.host_copies == one.host_copies == 2
    assert many.shape_syncs == 0


def test_distance_ties_cost_neither_operators_nor_host_copies():
    from benchmarks.profiling import profile_call
    anchors, points, counts = anchor_grid(128)
    labels, tied, mask = tie_gt(batch=2)
    plain = paddle.to_tensor(tied.numpy() + np.float32(0.37))                    # same boxes, off the ties
    layer = ATSSAssigner(num_classes=NUM_CLASSES, force_gt_matching=True)
    with_ties = profile_call(layer, anchors, counts, labels, tied, mask, BG)[1]
    without = profile_call(layer, anchors, counts, labels, plain, mask, BG)[1]
    assert with_ties.operators == without.operators
    assert with_ties.host_copies == without.host_copies == 2


def test_unbiased_std_is_bit_identical_to_paddle_std():
    from ppassign.assigners.assign_utils import std_unbiased
    x = paddle.to_tensor(np.random.default_rng(11).uniform(0, 1, size=(7, 27)).astype("float32"))
    np.testing.assert_array_equal(std_unbiased(x).numpy(), x.std(axis=-1, keepdim=True).numpy())
