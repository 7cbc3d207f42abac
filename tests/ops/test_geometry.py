"""ppassign.ops.geometry: bit-identical to PaddleDetection's box functions, on broadcast shapes and on the host."""
import numpy as np
import paddle
import pytest

from ppassign.ops import geometry as G


def _boxes(rng, num, size=100.0):
    xy = rng.uniform(-10, size, size=(num, 2))
    wh = rng.exponential(size / 4, size=(num, 2)) * (rng.uniform(size=(num, 1)) > 0.1)  # some zero-size boxes
    return np.concatenate([xy, xy + wh], -1).astype("float32")


class TestAlignedIou:
    def test_pairwise_broadcast_is_bit_identical_to_ppdet_iou_similarity(self):
        from ppdet.modeling.bbox_utils import iou_similarity
        rng = np.random.default_rng(0)
        a, b = paddle.to_tensor(_boxes(rng, 7)), paddle.to_tensor(_boxes(rng, 11))
        ours = G.aligned_iou(a.unsqueeze(1), b.unsqueeze(0), eps=G.IOU_EPS_ANCHOR)
        np.testing.assert_array_equal(ours.numpy(), iou_similarity(a, b).numpy())

    def test_batched_broadcast_is_bit_identical_to_ppdet_batch_iou_similarity(self):
        from ppdet.modeling.bbox_utils import batch_iou_similarity
        rng = np.random.default_rng(1)
        a = paddle.to_tensor(_boxes(rng, 2 * 5).reshape(2, 5, 4))
        b = paddle.to_tensor(_boxes(rng, 2 * 9).reshape(2, 9, 4))
        ours = G.aligned_iou(a.unsqueeze(2), b.unsqueeze(1), eps=G.IOU_EPS_PRED)
        np.testing.assert_array_equal(ours.numpy(), batch_iou_similarity(a, b).numpy())

    def test_paired_rows_equal_the_diagonal_of_the_full_matrix(self):
        rng = np.random.default_rng(2)
        a, b = paddle.to_tensor(_boxes(rng, 6)), paddle.to_tensor(_boxes(rng, 6))
        full = G.aligned_iou(a.unsqueeze(1), b.unsqueeze(0)).numpy()
        np.testing.assert_array_equal(G.aligned_iou(a, b).numpy(), np.diag(full))

    def test_disjoint_and_degenerate_boxes_give_zero_not_nan(self):
        a = paddle.to_tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 0.0, 0.0], [5.0, 5.0, 5.0, 9.0]])
        b = paddle.to_tensor([[20.0, 20.0, 30.0, 30.0], [0.0, 0.0, 0.0, 0.0], [5.0, 5.0, 5.0, 9.0]])
        np.testing.assert_array_equal(G.aligned_iou(a, b).numpy(), [0.0, 0.0, 0.0])

    def test_empty_input_gives_empty_output(self):
        assert list(G.aligned_iou(paddle.zeros([0, 4]), paddle.zeros([0, 4])).shape) == [0]


class TestPointsInsideBoxes:
    def test_equals_ppdet_check_points_inside_bboxes(self):
        from ppdet.modeling.assigners.utils import check_points_inside_bboxes
        rng = np.random.default_rng(3)
        points = paddle.to_tensor(rng.uniform(-10, 110, size=(50, 2)).astype("float32"))
        boxes = paddle.to_tensor(_boxes(rng, 2 * 6).reshape(2, 6, 4))
        ours = G.points_inside_boxes(points.unsqueeze([0, 1]), boxes.unsqueeze(2))
        np.testing.assert_array_equal(ours.numpy(), check_points_inside_bboxes(points, boxes).numpy() > 0)

    def test_points_on_an_edge_or_within_eps_are_outside(self):
        points = paddle.to_tensor([[10.0, 5.0], [5.0, 10.0], [5.0, 5.0], [0.0, 5.0]])
        box = paddle.to_tensor([[0.0, 0.0, 10.0, 10.0]])
        np.testing.assert_array_equal(G.points_inside_boxes(points, box).numpy(), [False, False, True, False])
        np.testing.assert_array_equal(G.points_inside_boxes(points, box, eps=5.0).numpy(), [False] * 4)

    def test_eps_zero_is_strictly_inside(self):
        points = paddle.to_tensor([[1e-10, 5.0], [0.0, 5.0]])
        box = paddle.to_tensor([[0.0, 0.0, 10.0, 10.0]])
        np.testing.assert_array_equal(G.points_inside_boxes(points, box, eps=0.0).numpy(), [True, False])
        np.testing.assert_array_equal(G.points_inside_boxes(points, box).numpy(), [False, False])

    @pytest.mark.parametrize("eps", [G.INSIDE_EPS, 0.0, 0.5])
    def test_host_arrays_give_the_tensors_answer(self, eps):
        rng = np.random.default_rng(4)
        points = rng.uniform(-10, 110, size=(1, 300, 2)).astype("float32")
        points[0, :20] = np.round(points[0, :20])          # points on integer box edges
        boxes = _boxes(rng, 8)[:, None]
        boxes[:4] = np.round(boxes[:4])
        host = G.points_inside_boxes(points, boxes, eps)
        device = G.points_inside_boxes(paddle.to_tensor(points), paddle.to_tensor(boxes), eps).numpy()
        assert isinstance(host, np.ndarray) and host.shape == (8, 300)
        np.testing.assert_array_equal(host, device)


def test_box_centers_equal_ppdet_bbox_center():
    from ppdet.modeling.bbox_utils import bbox_center
    boxes = paddle.to_tensor(_boxes(np.random.default_rng(5), 9))
    np.testing.assert_array_equal(G.box_centers(boxes).numpy(), bbox_center(boxes).numpy())


def test_center_distances_equal_the_norm_ppdet_takes():
    rng = np.random.default_rng(6)
    a = paddle.to_tensor(rng.uniform(0, 100, size=(4, 1, 2)).astype("float32"))
    b = paddle.to_tensor(rng.uniform(0, 100, size=(1, 9, 2)).astype("float32"))
    np.testing.assert_array_equal(G.center_distances(a, b).numpy(), (a - b).norm(2, axis=-1).numpy())
    np.testing.assert_allclose(G.center_distances(a, b).numpy(),
                               np.linalg.norm(a.numpy() - b.numpy(), axis=-1), rtol=1e-6)


def test_level_slices_partition_the_anchors():
    assert G.level_slices([6, 4, 1]) == [(0, 6), (6, 10), (10, 11)]
    assert G.level_slices([]) == []


class TestOverlappingPairs:
    @staticmethod
    def _brute_force(b1, g1, b2, g2):
        overlap = ((np.minimum(b1[:, None, 2], b2[None, :, 2]) > np.maximum(b1[:, None, 0], b2[None, :, 0]))
                   & (np.minimum(b1[:, None, 3], b2[None, :, 3]) > np.maximum(b1[:, None, 1], b2[None, :, 1]))
                   & (g1[:, None] == g2[None]))
        return set(zip(*np.nonzero(overlap)))

    @pytest.mark.parametrize("seed", range(8))
    def test_equals_brute_force_on_mixed_sizes_images_and_edges(self, seed):
        rng = np.random.default_rng(seed)
        b1, b2 = _boxes(rng, 40, size=300), _boxes(rng, 70, size=300)
        b2[:20] = np.round(b2[:20] / 10) * 10                  # shared edges: touching is not overlapping
        b1[:10] = b2[:10]
        b2[-3:] = [[-500.0, -500.0, 900.0, 900.0], [0.0, 0.0, 0.0, 0.0], [50.0, 50.0, 50.0, 80.0]]
        g1, g2 = rng.integers(0, 3, 40), rng.integers(0, 3, 70)
        i, j = G.overlapping_pairs(b1, g1, b2, g2)
        assert len(set(zip(i, j))) == len(i)                   # each pair once
        assert set(zip(i, j)) == self._brute_force(b1, g1, b2, g2)

    def test_touching_boxes_and_other_images_are_left_out(self):
        b1 = np.array([[0.0, 0.0, 10.0, 10.0]], "float32")
        b2 = np.array([[10.0, 0.0, 20.0, 10.0], [0.0, 10.0, 10.0, 20.0], [9.0, 9.0, 12.0, 12.0],
                       [1.0, 1.0, 2.0, 2.0]], "float32")
        i, j = G.overlapping_pairs(b1, np.zeros(1, np.int64), b2, np.array([0, 0, 0, 1]))
        assert sorted(zip(i, j)) == [(0, 2)]

    def test_empty_inputs_give_no_pairs(self):
        box = np.array([[0.0, 0.0, 1.0, 1.0]], "float32")
        for b1, b2 in [(box[:0], box), (box, box[:0])]:
            i, j = G.overlapping_pairs(b1, np.zeros(len(b1), np.int64), b2, np.zeros(len(b2), np.int64))
            assert len(i) == len(j) == 0
