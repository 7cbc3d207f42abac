"""TOOD's task-aligned assigner (Feng et al., ICCV 2021), a drop-in for ppdet's TaskAlignedAssigner.

Outputs equal PaddleDetection's TaskAlignedAssigner (tests/assigners/test_task_aligned_assigner.py checks parity).
The work is done per image on its real GTs, in GT chunks under a memory budget, with boolean masks and
top-k indices instead of a [B, n, k, L] one-hot and a [B, n, L, 4] point-in-box tensor.
"""
import paddle
import paddle.nn as nn

import numpy as np

from ..ops import geometry as G
from . import grid
from .assign_utils import build_targets, one_gt_per_anchor, pack_outputs
from ..ops.validation import check_bg_index, check_gt, check_num_anchors_list, require_finite, require_shape, \
    require_tensor

# Bytes of float temporaries one image may hold for its [n, L] metric before GTs are chunked.
DEFAULT_MEMORY_BUDGET_MB = 256
# Float [chunk, L] temporaries alive at once while computing the alignment metric (IoU terms, scores, metric).
_TEMPS_PER_GT_ROW = 8


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
        memory_budget_mb (int): above it, an image's GTs are processed in chunks (same result).
        return_mask_positive (bool|None): return ppdet 2.6's 4th output; None follows the installed ppdet.
    Note:
        `gt_scores` is accepted for signature compatibility and, as in PaddleDetection, not used.
    """

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
        self.return_mask_positive = return_mask_positive

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
        check_num_anchors_list(num_anchors_list, num_anchors)
        valid = check_gt(gt_labels, gt_bboxes, pad_gt_mask, num_classes)
        require_shape("gt_bboxes", gt_bboxes, [batch] + list(gt_bboxes.shape[1:]), "pred_scores is [B, L, C]")
        bg_index = check_bg_index(bg_index, num_classes)
        require_finite("pred_bboxes", pred_bboxes)
        require_finite("pred_scores", pred_scores)
        require_finite("anchor_points", anchor_points)
        num_max = gt_bboxes.shape[1]
        axes = grid.level_axes(anchor_points.numpy(), num_anchors_list)

        assigned, positive, norm_metric = [], [], []
        for b in range(batch):
            out = self._assign_image(pred_scores[b], pred_bboxes[b], anchor_points, gt_labels[b, :, 0],
                                     gt_bboxes[b], valid[b], axes, num_anchors_list)
            for lst, value in zip((assigned, positive, norm_metric), out):
                lst.append(value)
        if batch:
            assigned_gt, positive, norm_metric = (paddle.stack(x) for x in (assigned, positive, norm_metric))
        else:
            assigned_gt = paddle.zeros([0, num_anchors], "int64")
            positive = paddle.zeros([0, num_anchors], "bool")
            norm_metric = paddle.zeros([0, num_anchors], pred_scores.dtype)

        labels, bboxes, scores = build_targets(assigned_gt, positive, gt_labels, gt_bboxes, bg_index,
                                               num_classes, norm_metric)
        return pack_outputs(labels, bboxes, scores, assigned_gt, positive, num_max, self.return_mask_positive)

    def _metric(self, scores_t, pred_boxes, boxes, labels):
        """Alignment metric of GTs x anchors.

        Args:
            scores_t (Tensor[C, L]), pred_boxes (Tensor[L, 4]), boxes (Tensor[m, 4]), labels (Tensor[m]).
        Returns:
            metric (Tensor[m, L]) = s^alpha * IoU^beta.
        """
        ious = G.aligned_iou(boxes.unsqueeze(1), pred_boxes.unsqueeze(0), eps=G.IOU_EPS_PRED)
        cls = paddle.gather(scores_t, labels)
        return cls.pow(self.alpha) * ious.pow(self.beta)

    def _topk_inside(self, scores_t, pred_boxes, anchor_points, boxes, labels):
        """Top-k anchors by metric among those inside each GT (chunked over GTs).

        Returns:
            idx (Tensor[m, k] int64), inside (Tensor[m, k] bool): whether each chosen anchor is inside.
        """
        num_anchors = anchor_points.shape[0]
        k = min(self.topk, num_anchors)
        chunk = max(1, self.memory_budget_mb * 2**20 // (num_anchors * 4 * _TEMPS_PER_GT_ROW))
        idx, inside = [], []
        for i in range(0, boxes.shape[0], chunk):
            box = boxes[i:i + chunk]
            metric = self._metric(scores_t, pred_boxes, box, labels[i:i + chunk])
            is_in = G.points_inside_boxes(anchor_points.unsqueeze(0), box.unsqueeze(1))
            top = paddle.topk(paddle.where(is_in, metric, paddle.zeros_like(metric)), k, axis=-1)[1]
            idx.append(top)
            inside.append(paddle.take_along_axis(is_in.astype("uint8"), top, axis=1).astype("bool"))
        return paddle.concat(idx), paddle.concat(inside)

    def _pair_metric(self, pred_scores, pred_boxes, boxes, labels, owners, anchors):
        """Alignment metric of listed (GT, anchor) pairs, the same arithmetic as `_metric`.

        Args:
            pred_scores (Tensor[L, C]), pred_boxes (Tensor[L, 4]), boxes (Tensor[m, 4]), labels (Tensor[m]),
            owners, anchors (np.ndarray[P]).
        Returns:
            np.ndarray[P].
        """
        if len(owners) == 0:
            return np.zeros(0, np.float32)
        owners, anchors = paddle.to_tensor(owners), paddle.to_tensor(anchors)
        ious = G.aligned_iou(paddle.gather(boxes, owners), paddle.gather(pred_boxes, anchors), eps=G.IOU_EPS_PRED)
        cls = paddle.gather_nd(pred_scores, paddle.stack([anchors, paddle.gather(labels, owners)], axis=-1))
        return (cls.pow(self.alpha) * ious.pow(self.beta)).numpy()

    def _topk_sparse(self, pred_scores, pred_boxes, boxes, labels, axes, counts):
        """Top-k from the anchors inside each GT only (regular grids).

        The chosen set equals a top-k over all L (with 0 outside the GT) whenever it is unique. It is not when
        the k-th and (k+1)-th metric tie, or when fewer than k inside anchors have a metric > 0 while some
        inside anchor has metric 0: which zeros a full-row top-k picks is up to Paddle's top-k. Those GTs are
        returned as `ambiguous` for the full-row path, which reproduces PaddleDetection exactly.

        Returns:
            owners, anchors (np.ndarray[P]): positive pairs of the unambiguous GTs; ambiguous (np.ndarray[a]).
        """
        num_gts, num_anchors = boxes.shape[0], sum(counts)
        k = min(self.topk, num_anchors)
        owners, anchors = grid.inside_pairs(boxes.numpy(), axes, counts)
        metric = self._pair_metric(pred_scores, pred_boxes, boxes, labels, owners, anchors)
        order, rank, first = grid.rank_within_owner(owners, metric, anchors, num_gts, descending=True)
        owners, anchors, metric = owners[order], anchors[order], metric[order]
        if k == num_anchors:                      # every anchor is in the top-k
            return owners, anchors, np.zeros(0, np.int64)
        inside = np.diff(first)
        npos = np.bincount(owners[metric > 0], minlength=num_gts)
        last = len(metric) - 1
        kth = metric[np.minimum(first[:-1] + k - 1, last)] if len(metric) else np.zeros(num_gts)
        after = metric[np.minimum(first[:-1] + k, last)] if len(metric) else np.zeros(num_gts)
        ambiguous = ((npos > k) & (kth == after)) | ((npos < k) & (inside > npos))
        keep = (rank < k) & (metric > 0) & ~ambiguous[owners]
        return owners[keep], anchors[keep], np.nonzero(ambiguous)[0]

    def _positive_pairs(self, pred_scores, pred_boxes, anchor_points, boxes, labels, axes, counts):
        """(GT row, anchor) positive pairs: top-k metric among the anchors inside each GT.

        Returns:
            rows, anchors (Tensor[P] int64), rows indexing `boxes`.
        """
        scores_t = pred_scores.transpose([1, 0])                                  # [C, L]
        if axes is None:
            dense = paddle.arange(boxes.shape[0], dtype="int64")
            sparse_rows, sparse_anchors = np.zeros(0, np.int64), np.zeros(0, np.int64)
        else:
            sparse_rows, sparse_anchors, ambiguous = self._topk_sparse(pred_scores, pred_boxes, boxes, labels,
                                                                       axes, counts)
            dense = paddle.to_tensor(ambiguous, dtype="int64")
        rows, anchors = [paddle.to_tensor(sparse_rows)], [paddle.to_tensor(sparse_anchors)]
        if dense.shape[0] > 0:
            idx, inside = self._topk_inside(scores_t, pred_boxes, anchor_points, paddle.gather(boxes, dense),
                                            paddle.gather(labels, dense))
            rows.append(dense.unsqueeze(1).expand(idx.shape)[inside])
            anchors.append(idx[inside])
        return paddle.concat(rows), paddle.concat(anchors)

    def _assign_image(self, pred_scores, pred_boxes, anchor_points, gt_labels, gt_boxes, valid, axes, counts):
        """One image -> (assigned GT [L] int64, positive [L] bool, normalised metric [L])."""
        num_anchors = anchor_points.shape[0]
        real = paddle.to_tensor(valid.nonzero()[0], dtype="int64")
        if real.shape[0] == 0:
            return (paddle.zeros([num_anchors], "int64"), paddle.zeros([num_anchors], "bool"),
                    paddle.zeros([num_anchors], pred_scores.dtype))
        boxes = paddle.gather(gt_boxes, real)
        labels = paddle.gather(gt_labels, real).astype("int64")
        # 1-3. top-k metric among anchors inside each GT
        rows, pair_anchor = self._positive_pairs(pred_scores, pred_boxes, anchor_points, boxes, labels, axes,
                                                 counts)
        pair_gt = paddle.gather(real, rows)
        scores_t = pred_scores.transpose([1, 0])                                  # [C, L]

        # 4. an anchor claimed by several GTs goes to the GT its prediction overlaps most
        assigned_gt, positive = one_gt_per_anchor(pair_anchor, pair_gt, num_anchors, pred_boxes, gt_boxes,
                                                  G.IOU_EPS_PRED)
        # 5. normalise: metric / max metric of the GT * max IoU of the GT, over the GT's positives
        return assigned_gt, positive, self._normalised_metric(
            scores_t, pred_boxes, gt_labels.astype("int64"), gt_boxes, assigned_gt, positive)

    def _normalised_metric(self, scores_t, pred_boxes, gt_labels, gt_boxes, assigned_gt, positive):
        """Per anchor, t / (max t of its GT + eps) * (max IoU of its GT); 0 for negatives.

        Args:
            scores_t (Tensor[C, L]), pred_boxes (Tensor[L, 4]), gt_labels (Tensor[n]), gt_boxes (Tensor[n, 4]),
            assigned_gt (Tensor[L]), positive (Tensor[L] bool).
        Returns:
            Tensor[L].
        """
        num_max = gt_boxes.shape[0]
        anchors = paddle.nonzero(positive).flatten()
        out = paddle.zeros([positive.shape[0]], scores_t.dtype)
        if anchors.shape[0] == 0:
            return out
        gts = paddle.gather(assigned_gt, anchors)
        ious = G.aligned_iou(paddle.gather(gt_boxes, gts), paddle.gather(pred_boxes, anchors), eps=G.IOU_EPS_PRED)
        cls = scores_t[paddle.gather(gt_labels, gts), anchors]
        metric = cls.pow(self.alpha) * ious.pow(self.beta)
        zeros = paddle.zeros([num_max], scores_t.dtype)
        max_metric = paddle.put_along_axis(zeros, gts, metric, axis=0, reduce="amax")
        max_iou = paddle.put_along_axis(zeros, gts, ious, axis=0, reduce="amax")
        value = metric / (paddle.gather(max_metric, gts) + self.eps) * paddle.gather(max_iou, gts)
        return paddle.scatter(out, anchors, value)
