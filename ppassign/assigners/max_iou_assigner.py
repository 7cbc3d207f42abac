"""Max-IoU assignment (Faster R-CNN's RPN, RetinaNet): a drop-in for PaddleDetection's ``MaxIoUAssigner``.

Rule (Ren et al., "Faster R-CNN", NeurIPS 2015, Sec. 3.1.2; Lin et al., "Focal Loss for Dense Object
Detection", ICCV 2017, Sec. 4 -- RetinaNet uses 0.5 / 0.4): every anchor takes the object it overlaps most
(IoU); it is positive when that IoU >= ``positive_overlap``, negative when it is < ``negative_overlap``, and
ignored in between. With ``allow_low_quality`` each object's best anchor(s) -- every anchor whose IoU with it
equals its highest IoU, if that is > 0 -- are made positive too (still matched to their own best object),
so that no object is left without a positive.

Same constructor, call and outputs as ``ppdet.modeling.assigners.MaxIoUAssigner`` (tested against it: the same
labels, and the same object wherever an anchor overlaps one; an anchor tied between objects goes to the first,
where ppdet's ``topk`` choice among tied values depends on the rest of the row and the device);
``PPAssignRetinaHead`` calls ``assign_batch`` (the whole padded batch at once) and reads the full
:class:`~ppassign.assigners.retina_base.RetinaAssignment`.
"""
import paddle

from .retina_base import RetinaAssigner, check_fraction, hard_assignment, pairwise_iou


def max_iou_labels(iou, positive_overlap, negative_overlap, allow_low_quality):
    """The max-IoU rule on an IoU matrix (padded objects' rows at PADDED_IOU, below every real IoU).

    Args:
        iou (Tensor[B, n, L]) with n >= 1; thresholds (float); allow_low_quality (bool).
    Returns:
        (matches Tensor[B, L] int64, labels Tensor[B, L] int32 in {1, 0, -1}).
    """
    # ties to the first object (argmax). ppdet's label_box takes topk(k=1), whose choice among tied entries
    # depends on the rest of the row on Paddle's CPU kernel (so on the padding of a batch) and on the device.
    best, matches = iou.max(axis=1), iou.argmax(axis=1)
    labels = paddle.full(best.shape, -1, "int32")
    labels = paddle.where(best < negative_overlap, paddle.zeros_like(labels), labels)
    labels = paddle.where(best >= positive_overlap, paddle.ones_like(labels), labels)
    if allow_low_quality:
        best_of_object = iou.max(axis=2, keepdim=True)
        is_best = ((iou > 0) & (iou == best_of_object)).any(axis=1)
        labels = paddle.where(is_best, paddle.ones_like(labels), labels)
    return matches.astype("int64"), labels


class MaxIoUAssigner(RetinaAssigner):
    """Max-IoU assignment, ppdet's ``MaxIoUAssigner`` call and outputs (see the module docstring).

    Args:
        positive_overlap (float): IoU at or above which an anchor is positive (RetinaNet: 0.5).
        negative_overlap (float): IoU below which it is negative (RetinaNet: 0.4); <= positive_overlap.
        allow_low_quality (bool): make every object's best anchor(s) positive.
    """

    def __init__(self, positive_overlap, negative_overlap, allow_low_quality=True):
        self.positive_overlap = check_fraction("positive_overlap", positive_overlap)
        self.negative_overlap = check_fraction("negative_overlap", negative_overlap)
        if self.negative_overlap > self.positive_overlap:
            raise ValueError(f"negative_overlap ({negative_overlap}) must be <= positive_overlap "
                             f"({positive_overlap})")
        self.allow_low_quality = bool(allow_low_quality)

    def _assign_batch(self, anchors, gt_bbox, valid, gt_class, pred_bboxes, pred_scores, num_anchors_list):
        matches, labels = max_iou_labels(pairwise_iou(gt_bbox, anchors, valid), self.positive_overlap,
                                         self.negative_overlap, self.allow_low_quality)
        return hard_assignment(matches, labels)
