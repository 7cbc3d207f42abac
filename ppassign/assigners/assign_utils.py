"""Steps shared by ATSSAssigner and TaskAlignedAssigner: one positive GT per anchor, then the targets.

Both assigners first pick positive (GT, anchor) pairs for each image, sparsely; these helpers turn the pairs
into PaddleDetection's dense outputs without building [B, n, L] intermediates.
"""
import numpy as np
import paddle

from .. import compat
from ..ops.geometry import aligned_iou


def per_anchor_counts(anchor_idx, gt_idx, num_anchors):
    """Count positive pairs per anchor and sum their GT indices.

    Args:
        anchor_idx (Tensor[P], int64): anchor of each positive pair.
        gt_idx (Tensor[P], int64): GT of each positive pair.
        num_anchors (int): L.
    Returns:
        counts (Tensor[L], int64): positives claimed per anchor.
        gt_sum (Tensor[L], int64): sum of their GT indices (the GT itself where counts == 1).
    """
    if anchor_idx.shape[0] == 0:
        zeros = paddle.zeros([num_anchors], "int64")
        return zeros, zeros
    index = anchor_idx.reshape([-1, 1])
    counts = paddle.scatter_nd_add(paddle.zeros([num_anchors], "int64"), index, paddle.ones_like(anchor_idx))
    gt_sum = paddle.scatter_nd_add(paddle.zeros([num_anchors], "int64"), index, gt_idx)
    return counts, gt_sum


# Pairs examined at once when looking for the GTs that overlap an anchor's box (bounds host memory).
_OVERLAP_CHUNK = 1 << 22


def best_iou_gt(boxes, gt_boxes, eps):
    """For each box, the GT slot of highest IoU, the first on ties, 0 when it overlaps none (as argmax gives).

    Only the pairs that overlap (positive width and height of the intersection, found on the host) get an
    IoU; every other pair's IoU is exactly 0, so the result equals argmax over a full [M, n] IoU matrix.

    Args:
        boxes (Tensor[M, 4]), gt_boxes (Tensor[n, 4]): xyxy; eps (float): IoU epsilon of the caller.
    Returns:
        Tensor[M] int64.
    """
    a, g = boxes.numpy(), gt_boxes.numpy()
    rows, cols = [], []
    step = max(1, _OVERLAP_CHUNK // max(len(g), 1))
    for i in range(0, len(a), step):
        c = a[i:i + step, None]
        w = np.minimum(c[..., 2], g[None, :, 2]) - np.maximum(c[..., 0], g[None, :, 0])
        h = np.minimum(c[..., 3], g[None, :, 3]) - np.maximum(c[..., 1], g[None, :, 1])
        r, k = np.nonzero((w > 0) & (h > 0))
        rows.append(r + i)
        cols.append(k)
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    winners = np.zeros(len(a), np.int64)
    if len(rows):
        ious = aligned_iou(paddle.gather(gt_boxes, paddle.to_tensor(cols)), paddle.gather(boxes, paddle.to_tensor(rows)),
                           eps=eps).numpy()
        order = np.lexsort((cols, -ious, rows))
        first = order[np.r_[True, rows[order][1:] != rows[order][:-1]]]
        first = first[ious[first] > 0]
        winners[rows[first]] = cols[first]
    return paddle.to_tensor(winners)


def one_gt_per_anchor(anchor_idx, gt_idx, num_anchors, anchor_boxes, gt_boxes, eps):
    """Give every anchor at most one GT; an anchor claimed by several takes the GT it overlaps most.

    As in PaddleDetection, the winner is the argmax of IoU over *all* GT slots of the image (the first on
    ties), which may be a GT that did not select the anchor.

    Args:
        anchor_idx (Tensor[P], int64), gt_idx (Tensor[P], int64): positive pairs of one image.
        num_anchors (int): L.
        anchor_boxes (Tensor[L, 4]): the boxes IoU is measured with (anchors for ATSS, predictions for TAL).
        gt_boxes (Tensor[n, 4]): every GT slot of the image; eps (float): IoU epsilon.
    Returns:
        assigned_gt (Tensor[L], int64): the anchor's GT (0 where none, as ppdet's argmax gives).
        positive (Tensor[L], bool).
    """
    counts, gt_sum = per_anchor_counts(anchor_idx, gt_idx, num_anchors)
    assigned_gt = paddle.where(counts == 1, gt_sum, paddle.zeros_like(gt_sum))
    multi = paddle.nonzero(counts > 1).flatten()
    if multi.shape[0] > 0:
        winners = best_iou_gt(paddle.gather(anchor_boxes, multi), gt_boxes, eps)
        assigned_gt = paddle.scatter(assigned_gt, multi, winners)
    return assigned_gt, counts > 0


def _scatter_flat(size, index, values, dtype):
    """A zero vector of `size` with `values` written at `index` (distinct): Tensor[size]."""
    out = paddle.zeros([size], dtype)
    if index.shape[0] == 0:
        return out
    return out.scatter_(index, values.astype(dtype))


def build_targets(assigned_gt, positive, gt_labels, gt_bboxes, bg_index, num_classes, weights=None):
    """Dense targets from each anchor's GT.

    Args:
        assigned_gt (Tensor[B, L], int64): GT slot per anchor (any value where not positive).
        positive (Tensor[B, L], bool).
        gt_labels (Tensor[B, n, 1], int), gt_bboxes (Tensor[B, n, 4]).
        bg_index (int): label of negatives; its column is left out of the scores.
        num_classes (int): C.
        weights (Tensor[B, L] | None): score of each positive anchor (1 when None).
    Returns:
        labels (Tensor[B, L], gt_labels.dtype), bboxes (Tensor[B, L, 4]),
        scores (Tensor[B, L, C]): `weights` at the label's column (ppdet's one-hot over C + 1 labels without the
        bg_index column, times the weight), 0 elsewhere and for negatives.
    """
    batch, num_anchors = positive.shape
    labels = paddle.take_along_axis(gt_labels.squeeze(-1), assigned_gt, axis=1)
    labels = paddle.where(positive, labels, paddle.full_like(labels, bg_index))
    bboxes = paddle.take_along_axis(gt_bboxes, assigned_gt.unsqueeze(-1).expand([-1, -1, 4]), axis=1)
    flat_labels = labels.flatten().astype("int64")
    hit = paddle.nonzero(positive.flatten() & (flat_labels != bg_index)).flatten()
    label = paddle.gather(flat_labels, hit)
    column = label - (label > bg_index).astype("int64")
    values = paddle.ones(hit.shape, gt_bboxes.dtype) if weights is None else paddle.gather(weights.flatten(), hit)
    scores = _scatter_flat(batch * num_anchors * num_classes, hit * num_classes + column, values, gt_bboxes.dtype)
    return labels, bboxes, scores.reshape([batch, num_anchors, num_classes])


def mask_positive_dense(assigned_gt, positive, num_max_boxes, dtype):
    """ppdet 2.6's fourth output: 1 where anchor l is a positive of GT j.

    Args:
        assigned_gt (Tensor[B, L], int64), positive (Tensor[B, L], bool), num_max_boxes (int): n.
    Returns:
        Tensor[B, n, L] of `dtype`.
    """
    batch, num_anchors = positive.shape
    hit = paddle.nonzero(positive.flatten()).flatten()
    image, anchor = hit // num_anchors, hit % num_anchors
    gt = paddle.gather(assigned_gt.flatten(), hit)
    index = (image * num_max_boxes + gt) * num_anchors + anchor
    mask = _scatter_flat(batch * num_max_boxes * num_anchors, index, paddle.ones(hit.shape, dtype), dtype)
    return mask.reshape([batch, num_max_boxes, num_anchors])


def pack_outputs(labels, bboxes, scores, assigned_gt, positive, num_max_boxes, return_mask_positive=None):
    """Return 4 values (ppdet 2.6 heads) or 3 (ppdet 2.7+), whatever the input (see compat)."""
    if return_mask_positive is None:
        return_mask_positive = compat.ASSIGNER_RETURNS_MASK_POSITIVE
    if not return_mask_positive:
        return labels, bboxes, scores
    return labels, bboxes, scores, mask_positive_dense(assigned_gt, positive, num_max_boxes, bboxes.dtype)
