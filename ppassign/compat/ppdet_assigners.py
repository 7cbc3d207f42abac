"""ppdet's own ATSSAssigner / TaskAlignedAssigner: what the installed ppdet's versions return, and what they need.

Decided by running them once on a one-image problem (a few milliseconds at import), never from a version string:
a PaddleDetection source install reports version "0.0.0" or none at all (docs/platform.md).

Seen: paddledet 2.6.0 returns 4 values (labels, bboxes, scores, mask_positive) and its heads (PPYOLOEHead,
PicoHeadV2, TOODHead) unpack 4, except that a batch without any ground truth gets 3; PaddleDetection v2.7.0 and
develop return 3 and their heads unpack 3. paddledet 2.6.0 and v2.7.0 fail on Paddle 3 with int32 labels
(``assigned_gt_index + batch_ind * num_max_boxes`` mixes argmax's int64 with the label dtype); develop casts.
"""
from typing import NamedTuple

import paddle

from . import quiet
from .applied import once

NUM_ANCHORS = 4     # one level of 4 anchors: enough for topk=2 and one ground-truth box
NUM_CLASSES = 2


class AssignerBehaviour(NamedTuple):
    """What one ppdet assigner class does on Paddle 3."""
    num_outputs: int            # values returned for a batch with ground truth
    num_outputs_empty: int      # values returned for a batch whose images have no ground truth at all
    needs_int64_labels: bool    # int32 labels (ppdet's reader dtype) raise

    @property
    def needs_fix(self):
        return self.needs_int64_labels or self.num_outputs != self.num_outputs_empty


def _problem(num_gt, label_dtype):
    """One image, 4 anchors along x, `num_gt` ground-truth boxes covering the first two."""
    anchors = paddle.to_tensor([[0., 0., 8., 8.], [8., 0., 16., 8.], [16., 0., 24., 8.], [24., 0., 32., 8.]])
    gt_bboxes = paddle.to_tensor([[[0., 0., 16., 8.]] * num_gt], "float32").reshape([1, num_gt, 4])
    gt_labels = paddle.ones([1, num_gt, 1], label_dtype)
    pad_gt_mask = paddle.ones([1, num_gt, 1], "float32")
    return anchors, gt_labels, gt_bboxes, pad_gt_mask


def _call_atss(forward, num_gt, label_dtype):
    from ppdet.modeling.assigners.atss_assigner import ATSSAssigner
    anchors, gt_labels, gt_bboxes, pad_gt_mask = _problem(num_gt, label_dtype)
    return forward(ATSSAssigner(topk=2, num_classes=NUM_CLASSES), anchors, [NUM_ANCHORS], gt_labels, gt_bboxes,
                   pad_gt_mask, NUM_CLASSES)


def _call_tal(forward, num_gt, label_dtype):
    from ppdet.modeling.assigners.task_aligned_assigner import TaskAlignedAssigner
    anchors, gt_labels, gt_bboxes, pad_gt_mask = _problem(num_gt, label_dtype)
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    pred_scores = paddle.full([1, NUM_ANCHORS, NUM_CLASSES], 0.5)
    return forward(TaskAlignedAssigner(topk=2), pred_scores, anchors.unsqueeze(0), centres, [NUM_ANCHORS],
                   gt_labels, gt_bboxes, pad_gt_mask, NUM_CLASSES)


def probe(call, forward):
    """AssignerBehaviour of an assigner `forward`, run through `call(forward, num_gt, label_dtype)`."""
    try:
        # Paddle warns (once per operator and process) before it raises: the probe's own noise, dropped
        with quiet.without_native_stderr_lines((quiet.TYPE_PROMOTION,)):
            num_outputs = len(call(forward, 1, "int32"))
        needs_int64 = False
    except Exception:  # Paddle 3's type-promotion error (its class differs between Paddle versions)
        needs_int64 = True
        try:
            num_outputs = len(call(forward, 1, "int64"))
        except Exception as e:
            raise RuntimeError(f"ppassign.compat: ppdet's {forward.__qualname__} fails on a one-box problem even "
                               f"with int64 labels: {type(e).__name__}: {e}") from e
    num_outputs_empty = len(call(forward, 0, "int64"))
    return AssignerBehaviour(num_outputs, num_outputs_empty, needs_int64)


def behaviours():
    """{'ATSSAssigner': AssignerBehaviour, 'TaskAlignedAssigner': AssignerBehaviour} of the installed ppdet."""
    from ppdet.modeling.assigners.atss_assigner import ATSSAssigner
    from ppdet.modeling.assigners.task_aligned_assigner import TaskAlignedAssigner
    with paddle.no_grad():
        return {"ATSSAssigner": probe(_call_atss, getattr(ATSSAssigner.forward, "__wrapped__", ATSSAssigner.forward)),
                "TaskAlignedAssigner": probe(_call_tal, getattr(TaskAlignedAssigner.forward, "__wrapped__",
                                                                TaskAlignedAssigner.forward))}


BEHAVIOURS = behaviours()

# The heads of the installed ppdet unpack as many values as its own assigners return for a batch with ground
# truth (4 in paddledet 2.6.0, 3 in PaddleDetection 2.7+); ppassign's assigners return the same number.
ASSIGNER_RETURNS_MASK_POSITIVE = BEHAVIOURS["TaskAlignedAssigner"].num_outputs == 4
if BEHAVIOURS["ATSSAssigner"].num_outputs != BEHAVIOURS["TaskAlignedAssigner"].num_outputs:
    raise RuntimeError(f"ppassign.compat: ppdet's ATSSAssigner and TaskAlignedAssigner return different numbers of "
                       f"values ({BEHAVIOURS}); ppassign supports ppdets where they agree")


def _fixed_assigner_forward(forward, label_arg, behaviour):
    """Wrap ppdet's ATSSAssigner/TaskAlignedAssigner.forward with the fixes `behaviour` says it needs.

    needs_int64_labels: feed int64 labels (the same arithmetic as casting the one failing line) and cast the
    assigned labels back to the caller's dtype on the way out.
    num_outputs 4 but 3 without ground truth: append the empty mask_positive [B, 0, L], so that the number of
    values does not depend on the input.
    """
    pad_empty = behaviour.num_outputs == 4 and behaviour.num_outputs_empty == 3

    def wrapped(self, *args, **kwargs):
        labels = None
        if behaviour.needs_int64_labels:
            args = list(args)
            if label_arg < len(args):
                labels = args[label_arg]
                args[label_arg] = labels.astype("int64")
            else:
                labels = kwargs["gt_labels"]
                kwargs["gt_labels"] = labels.astype("int64")
        out = list(forward(self, *args, **kwargs))
        if labels is not None:
            out[0] = out[0].astype(labels.dtype)
        if pad_empty and len(out) == 3:
            batch, num_anchors = out[0].shape
            out.append(paddle.zeros([batch, 0, num_anchors], out[1].dtype))
        return tuple(out)
    wrapped.__wrapped__ = forward
    return wrapped


def fix_ppdet_assigners():
    """Make the installed ppdet's own ATSSAssigner and TaskAlignedAssigner run on Paddle 3 with a fixed arity;
    a class that needs nothing is left as it is."""
    if not once("ppdet_assigners"):
        return
    from ppdet.modeling.assigners.atss_assigner import ATSSAssigner
    from ppdet.modeling.assigners.task_aligned_assigner import TaskAlignedAssigner
    # gt_labels is the 3rd positional argument of ATSS.forward and the 5th of TAL.forward (after self).
    for cls, label_arg in ((ATSSAssigner, 2), (TaskAlignedAssigner, 4)):
        behaviour = BEHAVIOURS[cls.__name__]
        if behaviour.needs_fix:
            cls.forward = _fixed_assigner_forward(cls.forward, label_arg, behaviour)


def match_ppdet_outputs(classes):
    """Make each of ppassign's dense assigner `classes` return as many values as the installed ppdet's heads
    unpack (its ``return_mask_positive`` class default; an instance's own argument still wins)."""
    for cls in classes:
        cls.return_mask_positive = ASSIGNER_RETURNS_MASK_POSITIVE
