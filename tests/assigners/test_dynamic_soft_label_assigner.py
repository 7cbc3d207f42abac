"""ppassign.DynamicSoftLabelAssigner: equal to an independent NumPy re-computation of MMDetection's
DynamicSoftLabelAssigner (per image, loops, float64, logits), corner cases, batch shape, bad input."""
import numpy as np
import paddle
import pytest

from ppassign.assigners.dynamic_soft_label_assigner import DynamicSoftLabelAssigner
from assign_cases import STRIDES, anchor_grid, random_gt

NUM_CLASSES = 5
BG = NUM_CLASSES


# --- the reference: MMDetection's formulas, one image at a time ---------------------------------------------------

def _reference_image(logits, pred, points, strides, gt_boxes, gt_labels, topk, radius, iou_weight):
    """MMDetection's DynamicSoftLabelAssigner.assign for one image, in float64 NumPy.

    Args: logits [L, C], pred [L, 4], points [L, 2], strides [L], gt_boxes [n, 4], gt_labels [n].
    Returns: gt index per anchor (-1 negative) [L], IoU of the match per anchor [L].
    """
    num_anchors, num_classes = logits.shape
    num_gt = len(gt_boxes)
    gt_of = np.full(num_anchors, -1)
    matched_iou = np.zeros(num_anchors)
    if num_gt == 0:
        return gt_of, matched_iou
    inside = np.zeros((num_anchors, num_gt), bool)
    for g in range(num_gt):
        deltas = np.concatenate([points - gt_boxes[g, :2], gt_boxes[g, 2:] - points], axis=1)
        inside[:, g] = deltas.min(1) > 0
    valid = np.nonzero(inside.any(1))[0]
    if len(valid) == 0:
        return gt_of, matched_iou
    cost = np.zeros((len(valid), num_gt))
    ious = np.zeros((len(valid), num_gt))
    for g in range(num_gt):
        box = gt_boxes[g]
        for row, a in enumerate(valid):
            p = pred[a]
            w = max(min(p[2], box[2]) - max(p[0], box[0]), 0)
            h = max(min(p[3], box[3]) - max(p[1], box[1]), 0)
            union = (p[2] - p[0]) * (p[3] - p[1]) + (box[2] - box[0]) * (box[3] - box[1]) - w * h
            iou = w * h / max(union, 1e-6)
            ious[row, g] = iou
            x = logits[a]
            y = np.zeros(num_classes)
            y[gt_labels[g]] = iou
            bce_with_logits = np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))
            cls_cost = (bce_with_logits * np.abs(y - 1 / (1 + np.exp(-x))) ** 2).sum()
            centre = (box[:2] + box[2:]) / 2
            distance = np.sqrt(((points[a] - centre) ** 2).sum()) / strides[a]
            cost[row, g] = cls_cost - np.log(iou + 1e-7) * iou_weight + 10.0 ** (distance - radius)
    match = np.zeros_like(cost, dtype=bool)
    for g in range(num_gt):
        k = max(int(np.sort(ious[:, g])[::-1][:min(topk, len(valid))].sum()), 1)
        match[np.argsort(cost[:, g], kind="stable")[:k], g] = True
    for row in np.nonzero(match.sum(1) > 1)[0]:
        match[row] = False
        match[row, np.argmin(cost[row])] = True
    for row in np.nonzero(match.any(1))[0]:
        g = int(np.argmax(match[row]))
        gt_of[valid[row]] = g
        matched_iou[valid[row]] = ious[row, g]
    return gt_of, matched_iou


def reference(logits, pred, points, strides, labels, boxes, mask, topk=13, radius=3.0, iou_weight=3.0):
    """Batch of `_reference_image` -> labels [B, L] (BG for negatives), boxes [B, L, 4], scores [B, L, C]."""
    batch, num_anchors, num_classes = logits.shape
    out_labels = np.full((batch, num_anchors), BG)
    out_boxes = np.zeros((batch, num_anchors, 4))
    out_scores = np.zeros((batch, num_anchors, num_classes))
    for b in range(batch):
        slots = np.nonzero(mask[b, :, 0] > 0)[0]
        gt_of, iou = _reference_image(logits[b], pred[b], points, strides, boxes[b, slots], labels[b, slots, 0],
                                      topk, radius, iou_weight)
        pos = np.nonzero(gt_of >= 0)[0]
        out_labels[b, pos] = labels[b, slots[gt_of[pos]], 0]
        out_boxes[b, pos] = boxes[b, slots[gt_of[pos]]]
        out_scores[b, pos, out_labels[b, pos]] = iou[pos]
        if boxes.shape[1]:
            out_boxes[b, gt_of < 0] = boxes[b, 0]    # ppdet's convention: negatives get slot 0's box, even padding
    return out_labels, out_boxes, out_scores


# --- inputs ------------------------------------------------------------------------------------------------------

def _inputs(seed, batch=4, num_max=10, image_size=160, predictions="random", **gt_kw):
    """Logits [B, L, C] (float64, for the reference) and the assigner's inputs (probabilities, float32).

    predictions: "random" (boxes around the anchor points) or "trained" (boxes near the objects the anchor lies
    in, so IoUs are high, dynamic k grows and overlapping objects contend for anchors).
    """
    rng = np.random.default_rng(seed)
    _, points, counts = anchor_grid(image_size)
    labels, boxes, mask = random_gt(rng, batch, num_max, image_size=image_size, num_classes=NUM_CLASSES, **gt_kw)
    pts = points.numpy()
    num_anchors = len(pts)
    logits = rng.normal(-1.0, 2.0, size=(batch, num_anchors, NUM_CLASSES))
    half = rng.uniform(2, image_size / 3, size=(batch, num_anchors, 2))
    centre = pts[None] + rng.normal(0, 4, size=(batch, num_anchors, 2))
    pred = np.concatenate([centre - half, centre + half], -1)
    if predictions == "trained":
        gt = boxes.numpy()
        for b in range(batch):
            for j in np.nonzero(mask.numpy()[b, :, 0])[0]:
                inside = ((pts > gt[b, j, :2]) & (pts < gt[b, j, 2:])).all(1)
                size = gt[b, j, 2:] - gt[b, j, :2]
                jitter = rng.normal(0, 0.1, size=(inside.sum(), 4)) * np.tile(size, 2)
                pred[b, inside] = gt[b, j] + jitter
                logits[b, inside, labels.numpy()[b, j, 0]] += 3.0
        pred = np.concatenate([np.minimum(pred[..., :2], pred[..., 2:]), np.maximum(pred[..., :2], pred[..., 2:])], -1)
    pred = pred.astype("float32")
    scores = (1 / (1 + np.exp(-logits))).astype("float32")
    return logits, (paddle.to_tensor(scores), paddle.to_tensor(pred), points, counts, labels, boxes, mask)


def _reference_of(logits, inputs, strides=STRIDES, **kw):
    scores, pred, points, counts, labels, boxes, mask = inputs
    anchor_strides = np.repeat(np.float64(strides), counts)
    return reference(logits, pred.numpy().astype(np.float64), points.numpy().astype(np.float64), anchor_strides,
                     labels.numpy(), boxes.numpy().astype(np.float64), mask.numpy(), **kw)


def assert_equal_to_reference(ref, out):
    np.testing.assert_array_equal(out[0].numpy(), ref[0], err_msg="assigned_labels")
    np.testing.assert_array_equal(out[1].numpy(), ref[1].astype(np.float32), err_msg="assigned_bboxes")
    np.testing.assert_allclose(out[2].numpy(), ref[2], rtol=0, atol=1e-5, err_msg="assigned_scores")


def _run(inputs, **kw):
    return DynamicSoftLabelAssigner(return_mask_positive=False, **kw)(*inputs, BG)


# --- equal to the reference -------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(4))
def test_random_predictions_equal_the_reference(seed):
    logits, inputs = _inputs(seed)
    assert_equal_to_reference(_reference_of(logits, inputs), _run(inputs))


@pytest.mark.parametrize("seed", range(4))
def test_trained_predictions_equal_the_reference(seed):
    logits, inputs = _inputs(10 + seed, predictions="trained")
    ref = _reference_of(logits, inputs)
    assert_equal_to_reference(ref, _run(inputs))
    assert (ref[0] != BG).sum() > 2 * int(inputs[-1].numpy().sum())      # dynamic k above 1 on average


def test_overlapping_objects_contend_and_equal_the_reference():
    # several copies of nearly the same object: anchors matched by several objects go to the cheapest
    logits, inputs = _inputs(20, batch=2, num_max=6, predictions="trained")
    boxes = np.tile(np.array([[[40.0, 40.0, 100.0, 110.0]]], "float32"), (2, 6, 1))
    boxes += np.random.default_rng(20).uniform(-6, 6, size=boxes.shape).astype("float32")
    inputs = inputs[:5] + (paddle.to_tensor(boxes), paddle.ones([2, 6, 1]))
    assert_equal_to_reference(_reference_of(logits, inputs), _run(inputs))


@pytest.mark.parametrize("topk, radius, iou_weight", [(5, 2.0, 1.0), (1, 3.0, 3.0), (20, 4.5, 6.0)])
def test_other_hyperparameters_equal_the_reference(topk, radius, iou_weight):
    logits, inputs = _inputs(30, predictions="trained")
    ref = _reference_of(logits, inputs, topk=topk, radius=radius, iou_weight=iou_weight)
    assert_equal_to_reference(ref, _run(inputs, topk=topk, soft_center_radius=radius, iou_weight=iou_weight))


def test_padding_slots_and_empty_images_equal_the_reference():
    logits, inputs = _inputs(31, num_max=6, fill=[0, 6, 0, 2], predictions="trained")
    ref = _reference_of(logits, inputs)
    assert_equal_to_reference(ref, _run(inputs))
    assert (ref[0][[0, 2]] == BG).all()


def test_boxes_between_anchor_points_give_no_candidates_and_background():
    # no anchor point strictly inside any object of image 0: MMDetection gives the image no positives
    logits, inputs = _inputs(32, batch=2, num_max=2, fill=[2, 2])
    boxes = inputs[5].numpy()
    boxes[0] = [[0.0, 0.0, 4.0, 4.0], [4.0, 4.0, 4.0, 30.0]]     # 4 px corner box; zero-width box on x = 4
    inputs = inputs[:5] + (paddle.to_tensor(boxes), inputs[6])
    ref = _reference_of(logits, inputs)
    out = _run(inputs)
    assert_equal_to_reference(ref, out)
    assert (out[0].numpy()[0] == BG).all() and (out[0].numpy()[1] != BG).any()


def test_no_candidate_in_the_whole_batch_gives_background():
    logits, inputs = _inputs(33, batch=2, num_max=1, fill=[1, 1])
    tiny = paddle.to_tensor(np.array([[[0.0, 0.0, 3.0, 3.0]], [[100.0, 100.0, 100.0, 140.0]]], "float32"))
    out = _run(inputs[:5] + (tiny, inputs[6]))
    assert (out[0].numpy() == BG).all() and float(out[2].abs().sum()) == 0


def test_objects_partly_outside_the_image_equal_the_reference():
    logits, inputs = _inputs(34, predictions="trained")
    shifted = inputs[5] + paddle.to_tensor([-60.0, -60.0, -60.0, -60.0])
    inputs = inputs[:5] + (shifted, inputs[6])
    assert_equal_to_reference(_reference_of(logits, inputs), _run(inputs))


def test_far_candidates_whose_centre_cost_overflows_float32_equal_the_reference():
    # a 1280 px image: candidates of one object lie > 41 strides from another's centre (10 ** 38 overflows)
    logits, inputs = _inputs(35, batch=1, num_max=2, image_size=1280, fill=[2])
    boxes = paddle.to_tensor(np.array([[[8.0, 8.0, 200.0, 200.0], [1000.0, 1000.0, 1270.0, 1270.0]]], "float32"))
    inputs = inputs[:5] + (boxes, inputs[6])
    assert_equal_to_reference(_reference_of(logits, inputs), _run(inputs))


def test_no_gt_in_batch_gives_background_and_every_arity():
    _, (scores, pred, points, counts, *_) = _inputs(36, batch=2)
    empty = (paddle.zeros([2, 0, 1], "int32"), paddle.zeros([2, 0, 4]), paddle.zeros([2, 0, 1]))
    three = _run((scores, pred, points, counts) + empty)
    four = DynamicSoftLabelAssigner(return_mask_positive=True)(scores, pred, points, counts, *empty, BG)
    assert len(three) == 3 and len(four) == 4 and four[3].shape == [2, 0, points.shape[0]]
    assert (three[0].numpy() == BG).all()


def test_mask_positive_marks_each_positive_at_its_slot():
    _, inputs = _inputs(37, predictions="trained")
    labels, bboxes, scores, mask_positive = DynamicSoftLabelAssigner(return_mask_positive=True)(*inputs, BG)
    positive = labels.numpy() != BG
    np.testing.assert_array_equal(mask_positive.numpy().sum(1) > 0, positive)
    assert mask_positive.numpy().sum(1).max() == 1


@pytest.mark.parametrize("label_dtype", ["int32", "int64"])
def test_label_dtype_is_kept(label_dtype):
    logits, inputs = _inputs(38, label_dtype=label_dtype)
    out = _run(inputs)
    assert out[0].dtype == inputs[4].dtype
    assert_equal_to_reference(_reference_of(logits, inputs), out)


def test_targets_are_ious_at_the_label_column():
    _, inputs = _inputs(39, predictions="trained")
    labels, _, scores = _run(inputs)
    labels, scores = labels.numpy(), scores.numpy()
    positive = labels != BG
    assert (scores[~positive] == 0).all()
    on_label = np.take_along_axis(scores, np.where(positive, labels, 0)[..., None], -1)[..., 0]
    assert on_label.min() >= 0 and on_label.max() <= 1 and np.median(on_label[positive]) > 0.5
    assert ((scores > 0).sum(-1) <= 1).all()


def test_gt_scores_are_ignored():
    _, inputs = _inputs(40)
    gt_scores = paddle.rand(inputs[6].shape)
    out = DynamicSoftLabelAssigner(return_mask_positive=False)(*inputs, BG, gt_scores=gt_scores)
    for a, b in zip(out, _run(inputs)):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_chunked_path_gives_identical_outputs():
    _, inputs = _inputs(41, predictions="trained")
    for a, b in zip(_run(inputs), _run(inputs, memory_budget_mb=0)):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_points_off_a_grid_need_strides_and_then_equal_the_reference():
    logits, inputs = _inputs(42)
    jitter = np.random.default_rng(42).uniform(-2, 2, size=inputs[2].shape).astype("float32")
    inputs = inputs[:2] + (inputs[2] + paddle.to_tensor(jitter),) + inputs[3:]
    with pytest.raises(ValueError, match="strides"):
        _run(inputs)
    assert_equal_to_reference(_reference_of(logits, inputs), _run(inputs, strides=list(STRIDES)))


# --- mixed precision --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_inputs_are_computed_in_float32(dtype):
    _, inputs = _inputs(43, predictions="trained")
    scores, pred, points, counts, labels, boxes, mask = inputs
    low = [t.astype(dtype) for t in (scores, pred, points, boxes)]
    rounded = [t.astype("float32") for t in low]
    out = DynamicSoftLabelAssigner(return_mask_positive=True)(low[0], low[1], low[2], counts, labels, low[3], mask,
                                                               BG)
    ref = DynamicSoftLabelAssigner(return_mask_positive=True)(rounded[0], rounded[1], rounded[2], counts, labels,
                                                               rounded[3], mask, BG)
    assert [t.dtype for t in out[1:]] == [paddle.float32] * 3
    for a, b in zip(out, ref):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


# --- GPU shape --------------------------------------------------------------------------------------------------

def _profile(batch):
    from benchmarks.profiling import profile_call
    from assign_cases import one_object_per_image
    _, inputs = _inputs(50, batch=1, predictions="trained")
    scores, pred, points, counts = inputs[:4]
    labels, boxes, mask = one_object_per_image(batch)
    scores, pred = (paddle.to_tensor(np.tile(t.numpy(), (batch, 1, 1))) for t in (scores, pred))
    return profile_call(DynamicSoftLabelAssigner(), scores, pred, points, counts, labels, boxes, mask, BG)[1]


def test_operators_and_host_copies_do_not_grow_with_batch():
    one, many = _profile(1), _profile(32)
    assert many.operators == one.operators
    assert many.host_copies == one.host_copies == 1
    assert many.shape_syncs == 0


# --- bad input --------------------------------------------------------------------------------------------------

def _good():
    _, (scores, pred, points, counts, labels, boxes, mask) = _inputs(0, batch=2, num_max=3, image_size=64,
                                                                     fill=[3, 3])
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
    (lambda a: a.update(num_anchors_list=[10, 10]), "num_anchors_list must sum"),
    (_set("gt_bboxes", (0, 0, 1), np.nan), "gt_bboxes contains NaN"),
    (_set("pred_bboxes", (1, 4, 3), np.inf), "pred_bboxes contains NaN"),
    (_set("pred_scores", (1, 4, 0), np.nan), "pred_scores contains NaN"),
    (_set("anchor_points", (3, 0), np.nan), "anchor_points contains NaN"),
    (_set("gt_bboxes", (0, 2, 3), lambda a: a[0, 2, 1] - 1.0), "gt_bboxes must be xyxy"),
    (_set("gt_labels", (1, 1, 0), NUM_CLASSES), "gt_labels must lie in"),
    (lambda a: a.update(bg_index=-1), "bg_index must be"),
])
def test_bad_input_raises_value_error_naming_argument(edit, message):
    args = _good()
    edit(args)
    with pytest.raises(ValueError, match=message):
        DynamicSoftLabelAssigner()(**args)


def test_strides_of_the_wrong_length_raise():
    with pytest.raises(ValueError, match="one stride per level"):
        DynamicSoftLabelAssigner(strides=[8, 16])(**_good())


def test_bad_constructor_arguments_raise():
    with pytest.raises(ValueError, match="topk"):
        DynamicSoftLabelAssigner(topk=0)
    with pytest.raises(ValueError, match="strides"):
        DynamicSoftLabelAssigner(strides=[8, 0, 32])


# --- configs ----------------------------------------------------------------------------------------------------

def _config(*parts):
    import os
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", *parts)


@pytest.mark.parametrize("swap, base", [
    (("configs", "ppyoloe", "ppyoloe_plus_crn_s_80e_coco_dsl.yml"),
     ("configs", "ppyoloe", "ppyoloe_plus_crn_s_80e_coco.yml")),
    (("configs", "ppyoloe", "ppyoloe_plus_tiny_synthetic_dsl.yml"),
     ("configs", "ppyoloe", "ppyoloe_plus_tiny_synthetic.yml")),
    (("benchmarks", "configs", "dsl_only.yml"), ("benchmarks", "configs", "tal_only.yml")),
])
def test_configs_differ_from_their_base_by_the_assigner_only(swap, base):
    from ppdet.core.workspace import create
    from ppassign.engine.config import load_config

    def read(parts):
        cfg = load_config(_config(*parts))
        head = {k: (dict(v) if isinstance(v, dict) else v) for k, v in cfg["PPYOLOEHead"].items()}
        rest = {k: cfg[k] for k in ("architecture", "epoch", "depth_mult", "width_mult", "norm_type")}
        return head, rest, dict(cfg["TrainReader"])["batch_size"], dict(cfg["CSPResNet"])

    theirs = read(base)
    ours = read(swap)                                 # loaded last: the model below is built from it
    assert ours[0].pop("assigner") == "PPAssignDynamicSoftLabelAssigner"
    assert theirs[0].pop("assigner")["name"] == "PPAssignTaskAlignedAssigner"
    assert ours == theirs
    assert isinstance(create(ours[1]["architecture"]).yolo_head.assigner, DynamicSoftLabelAssigner)
