"""ppdet's TOODHead, PicoHeadV2 and LCPAN (PicoDet's neck): fixes for Paddle 3 and for one-card training.

Each fix is installed only where the installed ppdet shows the fault (`fix_tood_and_pico_heads`).
"""
import inspect

import paddle

from .applied import APPLIED, once


def _tood_reg_grid_sample(self, feat, offset, anchor_points):
    """TOODHead._reg_grid_sample that runs on Paddle 3: sample each box side map at its offset location.

    ppdet (2.6.0, v2.7.0 and develop alike) builds the grid normaliser with ``paddle.concat([w, h])`` of shape
    values that are 0-D on Paddle 3, which refuses to concatenate 0-D tensors (``The axis is expected to be in
    range of [0, 0)``), so TOOD cannot run a single forward pass. ``paddle.stack`` of the same values gives the
    [2] (x, y) normaliser, in dygraph and under to_static alike.

    Args:
        feat (Tensor[B, 4, h, w]): box sides (ltrb, in stride units) per location.
        offset (Tensor[B, 8, h, w]): (x, y) sampling offset of each of the 4 sides.
        anchor_points (Tensor[1, h, w, 2]): anchor centres in stride units.
    Returns:
        Tensor[B, 4, h, w].
    """
    shape = paddle.shape(feat)
    batch, height, width = shape[0], shape[2], shape[3]
    feat = paddle.reshape(feat, [-1, 1, height, width])                                  # [4B, 1, h, w]
    offset = paddle.reshape(offset, [-1, 2, height, width]).transpose([0, 2, 3, 1])      # [4B, h, w, 2]
    grid_size = paddle.stack([width, height]).astype("float32")                          # [2]
    grid = ((offset + anchor_points) / grid_size).clip(0.0, 1.0) * 2 - 1                 # to [-1, 1]
    feat = paddle.nn.functional.grid_sample(feat, grid)
    return paddle.reshape(feat, [batch, -1, height, width])


def tood_grid_sample_fails(reg_grid_sample):
    """True when `reg_grid_sample` (TOODHead._reg_grid_sample) raises on a [1, 4, 2, 3] map."""
    feat, offset = paddle.zeros([1, 4, 2, 3]), paddle.zeros([1, 8, 2, 3])
    anchor_points = paddle.zeros([1, 2, 3, 2])
    try:
        with paddle.no_grad():
            reg_grid_sample(None, feat, offset, anchor_points)
    except Exception:
        return True
    return False


def _pico_get_loss_with_min_avg_factor(get_loss):
    """Wrap PicoHeadV2.get_loss so that its loss normaliser is at least 1, as on several cards.

    PicoHeadV2 divides its three losses by ``avg_factor = assigned_scores.sum()`` and clips it to >= 1 only
    when ``world_size > 1``. On one card or CPU, a batch without positives (no ground truth at all, or GTs no
    anchor can take) gives avg_factor == 0: loss_vfl = inf, loss_bbox = loss_dfl = 0 / 0 = NaN, and the NaN
    gradient ruins every weight (seen: the next batch's pred_scores are NaN). The wrapper clips avg_factor in
    place just before the class loss uses it, so the two divisions that follow use the clipped tensor too.
    It changes nothing when avg_factor >= 1, so it is installed on every ppdet (2.6.0, v2.7.0 and develop all
    clip only on several cards).
    """
    def wrapped(self, head_outs, gt_meta):
        loss_layer = self._sub_layers["loss_vfl"]
        plain_forward = type(loss_layer).forward

        def forward(*args, avg_factor=None, **kwargs):
            if isinstance(avg_factor, paddle.Tensor):
                avg_factor.clip_(min=1.0)    # avg_factor is built from assigner outputs: no gradient flows
            return plain_forward(loss_layer, *args, avg_factor=avg_factor, **kwargs)

        loss_layer.forward = forward
        try:
            return get_loss(self, head_outs, gt_meta)
        finally:
            del loss_layer.forward
    wrapped.__wrapped__ = get_loss
    return wrapped


def _lcpan_init_with_own_scales(init):
    """Wrap LCPAN.__init__ (PicoDet's neck) so that it appends to a copy of `spatial_scales`.

    With ``num_features: 4`` (every PicoDet LCNet config), LCPAN.__init__ appends the extra level's scale to
    its `spatial_scales` argument, whose default list is shared by every call (and is what ppdet's workspace
    passes). The second PicoDet built in one process then gets 4 input channels for 3 backbone outputs and
    fails in LCPAN.forward (``assert len(inputs) == len(self.in_channels)``): seen when a test suite, or an
    export after training in the same script, builds the model twice.
    """
    signature = inspect.signature(init)

    def wrapped(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        bound.arguments["spatial_scales"] = list(bound.arguments["spatial_scales"])
        return init(*bound.args, **bound.kwargs)
    wrapped.__wrapped__ = init
    return wrapped


def lcpan_grows_its_default_scales(lcpan_cls):
    """True when building an LCPAN with 4 features appends to the default `spatial_scales` list (restored after)."""
    default = inspect.signature(lcpan_cls.__init__).parameters["spatial_scales"].default
    if not isinstance(default, list):
        return False
    before = list(default)
    try:
        lcpan_cls(in_channels=[4, 4, 4], out_channels=4, num_features=4)
        return len(default) != len(before)
    finally:
        default[:] = before


def fix_tood_and_pico_heads():
    """Make ppdet's TOODHead train on Paddle 3; make PicoDet survive batches without positives and rebuilds."""
    if not once("tood_and_pico_heads"):
        return
    from ppdet.modeling.heads.pico_head import PicoHeadV2
    from ppdet.modeling.heads.tood_head import TOODHead
    from ppdet.modeling.necks.lc_pan import LCPAN
    if tood_grid_sample_fails(TOODHead._reg_grid_sample):
        TOODHead._reg_grid_sample = _tood_reg_grid_sample
        APPLIED.add("tood_reg_grid_sample")
    PicoHeadV2.get_loss = _pico_get_loss_with_min_avg_factor(PicoHeadV2.get_loss)
    if lcpan_grows_its_default_scales(LCPAN):
        LCPAN.__init__ = _lcpan_init_with_own_scales(LCPAN.__init__)
        APPLIED.add("lcpan_own_scales")
