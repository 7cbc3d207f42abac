"""ATSS for RetinaNet: ppassign's ATSS rule, producing RetinaNet's per-image (matches, labels).

Rule (Zhang et al., "Bridging the Gap Between Anchor-based and Anchor-free Detection via Adaptive Training
Sample Selection", CVPR 2020, Sec. 3.3, Alg. 1; their RetinaNet experiments, Table 3/4): per object and
level, the ``topk`` anchors whose centres are nearest to the object's centre are candidates; the IoU
threshold is the mean + standard deviation of the candidates' IoUs; candidates at or above it whose centre
lies inside the object are positive; an anchor positive for several objects goes to the one of highest IoU.
Everything else is negative (no ignore band).

The rule itself is ``ppassign.assigners.ATSSAssigner`` (the drop-in for PaddleDetection's, tested against
it), called through its public batched call with one image and one class; this class only turns its
``mask_positive`` into RetinaNet's matches and labels. It needs ``num_anchors_list`` (ATSS picks candidates
per level), which ``PPAssignRetinaHead`` passes; ppdet's own ``RetinaHead`` does not, so use this assigner
with ``PPAssignRetinaHead``.
"""
import paddle

from .. import registry
from .atss_assigner import ATSSAssigner
from .retina_base import RetinaAssigner, check_count, hard_assignment


class ATSSRetinaAssigner(RetinaAssigner):
    """ATSS with RetinaNet's outputs (see the module docstring).

    Args:
        topk (int): candidates per level and object (ATSS: 9). With A anchors per location the candidates
            are the topk nearest *anchors* (centres repeat A times).
        force_gt_matching (bool): ppdet ATSS's option (each object keeps its highest-IoU anchor).
    """
    needs = ("num_anchors_list",)

    def __init__(self, topk=9, force_gt_matching=False):
        self.topk = check_count("topk", topk)
        self._atss = ATSSAssigner(topk=self.topk, num_classes=1, force_gt_matching=force_gt_matching,
                                  return_mask_positive=True)

    def _assign(self, anchors, gt_bbox, gt_class, pred_bboxes, pred_scores, num_anchors_list):
        num = gt_bbox.shape[0]
        out = self._atss(anchors, num_anchors_list, paddle.zeros([1, num, 1], "int32"), gt_bbox[None],
                         paddle.ones([1, num, 1], "float32"), 1)
        mask_positive = out[3][0]                                   # [n, L], one 1 per positive anchor
        positive = mask_positive.sum(axis=0) > 0
        matches = paddle.where(positive, mask_positive.argmax(axis=0), paddle.zeros([anchors.shape[0]], "int64"))
        return hard_assignment(matches.astype("int64"), positive.astype("int32"))


registry.add(ATSSRetinaAssigner, "PPAssignATSSRetinaAssigner")
