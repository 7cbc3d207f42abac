"""ATSS: Adaptive Training Sample Selection (Zhang et al., CVPR 2020), a drop-in for ppdet's ATSSAssigner.

Outputs equal PaddleDetection's ATSSAssigner (tests/assigners/test_atss_assigner.py checks parity) but the work is done
per image on the real GTs only, with IoU computed for the k x levels candidates instead of all L anchors:
no [B, n, k, L] one-hot, no [B, n, L, 4] point-in-box tensor.
"""
import numpy as np
import paddle
import paddle.nn as nn

from ..ops import geometry as G
from . import grid
from .assign_utils import build_targets, one_gt_per_anchor, pack_outputs
from ..ops.validation import check_bg_index, check_gt, check_num_anchors_list, require_finite, require_shape, \
    require_tensor

# Bytes of float temporaries one image may hold for its [n, L_level] distances before GTs are chunked.
DEFAULT_MEMORY_BUDGET_MB = 256
# A window's k-th distance must stay this far (relatively) below the distance bound of the anchors outside
# it; float rounding of the distances is ~1e-7 relative, so this leaves a wide margin.
_WINDOW_MARGIN = 1e-4


class ATSSAssigner(nn.Layer):
    """Adaptive Training Sample Selection.

    For each GT: on every FPN level take the `topk` anchors whose centres are nearest the GT centre
    (k x levels candidates); threshold = mean + std of their IoUs; positives are candidates with
    IoU > threshold whose centre lies inside the GT. An anchor claimed by several GTs goes to the GT of
    highest IoU. With `force_gt_matching`, an anchor that is the best-IoU anchor of exactly one GT goes to it.

    Args:
        topk (int): candidates per level (clipped to a level's anchor count).
        num_classes (int): C.
        force_gt_matching (bool): give each GT its best-IoU anchor.
        eps (float): kept for ppdet signature compatibility.
        sm_use (bool): ppdet's small-object variant; not supported (raises).
        memory_budget_mb (int): above it, an image's GTs are processed in chunks (same result).
        return_mask_positive (bool|None): return ppdet 2.6's 4th output; None follows the installed ppdet.
    """
    __shared__ = ["num_classes"]

    def __init__(self, topk=9, num_classes=80, force_gt_matching=False, eps=1e-9, sm_use=False,
                 memory_budget_mb=DEFAULT_MEMORY_BUDGET_MB, return_mask_positive=None):
        super().__init__()
        if sm_use:
            raise ValueError("sm_use=True (PP-YOLOE-SOD's variant) is not supported by ppassign's ATSSAssigner")
        if int(topk) < 1:
            raise ValueError(f"topk must be >= 1, got {topk}")
        self.topk = int(topk)
        self.num_classes = num_classes
        self.force_gt_matching = force_gt_matching
        self.eps = eps
        self.memory_budget_mb = memory_budget_mb
        self.return_mask_positive = return_mask_positive

    @paddle.no_grad()
    def forward(self, anchor_bboxes, num_anchors_list, gt_labels, gt_bboxes, pad_gt_mask, bg_index,
                gt_scores=None, pred_bboxes=None):
        """Assign anchors to GTs.

        Args:
            anchor_bboxes (Tensor[L, 4]): xyxy anchors of all levels.
            num_anchors_list (list[int]): anchors per level, summing to L.
            gt_labels (Tensor[B, n, 1], int32|int64), gt_bboxes (Tensor[B, n, 4]),
            pad_gt_mask (Tensor[B, n, 1]): 1 for real GTs, 0 for padding.
            bg_index (int): label given to negatives.
            gt_scores (Tensor[B, n, 1] | None): scale the one-hot scores of an anchor by its GT's score.
            pred_bboxes (Tensor[B, L, 4] | None): scale them by IoU(GT, prediction) instead.
        Returns:
            assigned_labels (Tensor[B, L]), assigned_bboxes (Tensor[B, L, 4]), assigned_scores (Tensor[B, L, C])
            and, for ppdet < 2.7, mask_positive (Tensor[B, n, L]).
        """
        require_tensor("anchor_bboxes", anchor_bboxes, 2, last=4)
        num_anchors = anchor_bboxes.shape[0]
        counts = check_num_anchors_list(num_anchors_list, num_anchors)
        require_finite("anchor_bboxes", anchor_bboxes)
        valid = check_gt(gt_labels, gt_bboxes, pad_gt_mask, self.num_classes, gt_scores)
        bg_index = check_bg_index(bg_index, self.num_classes)
        batch, num_max = gt_bboxes.shape[:2]
        if pred_bboxes is not None:
            require_tensor("pred_bboxes", pred_bboxes, 3, last=4)
            require_shape("pred_bboxes", pred_bboxes, [batch, num_anchors, 4], "[B, L, 4]")
            require_finite("pred_bboxes", pred_bboxes)

        anchor_centers = G.box_centers(anchor_bboxes)
        axes = grid.level_axes(anchor_centers.numpy(), counts)
        assigned, positive = [], []
        for b in range(batch):
            gt_b, pos_b = self._assign_image(anchor_bboxes, anchor_centers, counts, gt_bboxes[b], valid[b], axes)
            assigned.append(gt_b)
            positive.append(pos_b)
        assigned_gt = paddle.stack(assigned) if batch else paddle.zeros([0, num_anchors], "int64")
        positive = paddle.stack(positive) if batch else paddle.zeros([0, num_anchors], "bool")

        weights = None
        if num_max > 0 and pred_bboxes is not None:
            gt_of_anchor = paddle.take_along_axis(gt_bboxes, assigned_gt.unsqueeze(-1).expand([-1, -1, 4]), axis=1)
            weights = G.aligned_iou(gt_of_anchor, pred_bboxes, eps=G.IOU_EPS_PRED)
        elif num_max > 0 and gt_scores is not None:
            weights = paddle.take_along_axis(gt_scores.squeeze(-1), assigned_gt, axis=1)
        labels, bboxes, scores = build_targets(assigned_gt, positive, gt_labels, gt_bboxes, bg_index,
                                               self.num_classes, weights)
        return pack_outputs(labels, bboxes, scores, assigned_gt, positive, num_max, self.return_mask_positive)

    def _gt_chunk(self, num_gts, level_size):
        """GTs per chunk so that a [chunk, level_size, 2] float temporary stays within the budget."""
        per_gt = level_size * 2 * 4 * 3
        return max(1, min(num_gts, self.memory_budget_mb * 2**20 // per_gt))

    def _candidates(self, gt_centers, anchor_centers, levels):
        """The topk centre-nearest anchors of every level.

        Args:
            gt_centers (Tensor[m, 2]), anchor_centers (Tensor[L, 2]), levels (list[(start, stop)]).
        Returns:
            Tensor[m, K] int64 anchor indices, K = sum over levels of min(topk, level size).
        """
        per_level = []
        for start, stop in levels:
            k = min(self.topk, stop - start)
            chunk = self._gt_chunk(gt_centers.shape[0], stop - start)
            idx = []
            for i in range(0, gt_centers.shape[0], chunk):
                dist = G.center_distances(gt_centers[i:i + chunk].unsqueeze(1),
                                          anchor_centers[start:stop].unsqueeze(0))
                idx.append(paddle.topk(dist, k, axis=-1, largest=False)[1])
            per_level.append(paddle.concat(idx) + start)
        return paddle.concat(per_level, axis=-1)

    def _candidates_sparse(self, gt_centers, anchor_centers, levels, axes):
        """`_candidates` from a window of each level's grid around each GT centre.

        The k nearest anchors of a window are the level's k nearest when they are unique: the k-th distance
        is below the (k+1)-th and below a bound on the distance of every anchor outside the window. Otherwise
        (distance ties at the k-th place, centres far outside the grid) the (GT, level) is redone on the full
        level, where Paddle's top-k breaks the ties exactly as in PaddleDetection.

        Args:
            gt_centers (Tensor[m, 2]), anchor_centers (Tensor[L, 2]), levels (list[(start, stop)]),
            axes: `grid.level_axes` of the anchor centres.
        Returns:
            Tensor[m, K] int64.
        """
        num_gts = gt_centers.shape[0]
        counts = [stop - start for start, stop in levels]
        windows = grid.window_pairs(gt_centers.numpy(), axes, counts, self.topk)
        per_level = []
        for (start, stop), (owners, anchors, bound) in zip(levels, windows):
            k = min(self.topk, stop - start)
            dist = G.center_distances(paddle.gather(gt_centers, paddle.to_tensor(owners)),
                                      paddle.gather(anchor_centers, paddle.to_tensor(anchors))).numpy()
            order, rank, first = grid.rank_within_owner(owners, dist, anchors, num_gts, descending=False)
            anchors, dist = anchors[order], dist[order]
            kth = dist[np.minimum(first[:-1] + k - 1, len(dist) - 1)]
            size = np.diff(first)
            after = np.where(size > k, dist[np.minimum(first[:-1] + k, len(dist) - 1)], np.inf)
            ambiguous = (size < k) | (kth >= after) | (kth >= bound * (1 - _WINDOW_MARGIN))
            cand = np.zeros([num_gts, k], np.int64)
            cand[~ambiguous] = anchors[(rank < k) & ~ambiguous[owners[order]]].reshape([-1, k])
            redo = np.nonzero(ambiguous)[0]
            if len(redo):
                cand[redo] = self._candidates(paddle.gather(gt_centers, paddle.to_tensor(redo)), anchor_centers,
                                              [(start, stop)]).numpy()
            per_level.append(cand)
        return paddle.to_tensor(np.concatenate(per_level, axis=1))

    def _best_anchor_per_gt(self, gt_boxes, anchor_bboxes):
        """argmax over all L of IoU for each GT: Tensor[m, 4] -> Tensor[m] int64 (first on ties)."""
        chunk = self._gt_chunk(gt_boxes.shape[0], anchor_bboxes.shape[0])
        out = []
        for i in range(0, gt_boxes.shape[0], chunk):
            ious = G.aligned_iou(gt_boxes[i:i + chunk].unsqueeze(1), anchor_bboxes.unsqueeze(0),
                                 eps=G.IOU_EPS_ANCHOR)
            out.append(ious.argmax(axis=-1))
        return paddle.concat(out)

    def _assign_image(self, anchor_bboxes, anchor_centers, counts, gt_boxes, valid, axes):
        """One image: Tensor[n, 4] GT slots and their validity -> (assigned GT [L] int64, positive [L] bool)."""
        num_anchors = anchor_bboxes.shape[0]
        real = paddle.to_tensor(valid.nonzero()[0], dtype="int64")
        if real.shape[0] == 0:
            return paddle.zeros([num_anchors], "int64"), paddle.zeros([num_anchors], "bool")
        boxes = paddle.gather(gt_boxes, real)                                   # [m, 4]
        # 1-3. k centre-nearest anchors per level -> [m, K] candidates
        if axes is None:
            cand = self._candidates(G.box_centers(boxes), anchor_centers, G.level_slices(counts))
        else:
            cand = self._candidates_sparse(G.box_centers(boxes), anchor_centers, G.level_slices(counts), axes)
        cand_boxes = paddle.gather(anchor_bboxes, cand.flatten()).reshape(cand.shape + [4])
        cand_iou = G.aligned_iou(boxes.unsqueeze(1), cand_boxes, eps=G.IOU_EPS_ANCHOR)  # [m, K]
        # 4-5. adaptive threshold: mean + (unbiased) std of the candidates' IoU
        threshold = cand_iou.mean(axis=-1, keepdim=True) + cand_iou.std(axis=-1, keepdim=True)
        # 6. positive: IoU above the threshold and anchor centre inside the GT
        cand_centers = paddle.gather(anchor_centers, cand.flatten()).reshape(cand.shape + [2])
        keep = (cand_iou > threshold) & G.points_inside_boxes(cand_centers, boxes.unsqueeze(1))
        gt_of_pair = real.unsqueeze(1).expand(cand.shape)
        pair_anchor, pair_gt = cand[keep], gt_of_pair[keep]

        # 7. an anchor claimed by several GTs goes to the GT of highest IoU (over all GT slots)
        assigned_gt, positive = one_gt_per_anchor(pair_anchor, pair_gt, num_anchors, anchor_bboxes, gt_boxes,
                                                  G.IOU_EPS_ANCHOR)
        # 8. optionally: the best-IoU anchor of exactly one GT goes to that GT
        if self.force_gt_matching:
            best = self._best_anchor_per_gt(boxes, anchor_bboxes)
            claims = paddle.scatter_nd_add(paddle.zeros([num_anchors], "int64"), best.reshape([-1, 1]),
                                           paddle.ones_like(best))
            owner = paddle.scatter_nd_add(paddle.zeros([num_anchors], "int64"), best.reshape([-1, 1]), real)
            forced = claims == 1
            assigned_gt = paddle.where(forced, owner, assigned_gt)
            positive = positive | forced
        return assigned_gt, positive
