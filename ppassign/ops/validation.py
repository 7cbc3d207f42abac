"""Input checks that turn bad assigner/head input into a ValueError naming the argument.

Each check costs one small host sync; they run before any assignment work so that wrong input never turns
into a silent wrong assignment or a crash deep inside Paddle.
"""
import numbers

import numpy as np
import paddle


class NonFiniteError(ValueError):
    """An input holds NaN or inf values; `name` is the argument's name (e.g. ``pred_bboxes``). A ValueError, so
    that callers that catch bad input keep working; a trainer catches it to tell a diverged model (a ``pred_*``
    argument) from bad data."""

    def __init__(self, name):
        super().__init__(f"{name} contains NaN or inf values")
        self.name = name


def _shape(x):
    return list(x.shape)


def require_tensor(name, x, ndim, last=None):
    """Raise unless x is a Tensor of rank `ndim` (and last axis `last` when given)."""
    if not isinstance(x, paddle.Tensor):
        raise ValueError(f"{name} must be a paddle.Tensor, got {type(x).__name__}")
    if x.ndim != ndim:
        raise ValueError(f"{name} must have rank {ndim}, got shape {_shape(x)}")
    if last is not None and x.shape[-1] != last:
        raise ValueError(f"{name} must have last dimension {last}, got shape {_shape(x)}")


def require_shape(name, x, expected, what):
    """Raise unless x.shape == expected; `what` says where expected came from."""
    if _shape(x) != list(expected):
        raise ValueError(f"{name} must have shape {list(expected)} ({what}), got {_shape(x)}")


def check_num_anchors_list(num_anchors_list, num_anchors):
    """Return num_anchors_list as a list of ints, raising unless positive ints summing to L."""
    if isinstance(num_anchors_list, paddle.Tensor):
        num_anchors_list = num_anchors_list.numpy().tolist()
    try:
        counts = [int(c) for c in num_anchors_list]
    except (TypeError, ValueError):
        raise ValueError(f"num_anchors_list must be a list of ints, got {num_anchors_list!r}") from None
    if not counts or min(counts) <= 0:
        raise ValueError(f"num_anchors_list must hold positive anchor counts per level, got {counts}")
    if sum(counts) != num_anchors:
        raise ValueError(f"num_anchors_list must sum to the number of anchors L={num_anchors}, "
                         f"got {counts} (sum {sum(counts)})")
    return counts


def check_bg_index(bg_index, num_classes):
    """Raise unless bg_index is an int in [0, num_classes]."""
    if isinstance(bg_index, paddle.Tensor):
        bg_index = int(bg_index.item())
    if not isinstance(bg_index, numbers.Integral) or not 0 <= int(bg_index) <= num_classes:
        raise ValueError(f"bg_index must be an int in [0, num_classes={num_classes}], got {bg_index!r}")
    return int(bg_index)


def check_gt_shapes(gt_labels, gt_bboxes, pad_gt_mask, gt_scores=None):
    """Check ranks, shapes and dtypes of the padded ground truth (no host copy).

    Args:
        gt_labels (Tensor[B, n, 1], int32|int64), gt_bboxes (Tensor[B, n, 4]), pad_gt_mask (Tensor[B, n, 1]),
        gt_scores (Tensor[B, n, 1] | None).
    """
    require_tensor("gt_bboxes", gt_bboxes, 3, last=4)
    require_tensor("gt_labels", gt_labels, 3, last=1)
    batch, num_max = gt_bboxes.shape[:2]
    require_shape("gt_labels", gt_labels, [batch, num_max, 1], "gt_bboxes is [B, n, 4]")
    if gt_labels.dtype not in (paddle.int32, paddle.int64):
        raise ValueError(f"gt_labels must be int32 or int64, got {gt_labels.dtype}")
    require_tensor("pad_gt_mask", pad_gt_mask, 3, last=1)
    require_shape("pad_gt_mask", pad_gt_mask, [batch, num_max, 1], "gt_bboxes is [B, n, 4]")
    if gt_scores is not None:
        require_tensor("gt_scores", gt_scores, 3, last=1)
        require_shape("gt_scores", gt_scores, [batch, num_max, 1], "gt_bboxes is [B, n, 4]")


def check_host_gt(boxes, labels, valid, num_classes):
    """Check the values of the real GT slots, already on the host.

    Args:
        boxes (np.ndarray[B, n, 4]), labels (np.ndarray[B, n]), valid (np.ndarray[B, n] bool), num_classes (int).
    """
    boxes, labels = boxes[valid], labels[valid]
    if boxes.size and not np.isfinite(boxes).all():
        raise NonFiniteError("gt_bboxes")
    if boxes.size and ((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])).any():
        raise ValueError("gt_bboxes must be xyxy with x2 >= x1 and y2 >= y1")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"gt_labels must lie in [0, num_classes={num_classes}), "
                         f"got values in [{labels.min()}, {labels.max()}]")


def fetch_gt(gt_labels, gt_bboxes, pad_gt_mask, num_classes, extra=(), finite=()):
    """Bring the padded ground truth (and `extra` tensors) to the host in one copy, and check its values.

    Args:
        gt_labels (Tensor[B, n, 1]), gt_bboxes (Tensor[B, n, 4]), pad_gt_mask (Tensor[B, n, 1]), num_classes (int),
        extra (list of Tensor): also brought, flattened, as float32;
        finite (list of (name, Tensor)): each is checked for NaN/inf on the device (one scalar each).
    Returns:
        valid (np.ndarray[B, n] bool), boxes (np.ndarray[B, n, 4] float32), labels (np.ndarray[B, n] int64),
        extra (list of np.ndarray).
    Raises ValueError naming the argument for NaN/inf values, x2 < x1, labels outside [0, num_classes).
    """
    batch, num_max = gt_bboxes.shape[:2]
    parts = [gt_bboxes.reshape([-1]), pad_gt_mask.reshape([-1]), gt_labels.reshape([-1])]
    parts += [t.reshape([-1]) for t in extra]
    # sum(x) * 0 is NaN when x holds a NaN or an inf (or when its finite values overflow the sum: told apart below,
    # on the way to an error only): one reduction per tensor, no temporary of x's size
    parts += [(t.sum() * 0).reshape([1]) for _, t in finite]
    parts = [p if p.dtype == paddle.float32 else p.astype("float32") for p in parts]
    pieces = np.split(paddle.concat(parts).numpy(), np.cumsum([p.shape[0] for p in parts])[:-1])
    for (name, tensor), value in zip(finite, pieces[3 + len(extra):]):
        if not np.isfinite(value).all() and not bool(paddle.isfinite(tensor).all()):
            raise NonFiniteError(name)
    boxes = pieces[0].reshape(batch, num_max, 4)
    valid = pieces[1].reshape(batch, num_max) != 0
    labels = np.rint(pieces[2]).reshape(batch, num_max).astype(np.int64)
    check_host_gt(boxes, labels, valid, num_classes)
    return valid, boxes, labels, pieces[3:3 + len(extra)]


def check_gt(gt_labels, gt_bboxes, pad_gt_mask, num_classes, gt_scores=None):
    """Check the padded ground truth (shapes, then values with one host copy).

    Args:
        gt_labels (Tensor[B, n, 1], int32|int64), gt_bboxes (Tensor[B, n, 4]), pad_gt_mask (Tensor[B, n, 1]),
        num_classes (int), gt_scores (Tensor[B, n, 1] | None).
    Returns:
        np.ndarray[B, n] bool: which GT slots are real objects.
    """
    check_gt_shapes(gt_labels, gt_bboxes, pad_gt_mask, gt_scores)
    return fetch_gt(gt_labels, gt_bboxes, pad_gt_mask, num_classes)[0]


def check_task_aligned_inputs(pred_scores, pred_bboxes, anchor_points, num_anchors_list, gt_labels, gt_bboxes,
                              pad_gt_mask, bg_index):
    """Shapes of the task-aligned call (no host copy) -> (anchors per level, bg_index as int); ValueError naming
    the argument.

    Args:
        pred_scores (Tensor[B, L, C]), pred_bboxes (Tensor[B, L, 4]), anchor_points (Tensor[L, 2]),
        num_anchors_list (list[int] summing to L), gt_labels (Tensor[B, n, 1]), gt_bboxes (Tensor[B, n, 4]),
        pad_gt_mask (Tensor[B, n, 1]), bg_index (int in [0, C]).
    """
    require_tensor("pred_scores", pred_scores, 3)
    batch, num_anchors, num_classes = pred_scores.shape
    require_tensor("pred_bboxes", pred_bboxes, 3, last=4)
    require_shape("pred_bboxes", pred_bboxes, [batch, num_anchors, 4], "pred_scores is [B, L, C]")
    require_tensor("anchor_points", anchor_points, 2, last=2)
    require_shape("anchor_points", anchor_points, [num_anchors, 2], "pred_scores is [B, L, C]")
    counts = check_num_anchors_list(num_anchors_list, num_anchors)
    check_gt_shapes(gt_labels, gt_bboxes, pad_gt_mask)
    require_shape("gt_bboxes", gt_bboxes, [batch] + list(gt_bboxes.shape[1:]), "pred_scores is [B, L, C]")
    return counts, check_bg_index(bg_index, num_classes)
