import numpy as np
import paddle
import pytest

import ppassign  # noqa: F401  (applies shims)
from ppassign.heads import fcos_base as fb
from ppdet.modeling.layers import MultiClassNMS


def t(x, dtype="float32"):
    return paddle.to_tensor(np.asarray(x, dtype=dtype))


def test_level_points_are_cell_centres_row_major():
    pts = fb.level_points(2, 3, 8).numpy()
    expected = [[4, 4], [12, 4], [20, 4], [4, 12], [12, 12], [20, 12]]
    np.testing.assert_array_equal(pts, expected)


def test_multi_level_points_counts_and_strides():
    feats = [paddle.zeros([1, 4, 4, 6]), paddle.zeros([1, 4, 2, 3])]
    pts, strides, counts = fb.multi_level_points(feats, [8, 16])
    assert counts == [24, 6]
    assert pts.shape == [30, 2]
    np.testing.assert_array_equal(strides.numpy(), [8] * 24 + [16] * 6)
    np.testing.assert_array_equal(pts.numpy()[24], [8, 8])


def test_multi_level_points_rejects_level_mismatch():
    with pytest.raises(ValueError, match="strides"):
        fb.multi_level_points([paddle.zeros([1, 1, 2, 2])], [8, 16])


def test_distance_box_round_trip():
    pts = t([[10, 10], [50, 20]])
    boxes = t([[0, 5, 30, 40], [45, 0, 60, 25]])
    ltrb = fb.box_to_distance(pts, boxes)
    np.testing.assert_allclose(ltrb.numpy(), [[10, 5, 20, 30], [5, 20, 10, 5]])
    np.testing.assert_allclose(fb.distance_to_box(pts, ltrb).numpy(), boxes.numpy())


def test_giou_loss_identical_is_zero():
    b = t([[0, 0, 10, 10], [5, 5, 7, 9]])
    np.testing.assert_allclose(fb.giou_loss(b, b).numpy(), 0, atol=1e-6)


def test_giou_loss_matches_formula_on_partial_and_disjoint_boxes():
    p = t([[0, 0, 10, 10], [0, 0, 2, 2]])
    q = t([[5, 0, 15, 10], [4, 4, 6, 6]])
    # pair 0: overlap 50, union 150, enclose 150 -> giou 1/3; pair 1: overlap 0, union 8, enclose 36
    expected = [1 - 50 / 150, 1 - (0 - (36 - 8) / 36)]
    np.testing.assert_allclose(fb.giou_loss(p, q).numpy(), expected, rtol=1e-5)


def test_gaussian_prior_peaks_at_mu_and_normalises_by_stride():
    box = t([[[0, 0, 64, 64]]])  # centre (32, 32)
    mu = t([[[0.5, 0.0]]])
    sigma = t([[[1.0, 2.0]]])
    # (36, 32) at stride 8 is d = (0.5, 0) = mu; (40, 32) at stride 16 also d = (0.5, 0)
    pts = t([[36, 32], [40, 32], [32, 32], [32, 48]])
    strides = t([8, 16, 8, 8])
    g = fb.gaussian_center_prior(pts, strides, box, mu, sigma).numpy()[0, 0]
    np.testing.assert_allclose(g[:2], 1.0, rtol=1e-6)
    np.testing.assert_allclose(g[2], np.exp(-0.25 / 2), rtol=1e-6)
    np.testing.assert_allclose(g[3], np.exp(-(0.25 / 2 + 4 / 8)), rtol=1e-6)


def test_conv_tower_shape_and_group_check():
    tower = fb.ConvTower(8, 32, num_convs=2, num_groups=16)
    assert tower(paddle.rand([2, 8, 5, 7])).shape == [2, 32, 5, 7]
    with pytest.raises(ValueError, match="num_groups"):
        fb.ConvTower(8, 30, num_groups=32)


def test_scale_is_learnable():
    s = fb.Scale(2.0)
    x = paddle.ones([3])
    out = s(x)
    np.testing.assert_allclose(out.numpy(), 2.0)
    out.sum().backward()
    np.testing.assert_allclose(s.scale.grad.numpy(), [3.0])


def _nms():
    return MultiClassNMS(score_threshold=0.05, nms_top_k=-1, keep_top_k=100, nms_threshold=0.6)


def test_post_process_topk_decode_rescale_nms():
    # level 0: 3 points, level 1: 1 point; 2 classes
    pts0 = t([[10, 10], [12, 10], [50, 50]])
    pts1 = t([[100, 100]])
    s0 = t([[[0.9, 0.0], [0.8, 0.0], [0.01, 0.02]]])
    s1 = t([[[0.0, 0.7]]])
    d0 = t([[[5, 5, 5, 5], [7, 5, 3, 5], [1, 1, 1, 1]]])  # first two are the same box
    d1 = t([[[10, 20, 10, 20]]])
    scale = t([[2.0, 0.5]])  # (scale_y, scale_x)
    out, num = fb.post_process([s0, s1], [d0, d1], [pts0, pts1], scale, _nms(), nms_pre=2)
    out = out.numpy()
    assert int(num.numpy()[0]) == 2
    rows = {int(r[0]): r for r in out}
    np.testing.assert_allclose(rows[0][1], 0.9, rtol=1e-6)
    np.testing.assert_allclose(rows[0][2:], [5 / 0.5, 5 / 2, 15 / 0.5, 15 / 2], rtol=1e-6)
    np.testing.assert_allclose(rows[1][2:], [90 / 0.5, 80 / 2, 110 / 0.5, 120 / 2], rtol=1e-6)


def test_post_process_nms_pre_drops_low_scores_per_level():
    pts = t([[10, 10], [50, 50], [90, 90]])
    s = t([[[0.9], [0.06], [0.8]]])
    d = t([[[2, 2, 2, 2]] * 3])
    out, num = fb.post_process([s], [d], [pts], t([[1.0, 1.0]]), _nms(), nms_pre=2)
    assert int(num.numpy()[0]) == 2
    np.testing.assert_allclose(sorted(out.numpy()[:, 1]), [0.8, 0.9], rtol=1e-6)


# ------------------------------------------------------------------------------------ batched loss helpers
def test_padded_targets_mask_labels_and_missing_mask():
    boxes = t([[[1, 2, 9, 9], [0, 0, 0, 0]], [[3, 3, 8, 8], [2, 2, 5, 6]]])
    labels = t([[[2], [77]], [[0], [1]]], "int32")  # a padding slot holding an out-of-range label
    mask = t([[[1], [0]], [[1], [1]]])
    gt_bbox, gt_labels, valid = fb.padded_targets({"gt_bbox": boxes, "gt_class": labels, "pad_gt_mask": mask},
                                                  2, num_classes=3)
    np.testing.assert_array_equal(valid.numpy(), [[True, False], [True, True]])
    assert gt_labels.dtype == paddle.int64 and gt_bbox.dtype == paddle.float32
    np.testing.assert_array_equal(gt_labels.numpy(), [[2, 2], [0, 1]])  # padding clipped into [0, C)
    _, _, no_mask = fb.padded_targets({"gt_bbox": boxes, "gt_class": labels}, 2, num_classes=3)
    np.testing.assert_array_equal(no_mask.numpy(), valid.numpy())  # all-zero boxes are padding
    with pytest.raises(ValueError, match="batch size"):
        fb.padded_targets({"gt_bbox": boxes, "gt_class": labels, "pad_gt_mask": mask}, 3, num_classes=3)
    with pytest.raises(ValueError, match="gt_class"):
        fb.padded_targets({"gt_bbox": boxes, "pad_gt_mask": mask}, 2, num_classes=3)


def test_min_by_class_batched_equals_per_image_and_handles_no_objects():
    rng = np.random.RandomState(0)
    values = rng.rand(3, 5, 7).astype("float32")  # B=3, n=5 > C=2, L=7
    labels = rng.randint(0, 2, size=(3, 5))
    out = fb.min_by_class(t(values), t(labels, "int64"), 2).numpy()  # [B, L, C]
    assert out.shape == (3, 7, 2)
    for b in range(3):
        per_image = fb.min_by_class(t(values[b]), t(labels[b], "int64"), 2).numpy()  # [L, C]
        np.testing.assert_array_equal(out[b], per_image)
        for c in range(2):
            rows = values[b][labels[b] == c]
            expected = np.minimum(rows.min(0), 1.0) if len(rows) else np.ones(7)
            np.testing.assert_allclose(out[b, :, c], expected)
    empty = fb.min_by_class(paddle.zeros([3, 0, 7]), paddle.zeros([3, 0], "int64"), 2)
    np.testing.assert_array_equal(empty.numpy(), np.ones([3, 7, 2]))


def test_conv_tower_sublayers_are_named_and_conv_bias_adds_biases():
    names = [n for n, _ in fb.ConvTower(8, 16, num_convs=2, num_groups=4).named_parameters()]
    assert names == ["conv0.weight", "norm0.weight", "norm0.bias", "conv1.weight", "norm1.weight", "norm1.bias"]
    tower = fb.ConvTower(8, 16, num_convs=2, num_groups=4, conv_bias=True)
    assert [n for n, _ in tower.named_parameters() if n.startswith("conv")] == [
        "conv0.weight", "conv0.bias", "conv1.weight", "conv1.bias"]
    np.testing.assert_array_equal(tower.conv1.bias.numpy(), 0)
    assert tower[0] is tower.conv0 and tower[1] is tower.norm0
    with pytest.raises(ValueError, match="conv_bias"):
        fb.ConvTower(8, 16, num_groups=4, conv_bias="yes")


# The YAML block documented in docs/autoassign.md and docs/dw.md.
NORM_NO_DECAY_YAML = """
OptimizerBuilder:
  clip_grad_by_norm: 10.0
  optimizer:
    type: AdamW
    weight_decay: 0.0005
    param_groups:
      - params: ['norm']
        weight_decay: 0.0
  regularizer: ~
"""


@pytest.mark.parametrize("head_name", ["AutoAssignHead", "DWHead"])
def test_ppdet_adamw_param_group_keeps_tower_norms_out_of_weight_decay(head_name):
    import yaml
    from ppdet.optimizer import OptimizerBuilder
    from ppassign.heads.autoassign_head import AutoAssignHead
    from ppassign.heads.dw_head import DWHead

    class Model(paddle.nn.Layer):  # names as in ppdet's FCOS architecture: fcos_head.cls_tower.norm0.weight
        def __init__(self, head):
            super().__init__()
            self.fcos_head = head

    kw = dict(num_classes=3, in_channels=8, feat_channels=8, num_convs=2, fpn_stride=[8, 16], conv_bias=True)
    head = (AutoAssignHead(num_groups=4, **kw) if head_name == "AutoAssignHead"
            else DWHead(norm_groups=4, nms=None, **kw))
    model = Model(head)
    builder = OptimizerBuilder(**yaml.safe_load(NORM_NO_DECAY_YAML)["OptimizerBuilder"])
    lr = 0.5
    opt = builder(lr, model)
    params = dict(model.named_parameters())
    norm_names = [n for n in params if "norm" in n]
    assert sorted(norm_names) == sorted(f"fcos_head.{tw}_tower.norm{i}.{p}" for tw in ("cls", "reg")
                                        for i in range(2) for p in ("weight", "bias"))
    for param in params.values():  # nonzero weights everywhere, so that decay would show on every one
        param.set_value(paddle.full(param.shape, 0.5))
    before = {n: p.numpy().copy() for n, p in params.items()}
    (sum(p.sum() for p in model.parameters() if p.trainable) * 0.0).backward()  # zero gradients
    opt.step()
    for name, param in params.items():
        if not param.trainable:
            continue
        # Adam's update of a zero gradient is 0: what changes is AdamW's decoupled decay p *= 1 - lr * wd
        expected = before[name] if name in norm_names else before[name] * (1 - lr * 0.0005)
        np.testing.assert_allclose(param.numpy(), expected, rtol=1e-7, err_msg=name)
    assert not np.allclose(params["fcos_head.cls_tower.conv0.weight"].numpy(),
                           before["fcos_head.cls_tower.conv0.weight"], rtol=1e-7, atol=0)
    np.testing.assert_array_equal(params["fcos_head.cls_tower.norm0.weight"].numpy(),
                                  before["fcos_head.cls_tower.norm0.weight"])
