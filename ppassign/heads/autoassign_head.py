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
import paddle.nn as nn
import paddle.nn.functional as F
from paddle import ParamAttr
from paddle.nn.initializer import Constant

from . import fcos_base as fb
from ..ops.geometry import aligned_iou

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
# MMDetection AutoAssignHead.init_weights: cls bias from prior 0.02, regression bias 4.0 (boxes start at
# 4 strides from the location on each side).
CLS_PRIOR_PROB = 0.02
REG_BIAS_INIT = 4.0
# MMDetection CenterPrior: with force_topk, an object without any location inside takes the 9 of highest prior.
FORCE_TOPK = 9
# MMDetection: EPS = 1e-12 guards divisions and logs.
EPS = 1e-12
# Paper Sec. 4.1 NMS IoU 0.6; MMDetection test_cfg score_thr 0.05, max_per_img 100 (set on MultiClassNMS).
# Values of the center_prior switch (module docstring).
CENTER_PRIORS = ("learnable", "fixed", "off")


def inside_boxes(points, gt_bboxes):
    """Which locations lie strictly inside which boxes.

    Args:
        points (Tensor[L, 2]), gt_bboxes (Tensor[..., n, 4]), e.g. [n, 4] or [B, n, 4].
    Returns:
        Tensor[..., n, L] bool.
    """
    return fb.box_to_distance(points, gt_bboxes.unsqueeze(-2)).min(-1) > 0


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


class AutoAssignHead(nn.Layer):
    """AutoAssign head: FCOS towers (GN), per-level scale, ltrb regression, implicit objectness.

    Args:
        num_classes (int): C.
        in_channels (int): FPN channels (taken from the neck by `from_config`).
        feat_channels (int): tower width. num_convs (int): tower depth. num_groups (int): GroupNorm groups.
        fpn_stride (list[int]): strides of the FPN levels the head receives.
        temperature (float): tau of C(P) = exp(P / tau). loc_weight (float): lambda of P(loc) = exp(-lambda L).
        pos_loss_weight, neg_loss_weight, center_loss_weight (float): loss weights (0 disables the center loss).
        focal_gamma (float): gamma of the negative focal loss.
        force_topk (int): locations forced into S_n for objects with no location inside (0: off).
        prior_prob (float): initial P(cls | obj). reg_bias_init (float): initial ltrb in strides.
        point_offset (float): location offset in cells (0.5 = cell centres; the original code uses 0).
        nms_pre (int): locations kept per level before NMS.
        nms (MultiClassNMS): injected by ppdet.
        conv_bias (bool): bias in the towers' 3x3 convs (MMDetection's AutoAssignHead: True; default False).
        center_prior (str): 'learnable' | 'fixed' | 'off'; confidence_weighting (bool); objectness (bool):
            the paper's ablations, see the module docstring.
    """
    __shared__ = ["num_classes"]
    __inject__ = ["nms"]

    def __init__(self, num_classes=80, in_channels=256, feat_channels=256, num_convs=fb.TOWER_NUM_CONVS,
                 num_groups=fb.GN_GROUPS, fpn_stride=(8, 16, 32, 64, 128), temperature=TEMPERATURE,
                 loc_weight=LOC_WEIGHT, pos_loss_weight=POS_LOSS_WEIGHT, neg_loss_weight=NEG_LOSS_WEIGHT,
                 center_loss_weight=CENTER_LOSS_WEIGHT, focal_gamma=FOCAL_GAMMA, force_topk=FORCE_TOPK,
                 prior_prob=CLS_PRIOR_PROB, reg_bias_init=REG_BIAS_INIT, point_offset=fb.POINT_OFFSET,
                 nms_pre=fb.NMS_PRE, nms="MultiClassNMS", conv_bias=False, center_prior="learnable",
                 confidence_weighting=True, objectness=True):
        super().__init__()
        if center_prior not in CENTER_PRIORS:
            raise ValueError(f"center_prior must be one of {CENTER_PRIORS}, got {center_prior!r}")
        for name, value in (("conv_bias", conv_bias), ("confidence_weighting", confidence_weighting),
                            ("objectness", objectness)):
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be True or False, got {value!r}")
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.num_classes = int(num_classes)
        self.fpn_stride = [int(s) for s in fpn_stride]
        self.in_channels = in_channels
        self.temperature = temperature
        self.loc_weight = loc_weight
        self.pos_loss_weight = pos_loss_weight
        self.neg_loss_weight = neg_loss_weight
        self.center_loss_weight = center_loss_weight
        self.focal_gamma = focal_gamma
        self.force_topk = int(force_topk)
        self.point_offset = point_offset
        self.nms_pre = nms_pre
        self.nms = nms
        self.center_prior = center_prior
        self.confidence_weighting = confidence_weighting
        self.objectness = objectness
        self.cls_tower = fb.ConvTower(in_channels, feat_channels, num_convs, num_groups, conv_bias)
        self.reg_tower = fb.ConvTower(in_channels, feat_channels, num_convs, num_groups, conv_bias)
        self.cls_conv = fb.conv3x3(feat_channels, self.num_classes, fb.prior_bias(prior_prob))
        self.reg_conv = fb.conv3x3(feat_channels, 4, reg_bias_init)
        self.obj_conv = fb.conv3x3(feat_channels, 1) if objectness else None
        self.scales = nn.LayerList([fb.Scale() for _ in self.fpn_stride])
        # Center weighting (Sec. 3.2): the prior starts as a standard Gaussian at the box centre; 'fixed' and
        # 'off' keep it there (parameters with trainable=False: no gradient, left out by ppdet's optimizer).
        learn = center_prior == "learnable"
        self.mu = self.create_parameter([self.num_classes, 2],
                                        attr=ParamAttr(initializer=Constant(0.0), trainable=learn))
        self.sigma = self.create_parameter([self.num_classes, 2],
                                           attr=ParamAttr(initializer=Constant(1.0), trainable=learn))

    @classmethod
    def from_config(cls, cfg, input_shape):
        return {"in_channels": input_shape[0].channels}

    # ----------------------------------------------------------------------------------------------------
    def _check_feats(self, fpn_feats):
        if not isinstance(fpn_feats, (list, tuple)) or len(fpn_feats) != len(self.fpn_stride):
            raise ValueError(f"fpn_feats must be a list of {len(self.fpn_stride)} levels (fpn_stride="
                             f"{self.fpn_stride}), got {type(fpn_feats).__name__} of "
                             f"{len(fpn_feats) if isinstance(fpn_feats, (list, tuple)) else 'n/a'}")
        for i, feat in enumerate(fpn_feats):
            # a paddle.Tensor, or a static-graph Value while exporting: check the shape only
            if not hasattr(feat, "shape") or len(feat.shape) != 4:
                raise ValueError(f"fpn_feats[{i}] must be a [B, C, H, W] tensor, got "
                                 f"{list(getattr(feat, 'shape', [])) or type(feat).__name__}")
            if feat.shape[1] != self.in_channels:
                raise ValueError(f"fpn_feats[{i}] must have {self.in_channels} channels, got shape "
                                 f"{list(feat.shape)}")

    def forward(self, fpn_feats, targets=None):
        """Training (`targets` given, layer in train mode): the loss dict. Otherwise the raw outputs.

        Args:
            fpn_feats (list[Tensor[B, in_channels, H_l, W_l]]).
            targets (dict | None): ppdet inputs with gt_bbox [B, n, 4], gt_class [B, n, 1],
                pad_gt_mask [B, n, 1] (PadGT).
        Returns:
            dict of losses, or (cls_logits, ltrb, obj_logits, points): per-level lists of [B, C, H, W],
            [B, 4, H, W] (pixels), [B, 1, H, W] (None with objectness=False) and [H*W, 2].
        """
        self._check_feats(fpn_feats)
        cls_logits, ltrbs, obj_logits, points = [], [], [], []
        for feat, stride, scale in zip(fpn_feats, self.fpn_stride, self.scales):
            cls_feat = self.cls_tower(feat)
            reg_feat = self.reg_tower(feat)
            cls_logits.append(self.cls_conv(cls_feat))
            # FCOS norm_reg_targets: relu(scale * x) in strides, turned into pixels.
            ltrbs.append(F.relu(scale(self.reg_conv(reg_feat))) * stride)
            obj_logits.append(self.obj_conv(reg_feat) if self.objectness else None)
            height, width = feat.shape[2], feat.shape[3]
            if height is None or height < 0 or width is None or width < 0:  # unknown at export time
                height, width = paddle.shape(feat)[2], paddle.shape(feat)[3]
            points.append(fb.level_points(height, width, stride, self.point_offset))
        outs = (cls_logits, ltrbs, obj_logits, points)
        if self.training and targets is not None:
            losses = self.get_loss(outs, targets)
            losses["loss"] = paddle.add_n(list(losses.values()))
            return losses
        return outs

    # ----------------------------------------------------------------------------------------------------
    def get_loss(self, outs, targets):
        """AutoAssign losses of a batch, computed for all images at once on the padded [B, n, L] GT slots.

        Args:
            outs: forward's (cls_logits, ltrb, obj_logits, points).
            targets (dict): gt_bbox [B, n, 4], gt_class [B, n, 1], pad_gt_mask [B, n, 1] (when absent, slots
                with an all-zero box are padding).
        Returns:
            dict: loss_pos, loss_neg, loss_center (scalars).
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
        return {"loss_pos": loss_pos, "loss_neg": loss_neg, "loss_center": loss_center}

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
            cls_logits (Tensor[..., C]), obj_logits (Tensor[..., 1] | None): None only with objectness=False.
        Returns:
            Tensor[..., C].
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
        scores = [self.class_probability(c.flatten(2).transpose([0, 2, 1]),
                                         o.flatten(2).transpose([0, 2, 1]) if self.objectness else None)
                  for c, o in zip(cls_logits, obj_logits)]
        ltrb = [d.flatten(2).transpose([0, 2, 1]) for d in ltrbs]
        return fb.post_process(scores, ltrb, points, scale_factor, self.nms, self.nms_pre)
