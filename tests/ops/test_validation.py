"""ppassign.ops.validation: each check raises a ValueError naming the argument and what was wrong."""
import numpy as np
import paddle
import pytest

from ppassign.ops import validation as V


def _gt(batch=2, num_max=3, num_classes=4):
    labels = paddle.to_tensor(np.arange(batch * num_max).reshape(batch, num_max, 1) % num_classes, dtype="int32")
    boxes = paddle.to_tensor(np.tile(np.array([[1.0, 2.0, 5.0, 9.0]], "float32"), (batch, num_max, 1)))
    mask = paddle.to_tensor(np.ones((batch, num_max, 1), "float32"))
    return labels, boxes, mask


class TestRequireTensor:
    def test_accepts_the_right_rank_and_last_axis(self):
        assert V.require_tensor("x", paddle.zeros([3, 4]), 2, last=4) is None      # no error, nothing returned
        assert V.require_tensor("x", paddle.zeros([3, 7]), 2) is None              # any last axis when not given

    @pytest.mark.parametrize("value, message", [
        (np.zeros((3, 4)), "x must be a paddle.Tensor, got ndarray"),
        (paddle.zeros([3]), r"x must have rank 2, got shape \[3\]"),
        (paddle.zeros([3, 2]), r"x must have last dimension 4, got shape \[3, 2\]"),
    ])
    def test_rejects_with_the_argument_name(self, value, message):
        with pytest.raises(ValueError, match=message):
            V.require_tensor("x", value, 2, last=4)


def test_require_shape_says_where_the_expected_shape_comes_from():
    V.require_shape("y", paddle.zeros([2, 5]), [2, 5], "x is [B, L]")
    with pytest.raises(ValueError, match=r"y must have shape \[2, 6\] \(x is \[B, L\]\), got \[2, 5\]"):
        V.require_shape("y", paddle.zeros([2, 5]), [2, 6], "x is [B, L]")


class TestCheckNumAnchorsList:
    def test_returns_ints_from_a_list_or_a_tensor(self):
        assert V.check_num_anchors_list([4, 2], 6) == [4, 2]
        assert V.check_num_anchors_list(paddle.to_tensor([4, 2]), 6) == [4, 2]

    @pytest.mark.parametrize("value, message", [
        ([4, "a"], "must be a list of ints"),
        ([], "positive anchor counts"),
        ([6, 0], "positive anchor counts"),
        ([4, 3], "must sum to the number of anchors L=6"),
    ])
    def test_rejects(self, value, message):
        with pytest.raises(ValueError, match=message):
            V.check_num_anchors_list(value, 6)


@pytest.mark.parametrize("value, ok", [(0, True), (4, True), (paddle.to_tensor(4), True), (5, False), (-1, False),
                                       (2.0, False)])
def test_check_bg_index_accepts_ints_in_zero_to_num_classes(value, ok):
    if ok:
        assert V.check_bg_index(value, 4) == int(value)
    else:
        with pytest.raises(ValueError, match=r"bg_index must be an int in \[0, num_classes=4\]"):
            V.check_bg_index(value, 4)


class TestCheckGtShapes:
    def test_accepts_padded_ground_truth(self):
        V.check_gt_shapes(*_gt(), gt_scores=paddle.ones([2, 3, 1]))

    @pytest.mark.parametrize("edit, message", [
        (lambda l, b, m: (l, b[0], m), "gt_bboxes must have rank 3"),
        (lambda l, b, m: (l[:, :2], b, m), r"gt_labels must have shape \[2, 3, 1\]"),
        (lambda l, b, m: (l.astype("float32"), b, m), "gt_labels must be int32 or int64"),
        (lambda l, b, m: (l, b, m[:, :, 0]), "pad_gt_mask must have rank 3"),
        (lambda l, b, m: (l, b, m[:1]), r"pad_gt_mask must have shape \[2, 3, 1\]"),
    ])
    def test_rejects(self, edit, message):
        with pytest.raises(ValueError, match=message):
            V.check_gt_shapes(*edit(*_gt()))

    def test_rejects_gt_scores_of_another_shape(self):
        with pytest.raises(ValueError, match="gt_scores must have shape"):
            V.check_gt_shapes(*_gt(), gt_scores=paddle.ones([2, 2, 1]))


class TestFetchGt:
    def test_one_host_copy_returns_real_slots_boxes_labels_and_extras(self):
        from benchmarks.profiling import count_host_copies
        labels, boxes, mask = _gt()
        mask = paddle.to_tensor(np.array([[[1], [0], [1]], [[0], [0], [0]]], "float32"))
        extra = paddle.arange(6, dtype="float32").reshape([3, 2])
        with count_host_copies() as copies:
            valid, host_boxes, host_labels, extras = V.fetch_gt(labels, boxes, mask, 4, extra=[extra],
                                                                finite=[("extra", extra)])
        assert copies[0] == 1
        np.testing.assert_array_equal(valid, [[True, False, True], [False, False, False]])
        np.testing.assert_array_equal(host_boxes, boxes.numpy())
        np.testing.assert_array_equal(host_labels, labels.numpy()[..., 0])
        np.testing.assert_array_equal(extras[0], np.arange(6))

    def test_padding_slots_are_not_checked(self):
        labels, boxes, mask = _gt()
        bad = boxes.numpy().copy()
        bad[0, 1] = [np.nan, 0.0, -5.0, 1.0]
        mask = paddle.to_tensor(np.array([[[1], [0], [1]], [[1], [1], [1]]], "float32"))
        valid, host_boxes, _, _ = V.fetch_gt(labels, paddle.to_tensor(bad), mask, 4)
        assert valid.tolist() == [[True, False, True], [True, True, True]]
        np.testing.assert_array_equal(host_boxes[valid], boxes.numpy()[valid])

    @pytest.mark.parametrize("where, value, message", [
        ((0, 1, 2), np.nan, "gt_bboxes contains NaN or inf"),
        ((1, 0, 2), -3.0, "gt_bboxes must be xyxy with x2 >= x1"),
    ])
    def test_rejects_bad_boxes(self, where, value, message):
        labels, boxes, mask = _gt()
        bad = boxes.numpy().copy()
        bad[where] = value
        with pytest.raises(ValueError, match=message):
            V.fetch_gt(labels, paddle.to_tensor(bad), mask, 4)

    def test_rejects_labels_outside_the_classes(self):
        labels, boxes, mask = _gt()
        with pytest.raises(ValueError, match=r"gt_labels must lie in \[0, num_classes=3\)"):
            V.fetch_gt(labels, boxes, mask, 3)

    def test_names_the_non_finite_tensor(self):
        labels, boxes, mask = _gt()
        scores = paddle.to_tensor(np.array([0.5, np.inf], "float32"))
        with pytest.raises(V.NonFiniteError, match="pred_scores contains NaN or inf") as raised:
            V.fetch_gt(labels, boxes, mask, 4, finite=[("pred_scores", scores)])
        assert raised.value.name == "pred_scores" and isinstance(raised.value, ValueError)

    def test_finite_values_whose_sum_overflows_are_accepted(self):
        labels, boxes, mask = _gt()
        huge = paddle.to_tensor(np.array([3e38, 3e38], "float32"))      # finite; their float32 sum is inf
        V.fetch_gt(labels, boxes, mask, 4, finite=[("pred_bboxes", huge)])
        nan = paddle.to_tensor(np.array([3e38, np.nan], "float32"))
        with pytest.raises(ValueError, match="pred_bboxes contains NaN or inf"):
            V.fetch_gt(labels, boxes, mask, 4, finite=[("pred_bboxes", nan)])


def test_check_gt_checks_shapes_then_values_and_returns_the_real_slots():
    labels, boxes, mask = _gt()
    np.testing.assert_array_equal(V.check_gt(labels, boxes, mask, 4), np.ones((2, 3), bool))
    with pytest.raises(ValueError, match="gt_labels must have shape"):
        V.check_gt(labels[:, :1], boxes, mask, 4)
