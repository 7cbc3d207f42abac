"""TOOD's task-aligned assigner (Feng et al., ICCV 2021), a drop-in for ppdet's TaskAlignedAssigner.

Outputs equal PaddleDetection's TaskAlignedAssigner (tests/test_task_aligned_assigner.py checks parity).
The work is done per image on its real GTs, in GT chunks under a memory budget, with boolean masks and
top-k indices instead of a [B, n, k, L] one-hot and a [B, n, L, 4] point-in-box tensor.
"""
import paddle
import paddle.nn as nn

from . import geometry as G
from .assign_utils import build_targets, one_gt_per_anchor, pack_outputs
from .validation import check_bg_index, check_gt, check_num_anchors_list, require_finite, require_shape, \
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

        assigned, positive, norm_metric = [], [], []
        for b in range(batch):
            out = self._assign_image(pred_scores[b], pred_bboxes[b], anchor_points, gt_labels[b, :, 0],
                                     gt_bboxes[b], valid[b])
            for lst, value in zip((assigned, positive, norm_metric), out):
                lst.append(value)
        if batch:
            assigned_gt, positive, norm_metric = (paddle.stack(x) for x in (assigned, positive, norm_metric))
        else:
            assigned_gt = paddle.zeros([0, num_anchors], "int64")
            positive = paddle.zeros([0, num_anchors], "bool")
            norm_metric = paddle.zeros([0, num_anchors], pred_scores.dtype)

        labels, bboxes, scores = build_targets(assigned_gt, positive, gt_labels, gt_bboxes, bg_index,
                                               num_classes)
        scores = scores * norm_metric.unsqueeze(-1)
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

    def _assign_image(self, pred_scores, pred_boxes, anchor_points, gt_labels, gt_boxes, valid):
        """One image -> (assigned GT [L] int64, positive [L] bool, normalised metric [L])."""
        num_anchors = anchor_points.shape[0]
        real = paddle.to_tensor(valid.nonzero()[0], dtype="int64")
        if real.shape[0] == 0:
            return (paddle.zeros([num_anchors], "int64"), paddle.zeros([num_anchors], "bool"),
                    paddle.zeros([num_anchors], pred_scores.dtype))
        boxes = paddle.gather(gt_boxes, real)
        labels = paddle.gather(gt_labels, real).astype("int64")
        scores_t = pred_scores.transpose([1, 0])                                  # [C, L]
        # 1-3. top-k metric among anchors inside each GT
        idx, inside = self._topk_inside(scores_t, pred_boxes, anchor_points, boxes, labels)
        pair_anchor, pair_gt = idx[inside], real.unsqueeze(1).expand(idx.shape)[inside]

        # 4. an anchor claimed by several GTs goes to the GT its prediction overlaps most
        def iou_with_all_gts(anchors):
            return G.aligned_iou(gt_boxes.unsqueeze(0), paddle.gather(pred_boxes, anchors).unsqueeze(1),
                                 eps=G.IOU_EPS_PRED)
        assigned_gt, positive = one_gt_per_anchor(pair_anchor, pair_gt, num_anchors, iou_with_all_gts)
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
