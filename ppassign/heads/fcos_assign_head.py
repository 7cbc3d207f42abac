"""PPAssignFCOSHead: PaddleDetection's FCOSHead whose training targets come from a ppassign RetinaNet assigner.

ppdet's ``FCOSHead`` trains on targets its reader builds (``Gt2FCOSTarget``: FCOS's rule). This subclass keeps
its layers, parameters, loss (``FCOSLoss``), inference and export and builds the same three targets -- class
labels, ``(l, t, r, b)`` distances (divided by the stride with ``norm_reg_targets``) and centerness -- in the
loss instead, from any assigner with ``assign_batch`` and a hard assignment, given one square *virtual
anchor* of ``anchor_scale x stride`` centred on every point. That is how the ATSS paper runs ATSS on FCOS
(Zhang et al., CVPR 2020, Sec. 3-4: "one square anchor box ... of 8S" per location, used only to select the
positives; the regression stays point-based):

- ``PPAssignATSSRetinaAssigner``: FCOS with ATSS (a positive whose point lies outside the object it is given
  -- an anchor claimed by several objects goes to the one of highest IoU -- is a negative: it has no distances
  to regress);
- ``PPAssignFCOSRuleAssigner`` with FCOS's ranges and radius: FCOS's own rule, the same targets as
  ``Gt2FCOSTarget`` (tested), so the same loss as ppdet's FCOSHead with reader targets.

Ground truth comes padded (``PadGT`` in the reader, in place of ``Gt2FCOSTarget``) or as per-image lists; the
whole batch is assigned at once.
"""
import numpy as np
import paddle
from ppdet.modeling.heads.fcos_head import FCOSHead

from ..assigners.retina_base import matched_rows
from .retina_head import padded_targets


def fcos_points(shapes, strides, num_shift):
    """Points of every level, in ppdet's FCOS order (row-major per level): (x, y) = (j, i) * s + s * num_shift.

    Args:
        shapes (list[(H, W)]), strides (list[float]), num_shift (float).
    Returns:
        (points np.ndarray [L, 2] float32, stride of every point np.ndarray [L], points per level list[int]).
    """
    points, per_point, counts = [], [], []
    for (h, w), s in zip(shapes, strides):
        ys, xs = np.meshgrid(np.arange(h, dtype="float32"), np.arange(w, dtype="float32"), indexing="ij")
        points.append(np.stack([xs.ravel(), ys.ravel()], axis=1) * s + s * num_shift)
        per_point.append(np.full(h * w, s, "float32"))
        counts.append(h * w)
    return np.concatenate(points).astype("float32"), np.concatenate(per_point), counts


def centerness(ltrb):
    """FCOS's centerness of distances [..., 4] (l, t, r, b), all > 0 -> Tensor[...]."""
    lr, tb = ltrb[..., 0::2], ltrb[..., 1::2]
    return ((lr.min(-1) / lr.max(-1)) * (tb.min(-1) / tb.max(-1))).sqrt()


class PPAssignFCOSHead(FCOSHead):
    """ppdet's FCOSHead (same arguments) whose targets come from `assigner` on virtual anchors (module docstring).

    Args (besides FCOSHead's):
        assigner: a ppassign RetinaNet assigner with a hard assignment (no ignored anchors, no predictions),
            e.g. PPAssignATSSRetinaAssigner or PPAssignFCOSRuleAssigner.
        anchor_scale (float): side of the virtual anchor in strides (ATSS paper: 8).
    """
    __inject__ = ['fcos_feat', 'fcos_loss', 'nms', 'assigner']
    __shared__ = ['num_classes', 'trt']

    def __init__(self, num_classes=80, fcos_feat='FCOSFeat', fpn_stride=(8, 16, 32, 64, 128), prior_prob=0.01,
                 multiply_strides_reg_targets=False, norm_reg_targets=True, centerness_on_reg=True, num_shift=0.5,
                 sqrt_score=False, fcos_loss='FCOSLoss', nms='MultiClassNMS', trt=False,
                 assigner='PPAssignATSSRetinaAssigner', anchor_scale=8.0):
        super().__init__(num_classes=num_classes, fcos_feat=fcos_feat, fpn_stride=list(fpn_stride),
                         prior_prob=prior_prob, multiply_strides_reg_targets=multiply_strides_reg_targets,
                         norm_reg_targets=norm_reg_targets, centerness_on_reg=centerness_on_reg, num_shift=num_shift,
                         sqrt_score=sqrt_score, fcos_loss=fcos_loss, nms=nms, trt=trt)
        if not hasattr(assigner, "assign_batch"):
            raise ValueError(f"assigner must be a ppassign RetinaNet assigner (with assign_batch), got "
                             f"{type(assigner).__name__}")
        if getattr(assigner, "needs_predictions", False):
            raise ValueError(f"assigner {type(assigner).__name__} needs the head's predictions; PPAssignFCOSHead "
                             f"takes rules that need only boxes (e.g. ATSS, FCOS's rule)")
        self.assigner = assigner
        self.anchor_scale = float(anchor_scale)
        if not self.anchor_scale > 0:
            raise ValueError(f"anchor_scale must be > 0, got {anchor_scale!r}")

    def get_loss(self, fcos_head_outs, targets):
        cls_logits, bboxes_reg, centerness_pred = fcos_head_outs
        labels, reg_targets, ctn_targets = self.build_targets([x.shape[2:] for x in cls_logits], targets,
                                                              cls_logits[0].shape[0])
        return self.fcos_loss(cls_logits, bboxes_reg, centerness_pred, labels, reg_targets, ctn_targets)

    @paddle.no_grad()
    def build_targets(self, shapes, targets, batch):
        """Gt2FCOSTarget's fields from the assignment: per level labels [B, H, W, 1] int32 (class + 1, 0 for
        background), reg_target [B, H, W, 4] and centerness [B, H, W, 1].

        Args:
            shapes (list[(H, W)]): feature map sizes; targets (dict): gt_bbox / gt_class (+ pad_gt_mask); batch (int).
        """
        points_np, strides_np, counts = fcos_points(shapes, self.fpn_stride, self.num_shift)
        points, strides = paddle.to_tensor(points_np), paddle.to_tensor(strides_np)
        half = (self.anchor_scale * strides / 2)[:, None]
        anchors = paddle.concat([points - half, points + half], axis=1)                         # [L, 4]
        gt_bbox, gt_class, valid = padded_targets(targets, batch)
        num = anchors.shape[0]
        if gt_bbox.shape[1] == 0:
            positive = paddle.zeros([batch, num], "bool")
            ltrb = paddle.ones([batch, num, 4])
            labels = paddle.zeros([batch, num], "int32")
        else:
            out = self.assigner.assign_batch(anchors, gt_bbox, valid, gt_class=gt_class, num_anchors_list=counts)
            box = matched_rows(gt_bbox, out.matches)                                          # [B, L, 4]
            ltrb = paddle.concat([points - box[..., :2], box[..., 2:] - points], axis=-1)
            # A point can only regress an object around it. ATSS gives an anchor that is a positive of several
            # objects to the one of highest IoU among all objects (as PaddleDetection's), which may not contain
            # the point: such points are negatives here.
            positive = (out.labels == 1) & (ltrb.min(axis=-1) > 0)
            ltrb = paddle.where(positive[..., None], ltrb, paddle.ones_like(ltrb))
            labels = paddle.where(positive, matched_rows(gt_class, out.matches) + 1,
                                  paddle.zeros_like(out.matches)).astype("int32")
        ctn = paddle.where(positive, centerness(ltrb), paddle.zeros([batch, num]))
        if self.norm_reg_targets and not self.multiply_strides_reg_targets:
            ltrb = ltrb / strides[:, None]
        out_labels, out_reg, out_ctn = [], [], []
        for (h, w), part_labels, part_reg, part_ctn in zip(shapes, labels.split(counts, axis=1),
                                                          ltrb.split(counts, axis=1), ctn.split(counts, axis=1)):
            out_labels.append(part_labels.reshape([batch, h, w, 1]))
            out_reg.append(part_reg.reshape([batch, h, w, 4]))
            out_ctn.append(part_ctn.reshape([batch, h, w, 1]))
        return out_labels, out_reg, out_ctn
