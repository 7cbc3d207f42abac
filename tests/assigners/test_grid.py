"""ppassign.assigners.grid: exact rectangles and windows of a regular anchor grid."""
import numpy as np

from ppassign.assigners import grid
from assign_cases import anchor_grid


def _points(image_size=64):
    _, points, counts = anchor_grid(image_size)
    return points.numpy(), counts


def test_level_axes_reads_row_major_grids():
    points, counts = _points()
    axes = grid.level_axes(points, counts)
    assert [(len(xs), len(ys)) for xs, ys in axes] == [(8, 8), (4, 4), (2, 2)]
    np.testing.assert_array_equal(axes[0][0], np.arange(8) * 8 + 4)


def test_level_axes_rejects_shuffled_or_jittered_points():
    points, counts = _points()
    shuffled = points.copy()
    shuffled[:64] = shuffled[:64][::-1]
    assert grid.level_axes(shuffled, counts) is None
    jittered = points.copy()
    jittered[5, 0] += 0.25
    assert grid.level_axes(jittered, counts) is None


def test_inside_pairs_equal_brute_force_including_edges():
    points, counts = _points()
    axes = grid.level_axes(points, counts)
    boxes = np.array([[4.0, 4.0, 20.0, 12.0],          # edges exactly on anchor coordinates: excluded
                      [3.9, 3.9, 20.1, 12.1],          # just around them: included
                      [10.0, 10.0, 10.0, 30.0],        # zero width
                      [-30.0, -30.0, 100.0, 100.0],    # larger than the image
                      [50.0, 50.0, 51.0, 51.0]], np.float32)
    owners, anchors = grid.inside_pairs(boxes, points, axes, counts)
    got = np.zeros((len(boxes), len(points)), bool)
    got[owners, anchors] = True
    eps = np.float32(1e-9)
    expected = ((points[None, :, 0] - boxes[:, None, 0] > eps) & (points[None, :, 1] - boxes[:, None, 1] > eps)
                & (boxes[:, None, 2] - points[None, :, 0] > eps) & (boxes[:, None, 3] - points[None, :, 1] > eps))
    np.testing.assert_array_equal(got, expected)
    assert got[3].all() and not got[0, :64].any() and got[1].sum() == 7 and not got[2].any()


def test_nearest_windows_hold_the_nearest_anchor_and_bound_the_rest():
    xs = ys = (np.arange(10) + 0.5).astype(np.float32) * 8
    centres = np.array([[40.0, 40.0], [1.0, 79.0], [-100.0, 30.0]], np.float32)
    r0, r1, c0, c1, bound = grid.nearest_windows(centres, xs, ys, k=9)
    assert ((r1 - r0) == 5).all() and ((c1 - c0) == 5).all()
    pts = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
    for i, c in enumerate(centres):
        dist = np.linalg.norm(pts - c, axis=1).reshape(10, 10)
        inside = np.zeros((10, 10), bool)
        inside[r0[i]:r1[i], c0[i]:c1[i]] = True
        assert dist[inside].min() == dist.min()
        assert dist[~inside].min() >= bound[i] - 1e-4

