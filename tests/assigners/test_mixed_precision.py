"""Every ppassign assigner given float16 / bfloat16 inputs (as under AMP): computed in float32, float32 outputs.

Each case calls an assigner twice: with its float inputs cast to the low precision, and with those same
low-precision values cast back to float32. The outputs must be identical and their floats float32. (Paddle's CPU
has no float16 subtract / gather kernels and no bfloat16 add / clip; an assigner that does not cast first fails
there with a kernel error, and a bfloat16 tensor's ``.numpy()`` gives raw uint16 bit patterns.)
"""
import numpy as np
import paddle
import pytest

import ppassign
from ppassign.assigners import (ATSSRetinaAssigner, DynamicSoftLabelAssigner, FCOSRuleAssigner, HAMBoxAssigner,
                                MaxIoUAssigner, NoisyAnchorAssigner, SimOTAAssigner, TopKAssigner)
from assign_cases import anchor_grid, random_gt, random_predictions
from retina_cases import random_boxes, retina_anchors

NUM_CLASSES = 5
LOW = ["float16", "bfloat16"]


def _dense_inputs(seed=0):
    rng = np.random.default_rng(seed)
    anchors, points, counts = anchor_grid(160)
    labels, boxes, mask = random_gt(rng, 2, 6, num_classes=NUM_CLASSES)
    scores, pred = random_predictions(rng, 2, points, num_classes=NUM_CLASSES)
    return anchors, points, counts, labels, boxes, mask, scores, pred


def _atss(cast):
    anchors, _, counts, labels, boxes, mask, _, pred = _dense_inputs()
    return ppassign.ATSSAssigner(num_classes=NUM_CLASSES)(cast(anchors), counts, labels, cast(boxes), mask,
                                                           NUM_CLASSES, pred_bboxes=cast(pred))


def _tal(cast):
    _, points, counts, labels, boxes, mask, scores, pred = _dense_inputs()
    return ppassign.TaskAlignedAssigner()(cast(scores), cast(pred), cast(points), counts, labels, cast(boxes), mask,
                                          NUM_CLASSES)


def _dsl(cast):
    _, points, counts, labels, boxes, mask, scores, pred = _dense_inputs()
    return DynamicSoftLabelAssigner()(cast(scores), cast(pred), cast(points), counts, labels, cast(boxes), mask,
                                      NUM_CLASSES)


def _simota(cast):
    _, points, counts, labels, boxes, mask, scores, pred = _dense_inputs()
    stride = np.repeat(np.float32([8, 16, 32]), counts)[:, None]
    centres = paddle.to_tensor(np.concatenate([points.numpy(), stride, stride], 1))
    return SimOTAAssigner(num_classes=NUM_CLASSES).assign_batch(cast(scores), cast(centres), cast(pred), cast(boxes),
                                                                labels, mask)


def _retina(make, cast):
    """One image through `assign` (ppdet's per-image call with the optional inputs the rule needs)."""
    anchors, counts = retina_anchors()
    rng = np.random.default_rng(1)
    gt = paddle.to_tensor(random_boxes(rng, 4))
    assigner = make()
    kw = {}
    if "gt_class" in assigner.needs:
        kw["gt_class"] = paddle.to_tensor(np.arange(4) % NUM_CLASSES)
    if "pred_bboxes" in assigner.needs:
        kw["pred_bboxes"] = cast(paddle.to_tensor(anchors + rng.normal(0, 2, anchors.shape).astype("float32")))
    if "pred_scores" in assigner.needs:
        kw["pred_scores"] = cast(paddle.to_tensor(rng.uniform(0.01, 0.99, (len(anchors), NUM_CLASSES))
                                                  .astype("float32")))
    if "num_anchors_list" in assigner.needs:
        kw["num_anchors_list"] = counts
    return tuple(assigner.assign(cast(paddle.to_tensor(anchors)), cast(gt), **kw))


CASES = {
    "ATSS": _atss,
    "TAL": _tal,
    "DSL": _dsl,
    "SimOTA": _simota,
    "MaxIoU": lambda c: _retina(lambda: MaxIoUAssigner(0.5, 0.4), c),
    "TopK": lambda c: _retina(TopKAssigner, c),
    "ATSSRetina": lambda c: _retina(ATSSRetinaAssigner, c),
    "FCOSRule": lambda c: _retina(lambda: FCOSRuleAssigner((8, 16, 32)), c),
    "NoisyAnchor": lambda c: _retina(NoisyAnchorAssigner, c),
    "HAMBox": lambda c: _retina(HAMBoxAssigner, c),
}


@pytest.mark.parametrize("dtype", LOW)
@pytest.mark.parametrize("call", list(CASES.values()), ids=list(CASES))
def test_low_precision_inputs_give_the_float32_result(call, dtype):
    low = call(lambda t: t.astype(dtype))
    rounded = call(lambda t: t.astype(dtype).astype("float32"))
    assert len(low) == len(rounded)
    for a, b in zip(low, rounded):
        assert a.dtype == b.dtype and a.dtype not in (paddle.float16, paddle.bfloat16)
        np.testing.assert_array_equal(a.numpy(), b.numpy())
