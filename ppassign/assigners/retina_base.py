"""What the RetinaNet-style assigners share: their call, their output, input checks and small box functions.

PaddleDetection's ``RetinaHead`` calls its ``bbox_assigner`` once per image::

    matches, match_labels = assigner(anchors, gt_bbox)      # [L, 4], [n, 4] -> int64 [L], int32 [L]

with ``match_labels`` 1 / 0 / -1 = positive / negative / ignored and ``matches`` the object index of every
anchor (0 where there is none). Every assigner here keeps that call, so each is a drop-in for ppdet's
``MaxIoUAssigner``. ``assign`` returns the richer :class:`RetinaAssignment` that ``PPAssignRetinaHead`` uses:
the same two tensors plus a classification target, a classification weight and a regression weight per
anchor (soft targets and weights of the prediction-aware methods). ``assign`` also takes the optional inputs
some rules need: the objects' classes, the head's decoded boxes and sigmoid scores, and anchors per level.

Shapes: L anchors, n objects of one image, C classes.
"""
from collections import namedtuple

import numpy as np
import paddle

from ..ops import validation

RetinaAssignment = namedtuple("RetinaAssignment", ["matches", "labels", "cls_targets", "cls_weights",
                                                   "reg_weights"])
RetinaAssignment.__doc__ = """One image's assignment.

Fields:
    matches (Tensor[L] int64): object of every anchor (0 where the anchor has none).
    labels (Tensor[L] int32): 1 positive, 0 negative, -1 ignored.
    cls_targets (Tensor[L] float32): classification target of the matched class (1 for a hard positive, the
        soft target in [0, 1] otherwise); 0 for negatives and ignored anchors.
    cls_weights (Tensor[L] float32): weight of the anchor's classification loss (0 for ignored anchors).
    reg_weights (Tensor[L] float32): weight of the anchor's regression loss (0 unless positive).
"""


def hard_assignment(matches, labels):
    """RetinaAssignment of a plain 1 / 0 / -1 labelling: target 1 and weight 1 on positives, weight 1 on negatives.

    Args:
        matches (Tensor[L] int64), labels (Tensor[L] int32).
    """
    positive = (labels == 1).astype("float32")
    return RetinaAssignment(matches, labels, positive, (labels >= 0).astype("float32"), positive)


def empty_assignment(num_anchors):
    """No object in the image: every anchor negative, matched to 0 (what ppdet's label_box returns)."""
    return hard_assignment(paddle.zeros([num_anchors], "int64"), paddle.zeros([num_anchors], "int32"))


def pairwise_iou(gt_bbox, anchors):
    """IoU of every object with every anchor, with ppdet's ``bbox_overlaps`` arithmetic (0 where no overlap,
    no epsilon), so that thresholds at exactly 0.4 / 0.5 land on the same side as in PaddleDetection.

    Args:
        gt_bbox (Tensor[n, 4]), anchors (Tensor[L, 4]): xyxy.
    Returns:
        Tensor[n, L].
    """
    area_gt = (gt_bbox[:, 2] - gt_bbox[:, 0]) * (gt_bbox[:, 3] - gt_bbox[:, 1])
    area_anchor = (anchors[:, 2] - anchors[:, 0]) * (anchors[:, 3] - anchors[:, 1])
    w = (paddle.minimum(gt_bbox[:, None, 2], anchors[None, :, 2])
         - paddle.maximum(gt_bbox[:, None, 0], anchors[None, :, 0])).clip(min=0)
    h = (paddle.minimum(gt_bbox[:, None, 3], anchors[None, :, 3])
         - paddle.maximum(gt_bbox[:, None, 1], anchors[None, :, 1])).clip(min=0)
    inter = w * h
    union = area_gt[:, None] + area_anchor[None, :] - inter
    return paddle.where(inter > 0, inter / paddle.where(inter > 0, union, paddle.ones_like(union)),
                        paddle.zeros_like(inter))


def top_indices(scores, k):
    """The k highest entries of every row, ties to the lower column (a stable order, not Paddle's topk's).

    Args:
        scores (Tensor[n, L]), k (int <= L).
    Returns:
        Tensor[n, k] int64 column indices.
    """
    return paddle.argsort(scores, axis=1, descending=True, stable=True)[:, :k]


def rows_to_mask(indices, keep, num_columns):
    """Dense [n, L] bool mask with True at (i, indices[i, j]) wherever keep[i, j].

    Args:
        indices (Tensor[n, k] int64), keep (Tensor[n, k] bool), num_columns (int): L.
    """
    mask = paddle.zeros([indices.shape[0], num_columns], "float32")
    mask = paddle.put_along_axis(mask, indices, keep.astype("float32"), axis=1)
    return mask > 0


def resolve_to_best(candidates, quality):
    """Each anchor chosen by several objects goes to the object of highest quality (ties: the lower index).

    Args:
        candidates (Tensor[n, L] bool), quality (Tensor[n, L]): e.g. IoU; n >= 1.
    Returns:
        (Tensor[L] int64 object per anchor (0 where none), Tensor[L] bool anchor chosen by any object).
    """
    masked = paddle.where(candidates, quality, paddle.full_like(quality, -np.inf))
    return masked.argmax(axis=0), candidates.any(axis=0)


def matched_rows(values, matches):
    """values[matches]: the row of every anchor's object.

    Args:
        values (Tensor[n, ...]) with n >= 1, matches (Tensor[L] int64).
    Returns:
        Tensor[L, ...].
    """
    return paddle.gather(values, matches, axis=0)


def check_inputs(anchors, gt_bbox, gt_class=None, pred_bboxes=None, pred_scores=None, num_anchors_list=None,
                 need=()):
    """Validate one image's inputs; `need` names the optional ones the rule requires.

    Returns:
        (gt_bbox as [n, 4], gt_class as [n] int64 or None, num_anchors_list as list[int] or None).
    """
    validation.require_tensor("anchors", anchors, 2, last=4)
    if not isinstance(gt_bbox, paddle.Tensor):
        raise ValueError(f"gt_bbox must be a paddle.Tensor, got {type(gt_bbox).__name__}")
    if gt_bbox.ndim == 1 and gt_bbox.shape[0] == 0:
        gt_bbox = gt_bbox.reshape([0, 4])
    validation.require_tensor("gt_bbox", gt_bbox, 2, last=4)
    num = gt_bbox.shape[0]
    if num:
        boxes = gt_bbox.numpy()
        if not np.isfinite(boxes).all():
            raise ValueError("gt_bbox contains NaN or inf values")
        if ((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])).any():
            raise ValueError("gt_bbox must be xyxy with x2 >= x1 and y2 >= y1")
    for name in need:
        if {"gt_class": gt_class, "pred_bboxes": pred_bboxes, "pred_scores": pred_scores,
                "num_anchors_list": num_anchors_list}[name] is None:
            raise ValueError(f"this assigner needs {name} (PPAssignRetinaHead passes it; ppdet's RetinaHead "
                             f"does not)")
    num_anchors = anchors.shape[0]
    if gt_class is not None:
        if not isinstance(gt_class, paddle.Tensor):
            raise ValueError(f"gt_class must be a paddle.Tensor, got {type(gt_class).__name__}")
        if gt_class.dtype not in (paddle.int32, paddle.int64):
            raise ValueError(f"gt_class must be int32 or int64, got {gt_class.dtype}")
        if gt_class.size != num:
            raise ValueError(f"gt_class must hold one class per object ({num}), got shape {list(gt_class.shape)}")
        gt_class = gt_class.reshape([num]).astype("int64")
    if pred_bboxes is not None:
        validation.require_tensor("pred_bboxes", pred_bboxes, 2, last=4)
        validation.require_shape("pred_bboxes", pred_bboxes, [num_anchors, 4], "anchors is [L, 4]")
    if pred_scores is not None:
        validation.require_tensor("pred_scores", pred_scores, 2)
        if pred_scores.shape[0] != num_anchors:
            raise ValueError(f"pred_scores must be [L={num_anchors}, C], got {list(pred_scores.shape)}")
        if gt_class is not None and num and int(gt_class.max()) >= pred_scores.shape[1]:
            raise ValueError(f"gt_class must lie in [0, C={pred_scores.shape[1]}), got {int(gt_class.max())}")
    if num_anchors_list is not None:
        num_anchors_list = validation.check_num_anchors_list(num_anchors_list, num_anchors)
    return gt_bbox, gt_class, num_anchors_list


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
    """Base of the RetinaNet assigners: ``__call__`` is ppdet's per-image call, ``assign`` the full output.

    Subclasses set ``needs`` (the optional inputs their rule requires) and implement ``_assign``.
    """
    needs = ()

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
            RetinaAssignment.
        """
        gt_bbox, gt_class, num_anchors_list = check_inputs(anchors, gt_bbox, gt_class, pred_bboxes, pred_scores,
                                                           num_anchors_list, self.needs)
        if gt_bbox.shape[0] == 0:
            return empty_assignment(anchors.shape[0])
        return self._assign(anchors, gt_bbox, gt_class, pred_bboxes, pred_scores, num_anchors_list)

    def _assign(self, anchors, gt_bbox, gt_class, pred_bboxes, pred_scores, num_anchors_list):
        raise NotImplementedError
