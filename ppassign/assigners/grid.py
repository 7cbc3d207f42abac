"""What a regular anchor grid allows: finding an object's anchors without looking at all L of them.

Dense heads lay anchors per level as a row-major h x w grid. Then the anchors inside a box form a rectangle
of the grid and the k anchors nearest a point lie in a small window around it, so both can be listed
from O(w + h) work per object instead of O(L). All index work here is host-side NumPy; comparisons use
float32 exactly as the Paddle ops do, so the lists are exact, not approximate.
"""
import numpy as np

from ..ops.geometry import INSIDE_EPS, points_inside_boxes


def level_axes(points, counts):
    """Column and row coordinates of each level when the points form row-major grids.

    Args:
        points (np.ndarray[L, 2] float32): anchor points / centres, level after level.
        counts (list[int]): anchors per level.
    Returns:
        list of (xs [w], ys [h]) float32, increasing; or None when some level is not such a grid.
    """
    axes, start = [], 0
    for count in counts:
        level = points[start:start + count]
        start += count
        same_row = np.nonzero(level[:, 1] != level[0, 1])[0]
        width = int(same_row[0]) if len(same_row) else count
        if width == 0 or count % width:
            return None
        grid = level.reshape(count // width, width, 2)
        xs, ys = grid[0, :, 0], grid[:, 0, 1]
        if not ((grid[..., 0] == xs[None]).all() and (grid[..., 1] == ys[:, None]).all()
                and (np.diff(xs) > 0).all() and (np.diff(ys) > 0).all()):
            return None
        axes.append((xs, ys))
    return axes


def expand_rectangles(row, start, width, r0, r1, c0, c1):
    """List the anchors of grid rectangles [r0, r1) x [c0, c1), one rectangle per entry.

    Args:
        row (np.ndarray[R]): owner of each rectangle; start, width (int): the level's offset in L and grid width;
        r0, r1, c0, c1 (np.ndarray[R]).
    Returns:
        owners (np.ndarray[P]), anchors (np.ndarray[P]) with P = sum of rectangle areas, owners in input order,
        anchors of one rectangle in increasing (row-major) order.
    """
    rows_n, cols_n = np.maximum(r1 - r0, 0), np.maximum(c1 - c0, 0)
    sizes = rows_n * cols_n
    total = int(sizes.sum())
    if total == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    owner = np.repeat(np.arange(len(sizes)), sizes)
    offset = np.arange(total) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    cols = np.maximum(cols_n, 1)[owner]
    i = r0[owner] + offset // cols
    j = c0[owner] + offset % cols
    return row[owner], start + i * width + j


def inside_pairs(boxes, points, axes, counts, eps=INSIDE_EPS):
    """All (object, anchor) pairs whose anchor point lies inside the object's box (`points_inside_boxes`).

    Per level, the grid columns and rows strictly between a box's sides form a rectangle holding every point
    inside it (a point more than eps inside is strictly inside); the rectangle's points are then tested with
    the rule itself, so the pairs are exactly those the rule accepts.

    Args:
        boxes (np.ndarray[m, 4] float32): xyxy; points (np.ndarray[L, 2] float32): the anchor points;
        axes: `level_axes(points, counts)`; counts (list[int]): anchors per level; eps (float): the rule's margin.
    Returns:
        owners (np.ndarray[P] int64) in [0, m), increasing; anchors (np.ndarray[P] int64) in [0, L), increasing
        within an owner.
    """
    owners, anchors, start = [], [], 0
    rows = np.arange(len(boxes))
    for (xs, ys), count in zip(axes, counts):
        c0, c1 = np.searchsorted(xs, boxes[:, 0], "right"), np.searchsorted(xs, boxes[:, 2], "left")
        r0, r1 = np.searchsorted(ys, boxes[:, 1], "right"), np.searchsorted(ys, boxes[:, 3], "left")
        o, a = expand_rectangles(rows, start, len(xs), r0, r1, c0, c1)
        owners.append(o)
        anchors.append(a)
        start += count
    owners, anchors = np.concatenate(owners), np.concatenate(anchors)
    order = np.argsort(owners, kind="stable")                 # levels are in order: anchors increase per owner
    owners, anchors = owners[order], anchors[order]
    inside = points_inside_boxes(points[anchors], boxes[owners], eps)
    return owners[inside], anchors[inside]


def _window(coords, centre, size):
    """Start of a window of `size` consecutive indices holding the index nearest `centre` (clipped to the axis).

    Args:
        coords (np.ndarray[w]), centre (np.ndarray[m]), size (int <= w).
    Returns:
        np.ndarray[m] int64.
    """
    nearest = np.clip(np.searchsorted(coords, centre), 0, len(coords) - 1)
    lower = np.clip(nearest - 1, 0, len(coords) - 1)
    nearest = np.where(np.abs(coords[lower] - centre) <= np.abs(coords[nearest] - centre), lower, nearest)
    return np.clip(nearest - size // 2, 0, len(coords) - size).astype(np.int64)


def nearest_windows(centres, xs, ys, k):
    """A window of the grid around each centre, large enough to hold its k nearest anchors in most cases.

    Args:
        centres (np.ndarray[m, 2] float32); xs [w], ys [h]: the level's axes; k (int).
    Returns:
        r0, r1, c0, c1 (np.ndarray[m] int64): the window rows [r0, r1) and columns [c0, c1);
        bound (np.ndarray[m] float): a lower bound of the distance from the centre to any anchor outside the
        window (inf when the window is the whole level).
    """
    side = 2 * int(np.ceil((np.sqrt(k) - 1) / 2)) + 3      # k nearest fit within +-ceil, plus one ring of margin
    wide, high = min(side, len(xs)), min(side, len(ys))
    c0 = _window(xs, centres[:, 0], wide)
    r0 = _window(ys, centres[:, 1], high)
    c1, r1 = c0 + wide, r0 + high
    inf = np.full(len(centres), np.inf)
    gaps = [np.where(c0 > 0, centres[:, 0] - xs[np.maximum(c0 - 1, 0)], inf),
            np.where(c1 < len(xs), xs[np.minimum(c1, len(xs) - 1)] - centres[:, 0], inf),
            np.where(r0 > 0, centres[:, 1] - ys[np.maximum(r0 - 1, 0)], inf),
            np.where(r1 < len(ys), ys[np.minimum(r1, len(ys) - 1)] - centres[:, 1], inf)]
    bound = np.maximum(np.min(gaps, axis=0), 0)
    return r0, r1, c0, c1, bound
