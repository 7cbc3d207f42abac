"""DW: dual weighting label assignment with box refinement (Li et al., CVPR 2022), as a PaddleDetection head.

"A Dual Weighting Label Assignment Scheme for Object Detection". Every location inside a ground-truth box is a
*candidate* of that box; a candidate gets a positive weight from the consistency of its classification and
localisation, and a separate negative weight from the probability that it is a negative (its IoU) times its
importance as one (its score). Locations outside every box are plain negatives. Facts (constants, loss scales,
normalisations) follow the official implementation ``strongwolf/DW`` (``dw_head.py``, MMDetection 2.x); where it
departs from the paper, the constant below says so.

Shapes: B images, n GT slots per image (padded by ppdet's ``PadGT``), L locations over all FPN levels, C classes.
Boxes are ``xyxy`` in input pixels, distances ``ltrb`` in pixels (see :mod:`ppassign.heads.fcos_base`).

Steps of the loss (:func:`dw_loss_terms`):
  1. candidates: locations strictly inside a GT box; a Gaussian centre prior (fixed mean 0, std 1.11 strides,
     soft by default) weights them and is 0 outside the box;
  2. per (GT, location): GIoU loss, p_loc = exp(-beta * L_GIoU), p_cls = (cls * centerness score) of the GT's
     class, consistency t = p_cls * p_loc;
  3. positive weight w_pos = e^{mu t} t prior / sum_candidates(e^{mu' t} t prior), detached;
  4. negative probability P_neg(IoU) per candidate, min-max normalised per object, 1 for IoU < 0.5; it replaces
     the 1 of the GT's class in an all-ones [B, L, C] map; w_neg = P_neg * s^gamma1;
  5. loss_cls_pos = 0.25 * sum w_pos * BCE(p_cls, 1) / #objects, loss_loc = 0.25 * sum w_pos * BCE(p_loc, 1) /
     #objects, loss_cls_neg = sum w_neg * BCE(s, 0) / sum(1 - P_neg); both averages all-reduced across ranks.

Ablation switches (``DWHead(pos_weighting=..., neg_weighting=...)``, both True by default). The official code has
no such switch, and the paper's ablation text could not be consulted here, so each replacement is the simplest
one that removes exactly that weighting (our choice, not the paper's stated protocol):
  * ``pos_weighting=False``: w_pos = prior / sum_candidates(prior), the normalised centre prior alone (no
    consistency t; each object's weights sum to 1); the losses and normalisers are unchanged.
  * ``neg_weighting=False``: P_neg = 1 everywhere, i.e. w_neg = s^gamma1, the plain focal-style negative on
    every location and class, candidates included; the normaliser stays DW's sum(1 - P_neg) of the real P_neg,
    so that only the weight changes (with P_neg = 1 it would be 0, clipped to 1: an un-normalised sum).
"""
import paddle
import paddle.nn.functional as F
from paddle.vision.ops import deform_conv2d

from . import fcos_base
from .fcos_base import class_scores_of_gts  # noqa: F401  (part of this module's API: the p_cls of step 2)
from ..ops.geometry import aligned_iou, points_inside_boxes

# --- constants, each with its source ------------------------------------------------------------------------
# official dw_head.py: EPS = 1e-12 (clamps the positive normaliser, stabilises the P_neg min-max normalisation).
EPS = 1e-12
# paper Eq. (3), beta = 5; official: p_loc = torch.exp(-reg_loss * 5) with reg_loss the GIoU loss (issue #36).
BETA = 5.0
# paper Eq. (4), mu = 5; official numerator torch.exp(5 * p_pos).
MU = 5.0
# official denominator torch.exp(3 * p_pos): NOT the paper's plain normalisation. The author (strongwolf/DW
# issues #3, #23) says it raises the positive loss against the negative loss, which matters for the final AP;
# with norm_mu == mu the weights of each object sum to 1 (the paper's Eq. 4).
NORM_MU_OFFICIAL = 3.0
# paper Eq. (7), gamma1 = 2: I_neg = s^gamma1; official: p_neg_weight * joint_conf ** 2.
GAMMA1 = 2.0
# paper Eq. (6), gamma2 = 2; official alpha = 2.
GAMMA2 = 2.0
# paper Eq. (5)-(6): P_neg = 1 for IoU < 0.5; k IoU^gamma2 + b passes through (0.5, 1) and (1, 0) (official code,
# issue #25; the paper's text names 0.95), i.e. k = 1 / (0.5^gamma2 - 1), b = -k (= -4/3, 4/3 for gamma2 = 2).
NEG_IOU_THR = 0.5
# official: cls_loss.sum() * 0.25 and loc_loss.sum() * 0.25.
POS_LOSS_WEIGHT = 0.25
# official CenterPrior: mean zeros(C, 2), sigma ones(C, 2) + 0.11, requires_grad=False (fixed, same for every
# class), distances in strides; soft_prior=True keeps the Gaussian, False thresholds it at 0.3 to {0, 1}.
PRIOR_MEAN = 0.0
PRIOR_SIGMA = 1.11
HARD_PRIOR_THR = 0.3
# official init_weights: conv_cls bias_init_with_prob(0.02), conv_reg N(0, 0.01) with bias 4.0
# (fcos_base.CLS_PRIOR_PROB, REG_BIAS_INIT), conv_centerness and reg_offset N(0, 0.01) with bias 0.
# official test_cfg: score_thr 0.05, nms iou 0.6, max_per_img 100, nms_pre 1000 (see the configs).
# mmdet bbox_overlaps default eps (the IoU that feeds P_neg).
IOU_EPS = 1e-6
# log() is clamped at log(1e-12) in the BCE terms (PyTorch's BCE clamps at -100; in float32 a clamp that low
# makes 1/p overflow, and inf * 0 weights would turn into NaN gradients).
LOG_CLAMP = 1e-12


# --- weights as pure functions --------------------------------------------------------------------------------

def center_prior(points, point_strides, gt_bboxes, candidates, soft=True, sigma=PRIOR_SIGMA, mean=PRIOR_MEAN):
    """DW's fixed Gaussian centre prior over the candidates.

    Args:
        points (Tensor[L, 2]), point_strides (Tensor[L]).
        gt_bboxes (Tensor[B, n, 4]).
        candidates (Tensor[B, n, L] bool): locations inside each (real) box.
        soft (bool): keep the Gaussian (official default) or threshold it at HARD_PRIOR_THR to {0, 1}.
        sigma, mean (float): in strides, the same for x, y and every class.
    Returns:
        Tensor[B, n, L]: 0 outside the candidates.
    """
    batch, num_gt = gt_bboxes.shape[:2]
    mu = paddle.full([batch, num_gt, 2], mean, "float32")
    sd = paddle.full([batch, num_gt, 2], sigma, "float32")
    prior = fcos_base.gaussian_center_prior(points, point_strides, gt_bboxes, mu, sd)
    if not soft:
        prior = (prior > HARD_PRIOR_THR).astype(prior.dtype)
    return paddle.where(candidates, prior, paddle.zeros_like(prior))


def consistency(p_cls, reg_loss, beta=BETA):
    """Localisation probability and cls-loc consistency (paper Eq. 3, with IoU^beta read as exp(-beta L_GIoU)).

    Args:
        p_cls (Tensor[B, n, L]): score of each GT's class at each location.
        reg_loss (Tensor[B, n, L]): GIoU loss of each location's box against each GT.
        beta (float).
    Returns:
        p_loc (Tensor[B, n, L]) = exp(-beta * reg_loss); t (Tensor[B, n, L]) = p_cls * p_loc.
    """
    p_loc = paddle.exp(-beta * reg_loss)
    return p_loc, p_cls * p_loc


def positive_weights(t, prior, mu=MU, norm_mu=NORM_MU_OFFICIAL, eps=EPS):
    """w_pos = e^{mu t} t prior / sum_L(e^{norm_mu t} t prior) (paper Eq. 4; official normaliser norm_mu = 3).

    Args:
        t (Tensor[B, n, L]): consistency, in [0, 1].
        prior (Tensor[B, n, L]): centre prior, 0 outside each object's candidates.
        mu (float): numerator exponent. norm_mu (float): normaliser exponent; norm_mu == mu makes each object's
            weights sum to 1, the official 3 < mu scales them up by up to e^{2t}.
        eps (float): lower clamp of the normaliser (objects without candidates get 0 weights).
    Returns:
        Tensor[B, n, L], no gradient.
    """
    t = t.detach()
    num = paddle.exp(mu * t) * t * prior
    den = (paddle.exp(norm_mu * t) * t * prior).sum(-1, keepdim=True).clip(min=eps)
    return (num / den).detach()


def negative_probability_curve(iou, gamma2=GAMMA2, iou_thr=NEG_IOU_THR):
    """k IoU^gamma2 + b through (iou_thr, 1) and (1, 0) (paper Eq. 6, official code), before normalisation.

    Args:
        iou (Tensor[...]).
    Returns:
        Tensor[...]: 1 at iou_thr, 0 at IoU 1, decreasing in between (above 1 for IoU < iou_thr).
    """
    k = 1.0 / (iou_thr ** gamma2 - 1.0)
    return k * iou ** gamma2 - k


def prior_positive_weights(prior, eps=EPS):
    """w_pos of the ``pos_weighting=False`` ablation: prior / sum_L(prior) per object (no consistency term).

    Args:
        prior (Tensor[B, n, L]): centre prior, 0 outside each object's candidates.
    Returns:
        Tensor[B, n, L], summing to 1 over each object's candidates (0 for objects without any), no gradient.
    """
    prior = prior.detach()
    return (prior / prior.sum(-1, keepdim=True).clip(min=eps)).detach()


def negative_probability(ious, candidates, gamma2=GAMMA2, iou_thr=NEG_IOU_THR, eps=EPS):
    """P_neg of each candidate: the curve, min-max normalised over each object's candidates, 1 below iou_thr.

    Per object with curve values x over its candidates: y = (x - min x + eps) / (min(1, max x) - min x + eps),
    as the official code does, so the object's best-IoU candidate gets ~0 and values stay in [0, 1]. (A lone
    candidate gets eps / eps = 1, also as there.)

    Args:
        ious (Tensor[B, n, L]): IoU of each location's predicted box with each GT.
        candidates (Tensor[B, n, L] bool).
    Returns:
        Tensor[B, n, L] in [0, 1], 1 outside the candidates; no gradient.
    """
    ious = ious.detach()
    curve = negative_probability_curve(ious, gamma2, iou_thr)
    big = paddle.full_like(curve, 1e6)
    low = paddle.where(candidates, curve, big).min(-1, keepdim=True)
    high = paddle.where(candidates, curve, -big).max(-1, keepdim=True).clip(max=1.0)
    has = candidates.any(-1, keepdim=True)
    low = paddle.where(has, low, paddle.zeros_like(low))
    high = paddle.where(has, high, paddle.ones_like(high))
    p_neg = (curve - low + eps) / (high - low + eps)
    ones = paddle.ones_like(p_neg)
    p_neg = paddle.where(ious < iou_thr, ones, p_neg)
    return paddle.where(candidates, p_neg, ones).detach()


def negative_probability_map(p_neg, gt_labels, num_classes):
    """Scatter P_neg into a per-location, per-class map; 1 (plain negative) everywhere else.

    A location that is a candidate of several objects of one class keeps the smallest P_neg (the official code
    writes them in an unspecified order).

    Args:
        p_neg (Tensor[B, n, L]): 1 outside the candidates.
        gt_labels (Tensor[B, n] int64).
        num_classes (int): C.
    Returns:
        Tensor[B, L, C].
    """
    return fcos_base.min_by_class(p_neg, gt_labels, num_classes)


def negative_weights(p_neg_map, scores, gamma1=GAMMA1):
    """w_neg = P_neg * I_neg with I_neg = s^gamma1 (paper Eq. 7-8); the s^gamma1 factor keeps its gradient.

    Args:
        p_neg_map (Tensor[B, L, C]), scores (Tensor[B, L, C]).
    Returns:
        Tensor[B, L, C] in [0, 1].
    """
    return p_neg_map * scores ** gamma1


def _neg_log(x):
    """-log(x), x clamped at LOG_CLAMP."""
    return -paddle.log(x.clip(min=LOG_CLAMP))


def dw_loss_terms(scores, ltrb, points, point_strides, gt_bboxes, gt_labels, gt_valid, num_classes,
                  soft_prior=True, beta=BETA, mu=MU, norm_mu=NORM_MU_OFFICIAL, gamma1=GAMMA1, gamma2=GAMMA2,
                  pos_weighting=True, neg_weighting=True):
    """Un-normalised DW loss sums of one batch (steps 1-5 of the module docstring).

    Args:
        scores (Tensor[B, L, C]): cls * centerness probabilities.
        ltrb (Tensor[B, L, 4]): predicted distances in pixels.
        points (Tensor[L, 2]), point_strides (Tensor[L]).
        gt_bboxes (Tensor[B, n, 4]), gt_labels (Tensor[B, n] int), gt_valid (Tensor[B, n] bool): padded GT.
        num_classes (int).
        pos_weighting, neg_weighting (bool): False replaces that weighting (module docstring, "Ablation").
    Returns:
        dict of 0-D Tensors: cls_pos, loc (sums over objects), cls_neg (sum), neg_factor (sum(1 - P_neg)),
        num_gt (number of real objects).
    """
    batch, num_gt = gt_bboxes.shape[:2]
    zero = paddle.zeros([], "float32")
    if num_gt == 0:
        p_neg_map = paddle.ones_like(scores)
        terms = dict(cls_pos=zero, loc=zero, num_gt=zero)
    else:
        candidates = points_inside_boxes(points.unsqueeze(0).unsqueeze(0), gt_bboxes.unsqueeze(2))
        candidates = candidates & gt_valid.unsqueeze(-1)
        prior = center_prior(points, point_strides, gt_bboxes, candidates, soft_prior)
        pred_boxes = fcos_base.distance_to_box(points.unsqueeze(0), ltrb).unsqueeze(1)  # [B, 1, L, 4]
        gt_boxes = gt_bboxes.unsqueeze(2)  # [B, n, 1, 4]
        reg_loss = fcos_base.giou_loss(pred_boxes, gt_boxes)  # [B, n, L]
        with paddle.no_grad():
            ious = aligned_iou(pred_boxes.detach(), gt_boxes, eps=IOU_EPS)
        p_cls = fcos_base.class_scores_of_gts(scores, gt_labels)
        _, t = consistency(p_cls, reg_loss, beta)
        w_pos = positive_weights(t, prior, mu, norm_mu) if pos_weighting else prior_positive_weights(prior)
        p_neg = negative_probability(ious, candidates, gamma2)
        p_neg_map = negative_probability_map(p_neg, gt_labels, num_classes)
        # BCE(p_loc, 1) = -log(exp(-beta * reg_loss)) = beta * reg_loss, written out to keep its gradient exact.
        terms = dict(cls_pos=POS_LOSS_WEIGHT * (w_pos * _neg_log(p_cls)).sum(),
                     loc=POS_LOSS_WEIGHT * (w_pos * beta * reg_loss).sum(),
                     num_gt=gt_valid.astype("float32").sum())
    w_neg = negative_weights(p_neg_map if neg_weighting else paddle.ones_like(p_neg_map), scores, gamma1)
    terms["cls_neg"] = (w_neg * _neg_log(1 - scores)).sum()
    terms["neg_factor"] = (1 - p_neg_map).sum()
    return terms


# --- box refinement ---------------------------------------------------------------------------------------------

REFINE_SAMPLING = ("zeros", "clamp")


def refine_shift(ltrb, offsets, stride, clamp=False):
    """Where each side's boundary point is sampled: the deformable-conv shift of the refinement.

    Args:
        ltrb (Tensor[B, 4, H, W]): coarse distances in pixels. offsets (Tensor[B, 8, H, W]): predicted (dy, dx)
            of the left, top, right, bottom point, in strides. stride (int|float).
        clamp (bool): move points that fall outside the map onto its border cell.
    Returns:
        Tensor[B, 8, H, W]: (dy, dx) per side, in cells, relative to the location's own cell.
    """
    d = ltrb / stride
    o = paddle.split(offsets, 8, axis=1)
    shift = paddle.concat([o[0], o[1] - d[:, 0:1], o[2] - d[:, 1:2], o[3],
                           o[4], o[5] + d[:, 2:3], o[6] + d[:, 3:4], o[7]], axis=1)
    if not clamp:
        return shift
    height, width = ltrb.shape[2], ltrb.shape[3]
    rows = paddle.arange(height, dtype=ltrb.dtype).reshape([1, 1, height, 1])
    cols = paddle.arange(width, dtype=ltrb.dtype).reshape([1, 1, 1, width])
    dy = paddle.minimum(paddle.maximum(shift[:, 0::2], -rows), (height - 1) - rows)
    dx = paddle.minimum(paddle.maximum(shift[:, 1::2], -cols), (width - 1) - cols)
    return paddle.stack([dy, dx], axis=2).reshape(shift.shape)


def refine_points_outside(ltrb, offsets, stride):
    """Which boundary points fall outside the map: with 'zeros' sampling they read 0, so the side's refined
    distance and its gradients are 0 there (a dead side).

    Args: as `refine_shift`. Returns: Tensor[B, 4, H, W] bool, per side (left, top, right, bottom).
    """
    height, width = ltrb.shape[2], ltrb.shape[3]
    shift = refine_shift(ltrb, offsets, stride)
    rows = paddle.arange(height, dtype=ltrb.dtype).reshape([1, 1, height, 1])
    cols = paddle.arange(width, dtype=ltrb.dtype).reshape([1, 1, 1, width])
    y, x = rows + shift[:, 0::2], cols + shift[:, 1::2]
    # bilinear sampling reads nothing from the map once a point is a full cell beyond the border
    return (y <= -1) | (y >= height) | (x <= -1) | (x >= width)


def refine_ltrb(ltrb, offsets, points, stride, clamp=False):
    """Re-sample each side at a predicted boundary point (paper Fig. 4 / Eq. 9-10, official deform_sampling).

    The coarse box of every location is decoded into a map of (x1, y1, x2, y2); for each side the refine
    branch predicts a (dy, dx) shift, in strides, of that side's point: left (y, x - l), top (y - t, x),
    right (y, x + r), bottom (y + b, x). Each coordinate map is sampled bilinearly at its side's point
    (``deform_conv2d`` with a 1x1 all-ones kernel, one group per coordinate; zero outside the map) and turned
    back into distances from the location, clipped at 0.

    Args:
        ltrb (Tensor[B, 4, H, W]): coarse distances in pixels.
        offsets (Tensor[B, 8, H, W]): (dy, dx) of the left, top, right, bottom point, in strides.
        points (Tensor[H*W, 2]): the level's locations (x, y), row-major.
        stride (int|float).
        clamp (bool): False (official): a point outside the map reads 0, so that side's refined distance is
            clipped to 0 and passes no gradient; True: the point is moved onto the map's border cell.
    Returns:
        Tensor[B, 4, H, W]: refined distances in pixels.
    """
    height, width = ltrb.shape[2], ltrb.shape[3]
    grid = points.transpose([1, 0]).reshape([1, 2, height, width])
    x, y = grid[:, 0:1], grid[:, 1:2]
    left, top, right, bottom = paddle.split(ltrb, 4, axis=1)
    boxes = paddle.concat([x - left, y - top, x + right, y + bottom], axis=1)
    shift = refine_shift(ltrb, offsets, stride, clamp)
    weight = paddle.ones([4, 1, 1, 1], ltrb.dtype)
    sampled = deform_conv2d(boxes, shift, weight, deformable_groups=4, groups=4)
    x1, y1, x2, y2 = paddle.split(sampled, 4, axis=1)
    return F.relu(paddle.concat([x - x1, y - y1, x2 - x, y2 - y], axis=1))


# --- the head ---------------------------------------------------------------------------------------------------

class DWHead(fcos_base.FCOSStyleHead):
    """FCOS-style head trained with DW's dual weighting; optional box refinement.

    Towers of 3x3 conv + GN + ReLU; classification from the cls tower; ltrb regression (ReLU(Scale(x)) * stride),
    centerness ("objectness") and, with refinement, 8 boundary-point offsets from the reg tower. The detection
    score is sigmoid(cls) * sigmoid(centerness), in training (the losses) and in inference.

    Used by ppdet's ``FCOS`` architecture: ``head(fpn_feats, inputs)`` in training returns the loss dict,
    ``head(fpn_feats)`` then ``head.post_process(outs, scale_factor)`` in evaluation.

    Args:
        num_classes, in_channels, feat_channels, num_convs, norm_groups, fpn_stride, conv_bias, prior_prob,
        reg_bias_init, point_offset, nms_pre, nms: the FCOS-style head's (`fcos_base.FCOSStyleHead`; in_channels
            and fpn_stride from the neck when built from YAML). conv_bias defaults to True, as the official head
            (strongwolf/DW, MMDetection's AnchorFreeHead with conv_bias=True); docs/dw.md, "Tower-conv bias", has
            what the bias is worth on the built-in dataset.
        with_refine (bool): box refinement (official ``reg_refine``; True in the 42.1 AP setting).
        soft_prior (bool): Gaussian centre prior kept soft (official default) or thresholded.
        beta, mu, norm_mu, gamma1, gamma2 (float): see the module constants.
        pos_weighting, neg_weighting (bool): the ablations of the module docstring (True: DW).
        refine_sampling (str): where a refinement boundary point beyond the feature map reads: 'zeros' (official:
            0, which clips that side to 0 and stops its gradients, a dead side; on small maps many sides start
            dead: the coarse boxes start 4 strides wide per side) or 'clamp' (the border cell; see docs/dw.md).
    """

    def __init__(self, num_classes=80, in_channels=256, feat_channels=256, num_convs=fcos_base.TOWER_NUM_CONVS,
                 norm_groups=fcos_base.GN_GROUPS, fpn_stride=fcos_base.FPN_STRIDES, conv_bias=True,
                 prior_prob=fcos_base.CLS_PRIOR_PROB, reg_bias_init=fcos_base.REG_BIAS_INIT,
                 point_offset=fcos_base.POINT_OFFSET, nms_pre=fcos_base.NMS_PRE, nms="MultiClassNMS",
                 with_refine=True, soft_prior=True, beta=BETA, mu=MU, norm_mu=NORM_MU_OFFICIAL, gamma1=GAMMA1,
                 gamma2=GAMMA2, pos_weighting=True, neg_weighting=True, refine_sampling="zeros"):
        fcos_base.check(fcos_base.BOOL, with_refine=with_refine, soft_prior=soft_prior, pos_weighting=pos_weighting,
                        neg_weighting=neg_weighting)
        fcos_base.check(fcos_base.POSITIVE, beta=beta, mu=mu, norm_mu=norm_mu, gamma1=gamma1, gamma2=gamma2)
        fcos_base.check_choice("refine_sampling", refine_sampling, REFINE_SAMPLING)
        self.with_refine = with_refine  # read by _init_predictors, which the base constructor calls
        super().__init__(num_classes, in_channels, feat_channels, num_convs, norm_groups, fpn_stride, conv_bias,
                         prior_prob, reg_bias_init, point_offset, nms_pre, nms)
        self.soft_prior = soft_prior
        self.beta, self.mu, self.norm_mu = float(beta), float(mu), float(norm_mu)
        self.gamma1, self.gamma2 = float(gamma1), float(gamma2)
        self.pos_weighting, self.neg_weighting = pos_weighting, neg_weighting
        self.refine_sampling = refine_sampling
        self.reg_offset = fcos_base.conv3x3(feat_channels, 8, 0.0) if with_refine else None

    def _init_predictors(self, feat_channels, prior_prob, reg_bias_init):
        self.conv_cls = fcos_base.conv3x3(feat_channels, self.num_classes, fcos_base.prior_bias(prior_prob))
        self.conv_reg = fcos_base.conv3x3(feat_channels, 4, reg_bias_init)
        self.conv_centerness = fcos_base.conv3x3(feat_channels, 1, 0.0)

    def forward_coarse(self, fpn_feats):
        """Raw per-level outputs before refinement.

        Args:
            fpn_feats (list[Tensor[B, in_channels, H_l, W_l]]).
        Returns:
            list of (cls_logits [B, C, H, W], ltrb [B, 4, H, W] pixels, centerness_logits [B, 1, H, W],
            offsets [B, 8, H, W] | None) per level.
        """
        out = []
        for level, (cls_feat, reg_feat) in enumerate(self.tower_features(fpn_feats)):
            ltrb = self.distances(self.conv_reg(reg_feat), level)
            offsets = self.reg_offset(reg_feat) if self.with_refine else None
            out.append((self.conv_cls(cls_feat), ltrb, self.conv_centerness(reg_feat), offsets))
        return out

    def outputs(self, fpn_feats):
        """(cls_logits, ltrb, centerness_logits): per-level lists of [B, C, H, W], [B, 4, H, W] (pixels, refined
        with with_refine) and [B, 1, H, W]."""
        cls_list, ltrb_list, ctr_list = [], [], []
        for level, (cls_logits, ltrb, ctr, offsets) in enumerate(self.forward_coarse(fpn_feats)):
            if offsets is not None:
                ltrb = refine_ltrb(ltrb, offsets, self.points_of(ltrb, level), self.fpn_stride[level],
                                   self.refine_sampling == "clamp")
            cls_list.append(cls_logits)
            ltrb_list.append(ltrb)
            ctr_list.append(ctr)
        return cls_list, ltrb_list, ctr_list

    def get_loss(self, outs, targets):
        """DW losses of a batch.

        Args:
            outs: (cls_logits, ltrb, centerness_logits) lists from forward.
            targets (dict): gt_bbox [B, n, 4], gt_class [B, n, 1] int, pad_gt_mask [B, n, 1] (ppdet PadGT;
                when absent, slots with an all-zero box are padding).
        Returns:
            dict: loss_cls_pos, loss_loc, loss_cls_neg and their sum loss.
        """
        cls_list, ltrb_list, ctr_list = outs
        gt_bboxes, gt_labels, valid = fcos_base.padded_targets(targets, cls_list[0].shape[0], self.num_classes)
        points, point_strides, _ = fcos_base.multi_level_points(cls_list, self.fpn_stride, self.point_offset)
        scores = (F.sigmoid(fcos_base.flatten_levels(cls_list))
                  * F.sigmoid(fcos_base.flatten_levels(ctr_list)))
        ltrb = fcos_base.flatten_levels(ltrb_list)
        terms = dw_loss_terms(scores, ltrb, points, point_strides, gt_bboxes, gt_labels, valid, self.num_classes,
                              self.soft_prior, self.beta, self.mu, self.norm_mu, self.gamma1, self.gamma2,
                              self.pos_weighting, self.neg_weighting)
        pos_avg = fcos_base.reduce_mean(terms["num_gt"]).clip(min=1.0)
        neg_avg = fcos_base.reduce_mean(terms["neg_factor"]).clip(min=1.0)
        losses = {"loss_cls_pos": terms["cls_pos"] / pos_avg,
                  "loss_loc": terms["loc"] / pos_avg,
                  "loss_cls_neg": terms["cls_neg"] / neg_avg}
        losses["loss"] = losses["loss_cls_pos"] + losses["loss_loc"] + losses["loss_cls_neg"]
        return losses

    def post_process(self, outs, scale_factor):
        """Boxes in original-image pixels: score = sigmoid(cls) * sigmoid(centerness), top-k per level, NMS.

        Returns:
            bbox_pred (Tensor[N, 6]) (class, score, x1, y1, x2, y2), bbox_num (Tensor[B]).
        """
        cls_list, ltrb_list, ctr_list = outs
        scores = [F.sigmoid(cls_logits) * F.sigmoid(ctr) for cls_logits, ctr in zip(cls_list, ctr_list)]
        points = [self.points_of(ltrb, level) for level, ltrb in enumerate(ltrb_list)]
        return self.detect(scores, ltrb_list, points, scale_factor)
