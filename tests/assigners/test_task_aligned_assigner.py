"""ppassign.TaskAlignedAssigner: parity with PaddleDetection's TaskAlignedAssigner, corner cases, bad input."""
import numpy as np
import paddle
import pytest

from ppassign import TaskAlignedAssigner
from assign_cases import (anchor_grid, assert_same_assignment, random_gt, random_predictions, reference_assigners,
                          tie_gt)

NUM_CLASSES = 5
BG = NUM_CLASSES
RefTAL = reference_assigners()[1]


def _both(scores, pred, points, counts, labels, boxes, mask, topk=13, **kw):
    ref = RefTAL(topk=topk, **kw)(scores, pred, points, counts, labels, boxes, mask, BG)
    out = TaskAlignedAssigner(topk=topk, **kw)(scores, pred, points, counts, labels, boxes, mask, BG)
    return ref, out


def _inputs(seed, batch=4, num_max=10, image_size=160, **gt_kw):
    rng = np.random.default_rng(seed)
    _, points, counts = anchor_grid(image_size)
    labels, boxes, mask = random_gt(rng, batch, num_max, image_size=image_size, **gt_kw)
    scores, pred = random_predictions(rng, batch, points, image_size=image_size)
    return scores, pred, points, counts, labels, boxes, mask


@pytest.mark.parametrize("seed", range(6))
def test_random_inputs_match_ppdet(seed):
    assert_same_assignment(*_both(*_inputs(seed)))


@pytest.mark.parametrize("alpha, beta, topk", [(1.0, 6.0, 13), (0.5, 2.0, 5), (2.0, 4.0, 1)])
def test_other_hyperparameters_match_ppdet(alpha, beta, topk):
    assert_same_assignment(*_both(*_inputs(10), topk=topk, alpha=alpha, beta=beta))


@pytest.mark.parametrize("label_dtype", ["int32", "int64"])
def test_label_dtypes_match_ppdet_and_are_kept(label_dtype):
    inputs = _inputs(11, label_dtype=label_dtype)
    ref, out = _both(*inputs)
    assert_same_assignment(ref, out)
    assert out[0].dtype == inputs[4].dtype


def _np_iou(pred, box):
    """IoU of boxes [K, 4] with one box [4] (float64, PaddleDetection's 1e-9 on the union)."""
    lo, hi = np.maximum(pred[:, :2], box[:2]), np.minimum(pred[:, 2:], box[2:])
    overlap = (hi - lo).clip(0).prod(-1)
    area = lambda b: (b[..., 2:] - b[..., :2]).clip(0).prod(-1)
    return overlap / (area(pred) + area(box) - overlap + 1e-9)


def test_scores_are_normalised_to_the_best_iou_per_object():
    # TOOD's target: t = s^alpha IoU^beta of each positive, divided by its object's largest t and multiplied by
    # its object's largest IoU over its positives; recomputed in NumPy from the assignment (alpha 1, beta 6).
    scores, pred, points, counts, labels, boxes, mask = _inputs(12)
    out_labels, out_boxes, out_scores = TaskAlignedAssigner()(scores, pred, points, counts, labels, boxes, mask,
                                                              BG)[:3]
    s, p = scores.numpy().astype("float64"), pred.numpy().astype("float64")
    gt, gt_labels, valid = boxes.numpy(), labels.numpy()[..., 0], mask.numpy()[..., 0] > 0
    out_labels, out_boxes = out_labels.numpy(), out_boxes.numpy()
    expected = np.zeros(out_scores.shape)
    best_ious = []
    for b, j in zip(*np.nonzero(valid)):
        positives = np.flatnonzero((out_labels[b] != BG) & (out_boxes[b] == gt[b, j]).all(-1))
        if not len(positives):
            continue
        iou = _np_iou(p[b, positives], gt[b, j].astype("float64"))
        metric = s[b, positives, gt_labels[b, j]] * iou ** 6
        expected[b, positives, gt_labels[b, j]] = metric / (metric.max() + 1e-9) * iou.max()
        best_ious.append(iou.max())
    np.testing.assert_allclose(out_scores.numpy(), expected, rtol=1e-4, atol=1e-6)
    assert len(best_ious) > 10 and max(best_ious) < 0.95  # without the max-IoU factor the best would be 1


def test_predictions_not_overlapping_any_gt_match_ppdet():
    # zero IoU everywhere: every metric is 0 and top-k falls back to PaddleDetection's tie order
    scores, pred, points, counts, labels, boxes, mask = _inputs(13)
    far = paddle.full_like(pred, 1000.0) + paddle.to_tensor([0.0, 0.0, 5.0, 5.0])
    assert_same_assignment(*_both(scores, far, points, counts, labels, boxes, mask))


def test_no_gt_in_batch_gives_background_and_ppdet26_arity():
    scores, pred, points, counts, *_ = _inputs(14, batch=2)
    labels, boxes, mask = paddle.zeros([2, 0, 1], "int32"), paddle.zeros([2, 0, 4]), paddle.zeros([2, 0, 1])
    ref, out = _both(scores, pred, points, counts, labels, boxes, mask)
    assert_same_assignment(ref, out)
    assert (out[0].numpy() == BG).all()


def test_all_padding_images_match_ppdet():
    ref, out = _both(*_inputs(15, num_max=6, fill=[0, 6, 0, 2]))
    assert_same_assignment(ref, out)
    assert (out[0].numpy()[[0, 2]] == BG).all()


def test_zero_width_and_height_boxes_match_ppdet():
    scores, pred, points, counts, *_ = _inputs(16, batch=1)
    boxes = paddle.to_tensor([[[20.0, 20.0, 20.0, 60.0], [50.0, 70.0, 90.0, 70.0], [30.0, 30.0, 80.0, 90.0]]])
    labels = paddle.to_tensor([[[0], [1], [3]]], dtype="int32")
    assert_same_assignment(*_both(scores, pred, points, counts, labels, boxes, paddle.ones([1, 3, 1])))


def test_boxes_partly_outside_image_match_ppdet():
    scores, pred, points, counts, *_ = _inputs(17, batch=1)
    boxes = paddle.to_tensor([[[-40.0, -30.0, 30.0, 20.0], [120.0, 100.0, 260.0, 190.0], [-10.0, 60.0, 12.0, 90.0]]])
    labels = paddle.to_tensor([[[0], [1], [2]]], dtype="int64")
    assert_same_assignment(*_both(scores, pred, points, counts, labels, boxes, paddle.ones([1, 3, 1])))


def test_objects_smaller_than_a_stride_match_ppdet():
    scores, pred, points, counts, labels, boxes, mask = _inputs(18, num_max=12, min_size=0.5)
    small = paddle.to_tensor(np.concatenate([boxes.numpy()[..., :2], boxes.numpy()[..., :2] + 3.0], -1))
    assert_same_assignment(*_both(scores, pred, points, counts, labels, small, mask))


def test_centres_exactly_between_anchors_match_ppdet():
    scores, pred, points, counts, *_ = _inputs(19, batch=2, image_size=128)
    labels, boxes, mask = tie_gt()
    assert_same_assignment(*_both(scores, pred, points, counts, labels, boxes, mask))


def test_gt_scores_are_ignored_like_ppdet():
    scores, pred, points, counts, labels, boxes, mask = _inputs(20)
    plain = TaskAlignedAssigner()(scores, pred, points, counts, labels, boxes, mask, BG)
    weighted = TaskAlignedAssigner()(scores, pred, points, counts, labels, boxes, mask, BG,
                                     gt_scores=paddle.full(mask.shape, 0.3))
    assert_same_assignment(plain, weighted, score_atol=0)


def test_topk_larger_than_anchor_count_takes_every_anchor_inside():
    # ppdet's own assigner raises for topk > L; ours takes all L
    scores, pred, points, counts, labels, boxes, mask = _inputs(21, batch=1, num_max=1, image_size=32, fill=[1])
    num_anchors = points.shape[0]
    big = TaskAlignedAssigner(topk=num_anchors + 50)(scores, pred, points, counts, labels, boxes, mask, BG)
    inside = ((points.numpy() > boxes.numpy()[0, 0, :2] + 1e-9) & (points.numpy() < boxes.numpy()[0, 0, 2:] - 1e-9)).all(1)
    np.testing.assert_array_equal(big[0].numpy()[0] != BG, inside)


def test_chunked_path_gives_identical_outputs():
    inputs = _inputs(22, num_max=12)
    whole = TaskAlignedAssigner()(*inputs, BG)
    chunked = TaskAlignedAssigner(memory_budget_mb=0)(*inputs, BG)
    assert_same_assignment(whole, chunked, score_atol=0)


# --- bad input --------------------------------------------------------------------------------------------------

def _good():
    scores, pred, points, counts, labels, boxes, mask = _inputs(0, batch=2, num_max=3, image_size=64, fill=[3, 3])
    return dict(pred_scores=scores, pred_bboxes=pred, anchor_points=points, num_anchors_list=counts,
                gt_labels=labels, gt_bboxes=boxes, pad_gt_mask=mask, bg_index=BG)


def _set(key, index, value):
    def edit(args):
        arr = args[key].numpy().copy()
        arr[index] = value if not callable(value) else value(arr)
        args[key] = paddle.to_tensor(arr)
    return edit


@pytest.mark.parametrize("edit, message", [
    (lambda a: a.update(pred_scores=a["pred_scores"][0]), "pred_scores must have rank 3"),
    (lambda a: a.update(pred_bboxes=a["pred_bboxes"][:, :10]), "pred_bboxes must have shape"),
    (lambda a: a.update(anchor_points=a["anchor_points"][:5]), "anchor_points must have shape"),
    (lambda a: a.update(gt_bboxes=a["gt_bboxes"][1:]), "gt_labels must have shape"),
    (lambda a: a.update(num_anchors_list=[10, 10]), "num_anchors_list must sum"),
    (_set("gt_bboxes", (0, 0, 1), np.nan), "gt_bboxes contains NaN"),
    (_set("pred_bboxes", (1, 4, 3), np.inf), "pred_bboxes contains NaN"),
    (_set("pred_scores", (1, 4, 0), np.nan), "pred_scores contains NaN"),
    (_set("gt_bboxes", (0, 2, 3), lambda a: a[0, 2, 1] - 1.0), "gt_bboxes must be xyxy"),
    (_set("gt_labels", (1, 1, 0), NUM_CLASSES), "gt_labels must lie in"),
    (lambda a: a.update(bg_index=-1), "bg_index must be"),
])
def test_bad_input_raises_value_error_naming_argument(edit, message):
    args = _good()
    edit(args)
    with pytest.raises(ValueError, match=message):
        TaskAlignedAssigner()(**args)


def test_bad_constructor_arguments_raise():
    with pytest.raises(ValueError, match="topk"):
        TaskAlignedAssigner(topk=0)
    with pytest.raises(ValueError, match="is_close_gt"):
        TaskAlignedAssigner(is_close_gt=True)


def test_points_off_a_regular_grid_use_the_full_path_and_match_ppdet():
    scores, pred, points, counts, labels, boxes, mask = _inputs(23)
    jitter = paddle.to_tensor(np.random.default_rng(23).uniform(-2, 2, size=points.shape).astype("float32"))
    assert_same_assignment(*_both(scores, pred, points + jitter, counts, labels, boxes, mask))


def test_quantised_scores_with_metric_ties_match_ppdet():
    scores, pred, points, counts, labels, boxes, mask = _inputs(24)
    coarse = paddle.to_tensor(np.round(scores.numpy() * 4) / 4 + 0.01)
    big = paddle.to_tensor(np.concatenate([pred.numpy()[..., :2] * 0, pred.numpy()[..., 2:] * 0 + 160], -1))
    assert_same_assignment(*_both(coarse, big, points, counts, labels, boxes, mask))


def _full_rows_ranked(layer, inputs):
    """Run `layer` and return the outputs and how many objects were ranked on their full row."""
    ranked, inner = [], layer._full_row_top_k

    def counting(pairs, metric, rows, num_anchors, k):
        ranked.append(len(rows))
        return inner(pairs, metric, rows, num_anchors, k)

    layer._full_row_top_k = counting
    return layer(*inputs, BG), ranked[0]


def test_random_predictions_rank_few_objects_on_the_full_row():
    inputs = _inputs(25, batch=1, num_max=10, fill=[10])
    out, ranked = _full_rows_ranked(TaskAlignedAssigner(), inputs)
    assert ranked <= 3 and (out[0].numpy() != BG).any()


# --- GPU shape and early-training predictions -------------------------------------------------------------------

def _tal_profile(batch):
    from benchmarks.profiling import profile_call
    from assign_cases import one_object_per_image
    rng = np.random.default_rng(30)
    _, points, counts = anchor_grid(160)
    labels, boxes, mask = one_object_per_image(batch)
    scores, pred = random_predictions(rng, 1, points)
    scores, pred = (paddle.to_tensor(np.tile(t.numpy(), (batch, 1, 1))) for t in (scores, pred))
    return profile_call(TaskAlignedAssigner(), scores, pred, points, counts, labels, boxes, mask, BG)[1]


def test_operators_and_host_copies_do_not_grow_with_batch():
    one, many = _tal_profile(1), _tal_profile(12)
    assert many.operators == one.operators
    assert many.host_copies == one.host_copies == 2
    assert many.shape_syncs == 0


def test_operators_do_not_change_when_ties_need_full_rows():
    # equal scores and one prediction covering everything: every metric of an object ties, so its row is ranked
    # in full (one more host copy); the operators dispatched stay the same
    from benchmarks.profiling import profile_call
    from assign_cases import one_object_per_image
    _, points, counts = anchor_grid(160)
    labels, boxes, mask = one_object_per_image(4)
    scores, pred = random_predictions(np.random.default_rng(31), 4, points)
    tied_scores = paddle.full_like(scores, 0.5)
    tied_pred = paddle.to_tensor(np.tile(np.array([0.0, 0.0, 160.0, 160.0], "float32"), (4, points.shape[0], 1)))
    plain = profile_call(TaskAlignedAssigner(), scores, pred, points, counts, labels, boxes, mask, BG)[1]
    tied = profile_call(TaskAlignedAssigner(), tied_scores, tied_pred, points, counts, labels, boxes, mask, BG)[1]
    assert (plain.host_copies, tied.host_copies) == (2, 3)
    assert tied.operators == plain.operators


def _early_inputs(seed, batch=4, num_max=12, image_size=256):
    from assign_cases import early_predictions
    rng = np.random.default_rng(seed)
    _, points, counts = anchor_grid(image_size)
    labels, boxes, mask = random_gt(rng, batch, num_max, image_size=image_size)
    scores, pred = early_predictions(rng, batch, points, image_size=image_size)
    return scores, pred, points, counts, labels, boxes, mask


@pytest.mark.parametrize("seed", range(3))
def test_early_training_predictions_match_ppdet(seed):
    # 256 px: L = 1344 > 64 * topk, where Paddle's CPU top-k takes zero-metric entries from the row's start only
    assert_same_assignment(*_both(*_early_inputs(seed)))


@pytest.mark.skipif(not paddle.get_device().startswith("cpu"), reason="a property of Paddle's CPU top-k")
def test_cpu_zero_tie_shortcut_spares_most_full_rows_of_early_training_and_changes_nothing(monkeypatch):
    import ppassign.assigners.task_aligned_assigner as tal
    inputs = _early_inputs(41)
    with_shortcut, ranked = _full_rows_ranked(TaskAlignedAssigner(), inputs)
    monkeypatch.setattr(tal, "cpu_topk_keeps_zeros_of_the_row_start", lambda k, width: False)
    without, ranked_without = _full_rows_ranked(TaskAlignedAssigner(), inputs)
    num_objects = int(inputs[-1].sum())
    assert ranked_without > 0.5 * num_objects          # most objects have fewer than k non-zero metrics ...
    assert ranked < 0.1 * num_objects                  # ... and the shortcut settles almost all
    assert_same_assignment(with_shortcut, without, score_atol=0)


def test_object_holding_the_first_anchors_with_zero_metrics_matches_ppdet():
    # its inside zeros include anchors 0..k-1, whose choice depends on the full row: the full-row path runs
    scores, pred, points, counts, labels, boxes, mask = _early_inputs(41, batch=2, num_max=3)
    corner = boxes.numpy().copy()
    corner[:, 0] = [0.0, 0.0, 150.0, 20.0]
    assert_same_assignment(*_both(scores, pred, points, counts, labels, paddle.to_tensor(corner), mask))


@pytest.mark.skipif(not paddle.get_device().startswith("cpu"), reason="a property of Paddle's CPU top-k")
def test_cpu_zero_tie_shortcut_agrees_with_the_kernel_on_random_rows():
    from ppassign.assigners.task_aligned_assigner import cpu_topk_keeps_zeros_of_the_row_start
    rng = np.random.default_rng(42)
    late_zeros = {}
    for k, width in [(13, 8400), (9, 2000), (13, 13 * 64), (13, 300)]:
        rows = np.zeros((200, width), np.float32)
        for row in rows:                               # a few positives anywhere, some inside the first k
            row[rng.choice(width, size=rng.integers(1, k), replace=False)] = rng.uniform(0.1, 1, size=1)
        picked = paddle.topk(paddle.to_tensor(rows), k, axis=-1)[1].numpy()
        zero = np.take_along_axis(rows, picked, 1) == 0
        late_zeros[(k, width)] = bool((zero & (picked >= k)).any())
        if cpu_topk_keeps_zeros_of_the_row_start(k, width):
            assert not late_zeros[(k, width)], (k, width)
    assert cpu_topk_keeps_zeros_of_the_row_start(13, 8400)
    assert late_zeros[(13, 300)]                       # nth_element (k * 64 >= width) takes zeros anywhere
    assert not cpu_topk_keeps_zeros_of_the_row_start(13, 13 * 64)
