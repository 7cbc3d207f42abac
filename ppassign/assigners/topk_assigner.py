"""Top-k assignment: every object takes its k best anchors (by IoU) as positives, whatever its size.

Rule (the "top-k" matching the label-assignment survey lists next to max-IoU; it is the candidate step of
Zhang et al., "Bridging the Gap Between Anchor-based and Anchor-free Detection via Adaptive Training Sample
Selection" (ATSS), CVPR 2020, without ATSS's adaptive threshold, and of Li et al.'s noisy-anchor method):

1. each object ranks all anchors by IoU and takes the first ``topk`` (ties: the lower anchor index) whose IoU
   is > ``min_iou`` (the optional floor; 0 by default, so an anchor must at least overlap the object);
2. an anchor taken by several objects goes to the one it overlaps most (ties: the lower object index);
3. every other anchor is negative (there is no ignore band).

So a 10-pixel object gets as many positives as a 300-pixel one, unlike max-IoU, where small objects often
keep only their single best anchor.
"""
from .retina_base import (RetinaAssigner, check_count, check_fraction, hard_assignment, pairwise_iou,
                          resolve_to_best, rows_to_mask, top_indices)


def topk_candidates(iou, topk, min_iou=0.0):
    """Each object's top-k anchors with IoU > min_iou, conflicts to the highest IoU.

    Args:
        iou (Tensor[B, n, L]) with n >= 1 (padded objects at PADDED_IOU: never taken), topk (int), min_iou (float).
    Returns:
        (matches Tensor[B, L] int64, positive Tensor[B, L] bool).
    """
    k = min(topk, iou.shape[-1])
    idx = top_indices(iou, k)
    chosen = rows_to_mask(idx, iou.take_along_axis(idx, axis=-1) > min_iou, iou.shape[-1])
    return resolve_to_best(chosen, iou)


class TopKAssigner(RetinaAssigner):
    """Top-k per object (see the module docstring); ppdet's ``MaxIoUAssigner`` call and outputs.

    Args:
        topk (int): positives per object (9 by default: ATSS's k).
        min_iou (float): an anchor must overlap its object by more than this IoU to be taken.
    """

    def __init__(self, topk=9, min_iou=0.0):
        self.topk = check_count("topk", topk)
        self.min_iou = check_fraction("min_iou", min_iou)

    def _assign_batch(self, anchors, gt_bbox, valid, gt_class, pred_bboxes, pred_scores, num_anchors_list):
        matches, positive = topk_candidates(pairwise_iou(gt_bbox, anchors, valid), self.topk, self.min_iou)
        return hard_assignment(matches, positive.astype("int32"))
