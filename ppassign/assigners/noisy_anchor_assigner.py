"""Learning from noisy anchors: soft targets and re-weighting from each candidate positive's cleanliness.

Method (Li, Wu, Zhu, Xiong, Socher, Davis, "Learning from Noisy Anchors for One-stage Object Detection",
CVPR 2020, Sec. 3):

1. candidate positives: each object's ``topk_candidates`` anchors of highest IoU (a larger set than max-IoU's
   positives; conflicts to the object of highest IoU; everything else negative, no ignore band);
2. cleanliness of a candidate: ``c = alpha * loc + (1 - alpha) * cls``, where ``loc`` is the IoU of the
   anchor's *regressed* box with its object and ``cls`` the predicted score of the object's class, both
   taken from the current network and detached;
3. ``c`` is the candidate's soft classification target (in the focal loss, instead of 1);
4. re-weighting factor ``r = (1 / (1 - c)) ** gamma``, normalised so that it sums to the number of
   candidates; it scales the candidate's classification and regression losses. Negatives keep target 0 and
   weight 1.

Where the survey and the paper differ: the label-assignment survey summarises cleanliness as the *product* of
the regressed IoU and the score; the paper combines them as the weighted sum above. This class follows the
paper; ``combine='product'`` gives the survey's reading for comparison.

Constants: ``alpha = 0.75``, ``gamma = 1`` and ``topk_candidates = 50`` are the values we read in the paper's
ablations (Sec. 4.2). We could not re-check them against the paper's text from this environment, so they are
plain constructor arguments; check them against the paper before citing numbers made with them.
"""
import paddle

from .. import registry
from ..ops.geometry import aligned_iou
from .retina_base import (RetinaAssigner, RetinaAssignment, check_count, check_fraction, matched_rows,
                          pairwise_iou)
from .topk_assigner import topk_candidates

COMBINES = ("sum", "product")


def cleanliness(loc, cls, alpha, combine="sum"):
    """The paper's cleanliness (``combine='sum'``) or the survey's product, elementwise.

    Args:
        loc (Tensor[...]): IoU of the regressed box with the object; cls (Tensor[...]): score of its class.
    """
    if combine == "product":
        return loc * cls
    return alpha * loc + (1 - alpha) * cls


def reweighting(clean, positive, gamma, eps=1e-6):
    """Re-weighting factors ``(1 / (1 - c)) ** gamma`` of the positives, normalised to sum to their count.

    Args:
        clean (Tensor[L]), positive (Tensor[L] bool).
    Returns:
        Tensor[L]: 0 on non-positives.
    """
    raw = paddle.where(positive, (1.0 / (1.0 - clean).clip(min=eps)) ** gamma, paddle.zeros_like(clean))
    count = positive.astype("float32").sum()
    return raw * count / raw.sum().clip(min=eps)


class NoisyAnchorAssigner(RetinaAssigner):
    """Cleanliness-based soft targets and weights (see the module docstring). Needs the head's predictions.

    Args:
        topk_candidates (int): candidate positives per object, by IoU.
        alpha (float): weight of the localisation term in the cleanliness.
        gamma (float): exponent of the re-weighting factor (0 turns re-weighting off).
        combine (str): 'sum' (the paper) or 'product' (the survey's summary).
    """
    needs = ("gt_class", "pred_bboxes", "pred_scores")

    def __init__(self, topk_candidates=50, alpha=0.75, gamma=1.0, combine="sum"):
        self.topk_candidates = check_count("topk_candidates", topk_candidates)
        self.alpha = check_fraction("alpha", alpha)
        self.gamma = check_fraction("gamma", gamma, 0.0, 100.0)
        if combine not in COMBINES:
            raise ValueError(f"combine must be one of {COMBINES}, got {combine!r}")
        self.combine = combine

    def _assign(self, anchors, gt_bbox, gt_class, pred_bboxes, pred_scores, num_anchors_list):
        matches, positive = topk_candidates(pairwise_iou(gt_bbox, anchors), self.topk_candidates)
        loc = aligned_iou(pred_bboxes, matched_rows(gt_bbox, matches))
        cls = pred_scores.take_along_axis(matched_rows(gt_class, matches)[:, None], axis=1)[:, 0]
        clean = cleanliness(loc, cls, self.alpha, self.combine)
        weight = reweighting(clean, positive, self.gamma)
        pos = positive.astype("float32")
        return RetinaAssignment(matches, positive.astype("int32"), clean * pos, weight + (1 - pos), weight)


registry.add(NoisyAnchorAssigner, "PPAssignNoisyAnchorAssigner")
