"""PPAssignRetinaHead: PaddleDetection's RetinaHead whose loss takes any of ppassign's RetinaNet assigners.

Same layers, parameters, inference and export as ppdet's ``RetinaHead`` (it subclasses it); only the loss
differs, in what it can consume and in how it is computed:

- assigners that need the network's current predictions (noisy-anchor cleanliness, HAMBox) get the decoded
  boxes and sigmoid scores of every anchor (detached), and every assigner may get the objects' classes and
  the anchors per level (ATSS, FCOS's rule);
- soft classification targets and per-anchor classification / regression weights
  (:class:`~ppassign.assigners.retina_base.RetinaAssignment`) enter the focal and smooth-L1 losses; an
  assigner with ``preserve_loss_scale = True`` (noisy anchors) has each weighted loss rescaled, detached, to
  the value of the un-weighted one, and one with ``soft_focal_loss = True`` has its soft targets scored with
  the noisy-anchor authors' soft focal loss, both as the noisy-anchor authors' code does;
- the whole batch is assigned and scored at once: ground truth padded to the batch's largest object count
  (ppdet's per-image lists are padded with a fixed few operators; ``PadGT``'s padded tensors are used as they
  are), ppassign's assigners called once through ``assign_batch``, and the losses summed over all anchors with
  weight 0 where an anchor does not count. No loop over images, no ``nonzero``, no host copy in the loss: the
  operators of a training step do not grow with the batch size (``tools/bench_heads.py``).

With a hard assignment (ppdet's ``MaxIoUAssigner`` or ours), the losses are RetinaHead's: focal loss summed
over positive and negative anchors, smooth-L1 on the positives' deltas (``bbox2delta`` with ``weights``), both
divided by max(1, number of positives) -- tested equal to ppdet's ``RetinaHead.get_loss``, with its gradients.
ppdet's own assigners (any object with ppdet's ``assigner(anchors, gt_bbox)`` call and no ``assign_batch``)
are called once per image, as ppdet's head does. One difference from ppdet's head: in a batch with objects
but not a single positive anchor, the regression branch gets zero gradients (ppdet's: none).
"""
import numpy as np
import paddle
import paddle.nn.functional as F
from ppdet.modeling.bbox_utils import bbox2delta, delta2bbox
from ppdet.modeling.heads.retina_head import RetinaHead

from ..assigners.retina_base import RetinaAssignment, hard_assignment, matched_rows


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

    # ------------------------------------------------------------------------------------------------ loss
    def get_loss(self, head_outputs, targets):
        """Losses of a batch: {'loss_cls', 'loss_reg', 'loss'}.

        Args:
            head_outputs: (cls_logits per level [B, A*C, H, W], box deltas per level [B, A*4, H, W]).
            targets (dict): gt_bbox and gt_class as ppdet's per-image lists ([n_i, 4], [n_i, 1]) or padded
                tensors ([B, n, 4], [B, n, 1]) with pad_gt_mask ([B, n, 1]).
        """
        cls_logits_list, bboxes_reg_list = head_outputs
        anchors_list = self.anchor_generator(cls_logits_list)
        num_anchors_list = [int(a.shape[0]) for a in anchors_list]
        anchors = paddle.concat(anchors_list)                                               # [L, 4]
        cls_logits = paddle.concat([x.transpose([0, 2, 3, 1]).reshape([0, -1, self.num_classes])
                                    for x in cls_logits_list], axis=1)                     # [B, L, C]
        bboxes_reg = paddle.concat([x.transpose([0, 2, 3, 1]).reshape([0, -1, 4]) for x in bboxes_reg_list],
                                   axis=1)                                                  # [B, L, 4]
        gt_bbox, gt_class, valid = padded_targets(targets, cls_logits.shape[0])
        assignment = self.assign(anchors, num_anchors_list, gt_bbox, gt_class, valid, targets,
                                 cls_logits.detach(), bboxes_reg.detach())
        return self.losses(anchors, cls_logits, bboxes_reg, gt_bbox, gt_class, assignment)

    def assign(self, anchors, num_anchors_list, gt_bbox, gt_class, valid, targets, cls_logits, bboxes_reg):
        """RetinaAssignment of the batch (fields [B, L]): one ``assign_batch`` call, or ppdet's per-image call."""
        assigner = self.bbox_assigner
        if not hasattr(assigner, "assign_batch"):
            return self._assign_per_image(anchors, gt_bbox, valid, targets)
        extra = {}
        if getattr(assigner, "needs_predictions", False):
            with paddle.no_grad():
                batch, num = bboxes_reg.shape[:2]
                extra["pred_bboxes"] = delta2bbox(bboxes_reg.reshape([-1, 4]), anchors.tile([batch, 1]),
                                                  self.weights).reshape([batch, num, 4])
                extra["pred_scores"] = F.sigmoid(cls_logits)
        return assigner.assign_batch(anchors, gt_bbox, valid, gt_class=gt_class, num_anchors_list=num_anchors_list,
                                     **extra)

    def _assign_per_image(self, anchors, gt_bbox, valid, targets):
        """ppdet's loop for assigners with only ppdet's call (one host copy of the object counts when padded)."""
        boxes = targets["gt_bbox"]
        if isinstance(boxes, paddle.Tensor):
            counts = valid.astype("int64").sum(axis=1).numpy()
            boxes = [gt_bbox[i, :int(c)] for i, c in enumerate(counts)]
        fields = [hard_assignment(*self.bbox_assigner(anchors, box.reshape([-1, 4]))) for box in boxes]
        return RetinaAssignment(*(paddle.stack(f) for f in zip(*fields)))

    def losses(self, anchors, cls_logits, bboxes_reg, gt_bbox, gt_class, assignment):
        """Focal and smooth-L1 losses of an assignment, summed over the batch's anchors.

        Args:
            anchors (Tensor[L, 4]); cls_logits (Tensor[B, L, C]); bboxes_reg (Tensor[B, L, 4]);
            gt_bbox (Tensor[B, n, 4]); gt_class (Tensor[B, n] int64); assignment (RetinaAssignment, [B, L]).
        """
        matches, labels, cls_targets, cls_weights, reg_weights = assignment
        batch, num = labels.shape
        has_slots = gt_bbox.shape[1] > 0
        positive = labels == 1
        pos_f = positive.astype(cls_logits.dtype)
        avg_factor = pos_f.sum().clip(min=1.0)
        keep_scale = getattr(self.bbox_assigner, "preserve_loss_scale", False)

        # classification: one-hot of the matched class scaled by the target; negatives all-zero rows.
        if has_slots:
            anchor_class = paddle.where(positive, matched_rows(gt_class, matches),
                                        paddle.full_like(matches, self.num_classes))
        else:
            anchor_class = paddle.full([batch, num], self.num_classes, "int64")
        onehot = F.one_hot(anchor_class, self.num_classes + 1)[..., :-1] * cls_targets.unsqueeze(-1)
        focal = self._focal(cls_logits, onehot.detach()).sum(-1)                            # [B, L]
        cls_loss = (focal * cls_weights.detach()).sum()
        if keep_scale:
            cls_loss = cls_loss * _scale(focal * (labels >= 0).astype(focal.dtype), cls_loss)
        cls_loss = cls_loss / avg_factor

        # regression: deltas to the matched box on positives, to the anchor itself elsewhere (finite, weight 0).
        if not has_slots:
            reg_loss = paddle.zeros([1])
            reg_loss.stop_gradient = False
        else:
            anchor_rows = anchors.tile([batch, 1])                                          # [B*L, 4]
            target_box = paddle.where(positive.unsqueeze(-1), matched_rows(gt_bbox, matches),
                                      anchors.unsqueeze(0)).reshape([-1, 4])
            reg_tar = bbox2delta(anchor_rows, target_box, self.weights)
            reg = self.loss_bbox(bboxes_reg.reshape([-1, 4]), reg_tar.detach(), reduction="none").sum(-1)
            reg = reg.reshape([batch, num]) * pos_f
            reg_loss = (reg * reg_weights.detach()).sum()
            if keep_scale:
                reg_loss = reg_loss * _scale(reg, reg_loss)
            reg_loss = reg_loss / avg_factor
        return {"loss_cls": cls_loss, "loss_reg": reg_loss, "loss": cls_loss + reg_loss}

    def _focal(self, logits, targets):
        """Per-class focal loss [B, L, C] of logits against (soft) targets, times loss_weight."""
        alpha, gamma = self.loss_class.alpha, self.loss_class.gamma
        if getattr(self.bbox_assigner, "soft_focal_loss", False):
            loss = soft_focal_loss(logits, targets, alpha, gamma)
        else:
            loss = F.sigmoid_focal_loss(logits, targets, alpha=alpha, gamma=gamma, reduction="none")
        return loss * self.loss_class.loss_weight


def padded_targets(targets, batch):
    """The batch's ground truth as padded tensors, without a loop of operators over images.

    Args:
        targets (dict): gt_bbox / gt_class as per-image lists ([n_i, 4] / [n_i, 1]; PaddleDetection's RetinaNet
            reader) or padded tensors [B, n, 4] / [B, n, 1] with optional pad_gt_mask [B, n, 1] (PadGT).
        batch (int): B.
    Returns:
        (gt_bbox Tensor[B, n, 4], gt_class Tensor[B, n] int64, valid Tensor[B, n] bool); n = 0 when the batch
        has no object.
    """
    boxes, classes = targets["gt_bbox"], targets["gt_class"]
    if isinstance(boxes, paddle.Tensor):
        num = boxes.shape[1]
        mask = targets.get("pad_gt_mask")
        valid = paddle.ones([batch, num], "bool") if mask is None else mask.reshape([batch, num]) > 0
        return boxes, classes.reshape([batch, num]).astype("int64"), valid
    if len(boxes) != batch:
        raise ValueError(f"targets['gt_bbox'] holds {len(boxes)} images, the head's outputs {batch}")
    counts = [int(np.prod(b.shape)) // 4 for b in boxes]                  # from shapes: no host copy
    num = max(counts, default=0)
    if num == 0:
        return paddle.zeros([batch, 0, 4]), paddle.zeros([batch, 0], "int64"), paddle.zeros([batch, 0], "bool")
    # slots of the concatenated objects in the flattened [B * n] padding (host-side, from the shapes)
    slots = np.concatenate([i * num + np.arange(c) for i, c in enumerate(counts)]).astype("int64")
    slots = paddle.to_tensor(slots)
    flat_boxes = paddle.concat([b.reshape([-1, 4]) if b.ndim != 2 else b for b in boxes if b.shape[0]])
    flat_classes = paddle.concat([c if c.ndim == 2 else c.reshape([-1, 1]) for c in classes if c.shape[0]]
                                 ).reshape([-1]).astype("int64")
    gt_bbox = paddle.scatter(paddle.zeros([batch * num, 4], flat_boxes.dtype), slots, flat_boxes)
    gt_class = paddle.scatter(paddle.zeros([batch * num], "int64"), slots, flat_classes)
    valid = paddle.to_tensor(np.arange(num)[None, :] < np.asarray(counts)[:, None])
    return gt_bbox.reshape([batch, num, 4]), gt_class.reshape([batch, num]), valid


def soft_focal_loss(logits, targets, alpha, gamma):
    """The noisy-anchor authors' focal loss of soft targets (``retinanet_noisy.py``, ``soft_sigmoid_focal_loss``):
    ``-alpha t (1 - p)^gamma log p - (1 - alpha) (1 - t) p^gamma log(1 - p)``; equal to the focal loss for
    t in {0, 1}. Logs from log-sigmoid (stable).

    Args:
        logits, targets (Tensor[..., C]).
    Returns:
        Tensor[..., C].
    """
    p = F.sigmoid(logits)
    return (-alpha * targets * (1 - p) ** gamma * F.log_sigmoid(logits)
            - (1 - alpha) * (1 - targets) * p ** gamma * F.log_sigmoid(-logits))


def _scale(unweighted, weighted_sum):
    """Detached sum(unweighted) / weighted_sum: makes a re-weighted loss keep the un-weighted loss's value
    (the noisy-anchor authors' ``loss_scale_cls`` / ``loss_scale_reg``); 1 where the weighted sum is 0."""
    total, weighted = unweighted.sum().detach(), weighted_sum.detach()
    return paddle.where(weighted > 0, total / weighted.clip(min=1e-12), paddle.ones_like(weighted))
