"""TOOD's task-aligned assigner (Feng et al., ICCV 2021), a drop-in for ppdet's TaskAlignedAssigner.

Outputs equal PaddleDetection's TaskAlignedAssigner (tests/assigners/test_task_aligned_assigner.py checks
parity). One call handles the real objects of every image together, so the operators it dispatches do not grow
with the batch size, and it needs 2 device-to-host copies (3 when some object needs its full row):

1. ground truth + anchor points (validation and the host-side grid index work);
2. each object's top-k anchors, positive flags and tie flags (to resolve anchors claimed by several objects).

On a regular grid the anchors inside a box form a rectangle of each level, so the alignment metric is
computed for (object, inside anchor) pairs only: no [B, n, L] metric, no [B, n, k, L] one-hot.
"""
import numpy as np
import paddle
import paddle.nn as nn

from ..ops import geometry as G
from ..ops.validation import check_bg_index, check_gt_shapes, check_num_anchors_list, require_shape, \
    require_tensor
from . import grid
from .assign_utils import HostInputs, background_outputs, build_targets, dense_assignment, gather_rows, \
    pack_outputs, resolve_claims, row_chunks, zero_ties_come_from_prefix

# Bytes of float temporaries a call may hold for [rows, L] metrics before rows are chunked.
DEFAULT_MEMORY_BUDGET_MB = 256
# Float [rows, L] temporaries alive at once while computing the alignment metric (IoU terms, scores, metric).
_TEMPS_PER_ROW = 12


class TaskAlignedAssigner(nn.Layer):
    """Task-aligned assignment.

    For each GT, the alignment metric t = s^alpha * u^beta (s: predicted score of the GT's class, u: IoU of
    the predicted box with the GT) is computed at every anchor point inside the GT; the `topk` anchors of
    highest t are positives. An anchor claimed by several GTs goes to the GT its prediction overlaps most.
    Scores are t normalised per GT so that its best anchor scores the GT's best IoU.

    Args:
        topk (int): positives per GT (clipped to L).
        alpha (float), beta (float): exponents of the metric.
        eps (float): added to the per-GT max metric before normalising.
        is_close_gt (bool): ppdet's distance-based candidate variant; not supported (raises).
        memory_budget_mb (int): above it, temporaries are computed in row chunks (same result).
        return_mask_positive (bool|None): return ppdet 2.6's 4th output (mask_positive); None: the class
            default, which ``import ppassign`` sets to what the installed ppdet's heads unpack.
    Note:
        `gt_scores` is accepted for signature compatibility and, as in PaddleDetection, not used.
    """
    return_mask_positive = False  # PaddleDetection 2.7+; set by ppassign.plugin for the installed ppdet

    def __init__(self, topk=13, alpha=1.0, beta=6.0, eps=1e-9, is_close_gt=False,
                 memory_budget_mb=DEFAULT_MEMORY_BUDGET_MB, return_mask_positive=None):
        super().__init__()
        if is_close_gt:
            raise ValueError("is_close_gt=True is not supported by ppassign's TaskAlignedAssigner")
        if int(topk) < 1:
            raise ValueError(f"topk must be >= 1, got {topk}")
        self.topk = int(topk)
        self.alpha = alpha
        self.beta = beta
        self.eps = eps
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
            assigned_labels (Tensor[B, L]), assigned_bboxes (Tensor[B, L, 4]), assigned_scores (Tensor[B, L, C])
            and, for ppdet < 2.7, mask_positive (Tensor[B, n, L]).
        """
        require_tensor("pred_scores", pred_scores, 3)
        batch, num_anchors, num_classes = pred_scores.shape
        require_tensor("pred_bboxes", pred_bboxes, 3, last=4)
        require_shape("pred_bboxes", pred_bboxes, [batch, num_anchors, 4], "pred_scores is [B, L, C]")
        require_tensor("anchor_points", anchor_points, 2, last=2)
        require_shape("anchor_points", anchor_points, [num_anchors, 2], "pred_scores is [B, L, C]")
        counts = check_num_anchors_list(num_anchors_list, num_anchors)
        check_gt_shapes(gt_labels, gt_bboxes, pad_gt_mask)
        require_shape("gt_bboxes", gt_bboxes, [batch] + list(gt_bboxes.shape[1:]), "pred_scores is [B, L, C]")
        bg_index = check_bg_index(bg_index, num_classes)
        num_max = gt_bboxes.shape[1]
        # device-to-host copy 1
        host = HostInputs.fetch(gt_labels, gt_bboxes, pad_gt_mask, num_classes, extra=[anchor_points],
                                finite=[("pred_bboxes", pred_bboxes), ("pred_scores", pred_scores)])
        points_host = host.extra[0].reshape(num_anchors, 2)
        if not np.isfinite(points_host).all():
            raise ValueError("anchor_points contains NaN or inf values")
        if host.num_objects == 0:
            *targets, assigned, positive = background_outputs(batch, num_anchors, num_classes, gt_labels,
                                                              gt_bboxes, bg_index)
            return pack_outputs(*targets, assigned, positive, num_max, self.return_mask_positive)

        obj_boxes = gather_rows(gt_bboxes.reshape([-1, 4]), host.image * num_max + host.slot)   # [M, 4]
        pair_obj, pair_anchor = self._positive_pairs(pred_scores, pred_bboxes, anchor_points, points_host, counts,
                                                     obj_boxes, host)
        # 4. an anchor claimed by several objects goes to the GT its prediction overlaps most
        flat_pred = pred_bboxes.reshape([-1, 4])
        flat, slot = resolve_claims(host.image[pair_obj], host.slot[pair_obj], pair_anchor, num_anchors,
                                    lambda f: gather_rows(flat_pred, f), gt_bboxes, G.IOU_EPS_PRED,
                                    self.memory_budget_mb)
        assigned, positive = dense_assignment(flat, slot, batch, num_anchors)
        # 5. normalise: metric / max metric of the GT * max IoU of the GT, over the GT's positives
        weights = self._normalised_metric(pred_scores, flat_pred, gt_labels, gt_bboxes, flat, slot)
        labels, bboxes, scores = build_targets(assigned, positive, gt_labels, gt_bboxes, bg_index, num_classes,
                                               weights)
        return pack_outputs(labels, bboxes, scores, assigned, positive, num_max, self.return_mask_positive)

    # --- steps ------------------------------------------------------------------------------------------------

    def _metric(self, scores, ious):
        """t = s^alpha * u^beta, elementwise (ppdet's operation order)."""
        return scores.pow(self.alpha) * ious.pow(self.beta)

    def _positive_pairs(self, pred_scores, pred_bboxes, anchor_points, points_host, counts, obj_boxes, host):
        """1-3. (object, anchor) positives of the whole batch: the top-k metric among the anchors inside each.

        Returns:
            pair_obj, pair_anchor (np.ndarray[P] int64).
        """
        axes = grid.level_axes(points_host, counts)
        if axes is None:                                # points off a regular grid: full rows for every object
            rows = np.arange(host.num_objects)
            return self._full_row_pairs(pred_scores, pred_bboxes, anchor_points, obj_boxes, host, rows)
        top_anchor, keep, ambiguous = self._sparse_topk(pred_scores, pred_bboxes, obj_boxes, points_host, axes, counts, host)
        rows = np.nonzero(ambiguous)[0]
        keep[rows] = False
        obj, col = np.nonzero(keep)
        pair_obj, pair_anchor = obj, top_anchor[obj, col]
        if len(rows):                                   # device-to-host copy 3
            more_obj, more_anchor = self._full_row_pairs(pred_scores, pred_bboxes, anchor_points, obj_boxes, host,
                                                         rows)
            pair_obj, pair_anchor = np.concatenate([pair_obj, more_obj]), np.concatenate([pair_anchor, more_anchor])
        return pair_obj, pair_anchor

    def _sparse_topk(self, pred_scores, pred_bboxes, obj_boxes, points_host, axes, counts, host):
        """Top-k by metric among the anchors inside each object, from (object, inside anchor) pairs only.

        The chosen set equals a top-k over the full row (0 outside the object) whenever it does not depend on
        how top-k breaks ties. It can when the k-th and (k+1)-th metric tie, or when fewer than k inside anchors
        have a metric > 0 while some inside anchor has metric 0 (which zeros a full-row top-k picks); the
        latter is settled without the row where the device's top-k is known to take zeros only from the row's
        first k entries (`zero_ties_come_from_prefix`) and the object holds none of those anchors. The other
        objects are flagged for the full row.

        Returns (device-to-host copy 2):
            top_anchor (np.ndarray[M, k] int64), keep (np.ndarray[M, k] bool), ambiguous (np.ndarray[M] bool).
        """
        num_objects, num_anchors, num_classes = host.num_objects, sum(counts), pred_scores.shape[2]
        k = min(self.topk, num_anchors)
        owners, anchors = grid.inside_pairs(host.obj_boxes, points_host, axes, counts)
        size = np.bincount(owners, minlength=num_objects)
        if len(owners) == 0:
            return np.zeros((num_objects, k), np.int64), np.zeros((num_objects, k), bool), np.zeros(num_objects, bool)
        first = np.cumsum(size) - size
        image = host.image[owners]
        flat_anchor = image * num_anchors + anchors
        ious = G.aligned_iou(gather_rows(obj_boxes, owners), gather_rows(pred_bboxes.reshape([-1, 4]), flat_anchor),
                             eps=G.IOU_EPS_PRED)
        scores = gather_rows(pred_scores.reshape([-1]), flat_anchor * num_classes + host.obj_labels[owners])
        metric = self._metric(scores, ious)                                               # [P]
        # order pairs by (object, metric descending, anchor): two stable sorts
        by_metric = paddle.argsort(metric, descending=True, stable=True)
        by_owner = paddle.argsort(paddle.gather(paddle.to_tensor(owners), by_metric), stable=True)
        perm = paddle.gather(by_metric, by_owner)
        metric_sorted = paddle.gather(metric, perm)
        anchor_sorted = paddle.gather(paddle.to_tensor(anchors), perm)
        rank = np.arange(k)
        in_range = rank[None] < size[:, None]                                             # [M, k]
        position = np.minimum(first[:, None] + rank[None], len(owners) - 1)
        top_metric = gather_rows(metric_sorted, position.ravel()).reshape([num_objects, k])
        top_anchor = gather_rows(anchor_sorted, position.ravel()).reshape([num_objects, k])
        in_range_t = paddle.to_tensor(in_range)
        if k == num_anchors:                            # every anchor is in the top-k: all inside ones are positive
            keep = in_range_t
            ambiguous = paddle.zeros([num_objects], "bool")
        else:
            keep = in_range_t & (top_metric > 0)
            after = gather_rows(metric_sorted, np.minimum(first + k, len(owners) - 1))
            tie = paddle.to_tensor(size > k) & (after > 0) & (top_metric[:, k - 1] == after)
            num_pos = keep.astype("int64").sum(axis=-1)
            risky = np.ones(num_objects, bool)
            if zero_ties_come_from_prefix(k, num_anchors):
                risky = np.bincount(owners[anchors < k], minlength=num_objects) > 0
            short = (num_pos < k) & (paddle.to_tensor(size) > num_pos) & paddle.to_tensor(risky)
            ambiguous = tie | short
        host_view = paddle.concat([top_anchor.astype("int32").flatten(), keep.astype("int32").flatten(),
                                   ambiguous.astype("int32")]).numpy()
        cells = num_objects * k
        return (host_view[:cells].reshape(num_objects, k).astype(np.int64),
                host_view[cells:2 * cells].reshape(num_objects, k).astype(bool), host_view[2 * cells:].astype(bool))

    def _full_row_pairs(self, pred_scores, pred_bboxes, anchor_points, obj_boxes, host, rows):
        """PaddleDetection's computation for objects `rows`: top-k of metric x inside over all L anchors.

        Returns (one device-to-host copy):
            pair_obj, pair_anchor (np.ndarray[P] int64): chosen anchors that lie inside their object.
        """
        num_anchors, num_classes = pred_scores.shape[1], pred_scores.shape[2]
        k = min(self.topk, num_anchors)
        column = paddle.arange(num_anchors, dtype="int64") * num_classes                  # [L]
        flat_scores = pred_scores.reshape([-1])
        idx, inside = [], []
        for i, j in row_chunks(len(rows), num_anchors * 4 * _TEMPS_PER_ROW, self.memory_budget_mb):
            part = rows[i:j]
            boxes = gather_rows(obj_boxes, part).unsqueeze(1)                             # [t, 1, 4]
            ious = G.aligned_iou(boxes, gather_rows(pred_bboxes, host.image[part]), eps=G.IOU_EPS_PRED)
            base = host.image[part] * num_anchors * num_classes + host.obj_labels[part]
            scores = paddle.gather(flat_scores, (paddle.to_tensor(base).unsqueeze(1) + column).flatten())
            metric = self._metric(scores.reshape(ious.shape), ious)                     # [t, L]
            is_in = G.points_inside_boxes(anchor_points.unsqueeze(0), boxes)
            top = paddle.topk(metric * is_in.astype(metric.dtype), k, axis=-1)[1]
            idx.append(top)
            inside.append(paddle.take_along_axis(is_in.astype("int64"), top, axis=1))
        both = paddle.concat([paddle.concat(idx), paddle.concat(inside)], axis=1).numpy()
        chosen, is_in = both[:, :k], both[:, k:].astype(bool)
        obj, col = np.nonzero(is_in)
        return rows[obj], chosen[obj, col]

    def _normalised_metric(self, pred_scores, flat_pred, gt_labels, gt_bboxes, flat, slot):
        """Per anchor, t / (max t of its GT + eps) * (max IoU of its GT); 0 for negatives.

        Args:
            pred_scores (Tensor[B, L, C]), flat_pred (Tensor[B * L, 4]), gt_labels (Tensor[B, n, 1]),
            gt_bboxes (Tensor[B, n, 4]), flat (np.ndarray[F]): positive anchors b * L + a, slot (Tensor[F]).
        Returns:
            Tensor[B, L].
        """
        batch, num_anchors, num_classes = pred_scores.shape
        num_max = gt_bboxes.shape[1]
        out = paddle.zeros([batch * num_anchors], pred_scores.dtype)
        if len(flat) == 0:
            return out.reshape([batch, num_anchors])
        gt = slot + paddle.to_tensor((flat // num_anchors) * num_max)                      # [F] in B * n
        ious = G.aligned_iou(paddle.gather(gt_bboxes.reshape([-1, 4]), gt), gather_rows(flat_pred, flat),
                             eps=G.IOU_EPS_PRED)
        label = paddle.gather(gt_labels.reshape([-1]).astype("int64"), gt)
        scores = paddle.gather(pred_scores.reshape([-1]), label + paddle.to_tensor(flat * num_classes))
        metric = self._metric(scores, ious)
        zeros = paddle.zeros([batch * num_max], pred_scores.dtype)
        max_metric = paddle.put_along_axis(zeros, gt, metric, axis=0, reduce="amax")
        max_iou = paddle.put_along_axis(zeros, gt, ious, axis=0, reduce="amax")
        value = metric / (paddle.gather(max_metric, gt) + self.eps) * paddle.gather(max_iou, gt)
        return paddle.scatter(out, paddle.to_tensor(flat), value).reshape([batch, num_anchors])
