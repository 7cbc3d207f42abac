"""PPAssignRetinaHead: PaddleDetection's RetinaHead whose loss takes any of ppassign's RetinaNet assigners.

Same layers, parameters, inference and export as ppdet's ``RetinaHead`` (it subclasses it); only the loss
differs, in what it can consume:

- assigners that need the network's current predictions (noisy-anchor cleanliness, HAMBox) get the decoded
  boxes and sigmoid scores of every anchor (detached), and every assigner may get the objects' classes and
  the anchors per level (ATSS, FCOS's rule);
- soft classification targets and per-anchor classification / regression weights
  (:class:`~ppassign.assigners.retina_base.RetinaAssignment`) enter the focal and smooth-L1 losses; an
  assigner with ``preserve_loss_scale = True`` (noisy anchors) has each weighted loss rescaled, detached, to
  the value of the un-weighted one, as the noisy-anchor authors' code does.

With a hard assignment (ppdet's ``MaxIoUAssigner`` or ours), the losses are RetinaHead's: focal loss summed
over positive and negative anchors, smooth-L1 on the positives' deltas (``bbox2delta`` with ``weights``), both
divided by max(1, number of positives) -- tested equal to ppdet's ``RetinaHead.get_loss``. ppdet's own
assigners (any object with ppdet's ``assigner(anchors, gt_bbox)`` call) work unchanged.

Losses are computed for the whole batch at once (ppdet's head gathers and concatenates per image); the
assigner is still called once per image, as in ppdet.
"""
import paddle
import paddle.nn.functional as F
from ppdet.modeling.bbox_utils import bbox2delta, delta2bbox
from ppdet.modeling.heads.retina_head import RetinaHead

from ..assigners.retina_base import hard_assignment


class PPAssignRetinaHead(RetinaHead):
    """ppdet's RetinaHead (same arguments) with a loss that accepts ppassign's RetinaNet assigners.

    ``loss_class`` must be ppdet's ``FocalLoss`` (or anything with ``alpha``, ``gamma`` and ``loss_weight``);
    ``loss_bbox`` any loss called as ``loss_bbox(pred, target, reduction='none')`` (ppdet's SmoothL1Loss).
    """
    __shared__ = ['num_classes']
    __inject__ = ['conv_feat', 'anchor_generator', 'bbox_assigner', 'loss_class', 'loss_bbox', 'nms']

    def __init__(self, num_classes=80, conv_feat='RetinaFeat', anchor_generator='RetinaAnchorGenerator',
                 bbox_assigner='MaxIoUAssigner', loss_class='FocalLoss', loss_bbox='SmoothL1Loss',
                 nms='MultiClassNMS', prior_prob=0.01, nms_pre=1000, weights=(1., 1., 1., 1.)):
        super().__init__(num_classes=num_classes, conv_feat=conv_feat, anchor_generator=anchor_generator,
                         bbox_assigner=bbox_assigner, loss_class=loss_class, loss_bbox=loss_bbox, nms=nms,
                         prior_prob=prior_prob, nms_pre=nms_pre, weights=list(weights))
        missing = [a for a in ("alpha", "gamma", "loss_weight") if not hasattr(self.loss_class, a)]
        if missing:
            raise ValueError(f"loss_class must be a focal loss with alpha, gamma and loss_weight (ppdet's "
                             f"FocalLoss); {type(self.loss_class).__name__} has no {', '.join(missing)}")

    # ------------------------------------------------------------------------------------------- assignment
    def _image_targets(self, targets):
        """Per-image ([n, 4] boxes, [n] classes): from ppdet's lists, or from padded tensors + pad_gt_mask."""
        boxes, classes = targets["gt_bbox"], targets["gt_class"]
        mask = targets.get("pad_gt_mask")
        out = []
        for i in range(len(boxes)):
            box, cls = boxes[i].reshape([-1, 4]), classes[i].reshape([-1])
            if mask is not None:
                keep = paddle.nonzero(mask[i].reshape([-1]) > 0).flatten()
                box, cls = paddle.gather(box, keep), paddle.gather(cls, keep)
            out.append((box, cls))
        return out

    def _assign(self, anchors, num_anchors_list, images, cls_logits, bboxes_reg):
        """Call the assigner on every image; returns the stacked RetinaAssignment fields, each [B, L]."""
        assigner = self.bbox_assigner
        rich = hasattr(assigner, "assign")
        predictions = rich and getattr(assigner, "needs_predictions", False)
        if predictions:
            with paddle.no_grad():
                batch, num = bboxes_reg.shape[0], anchors.shape[0]
                pred_boxes = delta2bbox(bboxes_reg.reshape([-1, 4]), anchors.tile([batch, 1]),
                                        self.weights).reshape([batch, num, 4])
                pred_scores = F.sigmoid(cls_logits)
        fields = []
        for i, (box, cls) in enumerate(images):
            if rich:
                extra = {"pred_bboxes": pred_boxes[i], "pred_scores": pred_scores[i]} if predictions else {}
                fields.append(assigner.assign(anchors, box, gt_class=cls, num_anchors_list=num_anchors_list,
                                              **extra))
            else:
                fields.append(hard_assignment(*assigner(anchors, box)))
        return [paddle.stack(f) for f in zip(*fields)]

    # ------------------------------------------------------------------------------------------------ loss
    def get_loss(self, head_outputs, targets):
        cls_logits_list, bboxes_reg_list = head_outputs
        anchors_list = self.anchor_generator(cls_logits_list)
        num_anchors_list = [int(a.shape[0]) for a in anchors_list]
        anchors = paddle.concat(anchors_list)
        cls_logits = paddle.concat([x.transpose([0, 2, 3, 1]).reshape([0, -1, self.num_classes])
                                    for x in cls_logits_list], axis=1)                     # [B, L, C]
        bboxes_reg = paddle.concat([x.transpose([0, 2, 3, 1]).reshape([0, -1, 4]) for x in bboxes_reg_list],
                                   axis=1)                                                  # [B, L, 4]
        images = self._image_targets(targets)
        matches, labels, cls_targets, cls_weights, reg_weights = self._assign(
            anchors, num_anchors_list, images, cls_logits.detach(), bboxes_reg.detach())
        batch, num = labels.shape
        positive = labels == 1

        # classification: one-hot of the matched class scaled by the target; negatives all-zero rows.
        gt_class = paddle.stack([self._class_per_anchor(cls, matches[i], positive[i])
                                 for i, (_, cls) in enumerate(images)])                     # [B, L]
        onehot = F.one_hot(gt_class, self.num_classes + 1)[..., :-1] * cls_targets.unsqueeze(-1)
        focal = F.sigmoid_focal_loss(cls_logits, onehot.detach(), alpha=self.loss_class.alpha,
                                     gamma=self.loss_class.gamma, reduction="none") * self.loss_class.loss_weight
        num_pos = int(positive.astype("int64").sum())
        avg_factor = max(1.0, num_pos)
        keep_scale = getattr(self.bbox_assigner, "preserve_loss_scale", False)
        focal = focal.sum(-1)
        cls_loss = (focal * cls_weights.detach()).sum()
        if keep_scale:
            cls_loss = cls_loss * _scale(focal * (labels >= 0).astype(focal.dtype), cls_loss)
        cls_loss = cls_loss / avg_factor

        # regression: deltas of the positives only (bbox2delta of a degenerate box is not finite).
        if num_pos == 0:
            reg_loss = paddle.zeros([1])
            reg_loss.stop_gradient = False
        else:
            flat = paddle.nonzero(positive.flatten()).flatten()
            gt_flat = paddle.concat([self._box_per_anchor(box, matches[i]) for i, (box, _) in enumerate(images)])
            reg_tar = bbox2delta(paddle.gather(anchors, flat % num), paddle.gather(gt_flat, flat), self.weights)
            reg_pred = paddle.gather(bboxes_reg.reshape([-1, 4]), flat)
            reg = self.loss_bbox(reg_pred, reg_tar.detach(), reduction="none").sum(-1)
            reg_loss = (reg * paddle.gather(reg_weights.flatten(), flat).detach()).sum()
            if keep_scale:
                reg_loss = reg_loss * _scale(reg, reg_loss)
            reg_loss = reg_loss / avg_factor
        return {"loss_cls": cls_loss, "loss_reg": reg_loss, "loss": cls_loss + reg_loss}

    def _class_per_anchor(self, gt_class, matches, positive):
        """Class of every anchor's object, num_classes (background) where not positive. Tensor[L] int64."""
        extended = paddle.concat([gt_class.astype("int64"), paddle.full([1], self.num_classes, "int64")])
        background = paddle.full_like(matches, gt_class.shape[0])
        return paddle.gather(extended, paddle.where(positive, matches, background))

    @staticmethod
    def _box_per_anchor(gt_bbox, matches):
        """Box of every anchor's object (zeros for an image without objects). Tensor[L, 4]."""
        if gt_bbox.shape[0] == 0:
            return paddle.zeros([matches.shape[0], 4], gt_bbox.dtype)
        return paddle.gather(gt_bbox, matches)


def _scale(unweighted, weighted_sum):
    """Detached sum(unweighted) / weighted_sum: makes a re-weighted loss keep the un-weighted loss's value
    (the noisy-anchor authors' ``loss_scale_cls`` / ``loss_scale_reg``); 1 where the weighted sum is 0."""
    total, weighted = unweighted.sum().detach(), weighted_sum.detach()
    return paddle.where(weighted > 0, total / weighted.clip(min=1e-12), paddle.ones_like(weighted))
