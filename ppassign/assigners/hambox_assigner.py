"""HAMBox: online high-quality anchor mining -- compensate objects that have too few matched anchors.

Method (Liu, Tang, Han, Liu, Rui, Wu, "HAMBox: Delving into Online High-quality Anchors Mining for Detecting
Outer Faces", CVPR 2020, Sec. 3):

1. standard matching without an ignore band: an anchor is positive at IoU >= ``iou_threshold`` (0.35, the
   face-detection setting the paper starts from; stated in the survey) with its best object, negative
   otherwise;
2. during training, every object with fewer than ``num_compensate`` (K) matched anchors is compensated with
   *unmatched* anchors whose **regressed** box (the head's current prediction) overlaps it with IoU >
   ``compensate_iou`` (T), best first, until it has K (the survey: each object is compensated up to k
   anchors); an anchor wanted by several objects goes to the one its regressed box overlaps most;
3. compensated anchors are positives of their object, and their classification loss is weighted by the IoU
   of their regressed box with it (our reading of the paper's regression-aware focal loss, not verified);
   their regression weight is 1.

What was verified, and against what: the survey document states the matching (no ignore band, IoU below
0.35 negative, above positive) and that each object is compensated up to k anchors chosen by how well their
regressed boxes fit it; the paper's abstract (arXiv 1912.09231) states the motivation (most correct boxes come
from unmatched anchors). The paper's method text, its values of K and T, whether the compensating IoU test is
``>`` or ``>=``, and the exact form of its regression-aware focal loss (here: the compensated anchors' focal
loss weighted by their regressed IoU) could not be read from this environment, and no code by the authors was
found. So ``num_compensate = 5`` and ``compensate_iou = 0.5`` are NOT verified against the paper text (source:
our recollection of its ablation); they are constructor arguments.
"""
import paddle

from ..ops.geometry import aligned_iou
from .max_iou_assigner import max_iou_labels
from .retina_base import (RetinaAssigner, RetinaAssignment, check_count, check_fraction, pairwise_iou,
                          resolve_to_best, rows_to_mask, top_indices)


def compensation(regressed_iou, matches, matched, num_compensate, compensate_iou):
    """HAMBox's compensation step.

    Args:
        regressed_iou (Tensor[n, L]): IoU of every object with every anchor's regressed box.
        matches (Tensor[L] int64), matched (Tensor[L] bool): the standard matching.
        num_compensate (int): K; compensate_iou (float): T.
    Returns:
        (object per compensated anchor Tensor[L] int64, compensated Tensor[L] bool).
    """
    num, num_anchors = regressed_iou.shape
    owner = (matches[None, :] == paddle.arange(num, dtype="int64")[:, None]) & matched[None, :]
    missing = num_compensate - owner.astype("int64").sum(axis=1, keepdim=True)          # [n, 1]
    eligible = (~matched)[None, :] & (regressed_iou > compensate_iou)
    score = paddle.where(eligible, regressed_iou, paddle.full_like(regressed_iou, -1.0))
    k = min(num_compensate, num_anchors)
    idx = top_indices(score, k)
    rank = paddle.arange(k, dtype="int64")[None, :]
    keep = (rank < missing) & (score.take_along_axis(idx, axis=1) > compensate_iou)
    return resolve_to_best(rows_to_mask(idx, keep, num_anchors), regressed_iou)


class HAMBoxAssigner(RetinaAssigner):
    """HAMBox (see the module docstring). Needs the head's decoded boxes.

    Args:
        iou_threshold (float): positive at IoU >= this, negative below (no ignore band).
        num_compensate (int): K, the number of anchors an object is topped up to.
        compensate_iou (float): T, minimum IoU of a compensating anchor's regressed box with the object.
        allow_low_quality (bool): also make each object's best anchor(s) positive in step 1 (off in HAMBox).
    """
    needs = ("pred_bboxes",)

    def __init__(self, iou_threshold=0.35, num_compensate=5, compensate_iou=0.5, allow_low_quality=False):
        self.iou_threshold = check_fraction("iou_threshold", iou_threshold)
        self.num_compensate = check_count("num_compensate", num_compensate)
        self.compensate_iou = check_fraction("compensate_iou", compensate_iou)
        self.allow_low_quality = bool(allow_low_quality)

    def _assign(self, anchors, gt_bbox, gt_class, pred_bboxes, pred_scores, num_anchors_list):
        matches, labels = max_iou_labels(pairwise_iou(gt_bbox, anchors), self.iou_threshold, self.iou_threshold,
                                         self.allow_low_quality)
        matched = labels == 1
        regressed = aligned_iou(gt_bbox[:, None, :], pred_bboxes[None, :, :])             # [n, L]
        owner, added = compensation(regressed, matches, matched, self.num_compensate, self.compensate_iou)
        matches = paddle.where(added, owner, matches)
        positive = matched | added
        added_f = added.astype("float32")
        quality = regressed.take_along_axis(owner[None, :], axis=0)[0]
        cls_weights = added_f * quality + (1 - added_f)
        return RetinaAssignment(matches, positive.astype("int32"), positive.astype("float32"), cls_weights,
                                positive.astype("float32"))
