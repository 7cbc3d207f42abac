"""What the FCOS-style dense heads (AutoAssign, DW) share: `FCOSStyleHead` (arguments and their checks, towers,
per-level scales, where ``in_channels`` and ``fpn_stride`` come from, locations, post-processing), and the
functions their losses are written with (points, box coding, GIoU loss, Gaussian centre prior, padded targets).

Conventions (used by every function below):
  * B batch, n max GTs per image, L locations over all levels, L_l locations of one level, C classes.
  * Boxes are ``xyxy`` in pixels of the network input; distances are ``ltrb`` (left, top, right, bottom) in
    pixels, measured from a location to the box sides.
  * A location of a level with stride s is the centre of its cell: row i, column j of an [H, W] feature map
    sits at ``((j + offset) * s, (i + offset) * s)`` with ``offset = 0.5`` by default (the same points as
    ppdet's FCOSHead with ``num_shift=0.5``). Locations are ordered level by level, row-major in a level, the
    order of ``feat.flatten(2)``.
"""
import logging
import math

import paddle
import paddle.distributed as dist
import paddle.nn as nn
import paddle.nn.functional as F
from paddle import ParamAttr
from paddle.nn.initializer import Constant, Normal

from ..ops import validation

logger = logging.getLogger("ppassign")

# FCOS (Tian et al. 2019), Sec. 3 / its code: 4 convs per tower, GN with 32 groups, N(0, 0.01) init.
TOWER_NUM_CONVS = 4
GN_GROUPS = 32
CONV_INIT_STD = 0.01
# FCOS / AutoAssign / DW on COCO: P3-P7.
FPN_STRIDES = (8, 16, 32, 64, 128)
# Centre of a cell (FCOS, ppdet FCOSHead num_shift=0.5).
POINT_OFFSET = 0.5
# Initial P(cls) 0.02 and regression bias 4.0 (boxes start 4 strides from the location on each side): the
# official AutoAssign code (Megvii-BaseDetection/AutoAssign), MMDetection's AutoAssignHead.init_weights and the
# official DW head (strongwolf/DW init_weights) all use these.
CLS_PRIOR_PROB = 0.02
REG_BIAS_INIT = 4.0
# mmdet GIoULoss default eps, added to the union and the enclosing area.
GIOU_EPS = 1e-6
# MMDetection's test_cfg for FCOS-style heads: boxes kept per level before NMS.
NMS_PRE = 1000

# The helpers below run unchanged inside `paddle.jit.to_static` (export): their control flow depends on Python
# values and shapes only, so they are marked `not_to_static` (dy2static's rewrite also loses module constants
# used as default arguments: "NameError: name 'POINT_OFFSET' is not defined").
_plain = paddle.jit.not_to_static


# --- constructor argument checks: a rule is (what a value must be, test) -------------------------------------
def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


POSITIVE_INT = ("an int > 0", lambda v: _is_int(v) and v > 0)
NON_NEGATIVE_INT = ("an int >= 0", lambda v: _is_int(v) and v >= 0)
INT = ("an int", _is_int)
POSITIVE = ("a number > 0", lambda v: _is_number(v) and v > 0)
NON_NEGATIVE = ("a number >= 0", lambda v: _is_number(v) and v >= 0)
NUMBER = ("a number", _is_number)
PROBABILITY = ("a number in (0, 1)", lambda v: _is_number(v) and 0 < v < 1)
BOOL = ("True or False", lambda v: isinstance(v, bool))
STRIDES = ("a non-empty list of numbers > 0",
           lambda v: isinstance(v, (list, tuple)) and len(v) > 0 and all(POSITIVE[1](s) for s in v))


def check(rule, **values):
    """ValueError naming the first argument (given as name=value) that breaks `rule`, e.g. ``check(BOOL, a=a)``."""
    what, test = rule
    for name, value in values.items():
        if not test(value):
            raise ValueError(f"{name} must be {what}, got {value!r}")


def check_choice(name, value, choices):
    """ValueError naming `name` unless `value` is one of `choices`."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")


def renamed_argument(owner, old, new, old_value, new_value, new_default):
    """The value of an argument renamed `old` -> `new`; the old name is accepted for one release.

    Args:
        owner (str): the head's YAML name. old_value: None when the old name is not given.
        new_value, new_default: the new name's value and its default.
    Returns:
        The value to use: `old_value` (with a logged warning naming the new key) when given, else `new_value`.
        (A logged warning, not ``warnings.warn``: importing ppdet switches Python warnings off.)
    Raises:
        ValueError when both names are given with different values.
    """
    if old_value is None:
        return new_value
    if new_value != new_default and new_value != old_value:
        raise ValueError(f"{owner}: {old} is the old name of {new}; give {new} only (got {old}={old_value!r}, "
                         f"{new}={new_value!r})")
    logger.warning("ppassign: %s.%s is renamed %s: write '%s: %s' (the old name is accepted until the next release)",
                   owner, old, new, new, old_value)
    return old_value



def prior_bias(prior_prob):
    """Bias that makes sigmoid(bias) == prior_prob (RetinaNet, Sec. 4.1)."""
    return -math.log((1 - prior_prob) / prior_prob)


def conv3x3(in_channels, out_channels, bias_value=0.0, bias=True):
    """3x3 conv, stride 1, 'same' padding, weights N(0, 0.01), bias constant."""
    return nn.Conv2D(in_channels, out_channels, 3, padding=1,
                     weight_attr=ParamAttr(initializer=Normal(0.0, CONV_INIT_STD)),
                     bias_attr=ParamAttr(initializer=Constant(bias_value)) if bias else False)


class ConvTower(nn.Sequential):
    """FCOS tower: `num_convs` x (3x3 conv -> GroupNorm -> ReLU), shared by all FPN levels.

    The sublayers are named ``conv{i}``, ``norm{i}``, ``relu{i}`` (i = 0 .. num_convs - 1), so a head's tower
    parameters are e.g. ``cls_tower.conv0.weight`` and ``cls_tower.norm0.weight`` / ``.bias``: ppdet's
    ``OptimizerBuilder.optimizer.param_groups`` selects parameters by substrings of these names (ppdet 2.6;
    ``re.search`` in develop), e.g. ``{params: ['norm'], weight_decay: 0.0}`` keeps the GroupNorm parameters out
    of weight decay (docs/autoassign.md). Integer indexing (``tower[0]`` is conv0) still works.

    Args:
        in_channels (int), feat_channels (int): channels in / of every conv.
        num_convs (int): depth.
        norm_groups (int): GroupNorm groups; must divide feat_channels.
        conv_bias (bool): a bias (initialised to 0) in every 3x3 conv, ahead of GroupNorm.
    Input [B, in_channels, H, W] -> output [B, feat_channels, H, W].
    """

    def __init__(self, in_channels, feat_channels, num_convs, norm_groups, conv_bias):
        check(BOOL, conv_bias=conv_bias)
        if feat_channels % norm_groups:
            raise ValueError(f"feat_channels ({feat_channels}) must be divisible by norm_groups ({norm_groups})")
        layers = []
        for i in range(num_convs):
            layers += [(f"conv{i}", conv3x3(in_channels if i == 0 else feat_channels, feat_channels,
                                            bias=conv_bias)),
                       (f"norm{i}", nn.GroupNorm(norm_groups, feat_channels)), (f"relu{i}", nn.ReLU())]
        super().__init__(*layers)


class Scale(nn.Layer):
    """A learnable scalar multiplying its input (FCOS: one per FPN level on the regression output)."""

    def __init__(self, init_value=1.0):
        super().__init__()
        self.scale = self.create_parameter([1], attr=ParamAttr(initializer=Constant(init_value)))

    def forward(self, x):
        return x * self.scale


class FCOSStyleHead(nn.Layer):
    """An FCOS-style head: two towers (``cls_tower``, ``reg_tower``), a `Scale` per level (``scales``), ltrb
    regression in pixels, locations at cell centres; what AutoAssignHead and DWHead share.

    A subclass creates its prediction convs in `_init_predictors` (their attribute names are its state-dict keys)
    and implements `outputs` (raw per-level outputs), `get_loss` and `post_process`. Parameters are created in the
    order towers, prediction convs, scales, then what the subclass adds, so that a seeded head starts from the
    same weights whatever the class layout.

    Built from YAML by ppdet's ``FCOS`` architecture, `from_config` takes ``in_channels`` and ``fpn_stride`` from
    the neck's outputs; a ``fpn_stride`` written in the YAML must equal them.

    Args (every subclass has them first, in this order, with its own defaults):
        num_classes (int): C.
        in_channels (int): FPN channels.
        feat_channels (int), num_convs (int), norm_groups (int): tower width, depth, GroupNorm groups.
        fpn_stride (list[int]): one stride per FPN level.
        conv_bias (bool): a bias in every tower conv.
        prior_prob (float): initial sigmoid of the classification conv. reg_bias_init (float): initial ltrb in
            strides.
        point_offset (float): location offset in cells (0.5 = cell centres).
        nms_pre (int): locations kept per level before NMS (<= 0 keeps all).
        nms (MultiClassNMS): ppdet's NMS (injected from YAML).
    """
    __shared__ = ["num_classes"]
    __inject__ = ["nms"]

    def __init__(self, num_classes, in_channels, feat_channels, num_convs, norm_groups, fpn_stride, conv_bias,
                 prior_prob, reg_bias_init, point_offset, nms_pre, nms):
        super().__init__()
        check(POSITIVE_INT, num_classes=num_classes, in_channels=in_channels, feat_channels=feat_channels,
              num_convs=num_convs, norm_groups=norm_groups)
        check(STRIDES, fpn_stride=fpn_stride)
        check(BOOL, conv_bias=conv_bias)
        check(PROBABILITY, prior_prob=prior_prob)
        check(NUMBER, reg_bias_init=reg_bias_init, point_offset=point_offset)
        check(INT, nms_pre=nms_pre)
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.fpn_stride = [int(s) for s in fpn_stride]
        self.point_offset = point_offset
        self.nms_pre = nms_pre
        self.nms = nms
        self.cls_tower = ConvTower(in_channels, feat_channels, num_convs, norm_groups, conv_bias)
        self.reg_tower = ConvTower(in_channels, feat_channels, num_convs, norm_groups, conv_bias)
        self._init_predictors(feat_channels, prior_prob, reg_bias_init)
        self.scales = nn.LayerList([Scale() for _ in self.fpn_stride])

    def _init_predictors(self, feat_channels, prior_prob, reg_bias_init):
        """Create the head's prediction convs (on the towers' `feat_channels`-channel outputs)."""
        raise NotImplementedError

    @classmethod
    def from_config(cls, cfg, input_shape):
        """``in_channels`` and ``fpn_stride`` from the neck's outputs (ppdet ShapeSpecs, one per level).

        Raises:
            ValueError when the YAML sets a ``fpn_stride`` other than the neck's strides.
        """
        kwargs = {"in_channels": input_shape[0].channels}
        if any(getattr(s, "stride", None) is None for s in input_shape):
            return kwargs
        strides = [int(round(s.stride)) for s in input_shape]
        if "fpn_stride" in cfg and [int(s) for s in cfg["fpn_stride"]] != strides:
            raise ValueError(f"{cls.__name__}.fpn_stride {list(cfg['fpn_stride'])} does not match the neck's "
                             f"output strides {strides}: leave the key out (the head takes the neck's) or set "
                             f"it to {strides}")
        kwargs["fpn_stride"] = strides
        return kwargs

    def forward(self, fpn_feats, targets=None):
        """Training (`targets` given, layer in train mode): `get_loss`, the loss dict with their sum ``loss``.
        Otherwise `outputs`, the raw per-level outputs that `post_process` turns into boxes.

        Args:
            fpn_feats (list[Tensor[B, in_channels, H_l, W_l]]): one map per ``fpn_stride``.
            targets (dict | None): ppdet inputs with gt_bbox [B, n, 4], gt_class [B, n, 1], pad_gt_mask
                [B, n, 1] (PadGT; when absent, slots with an all-zero box are padding).
        """
        outs = self.outputs(fpn_feats)
        if self.training and targets is not None:
            return self.get_loss(outs, targets)
        return outs

    def check_feats(self, fpn_feats):
        """ValueError unless `fpn_feats` is one [B, in_channels, H, W] map per level (shapes only: also a
        static-graph value while exporting)."""
        if not isinstance(fpn_feats, (list, tuple)) or len(fpn_feats) != len(self.fpn_stride):
            got = len(fpn_feats) if isinstance(fpn_feats, (list, tuple)) else type(fpn_feats).__name__
            raise ValueError(f"fpn_feats must be a list of one map per fpn_stride {self.fpn_stride}, got {got}")
        for i, feat in enumerate(fpn_feats):
            if len(getattr(feat, "shape", [])) != 4 or feat.shape[1] != self.in_channels:
                raise ValueError(f"fpn_feats[{i}] must be [B, {self.in_channels}, H, W], got "
                                 f"{list(getattr(feat, 'shape', [])) or type(feat).__name__}")

    def tower_features(self, fpn_feats):
        """The checked features through both towers.

        Returns:
            list of (cls_feat, reg_feat) per level, each Tensor[B, feat_channels, H_l, W_l].
        """
        self.check_feats(fpn_feats)
        return [(self.cls_tower(feat), self.reg_tower(feat)) for feat in fpn_feats]

    def distances(self, reg, level):
        """ltrb in pixels from the regression conv's output of one level: relu(scale * x) * stride (FCOS
        norm_reg_targets: the conv predicts distances in strides)."""
        return F.relu(self.scales[level](reg)) * self.fpn_stride[level]

    def points_of(self, feat, level):
        """Locations (Tensor[H*W, 2]) of level `level` for a [B, *, H, W] map of that level (its size read at run
        time when unknown, as while exporting with a dynamic image size)."""
        height, width = feat.shape[2], feat.shape[3]
        if height is None or height < 0 or width is None or width < 0:
            height, width = paddle.shape(feat)[2], paddle.shape(feat)[3]
        return level_points(height, width, self.fpn_stride[level], self.point_offset)

    def detect(self, score_maps, ltrb_maps, points, scale_factor):
        """Boxes in original-image pixels: per-level top-k, decode, rescale, multi-class NMS (`post_process`).

        Args:
            score_maps (list[Tensor[B, C, H_l, W_l]]): class probabilities.
            ltrb_maps (list[Tensor[B, 4, H_l, W_l]]): distances in input pixels.
            points (list[Tensor[H_l*W_l, 2]]), scale_factor (Tensor[B, 2]): (scale_y, scale_x).
        Returns:
            bbox_pred (Tensor[N, 6]) (class, score, x1, y1, x2, y2), bbox_num (Tensor[B]).
        """
        return post_process(level_rows(score_maps), level_rows(ltrb_maps), points, scale_factor, self.nms,
                            self.nms_pre)



@_plain
def level_points(height, width, stride, offset=POINT_OFFSET):
    """Locations of one level.

    Args:
        height (int|Tensor), width (int|Tensor): feature map size.
        stride (int): the level's stride in pixels.
        offset (float): 0.5 = cell centres.
    Returns:
        Tensor[H*W, 2] float32: (x, y) = ((j + offset) * stride, (i + offset) * stride), row-major.
    """
    xs = (paddle.arange(width, dtype="float32") + offset) * stride
    ys = (paddle.arange(height, dtype="float32") + offset) * stride
    grid_y, grid_x = paddle.meshgrid(ys, xs)
    return paddle.stack([grid_x.flatten(), grid_y.flatten()], axis=-1)


@_plain
def multi_level_points(feats, strides, offset=POINT_OFFSET):
    """Locations of all levels.

    Args:
        feats (list[Tensor[B, *, H_l, W_l]]): one feature map per level.
        strides (list[int]): one stride per level.
    Returns:
        points (Tensor[L, 2]), point_strides (Tensor[L]) float32, num_points (list[int]) per level.
    """
    if len(feats) != len(strides):
        raise ValueError(f"feats has {len(feats)} levels but strides has {len(strides)}")
    points, point_strides, counts = [], [], []
    for feat, stride in zip(feats, strides):
        pts = level_points(feat.shape[2], feat.shape[3], stride, offset)
        points.append(pts)
        point_strides.append(paddle.full([pts.shape[0]], float(stride), "float32"))
        counts.append(pts.shape[0])
    return paddle.concat(points), paddle.concat(point_strides), counts


@_plain
def distance_to_box(points, ltrb):
    """Decode distances to boxes.

    Args:
        points (Tensor[..., 2]): (x, y); broadcastable with ltrb, e.g. [L, 2] with [B, L, 4].
        ltrb (Tensor[..., 4]): distances to the left, top, right, bottom sides.
    Returns:
        Tensor[..., 4]: xyxy.
    """
    x, y = points[..., 0], points[..., 1]
    return paddle.stack([x - ltrb[..., 0], y - ltrb[..., 1], x + ltrb[..., 2], y + ltrb[..., 3]], axis=-1)


def box_to_distance(points, boxes):
    """Encode boxes as distances from points (negative where a point lies outside the box).

    Args:
        points (Tensor[..., 2]), boxes (Tensor[..., 4]) xyxy, broadcastable, e.g. [1, L, 2] and [n, 1, 4].
    Returns:
        Tensor[..., 4]: ltrb.
    """
    x, y = points[..., 0], points[..., 1]
    return paddle.stack([x - boxes[..., 0], y - boxes[..., 1], boxes[..., 2] - x, boxes[..., 3] - y], axis=-1)


def giou_loss(pred, target, eps=GIOU_EPS):
    """Elementwise GIoU loss 1 - GIoU (Rezatofighi et al. 2019) of paired boxes, no reduction.

    Args:
        pred (Tensor[..., 4]), target (Tensor[..., 4]): xyxy, broadcastable.
        eps (float): added to the union and the enclosing area.
    Returns:
        Tensor[...]: in [0, 2].
    """
    area_p = (pred[..., 2] - pred[..., 0]).clip(0) * (pred[..., 3] - pred[..., 1]).clip(0)
    area_t = (target[..., 2] - target[..., 0]).clip(0) * (target[..., 3] - target[..., 1]).clip(0)
    iw = (paddle.minimum(pred[..., 2], target[..., 2]) - paddle.maximum(pred[..., 0], target[..., 0])).clip(0)
    ih = (paddle.minimum(pred[..., 3], target[..., 3]) - paddle.maximum(pred[..., 1], target[..., 1])).clip(0)
    overlap = iw * ih
    union = area_p + area_t - overlap + eps
    ew = (paddle.maximum(pred[..., 2], target[..., 2]) - paddle.minimum(pred[..., 0], target[..., 0])).clip(0)
    eh = (paddle.maximum(pred[..., 3], target[..., 3]) - paddle.minimum(pred[..., 1], target[..., 1])).clip(0)
    enclose = ew * eh + eps
    giou = overlap / union - (enclose - union) / enclose
    return 1 - giou


def gaussian_center_prior(points, point_strides, gt_bboxes, mu, sigma):
    """Gaussian centre prior G(d | mu, sigma) = prod_{x,y} exp(-(d - mu)^2 / (2 sigma^2)) (AutoAssign eq. 2).

    d is the offset of a location from its box centre divided by the location's level stride, so the prior
    means the same on every FPN level.

    Args:
        points (Tensor[L, 2]): (x, y) locations.
        point_strides (Tensor[L]): stride of each location's level.
        gt_bboxes (Tensor[..., n, 4]): xyxy.
        mu (Tensor[..., n, 2]), sigma (Tensor[..., n, 2]): each box's (x, y) mean and std (in strides),
            e.g. a class-wise [C, 2] parameter gathered by label.
    Returns:
        Tensor[..., n, L]: in (0, 1], 1 where d == mu.
    """
    centers = (gt_bboxes[..., :2] + gt_bboxes[..., 2:]) / 2
    offsets = (points - centers.unsqueeze(-2)) / point_strides.unsqueeze(-1)  # [..., n, L, 2]
    z = (offsets - mu.unsqueeze(-2)) ** 2 / (2 * sigma.unsqueeze(-2) ** 2)
    return paddle.exp(-z.sum(-1))


@_plain
def _topk_per_level(scores, ltrb, points, nms_pre):
    """Keep the `nms_pre` locations of highest class score in one level.

    Args:
        scores (Tensor[B, L_l, C]), ltrb (Tensor[B, L_l, 4]), points (Tensor[L_l, 2]).
    Returns:
        scores (Tensor[B, k, C]), boxes (Tensor[B, k, 4]) xyxy, k = min(nms_pre, L_l).
    """
    boxes = distance_to_box(points.unsqueeze(0), ltrb)
    num = scores.shape[1]
    if nms_pre is None or nms_pre <= 0 or (num is not None and 0 <= num <= nms_pre):
        return scores, boxes
    if num is None or num < 0:  # unknown at export time: k = min(nms_pre, L_l) as a tensor
        num = paddle.shape(scores)[1].astype("int64").clip(max=nms_pre)
    else:
        num = nms_pre
    _, idx = paddle.topk(scores.max(-1), num, axis=1)  # [B, k]
    idx = idx.unsqueeze(-1)
    scores = paddle.take_along_axis(scores, idx.expand([-1, -1, scores.shape[-1]]), axis=1)
    boxes = paddle.take_along_axis(boxes, idx.expand([-1, -1, 4]), axis=1)
    return scores, boxes


@_plain
def post_process(scores_list, ltrb_list, points_list, scale_factor, nms, nms_pre=NMS_PRE):
    """Per-level top-k, decode, rescale to the original image, multi-class NMS.

    Args:
        scores_list (list[Tensor[B, L_l, C]]): per-level class scores (probabilities).
        ltrb_list (list[Tensor[B, L_l, 4]]): per-level distances in input pixels.
        points_list (list[Tensor[L_l, 2]]): per-level locations.
        scale_factor (Tensor[B, 2]): (scale_y, scale_x) from input to original image, as ppdet feeds it.
        nms (callable): ppdet's MultiClassNMS (boxes [B, M, 4], scores [B, C, M]) -> (bbox, num, index).
        nms_pre (int): locations kept per level before NMS (<= 0 keeps all).
    Returns:
        bbox_pred (Tensor[N, 6]): (class, score, x1, y1, x2, y2) in original-image pixels.
        bbox_num (Tensor[B]): boxes per image.
    """
    scores, boxes = [], []
    for s, d, p in zip(scores_list, ltrb_list, points_list):
        s, b = _topk_per_level(s, d, p, nms_pre)
        scores.append(s)
        boxes.append(b)
    scores = paddle.concat(scores, axis=1)
    boxes = paddle.concat(boxes, axis=1)
    scale_y, scale_x = paddle.split(scale_factor, 2, axis=-1)
    boxes = boxes / paddle.concat([scale_x, scale_y, scale_x, scale_y], axis=-1).reshape([-1, 1, 4])
    bbox_pred, bbox_num, _ = nms(boxes, scores.transpose([0, 2, 1]))
    return bbox_pred, bbox_num


@_plain
def level_rows(maps):
    """[B, X, H_l, W_l] per level -> [B, H_l*W_l, X] per level (row-major)."""
    return [m.flatten(2).transpose([0, 2, 1]) for m in maps]


@_plain
def flatten_levels(maps):
    """[B, X, H_l, W_l] per level -> one Tensor[B, L, X] (level by level, row-major)."""
    return paddle.concat(level_rows(maps), axis=1)


def padded_targets(targets, batch, num_classes):
    """Checked padded ground truth of a head's ``targets`` (ppdet's PadGT output), for batched losses.

    Args:
        targets (dict): gt_bbox [B, n, 4], gt_class [B, n, 1] int32|int64, pad_gt_mask [B, n, 1] (when absent,
            slots with an all-zero box are padding).
        batch (int): B of the head's features.
        num_classes (int): C.
    Returns:
        gt_bbox (Tensor[B, n, 4]) float32, gt_labels (Tensor[B, n]) int64 (padding slots' labels clipped into
        [0, C), so that they can index class-wise tensors), valid (Tensor[B, n] bool): which slots are real.
    Raises:
        ValueError naming the key. The checks cost 3 device-to-host copies (mask, boxes, labels: see
        ppassign.ops.validation.check_gt), whatever B and n.
    """
    for key in ("gt_bbox", "gt_class"):
        if key not in targets:
            raise ValueError(f"targets must contain {key!r} (ppdet PadGT output), got keys {sorted(targets)}")
    gt_bbox, gt_class = targets["gt_bbox"], targets["gt_class"]
    pad_gt_mask = targets.get("pad_gt_mask")
    if pad_gt_mask is None and isinstance(gt_bbox, paddle.Tensor) and gt_bbox.ndim == 3:
        pad_gt_mask = (gt_bbox.abs().sum(-1, keepdim=True) > 0).astype("float32")
    try:
        validation.check_gt(gt_class, gt_bbox, pad_gt_mask, num_classes)
    except ValueError as error:  # name the ppdet keys too: gt_labels is targets['gt_class'], ...
        raise ValueError(f"{error} (targets['gt_class'] is gt_labels, targets['gt_bbox'] is gt_bboxes)") from None
    if gt_bbox.shape[0] != batch:
        raise ValueError(f"gt_bbox has batch size {gt_bbox.shape[0]}, the features {batch}")
    valid = pad_gt_mask.squeeze(-1).astype("bool")
    # real labels are checked to lie in [0, C); clipping only moves padding slots' labels into range
    labels = gt_class.squeeze(-1).astype("int64").clip(0, num_classes - 1)
    return gt_bbox.astype("float32"), labels, valid


def class_scores_of_gts(scores, gt_labels):
    """The score of each GT's class at every location.

    Args:
        scores (Tensor[B, L, C]), gt_labels (Tensor[B, n] int).
    Returns:
        Tensor[B, n, L].
    """
    index = gt_labels.astype("int64").unsqueeze(-1).expand([-1, -1, scores.shape[1]])
    return paddle.take_along_axis(scores.transpose([0, 2, 1]), index, axis=1)


def min_by_class(values, gt_labels, num_classes):
    """Per-location, per-class minimum of per-object values over the objects of each class; 1 elsewhere.

    One scatter (``put_along_axis``, reduce ``amin``) for the whole batch: a location covered by several
    objects of one class keeps the smallest value, a class without objects keeps 1.

    Args:
        values (Tensor[..., n, L]): one value per (object, location), e.g. [B, n, L] or [n, L].
        gt_labels (Tensor[..., n] int): each object's class.
        num_classes (int): C.
    Returns:
        Tensor[..., L, C].
    """
    *lead, num_gt, num_loc = values.shape
    base = paddle.ones(lead + [num_loc, num_classes], values.dtype)
    if num_gt == 0:
        return base
    perm = list(range(len(lead))) + [len(lead) + 1, len(lead)]
    index = gt_labels.astype("int64").unsqueeze(-2).expand(lead + [num_loc, num_gt])
    return paddle.put_along_axis(base, index, values.transpose(perm), axis=len(lead) + 1, reduce="amin")


def reduce_mean(x):
    """Mean of a loss normaliser over all ranks (all_reduce when the world size is above 1), without gradient.

    Args:
        x (Tensor[]): this rank's value.
    Returns:
        Tensor[]: the average over ranks (x itself, detached, on one process).
    """
    x = x.detach()
    world = dist.get_world_size()
    if world > 1:
        x = x.clone()
        dist.all_reduce(x)
        x = x / world
    return x
