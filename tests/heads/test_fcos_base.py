import os

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


def test_conv_tower_output_shape():
    tower = fb.ConvTower(8, 32, num_convs=2, norm_groups=16, conv_bias=False)
    assert tower(paddle.rand([2, 8, 5, 7])).shape == [2, 32, 5, 7]


def test_conv_tower_rejects_groups_that_do_not_divide_the_channels():
    with pytest.raises(ValueError, match="norm_groups"):
        fb.ConvTower(8, 30, num_convs=1, norm_groups=32, conv_bias=False)


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
def _padded_gt():
    """Image 0: one box and a padding slot holding an out-of-range label; image 1: two boxes (C = 3)."""
    boxes = t([[[1, 2, 9, 9], [0, 0, 0, 0]], [[3, 3, 8, 8], [2, 2, 5, 6]]])
    labels = t([[[2], [77]], [[0], [1]]], "int32")
    mask = t([[[1], [0]], [[1], [1]]])
    return {"gt_bbox": boxes, "gt_class": labels, "pad_gt_mask": mask}


def test_padded_targets_valid_slots_and_dtypes():
    gt_bbox, gt_labels, valid = fb.padded_targets(_padded_gt(), 2, num_classes=3)
    np.testing.assert_array_equal(valid.numpy(), [[True, False], [True, True]])
    assert gt_labels.dtype == paddle.int64 and gt_bbox.dtype == paddle.float32


def test_padded_targets_clip_padding_labels_into_range():
    _, gt_labels, _ = fb.padded_targets(_padded_gt(), 2, num_classes=3)
    np.testing.assert_array_equal(gt_labels.numpy(), [[2, 2], [0, 1]])


def test_padded_targets_without_mask_treat_all_zero_boxes_as_padding():
    targets = _padded_gt()
    del targets["pad_gt_mask"]
    _, _, valid = fb.padded_targets(targets, 2, num_classes=3)
    np.testing.assert_array_equal(valid.numpy(), [[True, False], [True, True]])


def test_padded_targets_reject_a_batch_size_other_than_the_features():
    with pytest.raises(ValueError, match="batch size"):
        fb.padded_targets(_padded_gt(), 3, num_classes=3)


def test_padded_targets_require_gt_class():
    targets = _padded_gt()
    del targets["gt_class"]
    with pytest.raises(ValueError, match="gt_class"):
        fb.padded_targets(targets, 2, num_classes=3)


def test_min_by_class_is_the_per_class_minimum_and_1_for_classes_without_objects():
    rng = np.random.RandomState(0)
    values = rng.rand(3, 5, 7).astype("float32")  # B=3, n=5 > C=2, L=7
    labels = rng.randint(0, 2, size=(3, 5))
    out = fb.min_by_class(t(values), t(labels, "int64"), 2).numpy()  # [B, L, C]
    assert out.shape == (3, 7, 2)
    for b in range(3):
        for c in range(2):
            rows = values[b][labels[b] == c]
            expected = np.minimum(rows.min(0), 1.0) if len(rows) else np.ones(7)
            np.testing.assert_allclose(out[b, :, c], expected)


def test_min_by_class_batched_equals_per_image():
    rng = np.random.RandomState(1)
    values = rng.rand(3, 5, 7).astype("float32")
    labels = rng.randint(0, 2, size=(3, 5))
    out = fb.min_by_class(t(values), t(labels, "int64"), 2).numpy()
    for b in range(3):
        np.testing.assert_array_equal(out[b], fb.min_by_class(t(values[b]), t(labels[b], "int64"), 2).numpy())


def test_min_by_class_without_objects_is_all_ones():
    empty = fb.min_by_class(paddle.zeros([3, 0, 7]), paddle.zeros([3, 0], "int64"), 2)
    np.testing.assert_array_equal(empty.numpy(), np.ones([3, 7, 2]))


def test_reduce_mean_averages_over_ranks(monkeypatch):
    # two ranks, the other one holding 3x this rank's value: all_reduce sums to 4x, the mean is 2x
    monkeypatch.setattr(fb.dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(fb.dist, "all_reduce", lambda x: x.set_value(x * 4))
    assert float(fb.reduce_mean(paddle.to_tensor(3.0))) == 6.0


def test_conv_tower_sublayers_are_named_conv_norm_relu_and_indexable():
    tower = fb.ConvTower(8, 16, num_convs=2, norm_groups=4, conv_bias=False)
    names = [n for n, _ in tower.named_parameters()]
    assert names == ["conv0.weight", "norm0.weight", "norm0.bias", "conv1.weight", "norm1.weight", "norm1.bias"]
    assert tower[0] is tower.conv0 and tower[1] is tower.norm0


def test_conv_tower_conv_bias_adds_a_zero_bias_to_every_conv():
    tower = fb.ConvTower(8, 16, num_convs=2, norm_groups=4, conv_bias=True)
    assert [n for n, _ in tower.named_parameters() if n.startswith("conv")] == [
        "conv0.weight", "conv0.bias", "conv1.weight", "conv1.bias"]
    np.testing.assert_array_equal(tower.conv1.bias.numpy(), 0)


def test_conv_tower_rejects_a_conv_bias_that_is_not_a_bool():
    with pytest.raises(ValueError, match="conv_bias"):
        fb.ConvTower(8, 16, num_convs=1, norm_groups=4, conv_bias="yes")


# ------------------------------------------------------------------------- the base both heads are built on
def _heads():
    from ppassign.heads.autoassign_head import AutoAssignHead
    from ppassign.heads.dw_head import DWHead
    return {"AutoAssignHead": AutoAssignHead, "DWHead": DWHead}


HEADS = ["AutoAssignHead", "DWHead"]
SHARED_ARGS = ["num_classes", "in_channels", "feat_channels", "num_convs", "norm_groups", "fpn_stride", "conv_bias",
               "prior_prob", "reg_bias_init", "point_offset", "nms_pre", "nms"]


def _small(name, **kw):
    args = dict(num_classes=3, in_channels=8, feat_channels=8, num_convs=1, norm_groups=4, fpn_stride=[8, 16],
                nms=None)
    args.update(kw)
    return _heads()[name](**args)


@pytest.mark.parametrize("name", HEADS)
def test_heads_take_the_shared_arguments_first_in_one_order(name):
    import inspect
    params = list(inspect.signature(_heads()[name].__init__).parameters)[1:]
    assert params[:len(SHARED_ARGS)] == SHARED_ARGS
    assert issubclass(_heads()[name], fb.FCOSStyleHead)


@pytest.mark.parametrize("name, has_bias", [("AutoAssignHead", False), ("DWHead", True)])
def test_tower_conv_bias_default_is_the_heads_documented_one(name, has_bias):
    head = _small(name, num_convs=2)
    biases = [layer.bias is not None for tower in (head.cls_tower, head.reg_tower)
              for key, layer in tower.named_children() if key.startswith("conv")]
    assert biases == [has_bias] * 4


@pytest.mark.parametrize("name", HEADS)
def test_conv_bias_switch_adds_or_removes_the_tower_biases(name):
    default = _small(name).cls_tower.conv0.bias is not None
    assert (_small(name, conv_bias=not default).cls_tower.conv0.bias is not None) is (not default)


@pytest.mark.parametrize("name", HEADS)
@pytest.mark.parametrize("kwargs, arg", [
    (dict(num_classes=0), "num_classes"), (dict(num_classes=2.0), "num_classes"),
    (dict(in_channels=-8), "in_channels"), (dict(num_convs=True), "num_convs"),
    (dict(feat_channels=10), "norm_groups"), (dict(norm_groups=0), "norm_groups"),
    (dict(fpn_stride=[]), "fpn_stride"), (dict(fpn_stride=[8, -16]), "fpn_stride"),
    (dict(conv_bias=1), "conv_bias"), (dict(prior_prob=1.0), "prior_prob"),
    (dict(reg_bias_init="4"), "reg_bias_init"), (dict(point_offset=None), "point_offset"),
    (dict(nms_pre=1.5), "nms_pre"),
])
def test_bad_shared_argument_raises_value_error_naming_it(name, kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        _small(name, **kwargs)


@pytest.mark.parametrize("name", HEADS)
def test_too_few_feature_levels_raise_value_error_naming_fpn_feats(name):
    with pytest.raises(ValueError, match="fpn_feats"):
        _small(name)([paddle.rand([1, 8, 8, 8])])


@pytest.mark.parametrize("name", HEADS)
def test_a_level_with_other_channels_raises_value_error_naming_it(name):
    with pytest.raises(ValueError, match=r"fpn_feats\[1\]"):
        _small(name)([paddle.rand([1, 8, 8, 8]), paddle.rand([1, 4, 4, 4])])


@pytest.mark.parametrize("name", HEADS)
def test_point_offset_moves_the_locations(name):
    head = _small(name, point_offset=0.0)
    np.testing.assert_array_equal(head.points_of(paddle.zeros([1, 8, 2, 2]), 1).numpy(),
                                  [[0, 0], [16, 0], [0, 16], [16, 16]])


SYNTHETIC = {"AutoAssignHead": "autoassign/autoassign_synthetic.yml", "DWHead": "dw/dw_synthetic.yml"}
CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "configs")


def _built_head(name, overrides=()):
    """The head ppdet's create builds from the synthetic config (errors as the head raises them)."""
    from ppdet.core.workspace import create
    from ppassign.engine.config import load_config
    return create(load_config(os.path.join(CONFIGS, SYNTHETIC[name]), list(overrides)).architecture).fcos_head


@pytest.mark.parametrize("name", HEADS)
def test_yaml_head_takes_channels_and_strides_from_the_neck(name):
    # the synthetic configs write no fpn_stride: P3-P5 of a 64-channel FPN
    head = _built_head(name, ["FPN.out_channel=32", f"{name}.feat_channels=32"])
    assert (head.in_channels, head.fpn_stride) == (32, [8, 16, 32])


@pytest.mark.parametrize("name", HEADS)
def test_yaml_fpn_stride_other_than_the_necks_raises_value_error_naming_it(name):
    with pytest.raises(ValueError, match=rf"{name}.fpn_stride \[8, 16, 64\] does not match"):
        _built_head(name, [f"{name}.fpn_stride=[8,16,64]"])


@pytest.mark.parametrize("name", HEADS)
def test_yaml_fpn_stride_equal_to_the_necks_is_accepted(name):
    assert _built_head(name, [f"{name}.fpn_stride=[8,16,32]"]).fpn_stride == [8, 16, 32]


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

    kw = dict(num_classes=3, in_channels=8, feat_channels=8, num_convs=2, norm_groups=4, fpn_stride=[8, 16],
              conv_bias=True, nms=None)
    head = AutoAssignHead(**kw) if head_name == "AutoAssignHead" else DWHead(**kw)
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
