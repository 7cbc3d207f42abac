"""PPAssignRetinaHead: ppdet RetinaHead's losses with max-IoU; soft targets and weights enter the loss."""
import numpy as np
import paddle
import pytest

import ppassign  # noqa: F401
from ppassign.assigners import HAMBoxAssigner, MaxIoUAssigner, NoisyAnchorAssigner, TopKAssigner
from ppassign.assigners.retina_base import RetinaAssigner, RetinaAssignment
from ppassign.heads import PPAssignRetinaHead
from ppdet.modeling.assigners.max_iou_assigner import MaxIoUAssigner as PPDetMaxIoUAssigner
from ppdet.modeling.heads.retina_head import RetinaFeat, RetinaHead
from ppdet.modeling.layers import MultiClassNMS
from ppdet.modeling.losses import FocalLoss, SmoothL1Loss
from ppdet.modeling.proposal_generator.anchor_generator import RetinaAnchorGenerator

NUM_CLASSES = 3
STRIDES = [8.0, 16.0, 32.0]


def make(cls, assigner, scales=3, ratios=(0.5, 1.0, 2.0), seed=0):
    paddle.seed(seed)
    return cls(num_classes=NUM_CLASSES, conv_feat=RetinaFeat(feat_in=8, feat_out=8, num_convs=1, norm_type=None),
               anchor_generator=RetinaAnchorGenerator(octave_base_scale=4, scales_per_octave=scales,
                                                      aspect_ratios=list(ratios), strides=STRIDES),
               bbox_assigner=assigner, loss_class=FocalLoss(alpha=0.25, gamma=2.0),
               loss_bbox=SmoothL1Loss(beta=0.0), nms=MultiClassNMS(keep_top_k=10), weights=[1., 1., 1., 1.])


def features(seed=0, batch=2, size=64):
    rng = np.random.default_rng(seed)
    return [paddle.to_tensor(rng.normal(0, 1, (batch, 8, size // int(s), size // int(s))).astype("float32"))
            for s in STRIDES]


def targets(boxes_per_image):
    return {"gt_bbox": [paddle.to_tensor(np.asarray(b, "float32").reshape(-1, 4)) for b in boxes_per_image],
            "gt_class": [paddle.to_tensor((np.arange(len(b)) % NUM_CLASSES).reshape(-1, 1).astype("int32"))
                         for b in boxes_per_image]}


BOXES = [[[4, 6, 30, 40], [30, 30, 62, 50], [10, 10, 14, 13]], [[0, 0, 64, 64]]]


def loss_and_grads(head, feats, tgts):
    head.train()
    out = head(feats, tgts)
    out["loss"].backward()
    grads = {k: p.grad.numpy().copy() for k, p in head.named_parameters() if p.grad is not None}
    head.clear_gradients()
    return {k: float(v.sum()) for k, v in out.items()}, grads


@pytest.mark.parametrize("assigner_cls", [PPDetMaxIoUAssigner, MaxIoUAssigner])
@pytest.mark.parametrize("boxes", [BOXES, [[], [[8, 8, 40, 24]]], [[], []]])
def test_losses_and_gradients_equal_ppdets_retina_head(assigner_cls, boxes):
    ppdet_head = make(RetinaHead, PPDetMaxIoUAssigner(0.5, 0.4, True))
    ours = make(PPAssignRetinaHead, assigner_cls(0.5, 0.4, True))
    ours.set_state_dict(ppdet_head.state_dict())
    feats = features()
    ref_loss, ref_grads = loss_and_grads(ppdet_head, feats, targets(boxes))
    loss, grads = loss_and_grads(ours, feats, targets(boxes))
    for key in ("loss", "loss_cls", "loss_reg"):
        np.testing.assert_allclose(loss[key], ref_loss[key], rtol=1e-5, atol=1e-7)
    assert grads.keys() == ref_grads.keys()
    for key in grads:
        np.testing.assert_allclose(grads[key], ref_grads[key], rtol=1e-4, atol=1e-7)


def test_padded_targets_with_pad_gt_mask_give_the_same_loss():
    head = make(PPAssignRetinaHead, MaxIoUAssigner(0.5, 0.4))
    feats = features()
    listed = loss_and_grads(head, feats, targets(BOXES))[0]
    padded = np.zeros((2, 3, 4), "float32")
    classes = np.zeros((2, 3, 1), "int32")
    mask = np.zeros((2, 3, 1), "float32")
    for i, b in enumerate(BOXES):
        padded[i, :len(b)] = b
        classes[i, :len(b), 0] = np.arange(len(b)) % NUM_CLASSES
        mask[i, :len(b)] = 1
    tgts = {"gt_bbox": paddle.to_tensor(padded), "gt_class": paddle.to_tensor(classes),
            "pad_gt_mask": paddle.to_tensor(mask)}
    np.testing.assert_allclose(loss_and_grads(head, feats, tgts)[0]["loss"], listed["loss"], rtol=1e-6)


class _Fixed(RetinaAssigner):
    """Every anchor of every image: anchor 0 positive for object 0 with target t0 / weights w0, r0;
    anchor 1 negative with weight w1; the rest ignored."""

    def __init__(self, t0, w0, r0, w1):
        self.values = (t0, w0, r0, w1)

    def _assign(self, anchors, gt_bbox, *_):
        t0, w0, r0, w1 = self.values
        num = anchors.shape[0]
        labels = np.full(num, -1, "int32")
        labels[:2] = [1, 0]
        vec = lambda a, b: paddle.to_tensor(np.r_[a, b, np.zeros(num - 2)].astype("float32"))
        return RetinaAssignment(paddle.zeros([num], "int64"), paddle.to_tensor(labels), vec(t0, 0), vec(w0, w1),
                                vec(r0, 0))


def _sigmoid_focal(logit, target, alpha=0.25, gamma=2.0):
    p = 1 / (1 + np.exp(-logit))
    ce = -(target * np.log(p) + (1 - target) * np.log(1 - p))
    p_t = p * target + (1 - p) * (1 - target)
    a_t = alpha * target + (1 - alpha) * (1 - target)
    return a_t * ce * (1 - p_t) ** gamma


def test_soft_targets_and_weights_enter_the_losses_as_stated():
    head = make(PPAssignRetinaHead, _Fixed(0.6, 2.0, 0.5, 3.0), scales=1, ratios=(1.0,))
    feats = features(batch=1)
    tgts = targets([[[0, 0, 20, 20]]])
    head.train()
    loss = head(feats, tgts)
    head.eval()
    cls_logits, reg = head(feats)
    logits = np.concatenate([c.numpy()[0].transpose(1, 2, 0).reshape(-1, NUM_CLASSES) for c in cls_logits])
    deltas = np.concatenate([r.numpy()[0].transpose(1, 2, 0).reshape(-1, 4) for r in reg])
    target0 = np.zeros(NUM_CLASSES)
    target0[0] = 0.6                                      # object 0 has class 0
    expected_cls = 2.0 * _sigmoid_focal(logits[0], target0).sum() + 3.0 * _sigmoid_focal(logits[1], 0).sum()
    np.testing.assert_allclose(float(loss["loss_cls"]), expected_cls, rtol=1e-5)
    anchor0 = head.anchor_generator(cls_logits)[0].numpy()[0]   # [-16, -16, 16, 16]
    w, h = anchor0[2:] - anchor0[:2]
    cx, cy = (anchor0[:2] + anchor0[2:]) / 2
    tgt = np.array([(10 - cx) / w, (10 - cy) / h, np.log(20 / w), np.log(20 / h)])
    np.testing.assert_allclose(float(loss["loss_reg"]), 0.5 * np.abs(deltas[0] - tgt).sum(), rtol=1e-5)


class _FixedKeepScale(_Fixed):
    preserve_loss_scale = True


def test_preserve_loss_scale_gives_the_unweighted_value_and_the_weighted_gradient():
    feats, tgts = features(batch=1), targets([[[0, 0, 20, 20]]])
    plain, _ = loss_and_grads(make(PPAssignRetinaHead, _Fixed(0.6, 1.0, 1.0, 1.0), scales=1, ratios=(1.0,)),
                              feats, tgts)
    kept, grads = loss_and_grads(make(PPAssignRetinaHead, _FixedKeepScale(0.6, 2.0, 0.5, 3.0), scales=1,
                                      ratios=(1.0,)), feats, tgts)
    weighted, weighted_grads = loss_and_grads(make(PPAssignRetinaHead, _Fixed(0.6, 2.0, 0.5, 3.0), scales=1,
                                                   ratios=(1.0,)), feats, tgts)
    for key in ("loss_cls", "loss_reg"):
        np.testing.assert_allclose(kept[key], plain[key], rtol=1e-5)
    # same direction as the weighted loss's gradient, scaled by plain / weighted of the classification loss
    name = next(k for k in grads if "cls" in k and "bias" in k)
    np.testing.assert_allclose(grads[name], weighted_grads[name] * plain["loss_cls"] / weighted["loss_cls"],
                               rtol=1e-4, atol=1e-8)


@pytest.mark.parametrize("assigner", [NoisyAnchorAssigner(topk_candidates=20), HAMBoxAssigner(),
                                      TopKAssigner(9)], ids=["noisy", "hambox", "topk"])
def test_prediction_aware_assigners_train_a_step(assigner):
    head = make(PPAssignRetinaHead, assigner)
    loss, grads = loss_and_grads(head, features(), targets(BOXES))
    assert np.isfinite(loss["loss"]) and loss["loss_reg"] > 0
    assert all(np.isfinite(g).all() for g in grads.values())


def test_loss_class_without_focal_parameters_is_refused():
    with pytest.raises(ValueError, match="loss_class"):
        PPAssignRetinaHead(num_classes=2, conv_feat=RetinaFeat(8, 8, 1, None), anchor_generator=RetinaAnchorGenerator(),
                           bbox_assigner=MaxIoUAssigner(0.5, 0.4), loss_class=SmoothL1Loss(), loss_bbox=SmoothL1Loss(),
                           nms=MultiClassNMS())
