"""Every version / platform shim ppassign applies, in one place.

paddledet 2.6.0 (the newest PaddleDetection wheel) predates Paddle 3. The paths users hit that break on
Paddle 3.x are listed in ../shared/PLATFORM.md; each shim below names the failure it fixes. Nothing outside
this module patches Paddle or ppdet.

`apply()` is called once by ``import ppassign``; it is idempotent.
"""
import inspect
import logging
import os

import paddle
import ppdet

logger = logging.getLogger("ppassign")


def _version_tuple(text):
    out = []
    for part in str(text).split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits) if digits else 0)
    return tuple(out)


PADDLE_VERSION = _version_tuple(paddle.__version__)
PPDET_VERSION = _version_tuple(getattr(ppdet, "__version__", "2.6.0"))

# PLATFORM.md #2: ppdet 2.6.x heads (PPYOLOEHead, PicoHeadV2, TOODHead) unpack four values from an assigner
# (labels, bboxes, scores, mask_positive); PaddleDetection 2.7+ heads unpack three.
ASSIGNER_RETURNS_MASK_POSITIVE = PPDET_VERSION < (2, 7, 0)

_APPLIED = set()


def _once(name):
    """True the first time `name` is seen; shims use it to stay idempotent."""
    if name in _APPLIED:
        return False
    _APPLIED.add(name)
    return True


# --- ppdet's own assigners ---------------------------------------------------------------------------------

def _fixed_assigner_forward(forward, label_arg):
    """Wrap ppdet's ATSSAssigner/TaskAlignedAssigner.forward.

    PLATFORM.md #1: `assigned_gt_index + batch_ind * num_max_boxes` mixes argmax's int64 with the int32 label
    dtype and Paddle 3 refuses the promotion. Feeding int64 labels is the same arithmetic as casting that one
    line; the labels are cast back to the caller's dtype on the way out.
    PLATFORM.md #2: for num_max_boxes == 0 they return 3 values while ppdet 2.6 heads unpack 4; add the empty
    mask_positive [B, 0, L] so the arity does not depend on the input.
    """
    def wrapped(self, *args, **kwargs):
        args = list(args)
        if label_arg < len(args):
            labels = args[label_arg]
            args[label_arg] = labels.astype("int64")
        else:
            labels = kwargs["gt_labels"]
            kwargs["gt_labels"] = labels.astype("int64")
        out = list(forward(self, *args, **kwargs))
        out[0] = out[0].astype(labels.dtype)
        if len(out) == 3 and ASSIGNER_RETURNS_MASK_POSITIVE:
            batch, num_anchors = out[0].shape
            out.append(paddle.zeros([batch, 0, num_anchors], out[1].dtype))
        return tuple(out)
    wrapped.__wrapped__ = forward
    return wrapped


def fix_ppdet_assigners():
    """Make ppdet 2.6's own ATSSAssigner and TaskAlignedAssigner run on Paddle 3 (see _fixed_assigner_forward)."""
    if not _once("ppdet_assigners"):
        return
    from ppdet.modeling.assigners.atss_assigner import ATSSAssigner
    from ppdet.modeling.assigners.task_aligned_assigner import TaskAlignedAssigner
    # gt_labels is the 3rd positional argument of ATSS.forward and the 5th of TAL.forward (after self).
    ATSSAssigner.forward = _fixed_assigner_forward(ATSSAssigner.forward, 2)
    TaskAlignedAssigner.forward = _fixed_assigner_forward(TaskAlignedAssigner.forward, 4)


# --- TOODHEAD: ppdet 2.6 TOODHead and PicoHeadV2 training on Paddle 3 -------------------------------------

def _tood_reg_grid_sample(self, feat, offset, anchor_points):
    """TOODHead._reg_grid_sample that runs on Paddle 3: sample each box side map at its offset location.

    PLATFORM.md #3: ppdet builds the grid normaliser with ``paddle.concat([w, h])`` of two 0-D shape values;
    Paddle 3 refuses to concatenate 0-D tensors (``The axis is expected to be in range of [0, 0)``), so
    TOOD cannot run a single forward pass. ``paddle.stack`` of the same values gives the [2] (x, y) normaliser,
    in dygraph and under to_static alike.

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


def _pico_get_loss_with_min_avg_factor(get_loss):
    """Wrap PicoHeadV2.get_loss so that its loss normaliser is at least 1, as on several cards.

    PicoHeadV2 divides its three losses by ``avg_factor = assigned_scores.sum()`` and clips it to >= 1 only
    when ``world_size > 1``. On one card or CPU, a batch without positives (no ground truth at all, or GTs no
    anchor can take) gives avg_factor == 0: loss_vfl = inf, loss_bbox = loss_dfl = 0 / 0 = NaN, and the NaN
    gradient ruins every weight (seen: the next batch's pred_scores are NaN). The wrapper clips avg_factor in
    place just before the class loss uses it, so the two divisions that follow use the clipped tensor too.
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


def fix_tood_and_pico_heads():
    """Make ppdet's TOODHead train on Paddle 3; make PicoDet survive batches without positives and rebuilds."""
    if not _once("tood_and_pico_heads"):
        return
    from ppdet.modeling.heads.pico_head import PicoHeadV2
    from ppdet.modeling.heads.tood_head import TOODHead
    from ppdet.modeling.necks.lc_pan import LCPAN
    TOODHead._reg_grid_sample = _tood_reg_grid_sample
    PicoHeadV2.get_loss = _pico_get_loss_with_min_avg_factor(PicoHeadV2.get_loss)
    LCPAN.__init__ = _lcpan_init_with_own_scales(LCPAN.__init__)

# --- EXPORT / INFERENCE / TRAINER: ppdet 2.6 export and Paddle Inference on Paddle 3 (PIR) ----------------

def _multiclass_nms3(bboxes, scores, score_threshold, nms_top_k, keep_top_k, nms_threshold=0.3,
                     normalized=True, nms_eta=1., background_label=-1, return_index=False, return_rois_num=True,
                     rois_num=None, name=None):
    """ppdet.modeling.ops.multiclass_nms through ``paddle._C_ops.multiclass_nms3`` (same signature and returns).

    PLATFORM.md #4: ppdet's version appends a legacy ``LayerHelper`` op outside dygraph, which the new IR (PIR,
    the default program format of Paddle 3) rejects, so no detector with MultiClassNMS can be exported. The
    C++ op call works in dygraph and under to_static alike.

    Args:
        bboxes (Tensor[N, M, 4]): boxes per image (or [M, C, 4] with `rois_num`).
        scores (Tensor[N, C, M]): class scores (or [M, C] with `rois_num`).
    Returns:
        out (Tensor[K, 6]): [class, score, x1, y1, x2, y2] rows of all images;
        nms_rois_num (Tensor[N] int32 | None): boxes per image; index (Tensor[K, 1] | None).
    """
    out, index, nms_rois_num = paddle._C_ops.multiclass_nms3(
        bboxes, scores, rois_num, score_threshold, nms_top_k, keep_top_k, nms_threshold, normalized, nms_eta,
        background_label)
    return out, (nms_rois_num if return_rois_num else None), (index if return_index else None)


def _used_inputs_pir(input_spec, program):
    """input_spec [{name: InputSpec}] restricted to the feeds that some op of the PIR `program` reads.

    PLATFORM.md #4: a PIR program refuses a feed that nothing uses (e.g. ``im_shape`` for PP-YOLOE); ppdet's
    ``_prune_input_spec`` needs the legacy ``Program._prune``, which PIR programs do not have.
    """
    used = set()
    for op in program.global_block().ops:
        if op.name() == "pd_op.data" and not op.result(0).use_empty():
            used.add(op.attrs()["name"])
    return [{name: spec for name, spec in input_spec[0].items() if name in used}]


def _prune_input_spec_any_ir(input_spec, program, targets):
    """ppdet.engine.export_utils._prune_input_spec that also accepts PIR programs (see `_used_inputs_pir`)."""
    if hasattr(program, "_prune"):  # legacy ProgramDesc: ppdet's own pruning
        return _PPDET_PRUNE_INPUT_SPEC[0](input_spec, program, targets)
    return _used_inputs_pir(input_spec, program)


_PPDET_PRUNE_INPUT_SPEC = []


def _full_graph_export(get_infer_cfg_and_input_spec):
    """Wrap Trainer._get_infer_cfg_and_input_spec so that its ``paddle.jit.to_static`` builds a full graph.

    PLATFORM.md #4: Paddle 3's to_static defaults to SOT (``full_graph=False``), whose function has no
    ``main_program``; ppdet reads it to prune the input spec and fails with
    ``Can't call main_program when full_graph=False``. ``full_graph=True`` is set only for this call.
    """
    def wrapped(self, *args, **kwargs):
        plain_to_static = paddle.jit.to_static

        def to_static(function=None, input_spec=None, build_strategy=None, backend=None, **rest):
            rest.setdefault("full_graph", True)
            return plain_to_static(function, input_spec=input_spec, build_strategy=build_strategy,
                                   backend=backend, **rest)

        paddle.jit.to_static = to_static
        try:
            return get_infer_cfg_and_input_spec(self, *args, **kwargs)
        finally:
            paddle.jit.to_static = plain_to_static
    wrapped.__wrapped__ = get_infer_cfg_and_input_spec
    return wrapped


def fix_export():
    """Make ppdet's Trainer.export / MultiClassNMS work under Paddle 3's new IR (PLATFORM.md #4)."""
    if not _once("export"):
        return
    from ppdet.engine import trainer
    from ppdet.modeling import ops
    ops.multiclass_nms = _multiclass_nms3
    _PPDET_PRUNE_INPUT_SPEC.append(trainer._prune_input_spec)
    trainer._prune_input_spec = _prune_input_spec_any_ir
    trainer.Trainer._get_infer_cfg_and_input_spec = _full_graph_export(
        trainer.Trainer._get_infer_cfg_and_input_spec)


# File names of an exported model: PIR programs are saved as .json, legacy ones as .pdmodel.
INFERENCE_PROGRAM_FILES = ("model.json", "model.pdmodel")
INFERENCE_PARAMS_FILE = "model.pdiparams"


def inference_config(model_dir, cpu_threads=None):
    """paddle.inference.Config for an exported model folder, set up to run on this platform.

    PLATFORM.md #5: on CPU the oneDNN (MKLDNN) path fails on PIR models
    (``ConvertPirAttribute2RuntimeAttribute not support [pir::ArrayAttribute<pir::DoubleAttribute>]``), so
    oneDNN is disabled; on a CUDA build the GPU is used. ``enable_memory_optim()`` is left off: on a PIR model
    it makes create_predictor fail (``Not find predictor_id 0 and pass_name memory_optimize_pass``, seen on
    Paddle 3.3.1).

    Raises FileNotFoundError naming the folder when it holds no program or no parameters file.
    """
    program = next((os.path.join(model_dir, f) for f in INFERENCE_PROGRAM_FILES
                    if os.path.isfile(os.path.join(model_dir, f))), None)
    params = os.path.join(model_dir, INFERENCE_PARAMS_FILE)
    if program is None or not os.path.isfile(params):
        raise FileNotFoundError(f"model_dir {model_dir!r} must hold one of {list(INFERENCE_PROGRAM_FILES)} "
                                f"and {INFERENCE_PARAMS_FILE}")
    config = paddle.inference.Config(program, params)
    config.disable_glog_info()
    if paddle.device.is_compiled_with_cuda():
        config.enable_use_gpu(200, 0)
    else:
        config.disable_gpu()
        config.disable_mkldnn()
        if cpu_threads:
            config.set_cpu_math_library_num_threads(int(cpu_threads))
    return config


def apply():
    """Apply every shim (idempotent). Called by ``import ppassign``."""
    fix_ppdet_assigners()
    fix_tood_and_pico_heads()
    fix_export()
    return sorted(_APPLIED)
