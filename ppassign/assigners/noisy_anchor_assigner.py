"""Learning from noisy anchors: soft targets and re-weighting from each candidate positive's cleanliness.

Method (Li, Wu, Zhu, Xiong, Socher, Davis, "Learning from Noisy Anchors for One-stage Object Detection",
CVPR 2020) as the authors' code implements it (github.com/henrylee2570/NoisyAnchor, the repository of the
paper's first author whose README reports the paper's RetinaNet results; ``detectron2/modeling/matcher.py``
``MatcherTopN``, ``detectron2/modeling/meta_arch/retinanet_noisy.py`` ``get_ground_truth`` and ``losses``):

1. candidates: the union of every object's ``topk_candidates`` (N) anchors of highest IoU (no IoU floor);
   each candidate belongs to the object it overlaps most (argmax over *all* objects); every other anchor is
   negative (no ignore band);
2. per candidate, detached: ``loc`` = IoU of its *regressed* box with its object, ``cls`` = its sigmoid score
   of the object's class;
3. soft target (``normalize=True``, the code): ``s = alpha * loc / mean(loc) + (1 - alpha) * cls / mean(cls)``
   (means over the image's candidates), then mapped linearly onto ``[mean(loc), 1]`` (min -> mean(loc),
   max -> 1; the code's comment: more stable than ``[0, 1]``);
4. re-weighting factor ``r = alpha * f(loc) / mean(f(loc)) + (1 - alpha) * f(cls) / mean(f(cls))`` with
   ``f(x) = 1 / (1 - x)`` (the code has no exponent; ``gamma`` here raises ``r`` to a power, 1 = the code).
   ``r`` multiplies the candidate's focal and smooth-L1 losses (negatives: weight 1), and each of the two
   losses is then rescaled so that its value equals the un-weighted loss (``sum(L) / sum(r * L)``, detached):
   the head does this for assigners with ``preserve_loss_scale = True`` (see ``PPAssignRetinaHead``).

``normalize=False`` gives the formulas as the paper's text writes them, as quoted by a secondary summary
(zhengzhijie's reading note, see docs/retinanet.md; we did not read the paper's text itself):
``c = alpha * loc + (1 - alpha) * cls`` as the soft target and ``r = (alpha * f(loc) + (1 - alpha) *
f(cls)) ** gamma``, without the per-image normalisations the code adds.

Constants: ``alpha = 0.75`` and ``topk_candidates = 30`` are the values in all three of the authors' configs
(``configs/COCO-Detection-NoisyAnchor/*.yaml``; their ``defaults.py`` has ``TOPN = 50``, overridden by every
config). The same configs also set the focal loss alpha to 0.5 (RetinaNet: 0.25): that is a loss setting,
not part of this assigner. The paper's own value of gamma is not verified.

Where the survey and the paper differ: the label-assignment survey summarises cleanliness as the *product* of
the regressed IoU and the score, used as the classification label and as the regression weight; the paper
and its code combine the two as the weighted sum above, and weight with ``r`` (a different quantity).
``combine='product'`` makes the soft target ``loc * cls`` (not normalised) for comparison; ``r`` is unchanged.

Edge cases the code leaves undefined (it would divide by zero), chosen here: all candidates with the same
``s`` -> target ``mean(loc)``; means and ``1 - x`` are clipped at 1e-6.
"""
import paddle

from ..ops.geometry import aligned_iou
from .retina_base import RetinaAssigner, RetinaAssignment, check_count, check_fraction, matched_rows, pairwise_iou
from .retina_base import rows_to_mask, top_indices

COMBINES = ("sum", "product")
EPS = 1e-6


def union_candidates(iou, topk):
    """Every object's top-k anchors by IoU (no floor), each candidate to its highest-IoU object.

    Args:
        iou (Tensor[n, L]) with n >= 1, topk (int).
    Returns:
        (matches Tensor[L] int64: argmax IoU over all objects, 0 off the candidates; positive Tensor[L] bool).
    """
    k = min(topk, iou.shape[1])
    idx = top_indices(iou, k)
    positive = rows_to_mask(idx, paddle.ones(idx.shape, "bool"), iou.shape[1]).any(axis=0)
    return paddle.where(positive, iou.argmax(axis=0).astype("int64"), paddle.zeros_like(positive, "int64")), positive


def _mean(values, positive):
    """Mean of values over the positives (Tensor[L], Tensor[L] float 0/1) -> Tensor[]."""
    return (values * positive).sum() / positive.sum().clip(min=1.0)


def soft_targets(loc, cls, positive, alpha, normalize=True, combine="sum"):
    """Classification targets of the candidates (0 elsewhere).

    Args:
        loc, cls (Tensor[L]): regressed IoU and score; positive (Tensor[L] float 0/1): the candidates.
    Returns:
        Tensor[L].
    """
    if combine == "product":
        return loc * cls * positive
    if not normalize:
        return (alpha * loc + (1 - alpha) * cls) * positive
    loc_mean = _mean(loc, positive)
    mixed = alpha * loc / loc_mean.clip(min=EPS) + (1 - alpha) * cls / _mean(cls, positive).clip(min=EPS)
    big = paddle.full_like(mixed, 3.0e38)
    low = paddle.where(positive > 0, mixed, big).min()
    high = paddle.where(positive > 0, mixed, -big).max()
    span = high - low
    scale = paddle.where(span > 0, (1.0 - loc_mean) / span.clip(min=EPS), paddle.zeros_like(span))
    return (loc_mean + (mixed - low) * scale) * positive


def reweighting(loc, cls, positive, alpha, gamma, normalize=True):
    """Re-weighting factors of the candidates (0 elsewhere), f(x) = 1 / (1 - x).

    Args:
        loc, cls (Tensor[L]); positive (Tensor[L] float 0/1).
    Returns:
        Tensor[L].
    """
    f_loc, f_cls = 1.0 / (1.0 - loc).clip(min=EPS), 1.0 / (1.0 - cls).clip(min=EPS)
    if normalize:
        f_loc = f_loc / _mean(f_loc, positive).clip(min=EPS)
        f_cls = f_cls / _mean(f_cls, positive).clip(min=EPS)
    return (alpha * f_loc + (1 - alpha) * f_cls) ** gamma * positive


class NoisyAnchorAssigner(RetinaAssigner):
    """Cleanliness-based soft targets and weights (see the module docstring). Needs the head's predictions.

    Args:
        topk_candidates (int): N, candidates per object by IoU (authors' configs: 30).
        alpha (float): weight of the localisation term (authors: 0.75).
        gamma (float): exponent of the re-weighting factor (1 = the authors' code; 0 turns re-weighting off).
        normalize (bool): the authors' code's per-image normalisations (True) or the paper's plain formulas.
        combine (str): 'sum' (paper and code) or 'product' (the survey's summary; soft target only).
    """
    needs = ("gt_class", "pred_bboxes", "pred_scores")
    preserve_loss_scale = True

    def __init__(self, topk_candidates=30, alpha=0.75, gamma=1.0, normalize=True, combine="sum"):
        self.topk_candidates = check_count("topk_candidates", topk_candidates)
        self.alpha = check_fraction("alpha", alpha)
        self.gamma = check_fraction("gamma", gamma, 0.0, 100.0)
        if not isinstance(normalize, bool):
            raise ValueError(f"normalize must be true or false, got {normalize!r}")
        self.normalize = normalize
        if combine not in COMBINES:
            raise ValueError(f"combine must be one of {COMBINES}, got {combine!r}")
        self.combine = combine

    def _assign(self, anchors, gt_bbox, gt_class, pred_bboxes, pred_scores, num_anchors_list):
        matches, positive = union_candidates(pairwise_iou(gt_bbox, anchors), self.topk_candidates)
        pos = positive.astype("float32")
        loc = aligned_iou(pred_bboxes, matched_rows(gt_bbox, matches)) * pos
        cls = pred_scores.take_along_axis(matched_rows(gt_class, matches)[:, None], axis=1)[:, 0] * pos
        target = soft_targets(loc, cls, pos, self.alpha, self.normalize, self.combine)
        weight = reweighting(loc, cls, pos, self.alpha, self.gamma, self.normalize)
        return RetinaAssignment(matches, positive.astype("int32"), target, weight + (1 - pos), weight)
