"""ppassign.assigners.assign_utils: conflicts between objects, segment reductions, chunks."""
import numpy as np
import paddle

from ppassign.assigners import assign_utils as U
from ppassign.ops import geometry as G


def _resolve(pairs, anchors, gt):
    """pairs: (image, slot, anchor); anchors (np [L, 4]) the boxes IoU is measured with; gt (np [B, n, 4])."""
    image, slot, anchor = (np.array(c, np.int64) for c in zip(*pairs))
    num_anchors = len(anchors)
    anchors_t, gt_t = paddle.to_tensor(anchors), paddle.to_tensor(gt)
    return U.resolve_claims(image, slot, anchor, num_anchors, lambda f: anchors[f % num_anchors],
                            lambda f: U.gather_rows(anchors_t, f % num_anchors), gt, gt_t, G.IOU_EPS_ANCHOR, 256)


def _gt():
    return np.array([[[0, 0, 10, 10], [5, 0, 15, 10], [0, 0, 0, 0]],
                     [[20, 20, 30, 30], [0, 0, 12, 10], [100, 100, 110, 110]]], "float32")


ANCHORS = np.array([[4, 0, 14, 10], [0, 0, 10, 10], [50, 50, 60, 60]], "float32")


def test_an_anchor_claimed_once_goes_to_its_claimer():
    claims = _resolve([(0, 2, 1), (1, 0, 2)], ANCHORS, _gt())
    np.testing.assert_array_equal(claims.flat, [1, 5])
    np.testing.assert_array_equal(claims.slot.numpy(), [2, 0])      # even padding and zero IoU: the claimer
    assert len(claims.multi) == 0


def test_an_anchor_claimed_twice_goes_to_the_slot_of_highest_iou_even_one_that_did_not_claim_it():
    # image 1, anchor 0 [4, 0, 14, 10]: claimed by slots 0 and 2; slot 1 [0, 0, 12, 10] overlaps it most
    claims = _resolve([(1, 0, 0), (1, 2, 0)], ANCHORS, _gt())
    np.testing.assert_array_equal(claims.slot.numpy(), [1])
    np.testing.assert_allclose(claims.multi_iou.numpy(), [80 / 140], rtol=1e-6)


def test_equal_ious_go_to_the_first_slot():
    gt = np.array([[[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]]], "float32")
    claims = _resolve([(0, 2, 1), (0, 1, 1)], ANCHORS, gt)
    np.testing.assert_array_equal(claims.slot.numpy(), [0])


def test_no_overlap_at_all_goes_to_slot_zero_as_ppdet_argmax():
    claims = _resolve([(0, 1, 2), (0, 2, 2)], ANCHORS, _gt())      # anchor 2 overlaps no box of image 0
    np.testing.assert_array_equal(claims.slot.numpy(), [0])
    np.testing.assert_array_equal(claims.multi_iou.numpy(), [0.0])


def test_a_padding_slot_can_win_as_in_ppdet():
    gt = _gt()
    gt[0, 2] = [4, 0, 14, 10]                                        # a padding slot holding a box
    claims = _resolve([(0, 0, 0), (0, 1, 0)], ANCHORS, gt)
    np.testing.assert_array_equal(claims.slot.numpy(), [2])


def test_segment_reduce_takes_max_min_and_sum_per_segment():
    values = paddle.to_tensor([0.5, 0.2, 0.9, 0.1])
    segment = paddle.to_tensor([0, 2, 0, 2])
    np.testing.assert_allclose(U.segment_reduce(values, segment, 3, "amax").numpy(), [0.9, 0.0, 0.2])
    np.testing.assert_allclose(U.segment_reduce(values, segment, 3, "amin", init=1.0).numpy(), [0.5, 1.0, 0.1])
    np.testing.assert_allclose(U.segment_reduce(values, segment, 3, "add").numpy(), [1.4, 0.0, 0.3], rtol=1e-6)


def test_segment_reduce_dispatches_the_same_operators_whatever_the_sizes():
    from benchmarks.profiling import profile_call
    counts = set()
    for num_values, num_segments in [(0, 0), (0, 5), (3, 3), (3, 7), (9, 2)]:
        values = paddle.rand([num_values])
        segment = paddle.to_tensor(np.arange(num_values) % max(num_segments, 1))
        counts.add(profile_call(U.segment_reduce, values, segment, num_segments, "amax")[1].operators)
    assert len(counts) == 1


def test_row_chunks_cover_the_rows_and_give_one_piece_without_rows():
    assert U.row_chunks(0, 100, 1) == [(0, 0)]
    assert U.row_chunks(5, 2**20, 2) == [(0, 2), (2, 4), (4, 5)]
