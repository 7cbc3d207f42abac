"""Export with ppdet's Trainer.export and run the result with Paddle Inference, on Paddle 3's new IR (PIR).

Each part of `fix_export` acts only where the installed ppdet needs it.
"""
import os

import paddle

from .applied import APPLIED, once


def _multiclass_nms3(bboxes, scores, score_threshold, nms_top_k, keep_top_k, nms_threshold=0.3,
                     normalized=True, nms_eta=1., background_label=-1, return_index=False, return_rois_num=True,
                     rois_num=None, name=None):
    """ppdet.modeling.ops.multiclass_nms through ``paddle._C_ops.multiclass_nms3`` (same signature and returns).

    paddledet 2.6.0 and v2.7.0 append a legacy ``LayerHelper`` op outside dygraph, which PIR (the default
    program format of Paddle 3) rejects, so no detector with MultiClassNMS can be exported. The C++ op call
    works in dygraph and under to_static alike.

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


def nms_builds_a_static_program(multiclass_nms):
    """True when `multiclass_nms` (ppdet.modeling.ops.multiclass_nms) can be traced by ``to_static(full_graph)``."""
    from paddle.static import InputSpec

    def detect(bboxes, scores):
        return multiclass_nms(bboxes, scores, score_threshold=0.1, nms_top_k=4, keep_top_k=4)[0]

    static = paddle.jit.to_static(detect, input_spec=[InputSpec([1, 4, 4], "float32"),
                                                      InputSpec([1, 2, 4], "float32")], full_graph=True)
    try:
        static.concrete_program  # noqa: B018  (builds the program)
    except Exception:
        return False
    return True


def _used_inputs_pir(input_spec, program):
    """input_spec [{name: InputSpec}] restricted to the feeds that some op of the PIR `program` reads.

    A PIR program refuses a feed that nothing uses (e.g. ``im_shape`` for PP-YOLOE).
    """
    used = set()
    for op in program.global_block().ops:
        if op.name() == "pd_op.data" and not op.result(0).use_empty():
            used.add(op.attrs()["name"])
    return [{name: spec for name, spec in input_spec[0].items() if name in used}]


_PPDET_PRUNE_INPUT_SPEC = []


def _prune_input_spec_any_ir(input_spec, program, targets):
    """ppdet.engine.export_utils._prune_input_spec that also accepts PIR programs.

    ppdet's version (every release) first calls the legacy ``Program._prune``, which PIR programs do not have;
    a legacy program still goes through ppdet's own pruning.
    """
    if hasattr(program, "_prune"):
        return _PPDET_PRUNE_INPUT_SPEC[0](input_spec, program, targets)
    return _used_inputs_pir(input_spec, program)


def _full_graph_export(get_infer_cfg_and_input_spec):
    """Wrap Trainer._get_infer_cfg_and_input_spec so that its ``paddle.jit.to_static`` builds a full graph.

    Paddle 3's to_static defaults to SOT (``full_graph=False``), whose function has no ``main_program``;
    paddledet 2.6.0 reads it to prune the input spec and fails with ``Can't call main_program when
    full_graph=False``. ``full_graph=True`` is a default for this call only: a ppdet that passes it (develop)
    is unchanged.
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
    """Make ppdet's Trainer.export and MultiClassNMS work under Paddle 3's new IR (see each helper)."""
    if not once("export"):
        return
    from ppdet.engine import trainer
    from ppdet.modeling import ops
    if not nms_builds_a_static_program(ops.multiclass_nms):
        ops.multiclass_nms = _multiclass_nms3
        APPLIED.add("multiclass_nms3")
    _PPDET_PRUNE_INPUT_SPEC.append(trainer._prune_input_spec)
    trainer._prune_input_spec = _prune_input_spec_any_ir
    trainer.Trainer._get_infer_cfg_and_input_spec = _full_graph_export(
        trainer.Trainer._get_infer_cfg_and_input_spec)


# File names of an exported model: PIR programs are saved as .json, legacy ones as .pdmodel.
INFERENCE_PROGRAM_FILES = ("model.json", "model.pdmodel")
INFERENCE_PARAMS_FILE = "model.pdiparams"


def inference_config(model_dir, cpu_threads=None):
    """paddle.inference.Config for an exported model folder, set up to run on this platform.

    On CPU the oneDNN (MKLDNN) path fails on PIR models
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
