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



# Grid cells per side at most when `overlapping_pairs` indexes boxes (bounds its keys and scans).
_MAX_CELLS_PER_SIDE = 1024
_CELL_SCALE = 2.0


def _cell(values, origin, size, count):
    """Grid cell of each coordinate, clipped to [0, count): monotone in the coordinate (np.ndarray int64)."""
    return np.clip(np.floor((values - origin) / size), 0, count - 1).astype(np.int64)


def _expand_ranges(lo, hi):
    """For ranges [lo, hi): (range of each element, element) -- np.repeat without a Python loop."""
    sizes = np.maximum(hi - lo, 0)
    owner = np.repeat(np.arange(len(sizes)), sizes)
    return owner, lo[owner] + np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)


def overlapping_pairs(boxes1, image1, boxes2, image2):
    """Host-side: every (i, j) of the same image whose boxes overlap with positive width and height.

    Exactly the pairs whose `aligned_iou` overlap can be positive (float32 min(x2) > max(x1), same for y), found
    without comparing every box with every other. The boxes2 are indexed by size class (largest side in
    [2^c, 2^(c+1))): within a class each box sits in the grid cell of its top-left corner, cells of side 2^c;
    a box1 scans, row by row, the cells whose boxes could reach it (one sorted-key range per row).

    Args:
        boxes1 (np.ndarray[m1, 4] float32), image1 (np.ndarray[m1] int64), boxes2 (np.ndarray[m2, 4] float32),
        image2 (np.ndarray[m2] int64): xyxy boxes and the image each lies in.
    Returns:
        i, j (np.ndarray[P] int64), in no particular order.
    """
    found_i, found_j = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    if len(boxes1) and len(boxes2):
        wide = boxes2.astype(np.float64)
        queries = boxes1.astype(np.float64)
        sides = np.maximum(wide[:, 2:] - wide[:, :2], 0)
        size_class = np.floor(np.log2(np.maximum(sides.max(1), 1.0))).astype(np.int64)
        size_class[(sides <= 0).any(1)] = -1                     # no positive width or height: overlaps nothing
        for c in np.unique(size_class[size_class >= 0]):
            members = np.nonzero(size_class == c)[0]
            box = wide[members]
            origin, far = box[:, :2].min(0), box[:, :2].max(0)
            size = np.maximum(2.0 ** c, (far - origin).max() / _MAX_CELLS_PER_SIDE)
            cols, rows = (np.floor((far - origin) / size).astype(np.int64) + 1)
            key = (image2[members] * rows + _cell(box[:, 1], origin[1], size, rows)) * cols \
                + _cell(box[:, 0], origin[0], size, cols)
            order = np.argsort(key, kind="stable")
            key, members = key[order], members[order]
            # a box of the class overlaps a query only if its corner lies within reach (its sides) of the query
            reach = sides[members].max(0) * (1 + 1e-6) + 1e-6
            r0 = _cell(queries[:, 1] - reach[1], origin[1], size, rows)
            r1 = _cell(queries[:, 3], origin[1], size, rows)
            c0 = _cell(queries[:, 0] - reach[0], origin[0], size, cols)
            c1 = _cell(queries[:, 2], origin[0], size, cols)
            query, row = _expand_ranges(r0, r1 + 1)
            base = (image1[query] * rows + row) * cols
            strip, position = _expand_ranges(np.searchsorted(key, base + c0[query], "left"),
                                             np.searchsorted(key, base + c1[query], "right"))
            i, j = query[strip], members[position]
            keep = np.minimum(boxes1[i, 3], boxes2[j, 3]) > np.maximum(boxes1[i, 1], boxes2[j, 1])
            i, j = i[keep], j[keep]
            keep = np.minimum(boxes1[i, 2], boxes2[j, 2]) > np.maximum(boxes1[i, 0], boxes2[j, 0])
            found_i.append(i[keep])
            found_j.append(j[keep])
    return np.concatenate(found_i), np.concatenate(found_j)
