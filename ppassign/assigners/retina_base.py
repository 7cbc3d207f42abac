"""What the RetinaNet-style assigners share: their two calls, their output, input checks and small box functions.

PaddleDetection's ``RetinaHead`` calls its ``bbox_assigner`` once per image::

    matches, match_labels = assigner(anchors, gt_bbox)      # [L, 4], [n, 4] -> int64 [L], int32 [L]

with ``match_labels`` 1 / 0 / -1 = positive / negative / ignored and ``matches`` the object index of every
anchor (0 where there is none). Every assigner here keeps that call, so each is a drop-in for ppdet's
``MaxIoUAssigner``. Two richer calls return :class:`RetinaAssignment` (the same two tensors plus a
classification target, a classification weight and a regression weight per anchor) and take the optional
inputs some rules need (the objects' classes, the head's decoded boxes and sigmoid scores, anchors per level):

- ``assign(anchors, gt_bbox, ...)``: one image, fields ``[L]``;
- ``assign_batch(anchors, gt_bbox, pad_gt_mask, ...)``: the whole batch with padded ground truth (as
  PaddleDetection's ``PadGT`` gives it), fields ``[B, L]``, one set of tensor operations whatever B, one host
  copy for the input checks. ``PPAssignRetinaHead`` uses it. ``assign`` is the batch of one.

Every rule is written once, batched (``_assign_batch``); padded objects are masked out, so an image's result
does not depend on the other images of its batch (tested) -- except where a method normalises over the batch
(HAMBox's loss weights, see its docstring).

Shapes: B images, n objects per image (padded), L anchors, C classes.
"""
from collections import namedtuple

import numpy as np
import paddle

from ..ops import validation
from ..ops.precision import float32_inputs

RetinaAssignment = namedtuple("RetinaAssignment", ["matches", "labels", "cls_targets", "cls_weights",
                                                   "reg_weights"])
RetinaAssignment.__doc__ = """An assignment, of one image (fields [L]) or of a batch (fields [B, L]).

Fields:
    matches (int64): object of every anchor (0 where the anchor has none).
    labels (int32): 1 positive, 0 negative, -1 ignored.
    cls_targets (float32): classification target of the matched class (1 for a hard positive, the soft target
        in [0, 1] otherwise); 0 for negatives and ignored anchors.
    cls_weights (float32): weight of the anchor's classification loss (0 for ignored anchors).
    reg_weights (float32): weight of the anchor's regression loss (0 unless positive).
The head divides both weighted sums by max(1, number of positives in the batch).
"""

# Value given to the IoU of padded objects: below every real IoU (>= 0), so they never win or qualify.
PADDED_IOU = -1.0


def hard_assignment(matches, labels):
    """RetinaAssignment of a plain 1 / 0 / -1 labelling: target 1 and weight 1 on positives, weight 1 on negatives.

    Args:
        matches (Tensor[..., L] int64), labels (Tensor[..., L] int32).
    """
    positive = (labels == 1).astype("float32")
    return RetinaAssignment(matches, labels, positive, (labels >= 0).astype("float32"), positive)


def empty_assignment(*shape):
    """No object: every anchor negative, matched to 0 (what ppdet's label_box returns). shape: (L,) or (B, L)."""
    return hard_assignment(paddle.zeros(list(shape), "int64"), paddle.zeros(list(shape), "int32"))


def pairwise_iou(gt_bbox, anchors, valid=None):
    """IoU of every object with every anchor, with ppdet's ``bbox_overlaps`` arithmetic (0 where no overlap,
    no epsilon), so that thresholds at exactly 0.4 / 0.5 land on the same side as in PaddleDetection.

    Args:
        gt_bbox (Tensor[..., n, 4]), anchors (Tensor[L, 4]): xyxy.
        valid (Tensor[..., n] bool | None): real objects; the rows of the others are PADDED_IOU.
    Returns:
        Tensor[..., n, L].
    """
    area_gt = (gt_bbox[..., 2] - gt_bbox[..., 0]) * (gt_bbox[..., 3] - gt_bbox[..., 1])
    area_anchor = (anchors[:, 2] - anchors[:, 0]) * (anchors[:, 3] - anchors[:, 1])
    w = (paddle.minimum(gt_bbox[..., None, 2], anchors[:, 2]) - paddle.maximum(gt_bbox[..., None, 0], anchors[:, 0])
         ).clip(min=0)
    h = (paddle.minimum(gt_bbox[..., None, 3], anchors[:, 3]) - paddle.maximum(gt_bbox[..., None, 1], anchors[:, 1])
         ).clip(min=0)
    inter = w * h
    union = area_gt[..., None] + area_anchor - inter
    iou = paddle.where(inter > 0, inter / paddle.where(inter > 0, union, paddle.ones_like(union)),
                       paddle.zeros_like(inter))
    return iou if valid is None else mask_rows(iou, valid, PADDED_IOU)


def mask_rows(values, valid, fill):
    """values with the rows of padded objects set to `fill`.

    Args:
        values (Tensor[B, n, L]), valid (Tensor[B, n] bool), fill (float).
    """
    return paddle.where(valid[..., None], values, paddle.full_like(values, fill))


def top_indices(scores, k):
    """The k highest entries along the last axis, ties to the lower index (a stable order, not Paddle's topk's).

    Args:
        scores (Tensor[..., L]), k (int <= L).
    Returns:
        Tensor[..., k] int64 indices.
    """
    return paddle.argsort(scores, axis=-1, descending=True, stable=True)[..., :k]


def rows_to_mask(indices, keep, num_columns):
    """Dense mask with True at (..., i, indices[..., i, j]) wherever keep[..., i, j].

    Args:
        indices (Tensor[..., n, k] int64), keep (Tensor[..., n, k] bool), num_columns (int): L.
    Returns:
        Tensor[..., n, L] bool.
    """
    return rows_to_counts(indices, keep, num_columns) > 0


def rows_to_counts(indices, keep, num_columns):
    """Like rows_to_mask, as float 0 / 1 (each (row, column) is set at most once: top_indices are distinct)."""
    mask = paddle.zeros(list(indices.shape[:-1]) + [num_columns], "float32")
    return paddle.put_along_axis(mask, indices, keep.astype("float32"), axis=-1)


def resolve_to_best(candidates, quality):
    """Each anchor chosen by several objects goes to the object of highest quality (ties: the lower index).

    Args:
        candidates (Tensor[..., n, L] bool), quality (Tensor[..., n, L]): e.g. IoU; n >= 1.
    Returns:
        (Tensor[..., L] int64 object per anchor (0 where none), Tensor[..., L] bool anchor chosen by any object).
    """
    masked = paddle.where(candidates, quality, paddle.full_like(quality, -np.inf))
    return masked.argmax(axis=-2), candidates.any(axis=-2)


def matched_rows(values, matches):
    """values[b, matches[b, j]]: the row of every anchor's object.

    Args:
        values (Tensor[B, n] or Tensor[B, n, D]) with n >= 1, matches (Tensor[B, L] int64).
    Returns:
        Tensor[B, L] or Tensor[B, L, D].
    """
    if values.ndim == 2:
        return paddle.take_along_axis(values, matches, axis=1)
    return paddle.take_along_axis(values, matches.unsqueeze(-1), axis=1, broadcast=True)


def _check_options(need, gt_class, pred_bboxes, pred_scores, num_anchors_list):
    for name in need:
        if {"gt_class": gt_class, "pred_bboxes": pred_bboxes, "pred_scores": pred_scores,
                "num_anchors_list": num_anchors_list}[name] is None:
            raise ValueError(f"this assigner needs {name} (PPAssignRetinaHead passes it; ppdet's RetinaHead "
                             f"does not)")


def _check_class_dtype(gt_class):
    if not isinstance(gt_class, paddle.Tensor):
        raise ValueError(f"gt_class must be a paddle.Tensor, got {type(gt_class).__name__}")
    if gt_class.dtype not in (paddle.int32, paddle.int64):
        raise ValueError(f"gt_class must be int32 or int64, got {gt_class.dtype}")


def _check_host_boxes(boxes, classes=None, num_classes=None):
    """ValueError for non-finite or inverted boxes [m, 4] (host) and classes outside [0, num_classes)."""
    if not np.isfinite(boxes).all():
        raise validation.NonFiniteError("gt_bbox")
    if ((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])).any():
        raise ValueError("gt_bbox must be xyxy with x2 >= x1 and y2 >= y1")
    if classes is not None and num_classes is not None and classes.size and \
            (classes.max() >= num_classes or classes.min() < 0):
        raise ValueError(f"gt_class must lie in [0, C={num_classes}), got {int(classes.max())}")


def check_inputs(anchors, gt_bbox, gt_class=None, pred_bboxes=None, pred_scores=None, num_anchors_list=None,
                 need=()):
    """Validate one image's inputs (one host copy); `need` names the optional ones the rule requires.

    Returns:
        (gt_bbox as [n, 4], gt_class as [n] int64 or None, num_anchors_list as list[int] or None).
    """
    validation.require_tensor("anchors", anchors, 2, last=4)
    if not isinstance(gt_bbox, paddle.Tensor):
        raise ValueError(f"gt_bbox must be a paddle.Tensor, got {type(gt_bbox).__name__}")
    if gt_bbox.ndim == 1 and gt_bbox.shape[0] == 0:
        gt_bbox = gt_bbox.reshape([0, 4])
    validation.require_tensor("gt_bbox", gt_bbox, 2, last=4)
    _check_options(need, gt_class, pred_bboxes, pred_scores, num_anchors_list)
    num, num_anchors = gt_bbox.shape[0], anchors.shape[0]
    if gt_class is not None:
        _check_class_dtype(gt_class)
        if gt_class.size != num:
            raise ValueError(f"gt_class must hold one class per object ({num}), got shape {list(gt_class.shape)}")
        gt_class = gt_class.reshape([num]).astype("int64")
    if pred_bboxes is not None:
        validation.require_tensor("pred_bboxes", pred_bboxes, 2, last=4)
        validation.require_shape("pred_bboxes", pred_bboxes, [num_anchors, 4], "anchors is [L, 4]")
    num_classes = None
    if pred_scores is not None:
        validation.require_tensor("pred_scores", pred_scores, 2)
        if pred_scores.shape[0] != num_anchors:
            raise ValueError(f"pred_scores must be [L={num_anchors}, C], got {list(pred_scores.shape)}")
        num_classes = pred_scores.shape[1]
    if num_anchors_list is not None:
        num_anchors_list = validation.check_num_anchors_list(num_anchors_list, num_anchors)
    if num:
        host = (gt_bbox if gt_class is None else
                paddle.concat([gt_bbox, gt_class.astype(gt_bbox.dtype)[:, None]], axis=1)).numpy()   # host copy
        _check_host_boxes(host[:, :4], host[:, 4] if gt_class is not None else None, num_classes)
    return gt_bbox, gt_class, num_anchors_list


def check_batch_inputs(anchors, gt_bbox, pad_gt_mask, gt_class=None, pred_bboxes=None, pred_scores=None,
                       num_anchors_list=None, need=()):
    """Validate a batch's inputs with one host copy (the real objects' boxes and classes).

    Args:
        anchors (Tensor[L, 4]); gt_bbox (Tensor[B, n, 4]); pad_gt_mask (Tensor[B, n] | Tensor[B, n, 1] | None:
        1 for real objects; None: all real); gt_class (Tensor[B, n] | Tensor[B, n, 1] int | None);
        pred_bboxes (Tensor[B, L, 4] | None); pred_scores (Tensor[B, L, C] | None); num_anchors_list.
    Returns:
        (gt_bbox, valid Tensor[B, n] bool, gt_class Tensor[B, n] int64 or None, num_anchors_list or None).
    """
    validation.require_tensor("anchors", anchors, 2, last=4)
    validation.require_tensor("gt_bbox", gt_bbox, 3, last=4)
    _check_options(need, gt_class, pred_bboxes, pred_scores, num_anchors_list)
    batch, num = gt_bbox.shape[:2]
    num_anchors = anchors.shape[0]
    if pad_gt_mask is None:
        valid = paddle.ones([batch, num], "bool")
    else:
        if not isinstance(pad_gt_mask, paddle.Tensor) or pad_gt_mask.size != batch * num:
            raise ValueError(f"pad_gt_mask must be a Tensor [B, n] or [B, n, 1] matching gt_bbox [B={batch}, "
                             f"n={num}, 4], got {getattr(pad_gt_mask, 'shape', type(pad_gt_mask).__name__)}")
        valid = pad_gt_mask.reshape([batch, num]) > 0 if pad_gt_mask.dtype != paddle.bool else \
            pad_gt_mask.reshape([batch, num])
    if gt_class is not None:
        _check_class_dtype(gt_class)
        if gt_class.size != batch * num:
            raise ValueError(f"gt_class must hold one class per object slot ([B={batch}, n={num}]), got shape "
                             f"{list(gt_class.shape)}")
        gt_class = gt_class.reshape([batch, num]).astype("int64")
    if pred_bboxes is not None:
        validation.require_tensor("pred_bboxes", pred_bboxes, 3, last=4)
        validation.require_shape("pred_bboxes", pred_bboxes, [batch, num_anchors, 4], "[B, L, 4]")
    num_classes = None
    if pred_scores is not None:
        validation.require_tensor("pred_scores", pred_scores, 3)
        if list(pred_scores.shape[:2]) != [batch, num_anchors]:
            raise ValueError(f"pred_scores must be [B={batch}, L={num_anchors}, C], got {list(pred_scores.shape)}")
        num_classes = pred_scores.shape[2]
    if num_anchors_list is not None:
        num_anchors_list = validation.check_num_anchors_list(num_anchors_list, num_anchors)
    if num:
        parts = [gt_bbox, valid.astype(gt_bbox.dtype)[..., None]]
        if gt_class is not None:
            parts.append(gt_class.astype(gt_bbox.dtype)[..., None])
        host = paddle.concat(parts, axis=-1).numpy().reshape(batch * num, -1)               # the host copy
        real = host[host[:, 4] > 0]
        _check_host_boxes(real[:, :4], real[:, 5] if gt_class is not None else None, num_classes)
    return gt_bbox, valid, gt_class, num_anchors_list


def check_fraction(name, value, low=0.0, high=1.0):
    """Return float(value), raising unless low <= value <= high."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must lie in [{low}, {high}], got {value}")
    return value


def check_count(name, value):
    """Return int(value), raising unless a positive int."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


class RetinaAssigner:
    """Base of the RetinaNet assigners: ``__call__`` is ppdet's per-image call, ``assign`` the full output of one
    image, ``assign_batch`` of a padded batch.

    Subclasses set ``needs`` (the optional inputs their rule requires) and implement ``_assign_batch``. Class
    attributes the head reads: ``preserve_loss_scale`` (rescale each weighted loss, detached, to the value of
    the un-weighted one) and ``soft_focal_loss`` (classification loss of soft targets: the noisy-anchor
    authors' soft focal loss instead of the focal loss of a soft label). No state is kept between calls.
    Float16 / bfloat16 inputs (mixed-precision training) are computed in float32; the outputs are float32.
    """
    needs = ()
    preserve_loss_scale = False
    soft_focal_loss = False

    @property
    def needs_predictions(self):
        """Whether the rule reads the head's predictions (PPAssignRetinaHead then decodes them)."""
        return "pred_bboxes" in self.needs or "pred_scores" in self.needs

    def __call__(self, anchors, gt_bbox, **kwargs):
        out = self.assign(anchors, gt_bbox, **kwargs)
        return out.matches, out.labels

    @paddle.no_grad()
    def assign(self, anchors, gt_bbox, gt_class=None, pred_bboxes=None, pred_scores=None, num_anchors_list=None):
        """Assign one image's anchors.

        Args:
            anchors (Tensor[L, 4]): xyxy anchors of all levels.
            gt_bbox (Tensor[n, 4]): the image's objects (n may be 0).
            gt_class (Tensor[n] | Tensor[n, 1] int | None): their classes.
            pred_bboxes (Tensor[L, 4] | None): the head's decoded boxes (detached).
            pred_scores (Tensor[L, C] | None): the head's sigmoid scores (detached).
            num_anchors_list (list[int] | None): anchors per level, summing to L.
        Returns:
            RetinaAssignment, fields [L].
        """
        anchors, gt_bbox, pred_bboxes, pred_scores = float32_inputs(anchors, gt_bbox, pred_bboxes, pred_scores)
        gt_bbox, gt_class, num_anchors_list = check_inputs(anchors, gt_bbox, gt_class, pred_bboxes, pred_scores,
                                                           num_anchors_list, self.needs)
        num = gt_bbox.shape[0]
        if num == 0:
            return empty_assignment(anchors.shape[0])
        one = lambda x: None if x is None else x[None]
        out = self._assign_batch(anchors, gt_bbox[None], paddle.ones([1, num], "bool"), one(gt_class),
                                 one(pred_bboxes), one(pred_scores), num_anchors_list)
        return RetinaAssignment(*(field[0] for field in out))

    @paddle.no_grad()
    def assign_batch(self, anchors, gt_bbox, pad_gt_mask=None, gt_class=None, pred_bboxes=None, pred_scores=None,
                     num_anchors_list=None):
        """Assign the anchors of every image of a batch at once.

        Args:
            anchors (Tensor[L, 4]): xyxy anchors of all levels (the same for every image).
            gt_bbox (Tensor[B, n, 4]): padded objects (n may be 0).
            pad_gt_mask (Tensor[B, n] | Tensor[B, n, 1] | None): 1 for real objects, 0 for padding.
            gt_class (Tensor[B, n] | Tensor[B, n, 1] int | None).
            pred_bboxes (Tensor[B, L, 4] | None), pred_scores (Tensor[B, L, C] | None): detached predictions.
            num_anchors_list (list[int] | None).
        Returns:
            RetinaAssignment, fields [B, L].
        """
        anchors, gt_bbox, pred_bboxes, pred_scores = float32_inputs(anchors, gt_bbox, pred_bboxes, pred_scores)
        gt_bbox, valid, gt_class, num_anchors_list = check_batch_inputs(
            anchors, gt_bbox, pad_gt_mask, gt_class, pred_bboxes, pred_scores, num_anchors_list, self.needs)
        batch, num_anchors = gt_bbox.shape[0], anchors.shape[0]
        if gt_bbox.shape[1] == 0:
            return empty_assignment(batch, num_anchors)
        out = self._assign_batch(anchors, gt_bbox, valid, gt_class, pred_bboxes, pred_scores, num_anchors_list)
        has_objects = valid.any(axis=1, keepdim=True)
        return out._replace(matches=paddle.where(has_objects, out.matches, paddle.zeros_like(out.matches)))

    def _assign_batch(self, anchors, gt_bbox, valid, gt_class, pred_bboxes, pred_scores, num_anchors_list):
        """The rule on a checked batch with n >= 1 object slots. Returns RetinaAssignment, fields [B, L].

        An image without real objects must come out all negative (its matches are set to 0 afterwards)."""
        raise NotImplementedError
