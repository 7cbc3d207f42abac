"""AutoAssign (Zhu et al. 2020, arXiv:2007.03496): fully differentiable label assignment, as a ppdet head.

Used through ppdet's ``FCOS`` architecture (``fcos_head: AutoAssignHead``). Every location inside a box, on
every FPN level, is both a positive and a negative candidate of that object; two weight maps decide how much:

1. **Center weighting** (Sec. 3.2): a class-wise Gaussian prior G(d | mu_c, sigma_c), mu and sigma learnable
   [C, 2], d = offset of a location from the box centre in units of the location's stride.
2. **Confidence weighting** (Sec. 3.3): P(cls) = P(cls | obj) P(obj) (implicit objectness: no objectness label,
   the branch learns only through the losses below), P(loc) = exp(-lambda L_giou), P = P(cls) P(loc),
   C(P) = exp(P / tau).
3. **Positive loss** per object n (eq. 1, 10): w+ = C G / sum_{S_n} C G, L+_n = -log sum_{S_n} w+ P.
4. **Negative loss** (eq. 11, 12): v = 1 / (1 - IoU), IoU of the location's predicted box with its best GT;
   w- = 1 - (v - min v) / (max v - min v) over S_n (0 at the object's best-IoU location), 1 outside every box;
   focal loss on q = P(cls) w- against 0: q^gamma * -log(1 - q), on the object's class channel (w- is 1 on the
   other channels).
5. Optional **center loss** (MMDetection's implementation, not in the paper): num_objects / sum G over S_n.

Losses are normalised by the number of objects (positive) and by the prior mass sum G (negative, as
MMDetection), both averaged across ranks under distributed training.

Ablation switches (constructor arguments; the defaults are the method above). They follow the paper's ablation
section (Sec. 4.2: Table 2 builds w+ from center weighting alone or confidence weighting alone "while keeping
the negative weights unchanged"; Table 3 compares a "fixed" prior, a Gaussian without learnable parameters,
with the learnable class-wise one; Table 4 removes the implicit objectness):

* ``center_prior``: 'learnable' (default, class-wise mu, sigma trained), 'fixed' (G with mu = 0, sigma = 1,
  never trained; Table 3 "fixed"), 'off' (G = 1 on every location of S_n in w+; Table 2 "confidence weighting
  only"). Under 'off' the fixed standard Gaussian is still what ranks locations for ``force_topk``, what
  normalises the negative loss (prior mass) and what the center loss measures, so that only w+ changes.
  With 'fixed' and 'off' the center loss is a constant (it only trains mu, sigma).
* ``confidence_weighting``: False -> C(P) = 1, w+ = G / sum_{S_n} G (Table 2 "center weighting only");
  P in the positive loss -log sum w+ P and everything else unchanged.
* ``objectness``: False -> P(cls) = sigmoid(cls logits) alone (no implicit objectness, Table 4 first rows), in
  the losses and in inference; the objectness conv is then not created (no unused parameter for data
  parallel or the optimizer; forward returns None in place of its logits).
"""
import paddle
import paddle.nn.functional as F
from paddle import ParamAttr
from paddle.nn.initializer import Constant

from . import fcos_base as fb
from ..ops.geometry import aligned_iou, points_inside_boxes

# Paper Sec. 4.1: tau = 1/3 in eq. (9); MMDetection writes it as exp(3 * P) (autoassign_head.py).
TEMPERATURE = 1.0 / 3.0
# Paper Sec. 4.1: lambda = 5 in eq. (4); MMDetection gets it from GIoULoss(loss_weight=5.0) with exp(-loss).
LOC_WEIGHT = 5.0
# Paper Sec. 4.1: focal loss alpha = 0.25, gamma = 2. MMDetection applies alpha as pos_loss_weight = 0.25 and
# (1 - alpha) as neg_loss_weight = 0.75, and adds center_loss_weight = 0.75 (no counterpart in the paper).
POS_LOSS_WEIGHT = 0.25
NEG_LOSS_WEIGHT = 0.75
CENTER_LOSS_WEIGHT = 0.75
FOCAL_GAMMA = 2.0
# MMDetection CenterPrior: with force_topk, an object without any location inside takes the 9 of highest prior.
FORCE_TOPK = 9
# MMDetection: EPS = 1e-12 guards divisions and logs.
EPS = 1e-12
# MMDetection's CenterPrior: a location is inside a box when its four distances to the sides are all > 0.
INSIDE_EPS = 0.0
# Paper Sec. 4.1 NMS IoU 0.6; MMDetection test_cfg score_thr 0.05, max_per_img 100 (set on MultiClassNMS).
# Values of the center_prior switch (module docstring).
CENTER_PRIORS = ("learnable", "fixed", "off")


def inside_boxes(points, gt_bboxes):
    """Which locations lie strictly inside which boxes (``geometry.points_inside_boxes`` with margin
    `INSIDE_EPS`).

    Args:
        points (Tensor[L, 2]), gt_bboxes (Tensor[..., n, 4]), e.g. [n, 4] or [B, n, 4].
    Returns:
        Tensor[..., n, L] bool.
    """
    return points_inside_boxes(points, gt_bboxes.unsqueeze(-2), eps=INSIDE_EPS)


def center_weights(points, point_strides, gt_bboxes, gt_labels, mu, sigma, inside, force_topk=0, valid=None):
    """Center weighting: class-wise Gaussian prior over S_n (AutoAssign eq. 2).

    Args:
        points (Tensor[L, 2]), point_strides (Tensor[L]).
        gt_bboxes (Tensor[..., n, 4]), gt_labels (Tensor[..., n] int64): e.g. [n, 4] and [n], or [B, n, 4]
            and [B, n] (padded slots need an in-range label).
        mu (Tensor[C, 2]), sigma (Tensor[C, 2]): learnable, in strides.
        inside (Tensor[..., n, L] bool): locations inside each box (False in padded slots).
        force_topk (int): > 0: an object with no location inside takes its `force_topk` highest-prior
            locations as S_n (tiny boxes); 0: such an object has an empty S_n.
        valid (Tensor[..., n] bool | None): real objects (None: all); padded slots keep an empty S_n.
    Returns:
        prior (Tensor[..., n, L]): G, 0 outside S_n.
        in_s (Tensor[..., n, L] bool): S_n.
    """
    flat = gt_labels.reshape([-1])
    shape = list(gt_labels.shape) + [2]
    prior = fb.gaussian_center_prior(points, point_strides, gt_bboxes, paddle.gather(mu, flat).reshape(shape),
                                     paddle.gather(sigma, flat).reshape(shape))
    in_s = inside
    if force_topk > 0 and inside.shape[-2] > 0:
        # Computed for every object and kept only where S_n is empty: no host round-trip to ask whether any is.
        empty = paddle.logical_not(inside.any(-1))  # [..., n]
        if valid is not None:
            empty = paddle.logical_and(empty, valid)
        k = min(int(force_topk), points.shape[0])
        _, idx = paddle.topk(prior.detach(), k, axis=-1)  # [..., n, k]
        forced = paddle.put_along_axis(paddle.zeros_like(prior), idx, paddle.ones(idx.shape, prior.dtype), -1)
        in_s = paddle.logical_or(inside, paddle.logical_and(forced > 0, empty.unsqueeze(-1)))
    return prior * in_s.astype(prior.dtype), in_s


def positive_loss(p_cls, loc_loss, prior, in_s, temperature=TEMPERATURE, loc_weight=LOC_WEIGHT,
                  confidence_weighting=True):
    """Per-object positive loss -log sum_{S_n} w+ P (AutoAssign eq. 1, 7-10).

    Args:
        p_cls (Tensor[n, L]): P(cls) = P(cls | obj) P(obj) at each object's class.
        loc_loss (Tensor[n, L]): GIoU loss of each location's box against each object.
        prior (Tensor[n, L]): G, 0 outside S_n (the center_prior='off' ablation passes 1 on S_n).
        in_s (Tensor[n, L] bool): S_n.
        confidence_weighting (bool): False: C(P) = 1, w+ = G / sum G (paper Table 2, center weighting only).
    Returns:
        loss (Tensor[n]), w_pos (Tensor[n, L]): w+ sums to 1 over S_n (0 where S_n is empty).
    """
    joint = p_cls * paddle.exp(-loc_weight * loc_loss)
    if confidence_weighting:
        weight = paddle.exp(joint / temperature) * prior * in_s.astype(prior.dtype)
    else:
        weight = prior * in_s.astype(prior.dtype)
    w_pos = weight / weight.sum(-1, keepdim=True).clip(min=EPS)
    loss = -paddle.log((w_pos * joint).sum(-1).clip(min=EPS))
    # An object with an empty S_n (tiny box, force_topk off) has nothing to learn from: no constant -log(EPS).
    loss = paddle.where(in_s.any(-1), loss, paddle.zeros_like(loss))
    return loss, w_pos


def negative_weights(best_iou, in_s, gt_labels, num_classes):
    """w- = 1 - normalised 1 / (1 - IoU) per object (AutoAssign eq. 11), 1 outside every box.

    Args:
        best_iou (Tensor[..., L]): IoU of each location's predicted box with the GT it overlaps most.
        in_s (Tensor[..., n, L] bool): S_n (empty for padded slots).
        gt_labels (Tensor[..., n] int64).
        num_classes (int): C.
    Returns:
        Tensor[..., L, C] in [0, 1]: on an object's class channel inside S_n, 1 - (v - min v) / (max v - min v)
        (0 at the object's best-IoU location; when several objects of one class cover a location, the
        smallest weight wins); 1 everywhere else.
    """
    if in_s.shape[-2] == 0:
        return fb.min_by_class(in_s.astype(best_iou.dtype), gt_labels, num_classes)
    v = (1.0 / (1.0 - best_iou).clip(min=EPS)).unsqueeze(-2).expand(in_s.shape)
    big = paddle.full_like(v, float("inf"))
    v_min = paddle.where(in_s, v, big).min(-1, keepdim=True)
    v_max = paddle.where(in_s, v, -big).max(-1, keepdim=True)
    norm = (v - v_min + EPS) / (v_max - v_min + EPS)
    w_obj = paddle.where(in_s, 1.0 - norm, paddle.ones_like(v))  # [..., n, L]
    return fb.min_by_class(w_obj, gt_labels, num_classes)


def negative_loss(p_cls, w_neg, gamma=FOCAL_GAMMA):
    """Focal-style negative loss sum q^gamma * -log(1 - q), q = P(cls) w- (AutoAssign eq. 12).

    Args:
        p_cls (Tensor[L, C]): P(cls | obj) P(obj).
        w_neg (Tensor[L, C]): negative weights.
    Returns:
        Tensor[]: summed over locations and classes.
    """
    q = p_cls * w_neg
    return (q.pow(gamma) * -paddle.log((1.0 - q).clip(min=EPS))).sum()


class AutoAssignHead(fb.FCOSStyleHead):
    """AutoAssign head: FCOS towers (GN), per-level scale, ltrb regression, implicit objectness.

    Args:
        num_classes, in_channels, feat_channels, num_convs, norm_groups, fpn_stride, conv_bias, prior_prob,
        reg_bias_init, point_offset, nms_pre, nms: the FCOS-style head's (`fcos_base.FCOSStyleHead`; in_channels
            and fpn_stride from the neck when built from YAML). conv_bias defaults to False (the official code
            and MMDetection have a tower-conv bias: docs/autoassign.md); point_offset 0.5 (cell centres; the
            official code and MMDetection use 0).
        temperature (float): tau of C(P) = exp(P / tau). loc_weight (float): lambda of P(loc) = exp(-lambda L).
        pos_loss_weight, neg_loss_weight, center_loss_weight (float): loss weights (0 disables the center loss).
        focal_gamma (float): gamma of the negative focal loss.
        force_topk (int): locations forced into S_n for objects with no location inside (0: off).
        center_prior (str): 'learnable' | 'fixed' | 'off'; confidence_weighting (bool); objectness (bool):
            the paper's ablations, see the module docstring.
        num_groups (int | None): the old name of norm_groups, accepted until the next release (with a
            logged warning).
    """

    def __init__(self, num_classes=80, in_channels=256, feat_channels=256, num_convs=fb.TOWER_NUM_CONVS,
                 norm_groups=fb.GN_GROUPS, fpn_stride=fb.FPN_STRIDES, conv_bias=False, prior_prob=fb.CLS_PRIOR_PROB,
                 reg_bias_init=fb.REG_BIAS_INIT, point_offset=fb.POINT_OFFSET, nms_pre=fb.NMS_PRE,
                 nms="MultiClassNMS", temperature=TEMPERATURE, loc_weight=LOC_WEIGHT, pos_loss_weight=POS_LOSS_WEIGHT,
                 neg_loss_weight=NEG_LOSS_WEIGHT, center_loss_weight=CENTER_LOSS_WEIGHT, focal_gamma=FOCAL_GAMMA,
                 force_topk=FORCE_TOPK, center_prior="learnable", confidence_weighting=True, objectness=True,
                 num_groups=None):
        norm_groups = fb.renamed_argument("AutoAssignHead", "num_groups", "norm_groups", num_groups, norm_groups,
                                          fb.GN_GROUPS)
        fb.check_choice("center_prior", center_prior, CENTER_PRIORS)
        fb.check(fb.BOOL, confidence_weighting=confidence_weighting, objectness=objectness)
        fb.check(fb.POSITIVE, temperature=temperature, loc_weight=loc_weight)
        fb.check(fb.NON_NEGATIVE, pos_loss_weight=pos_loss_weight, neg_loss_weight=neg_loss_weight,
                 center_loss_weight=center_loss_weight, focal_gamma=focal_gamma)
        fb.check(fb.NON_NEGATIVE_INT, force_topk=force_topk)
        self.objectness = objectness  # read by _init_predictors, which the base constructor calls
        super().__init__(num_classes, in_channels, feat_channels, num_convs, norm_groups, fpn_stride, conv_bias,
                         prior_prob, reg_bias_init, point_offset, nms_pre, nms)
        self.temperature = temperature
        self.loc_weight = loc_weight
        self.pos_loss_weight = pos_loss_weight
        self.neg_loss_weight = neg_loss_weight
        self.center_loss_weight = center_loss_weight
        self.focal_gamma = focal_gamma
        self.force_topk = force_topk
        self.center_prior = center_prior
        self.confidence_weighting = confidence_weighting
        # Center weighting (Sec. 3.2): the prior starts as a standard Gaussian at the box centre; 'fixed' and
        # 'off' keep it there (parameters with trainable=False: no gradient, left out by ppdet's optimizer).
        learn = center_prior == "learnable"
        self.mu = self.create_parameter([self.num_classes, 2],
                                        attr=ParamAttr(initializer=Constant(0.0), trainable=learn))
        self.sigma = self.create_parameter([self.num_classes, 2],
                                           attr=ParamAttr(initializer=Constant(1.0), trainable=learn))

    def _init_predictors(self, feat_channels, prior_prob, reg_bias_init):
        self.cls_conv = fb.conv3x3(feat_channels, self.num_classes, fb.prior_bias(prior_prob))
        self.reg_conv = fb.conv3x3(feat_channels, 4, reg_bias_init)
        self.obj_conv = fb.conv3x3(feat_channels, 1) if self.objectness else None

    def outputs(self, fpn_feats):
        """Raw per-level outputs.

        Args:
            fpn_feats (list[Tensor[B, in_channels, H_l, W_l]]).
        Returns:
            (cls_logits, ltrb, obj_logits, points): per-level lists of [B, C, H, W], [B, 4, H, W] (pixels),
            [B, 1, H, W] (None with objectness=False) and [H*W, 2].
        """
        cls_logits, ltrbs, obj_logits, points = [], [], [], []
        for level, (cls_feat, reg_feat) in enumerate(self.tower_features(fpn_feats)):
            cls_logits.append(self.cls_conv(cls_feat))
            ltrbs.append(self.distances(self.reg_conv(reg_feat), level))
            obj_logits.append(self.obj_conv(reg_feat) if self.objectness else None)
            points.append(self.points_of(fpn_feats[level], level))
        return cls_logits, ltrbs, obj_logits, points

    # ----------------------------------------------------------------------------------------------------
    def get_loss(self, outs, targets):
        """AutoAssign losses of a batch, computed for all images at once on the padded [B, n, L] GT slots.

        Args:
            outs: forward's (cls_logits, ltrb, obj_logits, points).
            targets (dict): gt_bbox [B, n, 4], gt_class [B, n, 1], pad_gt_mask [B, n, 1] (when absent, slots
                with an all-zero box are padding).
        Returns:
            dict: loss_pos, loss_neg, loss_center and their sum loss (scalars).
        """
        cls_logits, ltrbs, obj_logits, points_list = outs
        batch = cls_logits[0].shape[0]
        gt_bbox, gt_labels, valid = fb.padded_targets(targets, batch, self.num_classes)
        points = paddle.concat(points_list)
        strides = paddle.concat([paddle.full([p.shape[0]], float(s), "float32")
                                 for p, s in zip(points_list, self.fpn_stride)])
        cls_prob = self.class_probability(fb.flatten_levels(cls_logits),
                                          fb.flatten_levels(obj_logits) if self.objectness else None)
        boxes = fb.distance_to_box(points, fb.flatten_levels(ltrbs))  # [B, L, 4]
        pos, neg, center, prior_mass = self._batch_losses(cls_prob, boxes, points, strides, gt_bbox, gt_labels,
                                                          valid)
        num_objects = fb.reduce_mean(valid.astype("float32").sum())
        prior_mass = fb.reduce_mean(prior_mass)
        loss_pos = pos / num_objects.clip(min=1.0) * self.pos_loss_weight
        loss_neg = neg / prior_mass.clip(min=1.0) * self.neg_loss_weight
        loss_center = center / batch * self.center_loss_weight
        if gt_bbox.shape[1] == 0:  # no GT slot at all: keep every parameter in the graph (data parallel)
            zero = sum(o.sum() for level in outs[:3] for o in level if o is not None) * 0
            if self.center_prior == "learnable":
                zero = zero + (self.mu.sum() + self.sigma.sum()) * 0
            loss_pos = loss_pos + zero
            loss_center = loss_center + zero
        losses = {"loss_pos": loss_pos, "loss_neg": loss_neg, "loss_center": loss_center}
        losses["loss"] = paddle.add_n(list(losses.values()))
        return losses

    def _batch_losses(self, cls_prob, boxes, points, strides, gt_bbox, gt_labels, valid):
        """Loss sums of a batch; padded slots (and images without objects) have an empty S_n.

        Args:
            cls_prob (Tensor[B, L, C]): P(cls | obj) P(obj). boxes (Tensor[B, L, 4]): predicted xyxy.
            points (Tensor[L, 2]), strides (Tensor[L]).
            gt_bbox (Tensor[B, n, 4]), gt_labels (Tensor[B, n] int64), valid (Tensor[B, n] bool).
        Returns:
            (pos sum over objects, neg sum, center term summed over images, prior mass (detached)) scalars.
        """
        zero = paddle.zeros([], "float32")
        if gt_bbox.shape[1] == 0:
            return zero, negative_loss(cls_prob, paddle.ones_like(cls_prob), self.focal_gamma), zero, zero
        inside = paddle.logical_and(inside_boxes(points, gt_bbox), valid.unsqueeze(-1))  # [B, n, L]
        prior, in_s, pos_prior = self.center_weighting(points, strides, gt_bbox, gt_labels, inside, valid)
        pred = boxes.unsqueeze(1)  # [B, 1, L, 4]
        target = gt_bbox.unsqueeze(2)  # [B, n, 1, 4]
        loc_loss = fb.giou_loss(pred, target)  # [B, n, L]
        p_cls = fb.class_scores_of_gts(cls_prob, gt_labels)  # [B, n, L]
        pos, _ = positive_loss(p_cls, loc_loss, pos_prior, in_s, self.temperature, self.loc_weight,
                               self.confidence_weighting)
        with paddle.no_grad():
            # IoU >= 0: a padded slot's 0 never wins the max over real objects.
            iou = aligned_iou(pred, target) * valid.unsqueeze(-1).astype("float32")
            w_neg = negative_weights(iou.max(1), in_s, gt_labels, self.num_classes)  # [B, L, C]
        neg = negative_loss(cls_prob, w_neg, self.focal_gamma)
        mass = prior.sum(-1).sum(-1)  # [B]
        num_with_s = in_s.any(-1).astype("float32").sum(-1)  # [B]
        center = (num_with_s / mass.clip(min=EPS)).sum() if self.center_loss_weight else zero
        return pos.sum(), neg, center, mass.sum().detach()

    def class_probability(self, cls_logits, obj_logits=None):
        """P(cls): sigmoid(cls) * sigmoid(obj) (eq. 3), or sigmoid(cls) alone with objectness=False.

        Args:
            cls_logits (Tensor[..., C]), obj_logits (Tensor[..., 1] | None): None only with objectness=False
                (or maps [B, C, H, W] and [B, 1, H, W]).
        Returns:
            Tensor[..., C] (or [B, C, H, W]).
        """
        if not self.objectness:
            return F.sigmoid(cls_logits)
        return F.sigmoid(cls_logits) * F.sigmoid(obj_logits)

    def center_weighting(self, points, strides, gt_bbox, gt_labels, inside, valid=None):
        """S_n and the centre prior under the head's `center_prior` setting.

        Args:
            points (Tensor[L, 2]), strides (Tensor[L]), gt_bbox (Tensor[..., n, 4]), gt_labels (Tensor[..., n]),
            inside (Tensor[..., n, L] bool), valid (Tensor[..., n] bool | None): as for `center_weights`.
        Returns:
            prior (Tensor[..., n, L]): G of mu, sigma (0 outside S_n): ranks force_topk, normalises the
                negative loss and enters the center loss.
            in_s (Tensor[..., n, L] bool): S_n.
            pos_prior (Tensor[..., n, L]): the G of w+: prior, or 1 on S_n with center_prior='off'.
        """
        prior, in_s = center_weights(points, strides, gt_bbox, gt_labels, self.mu, self.sigma, inside,
                                     self.force_topk, valid)
        pos_prior = in_s.astype(prior.dtype) if self.center_prior == "off" else prior
        return prior, in_s, pos_prior

    # ----------------------------------------------------------------------------------------------------
    def post_process(self, outs, scale_factor):
        """score = P(cls | obj) P(obj) (sigmoid(cls) with objectness=False), per-level top-k, decode, NMS.

        Args:
            outs: forward's (cls_logits, ltrb, obj_logits, points).
            scale_factor (Tensor[B, 2]): (scale_y, scale_x).
        Returns:
            bbox_pred (Tensor[N, 6]) (class, score, x1, y1, x2, y2), bbox_num (Tensor[B]).
        """
        cls_logits, ltrbs, obj_logits, points = outs
        scores = [self.class_probability(c, o) for c, o in zip(cls_logits, obj_logits)]
        return self.detect(scores, ltrbs, points, scale_factor)
