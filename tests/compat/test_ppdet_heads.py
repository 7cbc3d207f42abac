"""compat.ppdet_heads: TOOD's grid sample and LCPAN's scales, fixed only where the installed ppdet fails."""
import inspect

import ppassign  # noqa: F401  (installs the shims)
from ppassign.compat import ppdet_heads


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
