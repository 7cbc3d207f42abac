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
3. soft target (``normalize=True``, the code): ``s = alpha * loc / mean(loc) + (1 - alpha) * cls / mean(cls)``,
   then mapped linearly onto ``[mean(loc), 1]`` (min -> mean(loc), max -> 1; the code's comment: more stable
   than ``[0, 1]``). The means (and min / max) are over the image's concatenated top-N lists (``topN_inds``),
   so an anchor in the top N of two objects counts twice, as in the code;
4. re-weighting factor ``r = alpha * f(loc) / mean(f(loc)) + (1 - alpha) * f(cls) / mean(f(cls))`` with
   ``f(x) = 1 / (1 - x)`` (the code has no exponent; ``gamma`` here raises ``r`` to a power, 1 = the code).
   ``r`` multiplies the candidate's focal and smooth-L1 losses (negatives: weight 1), and each of the two
   losses is then rescaled so that its value equals the un-weighted loss (``sum(L) / sum(r * L)``, detached):
   the head does this for assigners with ``preserve_loss_scale = True`` (see ``PPAssignRetinaHead``);
5. the classification loss of the soft targets is the code's ``soft_sigmoid_focal_loss``
   (``-alpha s (1 - p)^gamma log p - (1 - alpha) (1 - s) p^gamma log(1 - p)``), not the focal loss of a soft
   label: the head uses it for assigners with ``soft_focal_loss = True``.

``normalize=False`` gives the formulas as the paper's text writes them, as quoted by a secondary summary
(zhengzhijie's reading note, see docs/retinanet.md; we did not read the paper's text itself):
``c = alpha * loc + (1 - alpha) * cls`` as the soft target and ``r = (alpha * f(loc) + (1 - alpha) *
f(cls)) ** gamma``, without the per-image normalisations the code adds.

Constants: ``alpha = 0.75`` and ``topk_candidates = 30`` are the values in all three of the authors' configs
(``configs/COCO-Detection-NoisyAnchor/*.yaml``; their ``defaults.py`` has ``TOPN = 50``, overridden by every
config). The same configs set the focal loss to alpha 0.5, gamma 2 (RetinaNet: 0.25, 2): a loss setting, which
ppassign's noisy-anchor configs follow (``FocalLoss.alpha: 0.5``).

Not followed, being settings of the detector rather than of the method: the code's loss normaliser is
Detectron2 RetinaNet's moving average of the number of positives (here: the batch's count, as ppdet's
RetinaHead), its smooth-L1 beta is Detectron2's 0.1 (here: the config's loss). Not verified: the paper's own
text, hence its value of gamma and whether its means run over candidates or over the top-N lists.

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
from .retina_base import rows_to_counts, top_indices

COMBINES = ("sum", "product")
EPS = 1e-6


def union_candidates(iou, valid, topk):
    """Every object's top-k anchors by IoU (no floor), each candidate to its highest-IoU object.

    Args:
        iou (Tensor[B, n, L]) with n >= 1 (padded objects' rows at PADDED_IOU), valid (Tensor[B, n] bool),
        topk (int).
    Returns:
        (matches Tensor[B, L] int64: argmax IoU over all objects, 0 off the candidates;
         picks Tensor[B, L] float: how many objects took the anchor among their top k; > 0 on candidates).
    """
    k = min(topk, iou.shape[-1])
    idx = top_indices(iou, k)
    picks = rows_to_counts(idx, valid[..., None].expand(idx.shape), iou.shape[-1]).sum(axis=1)
    return paddle.where(picks > 0, iou.argmax(axis=1), paddle.zeros(picks.shape, "int64")), picks


def _mean(values, picks):
    """Mean of values over each image's candidates, each counted once per object that picked it (the authors'
    code averages over the concatenated top-N lists).

    Args:
        values, picks (Tensor[B, L]).
    Returns:
        Tensor[B, 1].
    """
    return (values * picks).sum(axis=1, keepdim=True) / picks.sum(axis=1, keepdim=True).clip(min=1.0)


def soft_targets(loc, cls, picks, alpha, normalize=True, combine="sum"):
    """Classification targets of the candidates (0 elsewhere).

    Args:
        loc, cls (Tensor[B, L]): regressed IoU and score; picks (Tensor[B, L]): see union_candidates.
    Returns:
        Tensor[B, L].
    """
    positive = (picks > 0).astype(loc.dtype)
    if combine == "product":
        return loc * cls * positive
    if not normalize:
        return (alpha * loc + (1 - alpha) * cls) * positive
    loc_mean = _mean(loc, picks)
    mixed = alpha * loc / loc_mean.clip(min=EPS) + (1 - alpha) * cls / _mean(cls, picks).clip(min=EPS)
    big = paddle.full_like(mixed, 3.0e38)
    low = paddle.where(positive > 0, mixed, big).min(axis=1, keepdim=True)
    high = paddle.where(positive > 0, mixed, -big).max(axis=1, keepdim=True)
    span = high - low
    scale = paddle.where(span > 0, (1.0 - loc_mean) / span.clip(min=EPS), paddle.zeros_like(span))
    return (loc_mean + (mixed - low) * scale) * positive


def reweighting(loc, cls, picks, alpha, gamma, normalize=True):
    """Re-weighting factors of the candidates (0 elsewhere), f(x) = 1 / (1 - x).

    Args:
        loc, cls, picks (Tensor[B, L]).
    Returns:
        Tensor[B, L].
    """
    f_loc, f_cls = 1.0 / (1.0 - loc).clip(min=EPS), 1.0 / (1.0 - cls).clip(min=EPS)
    if normalize:
        f_loc = f_loc / _mean(f_loc, picks).clip(min=EPS)
        f_cls = f_cls / _mean(f_cls, picks).clip(min=EPS)
    return (alpha * f_loc + (1 - alpha) * f_cls) ** gamma * (picks > 0).astype(loc.dtype)


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
    soft_focal_loss = True

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

    def _assign_batch(self, anchors, gt_bbox, valid, gt_class, pred_bboxes, pred_scores, num_anchors_list):
        # 1. candidates
        matches, picks = union_candidates(pairwise_iou(gt_bbox, anchors, valid), valid,
                                          self.topk_candidates)
        pos = (picks > 0).astype("float32")
        # 2. cleanliness: regressed IoU and score of the matched object's class
        loc = aligned_iou(pred_bboxes, matched_rows(gt_bbox, matches)) * pos
        cls = pred_scores.take_along_axis(matched_rows(gt_class, matches)[..., None], axis=2)[..., 0] * pos
        # 3. soft targets, 4. re-weighting factors
        target = soft_targets(loc, cls, picks, self.alpha, self.normalize, self.combine)
        weight = reweighting(loc, cls, picks, self.alpha, self.gamma, self.normalize)
        return RetinaAssignment(matches, pos.astype("int32"), target, weight + (1 - pos), weight)
