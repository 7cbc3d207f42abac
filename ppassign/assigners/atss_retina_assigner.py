"""ATSS for RetinaNet: ppassign's ATSS rule, producing RetinaNet's per-image (matches, labels).

Rule (Zhang et al., "Bridging the Gap Between Anchor-based and Anchor-free Detection via Adaptive Training
Sample Selection", CVPR 2020, Sec. 3.3, Alg. 1; their RetinaNet experiments, Table 3/4): per object and
level, the anchors whose centres are nearest to the object's centre are candidates; the IoU threshold is the
mean + standard deviation of the candidates' IoUs; candidates at or above it whose centre lies inside the
object are positive; an anchor positive for several objects goes to the one of highest IoU. Everything else
is negative (no ignore band).

How many candidates: the paper's k = 9 counts *locations*. The authors' code (github.com/sfzhang15/ATSS,
``atss_core/modeling/rpn/atss/loss.py``, ``POSITIVE_TYPE == 'ATSS'``) takes ``TOPK * num_anchors_per_loc``
anchors per level (``num_anchors_per_loc = len(ASPECT_RATIOS) * SCALES_PER_OCTAVE``), i.e. k locations with all
their A anchors. MMDetection's ``ATSSAssigner`` and PaddleDetection's count anchors (``min(topk, anchors in
the level)``), which is the same only with one anchor per location. ``topk_unit='locations'`` (default) does
what the authors' code does, with A read from the anchors (the anchors sharing the first anchor's centre);
``topk_unit='anchors'`` takes ``topk`` anchors as MMDetection / PaddleDetection do.

The rule itself is ``ppassign.assigners.ATSSAssigner`` (the drop-in for PaddleDetection's, tested against
it), called through its public batched call (the whole padded batch, one class); this class only turns its
``mask_positive`` into RetinaNet's matches and labels. Each call builds that ATSSAssigner for the anchors it is
given (k x A candidates), so nothing is kept between calls. It needs ``num_anchors_list`` (ATSS picks candidates
per level), which ``PPAssignRetinaHead`` passes; ppdet's own ``RetinaHead`` does not, so use this assigner
with ``PPAssignRetinaHead``.
"""
import numpy as np
import paddle

from .atss_assigner import ATSSAssigner
from .retina_base import RetinaAssigner, check_count, hard_assignment

TOPK_UNITS = ("locations", "anchors")


def anchors_per_location(anchors, num_anchors_list, tol=1e-2):
    """A: how many anchors share a centre, from the first level (anchors are location-major, as ppdet's
    anchor generators lay them out). One host copy of the first level's centres.

    Args:
        anchors (Tensor[L, 4]), num_anchors_list (list[int]).
    Returns:
        int A; ValueError if the levels are not multiples of A or the first A anchors do not share a centre.
    """
    first = anchors[:num_anchors_list[0]].numpy()
    centres = (first[:, :2] + first[:, 2:]) / 2
    same = np.all(np.abs(centres - centres[0]) <= tol, axis=1)       # tol in pixels (centres are k x stride)
    a = int(same.sum())
    if not same[:a].all() or any(n % a for n in num_anchors_list):
        raise ValueError(f"topk_unit='locations' needs location-major anchors with the same number per location "
                         f"on every level; found {a} anchors at the first centre, not consecutive or not dividing "
                         f"num_anchors_list={list(num_anchors_list)} (use topk_unit='anchors')")
    return a


class ATSSRetinaAssigner(RetinaAssigner):
    """ATSS with RetinaNet's outputs (see the module docstring).

    Args:
        topk (int): k, candidates per level and object (ATSS: 9).
        topk_unit (str): 'locations' (the ATSS authors' code: k locations = k x A anchors) or 'anchors'
            (k anchors, as MMDetection's and PaddleDetection's ATSSAssigner). Equal with one anchor per location.
        force_gt_matching (bool): ppdet ATSS's option (each object keeps its highest-IoU anchor).
    """
    needs = ("num_anchors_list",)

    def __init__(self, topk=9, topk_unit="locations", force_gt_matching=False):
        self.topk = check_count("topk", topk)
        if topk_unit not in TOPK_UNITS:
            raise ValueError(f"topk_unit must be one of {TOPK_UNITS}, got {topk_unit!r}")
        self.topk_unit = topk_unit
        self.force_gt_matching = bool(force_gt_matching)

    def rule(self, anchors, num_anchors_list):
        """The ATSSAssigner this call uses: k anchors, or k x A with topk_unit='locations' (one host copy)."""
        per_location = anchors_per_location(anchors, num_anchors_list) if self.topk_unit == "locations" else 1
        return ATSSAssigner(topk=self.topk * per_location, num_classes=1, force_gt_matching=self.force_gt_matching,
                            return_mask_positive=True)

    def _assign_batch(self, anchors, gt_bbox, valid, gt_class, pred_bboxes, pred_scores, num_anchors_list):
        batch, num = gt_bbox.shape[:2]
        out = self.rule(anchors, num_anchors_list)(anchors, num_anchors_list, paddle.zeros([batch, num, 1], "int32"),
                                                   gt_bbox, valid.astype("float32")[..., None], 1)
        mask_positive = out[3]                                      # [B, n, L], one 1 per positive anchor
        positive = mask_positive.sum(axis=1) > 0
        matches = paddle.where(positive, mask_positive.argmax(axis=1), paddle.zeros(positive.shape, "int64"))
        return hard_assignment(matches.astype("int64"), positive.astype("int32"))
