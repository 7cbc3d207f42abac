"""Steps shared by ATSSAssigner and TaskAlignedAssigner: one positive GT per anchor, then the targets.

Both assigners first pick positive (GT, anchor) pairs for each image, sparsely; these helpers turn the pairs
into PaddleDetection's dense outputs without building [B, n, L] intermediates.
"""
import paddle
import paddle.nn.functional as F

from .compat import ASSIGNER_RETURNS_MASK_POSITIVE


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


def one_gt_per_anchor(anchor_idx, gt_idx, num_anchors, iou_with_all_gts):
    """Give every anchor at most one GT; an anchor claimed by several takes the GT it overlaps most.

    As in PaddleDetection, the winner is the argmax of IoU over *all* GT slots of the image (the first on
    ties), which may be a GT that did not select the anchor.

    Args:
        anchor_idx (Tensor[P], int64), gt_idx (Tensor[P], int64): positive pairs of one image.
        num_anchors (int): L.
        iou_with_all_gts (callable): Tensor[M] anchor indices -> Tensor[M, n] IoU with every GT slot.
    Returns:
        assigned_gt (Tensor[L], int64): the anchor's GT (0 where none, as ppdet's argmax gives).
        positive (Tensor[L], bool).
    """
    counts, gt_sum = per_anchor_counts(anchor_idx, gt_idx, num_anchors)
    assigned_gt = paddle.where(counts == 1, gt_sum, paddle.zeros_like(gt_sum))
    multi = paddle.nonzero(counts > 1).flatten()
    if multi.shape[0] > 0:
        winners = iou_with_all_gts(multi).argmax(axis=-1)
        assigned_gt = paddle.scatter(assigned_gt, multi, winners)
    return assigned_gt, counts > 0


def build_targets(assigned_gt, positive, gt_labels, gt_bboxes, bg_index, num_classes):
    """Dense targets from each anchor's GT.

    Args:
        assigned_gt (Tensor[B, L], int64): GT slot per anchor (any value where not positive).
        positive (Tensor[B, L], bool).
        gt_labels (Tensor[B, n, 1], int), gt_bboxes (Tensor[B, n, 4]).
        bg_index (int): label of negatives; its column is left out of the scores.
        num_classes (int): C.
    Returns:
        labels (Tensor[B, L], gt_labels.dtype), bboxes (Tensor[B, L, 4]),
        scores (Tensor[B, L, C], one-hot of the label, 0 for negatives).
    """
    labels = paddle.take_along_axis(gt_labels.squeeze(-1), assigned_gt, axis=1)
    labels = paddle.where(positive, labels, paddle.full_like(labels, bg_index))
    bboxes = paddle.take_along_axis(gt_bboxes, assigned_gt.unsqueeze(-1).expand(
        [-1, -1, 4]), axis=1)
    onehot = F.one_hot(labels.astype("int64"), num_classes + 1).astype(gt_bboxes.dtype)
    scores = paddle.concat([onehot[..., :bg_index], onehot[..., bg_index + 1:]], axis=-1)
    return labels, bboxes, scores


def mask_positive_dense(assigned_gt, positive, num_max_boxes, dtype):
    """ppdet 2.6's fourth output: 1 where anchor l is a positive of GT j.

    Args:
        assigned_gt (Tensor[B, L], int64), positive (Tensor[B, L], bool), num_max_boxes (int): n.
    Returns:
        Tensor[B, n, L] of `dtype`.
    """
    batch, num_anchors = positive.shape
    mask = paddle.zeros([batch, num_max_boxes * num_anchors], dtype)
    if num_max_boxes == 0:
        return mask.reshape([batch, 0, num_anchors])
    flat = assigned_gt * num_anchors + paddle.arange(num_anchors, dtype="int64").unsqueeze(0)
    mask = paddle.put_along_axis(mask, flat, positive.astype(dtype), axis=1, reduce="assign")
    return mask.reshape([batch, num_max_boxes, num_anchors])


def pack_outputs(labels, bboxes, scores, assigned_gt, positive, num_max_boxes, return_mask_positive=None):
    """Return 4 values (ppdet 2.6 heads) or 3 (ppdet 2.7+), whatever the input (see compat)."""
    if return_mask_positive is None:
        return_mask_positive = ASSIGNER_RETURNS_MASK_POSITIVE
    if not return_mask_positive:
        return labels, bboxes, scores
    return labels, bboxes, scores, mask_positive_dense(assigned_gt, positive, num_max_boxes, bboxes.dtype)
