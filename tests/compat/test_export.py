"""compat.export: ppdet's NMS replaced only where it cannot be traced under PIR; input-spec pruning."""
import paddle

import ppassign  # noqa: F401  (installs the shims)
from ppassign.compat import export


def test_nms_probe_accepts_the_c_op_nms():
    assert export.nms_builds_a_static_program(export._multiclass_nms3)


def test_nms_probe_rejects_an_nms_that_cannot_be_traced():
    def legacy(bboxes, scores, **kwargs):
        if not paddle.in_dynamic_mode():
            raise TypeError("legacy LayerHelper op outside dygraph")
        return export._multiclass_nms3(bboxes, scores, **kwargs)
    assert not export.nms_builds_a_static_program(legacy)


def test_installed_nms_traces_after_apply():
    from ppdet.modeling import ops
    assert export.nms_builds_a_static_program(ops.multiclass_nms)


def test_prune_keeps_ppdet_pruning_for_legacy_programs():
    calls = []

    class LegacyProgram:
        def _prune(self, targets):
            return self
    ppdet_prune = export._PPDET_PRUNE_INPUT_SPEC[0]
    export._PPDET_PRUNE_INPUT_SPEC[0] = lambda spec, program, targets: calls.append(program) or spec
    try:
        program = LegacyProgram()
        assert export._prune_input_spec_any_ir([{"image": 1}], program, []) == [{"image": 1}]
    finally:
        export._PPDET_PRUNE_INPUT_SPEC[0] = ppdet_prune
    assert calls == [program]
