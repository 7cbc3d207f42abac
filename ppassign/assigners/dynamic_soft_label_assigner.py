"""RTMDet's dynamic soft-label assignment (Lyu et al., 2022, "RTMDet: An Empirical Study of Designing Real-Time
Object Detectors", Sec. 3.2), with the task-aligned assigner's call and outputs.

The rule, as MMDetection's ``DynamicSoftLabelAssigner`` computes it. Candidates are the anchor points strictly
inside some object of their image; each (object, candidate) pair costs

    C = C_cls + C_iou + C_center
    C_cls    = sum over classes c of BCE(p_c, Y_c) * |Y_c - p_c|^2,   Y = IoU at the object's class, 0 elsewhere
    C_iou    = -log(IoU + 1e-7) * iou_weight
    C_center = 10 ** (|anchor point - object centre| / stride - soft_center_radius)

(IoU of the candidate's predicted box with the object). Then dynamic-k matching (`dynamic_k`): each object takes
its k cheapest candidates, k = max(1, int(sum of its `topk` highest IoUs)); a candidate taken by several objects
goes to its cheapest object. A positive's target score is its IoU with its object, at the object's class.

PaddleDetection's heads pass probabilities (MMDetection passes logits; BCE-with-logits(x, y) = BCE(sigmoid(x), y)),
and logs are clamped at -100 as in Paddle's binary_cross_entropy. The class sum never builds a class axis per
pair: sum_c f(p_c, 0) is computed once per candidate and the object's class term swapped in.

Batched: one call handles every image together, so the operators it dispatches do not grow with the batch size,
with one device-to-host copy (ground truth and anchor points, for validation and the candidate index work).
Costs live as [B, n, V] (V: candidates of the image with the most), computed in slot chunks within a memory budget.
"""
import numpy as np
import paddle
import paddle.nn as nn

from ..ops.precision import float32_inputs
from ..ops.validation import NonFiniteError, check_task_aligned_inputs
from . import grid
from .assign_utils import HostInputs, background_outputs, build_targets, pack_outputs, row_chunks
from .dynamic_k import candidate_columns, dynamic_ks, flat_columns, gather_columns, lowest_k, \
    resolve_to_lowest_cost, scatter_to_anchors

# MMDetection's DynamicSoftLabelAssigner: EPS in -log(IoU + EPS); BboxOverlaps2D clamps the union at 1e-6.
IOU_COST_EPS = 1e-7
UNION_EPS = 1e-6
# Paddle's binary_cross_entropy clamps log(p) and log(1 - p) at -100.
LOG_MIN = -100.0
DEFAULT_MEMORY_BUDGET_MB = 256
# Float temporaries alive per (image, slot, candidate) entry while a chunk's costs are computed.
_TEMPS_PER_ENTRY = 40
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _overlaps(boxes1, boxes2):
    """IoU with the union clamped at UNION_EPS (MMDetection's bbox_overlaps), broadcasting: Tensor[...]."""
    lo = paddle.maximum(boxes1[..., :2], boxes2[..., :2])
    hi = paddle.minimum(boxes1[..., 2:], boxes2[..., 2:])
    overlap = (hi - lo).clip(0).prod(-1)
    area1 = (boxes1[..., 2:] - boxes1[..., :2]).prod(-1)
    area2 = (boxes2[..., 2:] - boxes2[..., :2]).prod(-1)
    return overlap / paddle.maximum(area1 + area2 - overlap, paddle.full([], UNION_EPS, overlap.dtype))


def _log(x):
    return paddle.maximum(paddle.log(x), paddle.full([], LOG_MIN, x.dtype))


def _bce(p, y):
    """Elementwise binary cross-entropy of probabilities p against targets y, logs clamped at LOG_MIN."""
    return -(y * _log(p) + (1 - y) * _log(1 - p))


def _background_term(p):
    """A class's cost where its target is 0: BCE(p, 0) * p^2."""
    return -_log(1 - p) * p * p


class DynamicSoftLabelAssigner(nn.Layer):
    """RTMDet's dynamic soft-label assigner (see the module docstring), called as ppdet's TaskAlignedAssigner.

    Args:
        topk (int): highest IoUs summed for an object's dynamic k (RTMDet: 13).
        soft_center_radius (float): distance, in strides, at which the centre cost is 1 (RTMDet: 3.0).
        iou_weight (float): weight of the IoU cost (RTMDet: 3.0).
        strides (list[float] | None): stride of each level; None: the spacing of each level's grid of anchor
            points (needed when the points do not form regular grids).
        memory_budget_mb (int): above it, costs are computed in slot chunks (same result).
        return_mask_positive (bool|None): return ppdet 2.6's 4th output (mask_positive); None: the class
            default, which ``import ppassign`` sets to what the installed ppdet's heads unpack.
    Note:
        `gt_scores` is accepted for the task-aligned call and not used. Float16 / bfloat16 inputs are computed in
        float32 and give float32 outputs.
    """
    return_mask_positive = False  # PaddleDetection 2.7+; set by ppassign.plugin for the installed ppdet

    def __init__(self, topk=13, soft_center_radius=3.0, iou_weight=3.0, strides=None,
                 memory_budget_mb=DEFAULT_MEMORY_BUDGET_MB, return_mask_positive=None):
        super().__init__()
        if int(topk) < 1:
            raise ValueError(f"topk must be >= 1, got {topk}")
        if strides is not None and (not len(strides) or min(float(s) for s in strides) <= 0):
            raise ValueError(f"strides must be positive numbers, one per level, got {strides!r}")
        self.topk = int(topk)
        self.soft_center_radius = float(soft_center_radius)
        self.iou_weight = float(iou_weight)
        self.strides = None if strides is None else [float(s) for s in strides]
        self.memory_budget_mb = memory_budget_mb
        if return_mask_positive is not None:
            self.return_mask_positive = bool(return_mask_positive)

    @paddle.no_grad()
    def forward(self, pred_scores, pred_bboxes, anchor_points, num_anchors_list, gt_labels, gt_bboxes,
                pad_gt_mask, bg_index, gt_scores=None):
        """Assign anchor points to GTs.

        Args:
            pred_scores (Tensor[B, L, C]): class probabilities.
            pred_bboxes (Tensor[B, L, 4]): xyxy predicted boxes, in the GTs' units.
            anchor_points (Tensor[L, 2]): (x, y) anchor centres.
            num_anchors_list (list[int]): anchors per level, summing to L.
            gt_labels (Tensor[B, n, 1], int32|int64), gt_bboxes (Tensor[B, n, 4]),
            pad_gt_mask (Tensor[B, n, 1]): 1 for real GTs, 0 for padding.
            bg_index (int): label given to negatives.
            gt_scores: unused (see class note).
        Returns:
            assigned_labels (Tensor[B, L]), assigned_bboxes (Tensor[B, L, 4]), assigned_scores (Tensor[B, L, C]):
            IoU at the label's column; and, for ppdet < 2.7, mask_positive (Tensor[B, n, L]).
        """
        counts, bg_index = check_task_aligned_inputs(pred_scores, pred_bboxes, anchor_points, num_anchors_list,
                                                     gt_labels, gt_bboxes, pad_gt_mask, bg_index)
        batch, num_anchors, num_classes = pred_scores.shape
        if self.strides is not None and len(self.strides) != len(counts):
            raise ValueError(f"strides must give one stride per level: {len(counts)} levels in num_anchors_list, "
                             f"got strides={self.strides}")
        pred_scores, pred_bboxes, anchor_points, gt_bboxes = float32_inputs(pred_scores, pred_bboxes,
                                                                            anchor_points, gt_bboxes)
        num_max = gt_bboxes.shape[1]
        # device-to-host copy 1 (the only one)
        host = HostInputs.fetch(gt_labels, gt_bboxes, pad_gt_mask, num_classes, extra=[anchor_points],
                                finite=[("pred_bboxes", pred_bboxes), ("pred_scores", pred_scores)])
        points_host = host.extra[0].reshape(num_anchors, 2)
        if not np.isfinite(points_host).all():
            raise NonFiniteError("anchor_points")
        axes = grid.level_axes(points_host, counts)
        strides_host = self._anchor_strides(axes, counts)
        candidates = self._candidates(points_host, axes, counts, host, batch)
        if host.num_objects == 0 or not candidates.any():
            *targets, assigned, positive = background_outputs(batch, num_anchors, num_classes, gt_labels,
                                                              gt_bboxes, bg_index)
            return pack_outputs(*targets, assigned, positive, num_max, self.return_mask_positive)

        columns, real = candidate_columns(candidates)
        flat = flat_columns(columns, num_anchors)
        cost, selected = self._match(pred_scores, pred_bboxes, anchor_points, strides_host, gt_labels, gt_bboxes,
                                     host, columns, real, flat)
        winner, positive = resolve_to_lowest_cost(selected, cost)
        assigned, positive = scatter_to_anchors(winner, positive, flat, real, num_anchors)
        # the soft target: IoU of each positive's prediction with its object
        gt_of_anchor = paddle.take_along_axis(gt_bboxes, assigned.unsqueeze(-1), axis=1, broadcast=True)
        weights = _overlaps(gt_of_anchor, pred_bboxes)
        labels, bboxes, scores = build_targets(assigned, positive, gt_labels, gt_bboxes, bg_index, num_classes,
                                               weights)
        return pack_outputs(labels, bboxes, scores, assigned, positive, num_max, self.return_mask_positive)

    # --- steps ------------------------------------------------------------------------------------------------

    def _anchor_strides(self, axes, counts):
        """Stride of every anchor, np.ndarray[L] float32: `strides`, or each level's grid spacing."""
        if self.strides is not None:
            return np.repeat(np.float32(self.strides), counts)
        if axes is None:
            raise ValueError("anchor_points do not form a regular grid on every level, so their strides cannot be "
                             "read from them: give the assigner strides=[...] (one per level)")
        per_level = []
        for level, (xs, ys) in enumerate(axes):
            spacing = np.diff(xs) if len(xs) > 1 else np.diff(ys)
            if not len(spacing):
                raise ValueError(f"level {level} of anchor_points holds a single point, so its stride cannot be "
                                 f"read from it: give the assigner strides=[...] (one per level)")
            per_level.append(spacing[0])
        return np.repeat(np.float32(per_level), counts)

    @staticmethod
    def _candidates(points_host, axes, counts, host, batch):
        """Anchors strictly inside some real object of their image: np.ndarray[B, L] bool."""
        num_anchors = points_host.shape[0]
        out = np.zeros((batch, num_anchors), bool)
        if host.num_objects == 0:
            return out
        if axes is not None:
            owners, anchors = grid.inside_pairs(host.obj_boxes, points_host, axes, counts)
            out[host.image[owners], anchors] = True
            return out
        for obj, (image, box) in enumerate(zip(host.image, host.obj_boxes)):    # off-grid points: host only
            ltrb = np.concatenate([points_host - box[:2], box[2:] - points_host], axis=1)
            out[image] |= ltrb.min(1) > np.float32(1e-9)
        return out

    def _match(self, pred_scores, pred_bboxes, anchor_points, strides_host, gt_labels, gt_bboxes, host, columns,
               real, flat):
        """Costs [B, n, V] (+inf in padding) and the dynamic-k matches [B, n, V] bool, in slot chunks."""
        batch, num_max = gt_bboxes.shape[:2]
        width = columns.shape[1]
        cand_pred = gather_columns(pred_bboxes, flat)                                    # [B, V, 4]
        cand_scores = gather_columns(pred_scores, flat)                                  # [B, V, C]
        cand_points = paddle.gather(anchor_points, paddle.to_tensor(columns.reshape(-1))).reshape([batch, width, 2])
        cand_strides = paddle.to_tensor(strides_host[columns])                           # [B, V]
        background = _background_term(cand_scores).sum(-1)                              # [B, V]
        by_class = cand_scores.transpose([0, 2, 1])                                      # [B, C, V]
        labels = gt_labels.squeeze(-1).astype("int64")                                   # [B, n]
        valid = paddle.to_tensor(host.valid[:, :, None] & real[:, None, :])              # [B, n, V]
        costs, matches = [], []
        for start, stop in row_chunks(num_max, batch * width * 4 * _TEMPS_PER_ENTRY, self.memory_budget_mb):
            boxes = gt_bboxes[:, start:stop]                                              # [B, c, 4]
            ok = valid[:, start:stop]
            iou = _overlaps(boxes.unsqueeze(2), cand_pred.unsqueeze(1))                   # [B, c, V]
            p = paddle.take_along_axis(by_class, labels[:, start:stop].unsqueeze(-1), axis=1, broadcast=True)
            cls_cost = background.unsqueeze(1) - _background_term(p) + _bce(p, iou) * (iou - p).abs().pow(2)
            centres = (boxes[..., :2] + boxes[..., 2:]) / 2
            distance = (cand_points.unsqueeze(1) - centres.unsqueeze(2)).pow(2).sum(-1).sqrt() \
                / cand_strides.unsqueeze(1)
            center_cost = paddle.pow(paddle.full([], 10.0, distance.dtype), distance - self.soft_center_radius)
            cost = cls_cost - paddle.log(iou + IOU_COST_EPS) * self.iou_weight + center_cost
            # real pairs below +inf (a far candidate's centre cost overflows), so padding never wins a tie
            cost = paddle.where(ok, cost.clip(max=_FLOAT32_MAX), paddle.full_like(cost, float("inf")))
            ks = dynamic_ks(paddle.where(ok, iou, paddle.zeros_like(iou)), self.topk)
            matches.append(lowest_k(cost, ks, self.topk) & ok)
            costs.append(cost)
        if len(costs) == 1:
            return costs[0], matches[0]
        return paddle.concat(costs, axis=1), paddle.concat(matches, axis=1)
