"""compat.ppdet_heads: TOOD's grid sample, PicoHeadV2's loss without positives and LCPAN's scales, fixed only
where the installed ppdet fails."""
import inspect

import numpy as np
import paddle
import pytest
from ppdet.core.workspace import create, load_config
from ppdet.modeling.heads.pico_head import PicoHeadV2
from ppdet.modeling.heads.tood_head import TOODHead

import ppassign  # noqa: F401  (installs the shims)
from ppassign import compat
from ppassign.compat import ppdet_heads
from ppdet_tiny import TINY, fresh_ppdet_config, tiny_batch


def test_tood_probe_tells_a_failing_grid_sample_from_a_working_one():
    def failing(self, feat, offset, anchor_points):
        raise ValueError("(InvalidArgument) The axis is expected to be in range of [0, 0)")
    assert ppdet_heads.tood_grid_sample_fails(failing)
    assert not ppdet_heads.tood_grid_sample_fails(ppdet_heads._tood_reg_grid_sample)


def test_installed_tood_grid_sample_runs_on_paddle_3():
    from ppdet.modeling.heads.tood_head import TOODHead
    assert not ppdet_heads.tood_grid_sample_fails(TOODHead._reg_grid_sample)


class _GrowingNeck:
    """Like ppdet's LCPAN: appends to its default list argument."""

    def __init__(self, in_channels, out_channels, num_features=3,
                 spatial_scales=[0.125, 0.0625, 0.03125]):  # noqa: B006  (the point of this class)
        if num_features == 4:
            spatial_scales.append(spatial_scales[-1] / 2)


class _CopyingNeck:
    def __init__(self, in_channels, out_channels, num_features=3, spatial_scales=(0.125, 0.0625, 0.03125)):
        self.spatial_scales = list(spatial_scales) + ([0.015625] if num_features == 4 else [])


def test_lcpan_probe_finds_a_growing_default_and_restores_it():
    default = inspect.signature(_GrowingNeck.__init__).parameters["spatial_scales"].default
    assert ppdet_heads.lcpan_grows_its_default_scales(_GrowingNeck)
    assert default == [0.125, 0.0625, 0.03125]
    assert not ppdet_heads.lcpan_grows_its_default_scales(_CopyingNeck)


def test_installed_lcpan_builds_alike_twice():
    from ppdet.modeling.necks.lc_pan import LCPAN
    first = LCPAN(in_channels=[8, 8, 8], out_channels=8, num_features=4)
    second = LCPAN(in_channels=[8, 8, 8], out_channels=8, num_features=4)
    assert len(first.in_channels) == len(second.in_channels) == 3
    assert first.spatial_scales == second.spatial_scales


def test_fixes_are_recorded_only_when_installed():
    from ppdet.modeling.heads.tood_head import TOODHead
    installed = TOODHead._reg_grid_sample is ppdet_heads._tood_reg_grid_sample
    assert installed == ("tood_reg_grid_sample" in ppassign.compat.apply())


def test_tood_grid_sample_reads_x_from_width_and_y_from_height():
    """Zero offsets on a 3 x 5 map sample each side map at its anchor centre (align_corners=True grid)."""
    height, width = 3, 5
    columns = paddle.arange(width, dtype="float32").reshape([1, 1, 1, width]).expand([1, 4, height, width])
    rows = paddle.arange(height, dtype="float32").reshape([1, 1, height, 1]).expand([1, 4, height, width])
    ys, xs = paddle.meshgrid(paddle.arange(height, dtype="float32") + 0.5,
                             paddle.arange(width, dtype="float32") + 0.5)
    anchors = paddle.stack([xs, ys], axis=-1).unsqueeze(0)                         # [1, h, w, 2]
    offset = paddle.zeros([1, 8, height, width])
    sampled_x = compat._tood_reg_grid_sample(None, columns, offset, anchors).numpy()
    sampled_y = compat._tood_reg_grid_sample(None, rows, offset, anchors).numpy()
    expect_x = (np.arange(width) + 0.5) / width * (width - 1)
    expect_y = (np.arange(height) + 0.5) / height * (height - 1)
    np.testing.assert_allclose(sampled_x, np.broadcast_to(expect_x, [1, 4, height, width]), atol=1e-5)
    np.testing.assert_allclose(sampled_y, np.broadcast_to(expect_y[:, None], [1, 4, height, width]), atol=1e-5)


def test_tood_grid_sample_shifts_by_the_offset():
    """An x offset of +1 (stride units) reads the next column's value, scaled by the grid's (w-1)/w."""
    height, width = 2, 4
    columns = paddle.arange(width, dtype="float32").reshape([1, 1, 1, width]).expand([2, 4, height, width])
    ys, xs = paddle.meshgrid(paddle.arange(height, dtype="float32") + 0.5,
                             paddle.arange(width, dtype="float32") + 0.5)
    anchors = paddle.stack([xs, ys], axis=-1).unsqueeze(0)
    zero = compat._tood_reg_grid_sample(None, columns, paddle.zeros([2, 8, height, width]), anchors).numpy()
    offset = paddle.zeros([2, 4, 2, height, width])
    offset[:, :, 0] = 1.0
    shifted = compat._tood_reg_grid_sample(None, columns, offset.reshape([2, 8, height, width]), anchors).numpy()
    step = (width - 1) / width
    np.testing.assert_allclose(shifted[..., :-1] - zero[..., :-1], step, atol=1e-5)


class _FakePicoHead(paddle.nn.Layer):
    """Just what the PicoHeadV2 loss shim touches: a `loss_vfl` sublayer."""

    def __init__(self):
        super().__init__()
        self.loss_vfl = create("VarifocalLoss")


def _loss_with_avg_factor(value):
    """Run the shim around a get_loss that, like PicoHeadV2's, divides the class loss and a box loss by one
    avg_factor tensor; returns (avg_factor after the call, class loss, box loss)."""
    def get_loss(self, head_outs, gt_meta):
        avg_factor = paddle.to_tensor(value)
        loss_vfl = self.loss_vfl(paddle.full([4, 2], 0.5), paddle.zeros([4, 2]), avg_factor=avg_factor)
        return float(avg_factor), float(loss_vfl), float(paddle.to_tensor(2.0) / avg_factor)
    return compat._pico_get_loss_with_min_avg_factor(get_loss)(_FakePicoHead(), None, None)


def test_pico_loss_shim_clips_a_zero_avg_factor_to_one_for_every_division():
    avg_factor, loss_vfl, loss_box = _loss_with_avg_factor(0.0)
    assert avg_factor == 1.0 and loss_box == 2.0
    _, unclipped, _ = _loss_with_avg_factor(1.0)
    assert np.isfinite(loss_vfl) and loss_vfl == pytest.approx(unclipped)


def test_pico_loss_shim_keeps_an_avg_factor_above_one():
    avg_factor, loss_vfl, loss_box = _loss_with_avg_factor(2.5)
    assert avg_factor == 2.5 and loss_box == pytest.approx(0.8)
    _, at_one, _ = _loss_with_avg_factor(1.0)
    assert loss_vfl == pytest.approx(at_one / 2.5)


def test_pico_loss_shim_restores_the_loss_layer():
    head = _FakePicoHead()
    compat._pico_get_loss_with_min_avg_factor(lambda self, *_: None)(head, None, None)
    assert "forward" not in vars(head.loss_vfl)


def test_pico_loss_without_positives_is_finite_and_has_no_box_terms():
    paddle.seed(0)
    with fresh_ppdet_config():
        cfg = load_config(TINY["picodet"])
        model = create(cfg.architecture)
    model.train()
    losses = model(dict(tiny_batch(0, real=0), epoch_id=0))
    assert np.isfinite(float(losses["loss_vfl"])) and float(losses["loss_vfl"]) > 0
    assert float(losses["loss_bbox"].sum()) == 0.0
    assert float(losses["loss_dfl"].sum()) == 0.0


def test_shims_are_idempotent():
    before = (TOODHead._reg_grid_sample, PicoHeadV2.get_loss)
    compat.apply()
    compat.fix_tood_and_pico_heads()
    assert (TOODHead._reg_grid_sample, PicoHeadV2.get_loss) == before
    assert PicoHeadV2.get_loss.__wrapped__.__module__ == "ppdet.modeling.heads.pico_head"
