"""ppassign.SimOTAAssigner: parity with PaddleDetection's SimOTAAssigner (per image, both cost variants), corner
cases, the batched path, mixed precision, bad input."""
import json
import os

import numpy as np
import paddle
import pytest

from ppassign.assigners.simota_assigner import SimOTAAssigner
from assign_cases import STRIDES, anchor_grid

NUM_CLASSES = 5


def _ref_class():
    import ppassign  # noqa: F401
    from ppdet.modeling.assigners.simota_assigner import SimOTAAssigner as PpdetSimOTA
    return PpdetSimOTA


def _anchors(image_size=160, strides=STRIDES):
    """YOLOX's (x, y, stride, stride) of every anchor, [L, 4]."""
    _, points, counts = anchor_grid(image_size, strides)
    stride = np.repeat(np.float32(strides), counts)[:, None]
    return paddle.to_tensor(np.concatenate([points.numpy(), stride, stride], 1))


def _image(seed, num_gt, image_size=160, predictions="trained", min_size=1.0):
    """One image's (scores [L, C], centre_and_strides [L, 4], pred [L, 4], gt boxes [n, 4], labels [n, 1])."""
    rng = np.random.default_rng(seed)
    anchors = _anchors(image_size)
    points = anchors.numpy()[:, :2]
    num = len(points)
    if predictions == "early":            # start of training: low scores, small boxes anywhere
        scores = rng.uniform(0.0, 0.05, (num, NUM_CLASSES))
        centre, half = rng.uniform(0, image_size, (num, 2)), rng.uniform(1, 6, (num, 2))
    else:
        scores = rng.uniform(0.01, 0.99, (num, NUM_CLASSES))
        centre, half = points + rng.normal(0, 4, (num, 2)), rng.uniform(2, image_size / 3, (num, 2))
    wh = np.exp(rng.uniform(np.log(min_size), np.log(image_size * 0.8), (num_gt, 2)))
    xy = rng.uniform(0, image_size, (num_gt, 2)) - wh / 2
    to = paddle.to_tensor
    pred = np.concatenate([centre - half, centre + half], 1).astype("float32")
    return (to(scores.astype("float32")), anchors, to(pred),
            to(np.concatenate([xy, xy + wh], 1).astype("float32")),
            to(rng.integers(0, NUM_CLASSES, (num_gt, 1)).astype("int32")))


def _both(inputs, **kw):
    ref = _ref_class()(num_classes=NUM_CLASSES, **kw)(*inputs)
    out = SimOTAAssigner(num_classes=NUM_CLASSES, **kw)(*inputs)
    return ref, out


def assert_same(ref, out):
    assert out[0] == ref[0] and type(out[0]) is int
    for name, a, b in zip(("label", "label_weight", "bbox_target"), ref[1:], out[1:]):
        assert isinstance(b, np.ndarray) and b.dtype == a.dtype and b.shape == a.shape, name
        np.testing.assert_array_equal(b, a, err_msg=name)


def _with_boxes(inputs, boxes, labels=None):
    boxes = paddle.to_tensor(np.asarray(boxes, "float32").reshape(-1, 4))
    if labels is None:
        labels = paddle.to_tensor(np.arange(boxes.shape[0]).reshape(-1, 1).astype("int32") % NUM_CLASSES)
    return inputs[:3] + (boxes, labels)


# --- parity with ppdet ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("use_vfl", [True, False])
@pytest.mark.parametrize("seed, num_gt", [(0, 3), (1, 10), (2, 30), (3, 60)])
def test_random_inputs_match_ppdet(seed, num_gt, use_vfl):
    assert_same(*_both(_image(seed, num_gt), use_vfl=use_vfl))


@pytest.mark.parametrize("use_vfl", [True, False])
@pytest.mark.parametrize("seed", range(3))
def test_early_training_predictions_match_ppdet(seed, use_vfl):
    # low IoUs everywhere: many objects take candidates outside their box-and-centre region (1e8 cost ties)
    assert_same(*_both(_image(10 + seed, 20, predictions="early"), use_vfl=use_vfl))


@pytest.mark.parametrize("use_vfl", [True, False])
def test_one_object_matches_ppdet(use_vfl):
    assert_same(*_both(_with_boxes(_image(20, 1), [[30.0, 40.0, 90.0, 110.0]]), use_vfl=use_vfl))


@pytest.mark.parametrize("use_vfl", [True, False])
def test_no_objects_match_ppdet(use_vfl):
    ref, out = _both(_with_boxes(_image(21, 1), np.zeros((0, 4)), paddle.zeros([0, 1], "int32")), use_vfl=use_vfl)
    assert_same(ref, out)
    assert out[0] == 0 and (out[1] == NUM_CLASSES).all()


@pytest.mark.parametrize("use_vfl", [True, False])
def test_tiny_and_degenerate_boxes_match_ppdet(use_vfl):
    boxes = [[50.0, 50.0, 50.0, 50.0],        # a point
             [20.0, 20.0, 20.0, 60.0],        # zero width
             [70.0, 90.0, 110.0, 90.0],       # zero height
             [101.0, 101.0, 102.5, 102.0],    # smaller than a stride, between anchor points
             [0.0, 0.0, 0.0, 0.0]]            # ppdet's padding box, which its heads pass as an object
    assert_same(*_both(_with_boxes(_image(22, 1), boxes), use_vfl=use_vfl))


@pytest.mark.parametrize("use_vfl", [True, False])
def test_objects_with_every_candidate_outside_their_box_and_centre_match_ppdet(use_vfl):
    # boxes between anchor points and boxes just outside the image: candidates only from centre squares or from
    # other objects, every cost of these objects is 1e8 + c
    boxes = [[1.0, 1.0, 3.0, 3.0], [-30.0, 60.0, -2.0, 90.0], [40.0, 161.0, 80.0, 190.0], [60.0, 60.0, 100.0, 100.0]]
    assert_same(*_both(_with_boxes(_image(23, 1, predictions="early"), boxes), use_vfl=use_vfl))


def test_no_candidate_at_all_gives_background_where_ppdet_raises():
    inputs = _with_boxes(_image(24, 1), [[1000.0, 1000.0, 1010.0, 1010.0]])
    with pytest.raises(Exception):
        _ref_class()(num_classes=NUM_CLASSES)(*inputs)
    pos_num, label, weight, target = SimOTAAssigner(num_classes=NUM_CLASSES)(*inputs)
    assert pos_num == 1 and (label == NUM_CLASSES).all() and (weight == 1).all() and (target == 0).all()


@pytest.mark.parametrize("kw", [dict(center_radius=1.5, candidate_topk=5), dict(iou_weight=1.0, cls_weight=2.0),
                                dict(candidate_topk=1, use_vfl=False)])
def test_other_hyperparameters_match_ppdet(kw):
    assert_same(*_both(_image(25, 12), **kw))


def test_quantised_scores_and_identical_predictions_match_ppdet():
    scores, anchors, pred, boxes, labels = _image(26, 8)
    coarse = paddle.to_tensor(np.round(scores.numpy() * 4) / 4 * 0.9 + 0.05)
    same = paddle.to_tensor(np.tile(np.array([[20.0, 20.0, 60.0, 60.0]], "float32"), (pred.shape[0], 1)))
    assert_same(*_both((coarse, anchors, same, boxes, labels)))


def test_points_off_a_grid_match_ppdet():
    scores, anchors, pred, boxes, labels = _image(27, 10)
    jitter = np.zeros(anchors.shape, "float32")
    jitter[:, :2] = np.random.default_rng(27).uniform(-2, 2, (anchors.shape[0], 2))
    assert_same(*_both((scores, anchors + paddle.to_tensor(jitter), pred, boxes, labels)))


@pytest.mark.parametrize("use_vfl", [True, False])
@pytest.mark.parametrize("predictions", ["trained", "early"])
def test_per_level_grid_ranges_for_many_pairs_match_ppdet(monkeypatch, predictions, use_vfl):
    # above HOST_PAIRS_DENSE (object, anchor) pairs, step 1 reads index ranges off each level's grid
    from ppassign.assigners import simota_assigner
    monkeypatch.setattr(simota_assigner, "HOST_PAIRS_DENSE", 0)
    inputs = _image(29, 12, predictions=predictions)
    boxes = np.concatenate([inputs[3].numpy(), [[50.0, 50.0, 50.0, 50.0], [1.0, 1.0, 3.0, 3.0],
                                                [-30.0, 60.0, -2.0, 90.0]]]).astype("float32")
    assert_same(*_both(_with_boxes(inputs, boxes), use_vfl=use_vfl))


def test_chunked_path_gives_identical_outputs():
    inputs = _image(28, 30, predictions="early")
    assert_same(SimOTAAssigner(num_classes=NUM_CLASSES)(*inputs),
                SimOTAAssigner(num_classes=NUM_CLASSES, memory_budget_mb=0)(*inputs))


# --- the batched path -------------------------------------------------------------------------------------------

def _batch(seeds, num_max, fill):
    """Images of `_image` stacked with padding: (scores, anchors, pred, boxes, labels, mask) and the images."""
    images = [_image(s, k, predictions="early" if i % 2 else "trained") for i, (s, k) in enumerate(zip(seeds, fill))]
    boxes = np.zeros((len(images), num_max, 4), "float32")
    labels = np.zeros((len(images), num_max, 1), "int32")
    mask = np.zeros((len(images), num_max, 1), "float32")
    for b, (_, _, _, box, label) in enumerate(images):
        boxes[b, :len(box)] = box.numpy()
        labels[b, :len(box)] = label.numpy()
        mask[b, :len(box)] = 1
    stack = lambda i: paddle.stack([im[i] for im in images])
    return (stack(0), images[0][1], stack(2), paddle.to_tensor(boxes), paddle.to_tensor(labels),
            paddle.to_tensor(mask)), images


@pytest.mark.parametrize("use_vfl", [True, False])
def test_batched_path_equals_per_image_calls(use_vfl):
    inputs, images = _batch([30, 31, 32, 33], 12, [12, 0, 5, 9])
    layer = SimOTAAssigner(num_classes=NUM_CLASSES, use_vfl=use_vfl)
    pos_num, labels, weights, targets = layer.assign_batch(*inputs)
    assert labels.dtype == paddle.int64 and weights.dtype == targets.dtype == paddle.float32
    for b, image in enumerate(images):
        assert_same(layer(*image), (int(pos_num[b]), labels[b].numpy(), weights[b].numpy(), targets[b].numpy()))


def test_batched_path_without_mask_treats_every_slot_as_an_object():
    inputs, _ = _batch([34, 35], 6, [6, 3])
    layer = SimOTAAssigner(num_classes=NUM_CLASSES)
    unmasked = layer.assign_batch(*inputs[:5])
    for b in range(2):
        one = layer(inputs[0][b], inputs[1], inputs[2][b], inputs[3][b], inputs[4][b])
        assert_same(one, (int(unmasked[0][b]), unmasked[1][b].numpy(), unmasked[2][b].numpy(),
                          unmasked[3][b].numpy()))


def _profile(batch):
    from benchmarks.profiling import profile_call
    scores, anchors, pred, _, _ = _image(40, 1)
    boxes = paddle.to_tensor(np.tile(np.array([[[30.0, 40.0, 90.0, 110.0]]], "float32"), (batch, 1, 1)))
    labels = paddle.ones([batch, 1, 1], "int32")
    tile = lambda t: paddle.to_tensor(np.tile(t.numpy()[None], (batch, 1, 1)))
    layer = SimOTAAssigner(num_classes=NUM_CLASSES)
    return profile_call(layer.assign_batch, tile(scores), anchors, tile(pred), boxes, labels,
                        paddle.ones([batch, 1, 1]))[1]


def test_batched_operators_and_host_copies_do_not_grow_with_batch():
    one, many = _profile(1), _profile(32)
    assert many.operators == one.operators
    assert many.host_copies == one.host_copies == 2
    assert many.shape_syncs == 0


# --- mixed precision --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_inputs_are_computed_in_float32(dtype):
    scores, anchors, pred, boxes, labels = _image(41, 10)
    low = [t.astype(dtype) for t in (scores, anchors, pred, boxes)]
    rounded = [t.astype("float32") for t in low]
    layer = SimOTAAssigner(num_classes=NUM_CLASSES)
    assert_same(layer(*rounded, labels), layer(*low, labels))


# --- bad input --------------------------------------------------------------------------------------------------

def _good():
    return list(_image(50, 4))


def _set(index, position, value):
    def edit(args):
        arr = args[index].numpy().copy()
        arr[position] = value
        args[index] = paddle.to_tensor(arr)
    return edit


@pytest.mark.parametrize("edit, message", [
    (lambda a: a.__setitem__(0, a[0][:, :3]), "num_classes=5 columns"),
    (lambda a: a.__setitem__(1, a[1][:10]), "flatten_center_and_stride must have shape"),
    (lambda a: a.__setitem__(2, a[2][:, :3]), "flatten_bboxes must have last dimension 4"),
    (lambda a: a.__setitem__(4, a[4][:2]), "gt_labels must have shape"),
    (_set(3, (0, 1), np.nan), "gt_bboxes contains NaN"),
    (_set(2, (5, 2), np.inf), "flatten_bboxes contains NaN"),
    (_set(0, (5, 2), np.nan), "flatten_cls_pred_scores contains NaN"),
    (_set(1, (5, 2), 0.0), "positive strides"),
    (_set(3, (1, 2), -100.0), "gt_bboxes must be xyxy"),
    (_set(4, (1, 0), NUM_CLASSES), "gt_labels must lie in"),
])
def test_bad_input_raises_value_error_naming_argument(edit, message):
    args = _good()
    edit(args)
    with pytest.raises(ValueError, match=message):
        SimOTAAssigner(num_classes=NUM_CLASSES)(*args)


def test_bad_constructor_arguments_raise():
    with pytest.raises(ValueError, match="candidate_topk"):
        SimOTAAssigner(candidate_topk=0)
    with pytest.raises(ValueError, match="center_radius"):
        SimOTAAssigner(center_radius=0)


# --- configs ----------------------------------------------------------------------------------------------------

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "configs", "yolox")


def test_yolox_coco_config_is_paddledetections_with_our_simota():
    from ppdet.core.workspace import create
    from ppassign.engine.config import load_config
    cfg = load_config(os.path.join(CONFIGS, "yolox_s_300e_coco.yml"))
    assert dict(cfg.YOLOXHead["assigner"]) == {"name": "PPAssignSimOTAAssigner", "candidate_topk": 10,
                                               "use_vfl": False}
    assert (cfg.epoch, cfg.LearningRate["base_lr"], cfg.TrainReader["batch_size"]) == (300, 0.01, 8)
    assert (cfg.depth_mult, cfg.width_mult, cfg.num_classes) == (0.33, 0.50, 80)
    head = create(cfg.architecture).head
    assert isinstance(head.assigner, SimOTAAssigner) and head.assigner.num_classes == 80


@pytest.mark.slow
def test_yolox_tiny_config_trains_with_our_simota(tmp_path, monkeypatch):
    from ppassign.engine import train
    calls = []
    original = SimOTAAssigner.__call__
    monkeypatch.setattr(SimOTAAssigner, "__call__", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    data = str(tmp_path / "ds")
    overrides = [f"TrainDataset.dataset_dir={data}", "TrainDataset.num_images=16", f"EvalDataset.dataset_dir={data}",
                 "EvalDataset.num_images=4", f"TestDataset.anno_path={data}/annotations/val.json"]
    result = train.train(os.path.join(CONFIGS, "yolox_tiny_synthetic.yml"), overrides, eval=True, epochs=2,
                         output_dir=str(tmp_path / "out"))
    with open(result["record"]) as f:
        losses = [step["loss"] for step in json.load(f)["train"]]
    assert len(calls) == 4 * 8                          # 2 epochs x 2 batches x 8 images, one call per image
    assert losses and all(np.isfinite(losses))
