"""HAMBox: online high-quality anchor mining -- compensate objects that have too few matched anchors.

Method (Liu, Tang, Han, Liu, Rui, Wu, "HAMBox: Delving into Online High-quality Anchors Mining for Detecting
Outer Faces", CVPR 2020, Sec. 3). The authors did not publish code; the source of the steps below is the
public re-implementation github.com/chyueG/HAMBox-high-anchors-mining (``ham_loss.py``, class ``HAMLoss``, and
its README, which states how the code departs from the paper), checked against the label-assignment survey:

1. standard matching without an ignore band and without max-IoU compensation: an anchor is *matched* to its
   best object at IoU >= ``iou_threshold`` (``T1 = 0.35``), negative otherwise;
2. compensation from the head's current predictions: an object with M < K (``num_compensate``, ``K = 5``)
   matched anchors takes K - M *unmatched* anchors whose **regressed** box has IoU >= ``compensate_iou``
   (``T2 = 0.5``) with it, highest first (the re-implementation's README: "erase the M anchors matched in the
   first step, sort the left anchors and select K - M as compensated anchors");
3. unmatched anchors that were not taken but whose regressed box has IoU >= T2 with some object are ignored in
   classification (``ignore_idx`` in ``ham_loss.py``);
4. losses (``ham_loss.py``): the focal loss of the matched anchors and the negatives, divided by the number of
   matched anchors, plus the focal loss of the compensated anchors (target 1) weighted by their regressed IoU
   (detached) and divided by the number of compensated anchors; smooth-L1 regression of the matched and of the
   compensated anchors, each divided by its own count. The counts are the batch's (``conf_t`` holds the
   batch). With the head's normaliser N = max(1, matched + compensated), that is per-anchor weights
   N / max(1, matched) (matched and negative anchors) and N / max(1, compensated) (x the regressed IoU for
   classification) -- computed over the batch by ``assign_batch``, over the one image by ``assign``.

Where this differs from ``ham_loss.py``, and why:
- its code takes each object's K best regressed anchors over *all* anchors and keeps the unmatched ones among
  them, so an object can gain anchors whatever M is; its README calls this a simplification of the paper's
  "top up to K", which is what step 2 does;
- an anchor wanted by several objects goes here to the one its regressed box overlaps most (its loop lets the
  object of highest index win);
- its compensated anchors also stay negatives in the first focal term (each anchor has one target here: they
  are positives only, as the paper's text and the README describe them);
- before the threshold it hands each object its best anchor greedily (a bipartite pass that keeps the
  object's own IoU, so it never makes an anchor positive, and can turn a matched anchor into a negative);
  not done here: step 1 is the plain rule both the survey and the README state;
- when no anchor is matched it drops the first focal term (all negatives); here it is divided by 1;
- its smooth-L1 uses beta 0.11 and its focal loss alpha 0.25, gamma 2: loss settings of the config, not of
  this assigner.

Not verified (the paper's text could not be read here, only its abstract): the paper's own T1, T2, K (the
values above are the re-implementation's; the survey states 0.35), whether its compensating test is ``>`` or
``>=`` (``>=`` as ``ham_loss.py``), and the exact form of its regression-aware focal loss.
"""
import paddle

from ..ops.geometry import aligned_iou
from .max_iou_assigner import max_iou_labels
from .retina_base import (PADDED_IOU, RetinaAssigner, RetinaAssignment, check_count, check_fraction, mask_rows,
                          pairwise_iou, resolve_to_best, rows_to_mask, top_indices)


def compensation(regressed_iou, matches, matched, valid, num_compensate, compensate_iou):
    """Step 2: each object's K - M best unmatched anchors by regressed IoU (>= T).

    Args:
        regressed_iou (Tensor[B, n, L]): IoU of every object with every anchor's regressed box.
        matches (Tensor[B, L] int64), matched (Tensor[B, L] bool): step 1.
        valid (Tensor[B, n] bool): real objects.
        num_compensate (int): K; compensate_iou (float): T.
    Returns:
        (object per compensated anchor Tensor[B, L] int64, compensated Tensor[B, L] bool).
    """
    num, num_anchors = regressed_iou.shape[1:]
    owner = (matches[:, None, :] == paddle.arange(num, dtype="int64")[None, :, None]) & matched[:, None, :]
    missing = num_compensate - owner.astype("int64").sum(axis=-1, keepdim=True)           # [B, n, 1]
    eligible = (~matched)[:, None, :] & (regressed_iou >= compensate_iou)
    score = paddle.where(eligible, regressed_iou, paddle.full_like(regressed_iou, -1.0))
    k = min(num_compensate, num_anchors)
    idx = top_indices(score, k)
    rank = paddle.arange(k, dtype="int64")
    keep = (rank < missing) & (score.take_along_axis(idx, axis=-1) >= compensate_iou) & valid[..., None]
    return resolve_to_best(rows_to_mask(idx, keep, num_anchors), regressed_iou)


def loss_weights(matched, added, ignored, quality):
    """Step 4: per-anchor weights that turn the head's sums over max(1, positives) into the two normalised terms.

    Args:
        matched, added, ignored (Tensor[B, L] bool), quality (Tensor[B, L]): regressed IoU of the compensated.
    Returns:
        (cls_weights, reg_weights), Tensor[B, L] each.
    """
    num_matched = matched.astype("float32").sum()
    num_added = added.astype("float32").sum()
    total = (num_matched + num_added).clip(min=1.0)
    w_matched, w_added = total / num_matched.clip(min=1.0), total / num_added.clip(min=1.0)
    zeros = paddle.zeros(matched.shape, "float32")
    cls_weights = paddle.where(added, quality * w_added, paddle.where(ignored, zeros, zeros + w_matched))
    reg_weights = paddle.where(added, zeros + w_added, paddle.where(matched, zeros + w_matched, zeros))
    return cls_weights, reg_weights


class HAMBoxAssigner(RetinaAssigner):
    """HAMBox (see the module docstring). Needs the head's decoded boxes.

    Args:
        iou_threshold (float): T1, matched at IoU >= this, negative below (no ignore band).
        num_compensate (int): K, the number of anchors an object is topped up to.
        compensate_iou (float): T2, minimum IoU of a compensating anchor's regressed box with the object.
        allow_low_quality (bool): also make each object's best anchor(s) positive in step 1 (off in HAMBox).
    """
    needs = ("pred_bboxes",)

    def __init__(self, iou_threshold=0.35, num_compensate=5, compensate_iou=0.5, allow_low_quality=False):
        self.iou_threshold = check_fraction("iou_threshold", iou_threshold)
        self.num_compensate = check_count("num_compensate", num_compensate)
        self.compensate_iou = check_fraction("compensate_iou", compensate_iou)
        self.allow_low_quality = bool(allow_low_quality)

    def _assign_batch(self, anchors, gt_bbox, valid, gt_class, pred_bboxes, pred_scores, num_anchors_list):
        # 1. matching
        matches, labels = max_iou_labels(pairwise_iou(gt_bbox, anchors, valid), self.iou_threshold,
                                         self.iou_threshold, self.allow_low_quality)
        matched = labels == 1
        # 2. compensation
        regressed = mask_rows(aligned_iou(gt_bbox[:, :, None, :], pred_bboxes[:, None, :, :]), valid,
                              PADDED_IOU)                                                 # [B, n, L]
        owner, added = compensation(regressed, matches, matched, valid, self.num_compensate,
                                    self.compensate_iou)
        matches = paddle.where(added, owner, matches)
        positive = matched | added
        # 3. ignored: well-regressed anchors that were not taken
        ignored = ~positive & (regressed.max(axis=1) >= self.compensate_iou)
        # 4. loss weights
        quality = regressed.take_along_axis(owner[:, None, :], axis=1)[:, 0]
        cls_weights, reg_weights = loss_weights(matched, added, ignored, quality)
        labels = paddle.where(positive, paddle.ones_like(labels),
                              paddle.where(ignored, paddle.full_like(labels, -1), paddle.zeros_like(labels)))
        return RetinaAssignment(matches, labels, positive.astype("float32"), cls_weights, reg_weights)
