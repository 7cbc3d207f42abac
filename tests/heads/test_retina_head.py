"""PPAssignRetinaHead: ppdet RetinaHead's losses with max-IoU; soft targets and weights enter the loss."""
import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

import ppassign  # noqa: F401
from ppassign.assigners import (ATSSRetinaAssigner, FCOSRuleAssigner, HAMBoxAssigner, MaxIoUAssigner,
                                NoisyAnchorAssigner, TopKAssigner)
from ppassign.assigners.retina_base import RetinaAssigner, RetinaAssignment
from ppassign.heads import PPAssignRetinaHead
from ppassign.heads.retina_head import soft_focal_loss
from ppdet.modeling.bbox_utils import bbox2delta, delta2bbox
from ppdet.modeling.assigners.max_iou_assigner import MaxIoUAssigner as PPDetMaxIoUAssigner
from ppdet.modeling.heads.retina_head import RetinaFeat, RetinaHead
from ppdet.modeling.layers import MultiClassNMS
from ppdet.modeling.losses import FocalLoss, SmoothL1Loss
from ppdet.modeling.proposal_generator.anchor_generator import RetinaAnchorGenerator
from retina_cases import random_boxes

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

    def _assign_batch(self, anchors, gt_bbox, *_):
        t0, w0, r0, w1 = self.values
        batch, num = gt_bbox.shape[0], anchors.shape[0]
        labels = np.full((batch, num), -1, "int32")
        labels[:, :2] = [1, 0]
        vec = lambda a, b: paddle.to_tensor(np.tile(np.r_[a, b, np.zeros(num - 2)], (batch, 1)).astype("float32"))
        return RetinaAssignment(paddle.zeros([batch, num], "int64"), paddle.to_tensor(labels), vec(t0, 0),
                                vec(w0, w1), vec(r0, 0))


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


class PerImageRetinaHead(PPAssignRetinaHead):
    """The reference: assignment and loss image by image (``assign`` per image, positives gathered with
    ``nonzero``), summed over the batch and divided by the batch's number of positives."""

    def get_loss(self, head_outputs, targets):
        cls_logits_list, bboxes_reg_list = head_outputs
        anchors_list = self.anchor_generator(cls_logits_list)
        num_anchors_list = [a.shape[0] for a in anchors_list]
        anchors = paddle.concat(anchors_list)
        cls_logits = paddle.concat([x.transpose([0, 2, 3, 1]).reshape([0, -1, NUM_CLASSES]) for x in cls_logits_list],
                                   axis=1)
        bboxes_reg = paddle.concat([x.transpose([0, 2, 3, 1]).reshape([0, -1, 4]) for x in bboxes_reg_list], axis=1)
        pred_boxes = delta2bbox(bboxes_reg.detach().reshape([-1, 4]), anchors.tile([len(targets["gt_bbox"]), 1]),
                                self.weights).reshape(bboxes_reg.shape)
        pred_scores = F.sigmoid(cls_logits.detach())
        cls_sum = cls_plain = reg_sum = reg_plain = 0.0
        num_pos = 0
        for i, (box, cls) in enumerate(zip(targets["gt_bbox"], targets["gt_class"])):
            box, cls = box.reshape([-1, 4]), cls.reshape([-1]).astype("int64")
            m, lab, tgt, w_cls, w_reg = self.bbox_assigner.assign(anchors, box, gt_class=cls,
                                                                  pred_bboxes=pred_boxes[i], pred_scores=pred_scores[i],
                                                                  num_anchors_list=num_anchors_list)
            positive = lab == 1
            ext = paddle.concat([cls, paddle.full([1], NUM_CLASSES, "int64")])
            anchor_class = paddle.gather(ext, paddle.where(positive, m, paddle.full_like(m, cls.shape[0])))
            onehot = F.one_hot(anchor_class, NUM_CLASSES + 1)[:, :-1] * tgt.unsqueeze(-1)
            focal = self._focal(cls_logits[i], onehot).sum(-1)
            cls_sum = cls_sum + (focal * w_cls).sum()
            cls_plain = cls_plain + (focal * (lab >= 0).astype("float32")).sum()
            idx = paddle.nonzero(positive).flatten()
            num_pos += int(idx.shape[0])
            if idx.shape[0]:
                reg_tar = bbox2delta(paddle.gather(anchors, idx), paddle.gather(box, paddle.gather(m, idx)),
                                     self.weights)
                reg = self.loss_bbox(paddle.gather(bboxes_reg[i], idx), reg_tar, reduction="none").sum(-1)
                reg_sum = reg_sum + (reg * paddle.gather(w_reg, idx)).sum()
                reg_plain = reg_plain + reg.sum()
        avg = max(1.0, num_pos)
        keep = getattr(self.bbox_assigner, "preserve_loss_scale", False)
        cls_loss = cls_sum * (cls_plain.detach() / cls_sum.detach() if keep else 1.0) / avg
        if num_pos == 0:
            reg_loss = paddle.zeros([1])
        else:
            reg_loss = reg_sum * (reg_plain.detach() / reg_sum.detach() if keep else 1.0) / avg
        return {"loss_cls": cls_loss, "loss_reg": reg_loss, "loss": cls_loss + reg_loss}


def random_targets(seed, batch, size=64):
    """Per-image lists with 0-4 objects (image 1 always empty, at B >= 2)."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 5, batch)
    if batch > 1:
        counts[1] = 0
    return targets([random_boxes(rng, int(c), size, min_size=4.0) for c in counts])


@pytest.mark.parametrize("assigner", [MaxIoUAssigner(0.5, 0.4, True), TopKAssigner(9), ATSSRetinaAssigner(9),
                                      FCOSRuleAssigner(strides=STRIDES,
                                                       object_sizes_of_interest=[[-1, 16], [16, 32], [32, 1e8]]),
                                      NoisyAnchorAssigner(topk_candidates=12)],
                         ids=["max_iou", "topk", "atss", "fcos_rule", "noisy"])
@pytest.mark.parametrize("seed, batch", [(0, 1), (1, 3), (2, 4), (3, 6)])
def test_batched_losses_and_gradients_equal_the_per_image_computation(assigner, seed, batch):
    reference = make(PerImageRetinaHead, assigner)
    ours = make(PPAssignRetinaHead, assigner)
    ours.set_state_dict(reference.state_dict())
    feats, tgts = features(seed, batch), random_targets(seed, batch)
    ref_loss, ref_grads = loss_and_grads(reference, feats, tgts)
    loss, grads = loss_and_grads(ours, feats, tgts)
    for key in ("loss", "loss_cls", "loss_reg"):
        np.testing.assert_allclose(loss[key], ref_loss[key], rtol=1e-5, atol=1e-7, err_msg=key)
    for key in ref_grads:
        np.testing.assert_allclose(grads[key], ref_grads[key], rtol=1e-4, atol=1e-7, err_msg=key)
    assert loss["loss_reg"] > 0 or batch == 1


def test_soft_focal_loss_is_the_noisy_anchor_authors_and_the_focal_loss_on_hard_targets():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (50, 3)).astype("float32")
    hard = (rng.uniform(size=(50, 3)) > 0.7).astype("float32")
    np.testing.assert_allclose(soft_focal_loss(paddle.to_tensor(logits), paddle.to_tensor(hard), 0.25, 2.0).numpy(),
                               F.sigmoid_focal_loss(paddle.to_tensor(logits), paddle.to_tensor(hard), alpha=0.25,
                                                    gamma=2.0, reduction="none").numpy(), rtol=1e-5, atol=1e-7)
    soft = rng.uniform(size=(50, 3)).astype("float32")
    p = 1 / (1 + np.exp(-logits.astype("float64")))
    ref = -0.5 * soft * (1 - p) ** 2 * np.log(p) - 0.5 * (1 - soft) * p ** 2 * np.log(1 - p)
    got = soft_focal_loss(paddle.to_tensor(logits), paddle.to_tensor(soft), 0.5, 2.0).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-7)
    assert not np.allclose(got, _sigmoid_focal(logits, soft, 0.5, 2.0), rtol=1e-2)   # not the focal of a soft label


def test_noisy_anchor_head_uses_the_soft_focal_loss():
    head = make(PPAssignRetinaHead, NoisyAnchorAssigner(topk_candidates=12))
    feats, tgts = features(), targets(BOXES)
    soft, _ = loss_and_grads(head, feats, tgts)
    NoisyAnchorAssigner.soft_focal_loss = False
    try:
        plain, _ = loss_and_grads(head, feats, tgts)
    finally:
        NoisyAnchorAssigner.soft_focal_loss = True
    assert abs(soft["loss_cls"] - plain["loss_cls"]) > 1e-6 * abs(plain["loss_cls"])
