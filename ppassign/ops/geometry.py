"""Small pure box/point functions shared by the assigners and heads.

Boxes are ``xyxy`` in pixels. Shapes use B (batch), n (max GTs per image), L (anchors), K (candidates).
The arithmetic follows PaddleDetection's ``bbox_utils`` operation for operation, so that results are
bit-identical to ppdet's assigners (their parity is tested), while working on any broadcastable shapes
instead of materialising [B, n, L, 4] tensors.
"""
import numpy as np
import paddle

# ppdet.modeling.bbox_utils: iou_similarity uses 1e-10, batch_iou_similarity 1e-9.
IOU_EPS_ANCHOR = 1e-10
IOU_EPS_PRED = 1e-9
# ppdet.modeling.assigners.utils.check_points_inside_bboxes: a point must be more than eps inside.
INSIDE_EPS = 1e-9


def box_centers(boxes):
    """Centres of boxes.

    Args:
        boxes (Tensor[..., 4]): xyxy.
    Returns:
        Tensor[..., 2]: (cx, cy).
    """
    return (boxes[..., :2] + boxes[..., 2:]) / 2


def aligned_iou(boxes1, boxes2, eps=IOU_EPS_PRED):
    """IoU of boxes paired element by element (broadcasting), never an [..., M1, M2, 4] tensor.

    The operations are PaddleDetection's ``iou_similarity`` / ``batch_iou_similarity`` in the same order (so the
    values are bit-identical), on (x, y) pairs so that a call dispatches 19 operators whatever the shapes.

    Args:
        boxes1 (Tensor[..., 4]): xyxy, e.g. GTs [n, 1, 4].
        boxes2 (Tensor[..., 4]): xyxy, broadcastable with boxes1, e.g. anchors [1, L, 4] or [n, K, 4].
        eps (float): added to the union.
    Returns:
        Tensor[...]: the broadcast shape without the last axis, e.g. [n, L].
    """
    lo1, hi1 = boxes1[..., :2], boxes1[..., 2:]
    lo2, hi2 = boxes2[..., :2], boxes2[..., 2:]
    overlap = (paddle.minimum(hi1, hi2) - paddle.maximum(lo1, lo2)).clip(0).prod(-1)
    area1 = (hi1 - lo1).clip(0).prod(-1)
    area2 = (hi2 - lo2).clip(0).prod(-1)
    union = area1 + area2 - overlap + eps
    return overlap / union


def points_inside_boxes(points, boxes, eps=INSIDE_EPS):
    """Whether each point lies inside its paired box by more than `eps` on every side.

    PaddleDetection's rule (``check_points_inside_bboxes``): min(x - x1, y - y1, x2 - x, y2 - y) > eps, in the
    inputs' float precision. Takes paddle Tensors (the assigners and heads) or NumPy arrays (the host lists
    (object, anchor) pairs with it, `assigners.grid`); both give the same answer for the same float32 values.

    Args:
        points (Tensor | np.ndarray [..., 2]): (x, y), e.g. anchor centres [1, L, 2] or [n, K, 2].
        boxes (Tensor | np.ndarray [..., 4]): xyxy, broadcastable with points, e.g. [n, 1, 4].
        eps (float): margin; PaddleDetection's assigners use 1e-9 (`INSIDE_EPS`), FCOS-style heads 0.
    Returns:
        bool Tensor | np.ndarray [...], e.g. [n, L].
    """
    if isinstance(points, np.ndarray):
        margin = points.dtype.type(eps)
        x, y = points[..., 0], points[..., 1]
        return ((x - boxes[..., 0] > margin) & (y - boxes[..., 1] > margin)
                & (boxes[..., 2] - x > margin) & (boxes[..., 3] - y > margin))
    ltrb = paddle.concat([points - boxes[..., :2], boxes[..., 2:] - points], axis=-1)
    return ltrb.min(axis=-1) > eps


def center_distances(centers1, centers2):
    """Euclidean distances between paired centres (broadcasting).

    Args:
        centers1 (Tensor[..., 2]), centers2 (Tensor[..., 2]): e.g. [n, 1, 2] and [1, L, 2].
    Returns:
        Tensor[...], e.g. [n, L].
    """
    return (centers1 - centers2).norm(2, axis=-1)


def level_slices(num_anchors_list):
    """(start, stop) of each level's anchors along L.

    Args:
        num_anchors_list (list[int]): anchors per level, summing to L.
    Returns:
        list[tuple[int, int]].
    """
    out, start = [], 0
    for num in num_anchors_list:
        out.append((start, start + int(num)))
        start += int(num)
    return out
