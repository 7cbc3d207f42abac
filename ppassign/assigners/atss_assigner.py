"""ATSS: Adaptive Training Sample Selection (Zhang et al., CVPR 2020), a drop-in for ppdet's ATSSAssigner.

Outputs equal PaddleDetection's ATSSAssigner (tests/assigners/test_atss_assigner.py checks parity). One call
handles the real objects of every image together, so the operators it dispatches depend neither on the batch
size nor on ties, and it needs 2 device-to-host copies:

1. ground truth + anchors (validation and the host-side grid index work);
2. candidates and their IoU-threshold flags (to resolve anchors claimed by several objects).

On a regular anchor grid the k centre-nearest anchors of an object lie in a small window of each level, so
distances are computed for the window only: no [B, n, L] distance/IoU matrix, no [B, n, k, L] one-hot. An
anchor claimed by several objects is compared with the GT slots whose boxes overlap it only.
"""
import numpy as np
import paddle
import paddle.nn as nn

from ..ops import geometry as G
from ..ops.validation import check_bg_index, check_gt_shapes, check_num_anchors_list, require_shape, \
    require_tensor
from . import grid
from .assign_utils import HostInputs, assigned_boxes, background_outputs, build_targets, dense_assignment, gather_rows, \
    pack_outputs, resolve_claims, row_chunks, segment_reduce, std_unbiased

# Bytes of float temporaries a call may hold for [rows, L_level] distances before rows are chunked.
DEFAULT_MEMORY_BUDGET_MB = 256
# A window's k-th distance must stay this far (relatively) below the distance bound of the anchors outside
# it; float rounding of the distances is ~1e-7 relative, so this leaves a wide margin.
_WINDOW_MARGIN = 1e-4
# Window distances closer than this (relatively) count as tied: a float32 norm is within a few 1e-7 of the
# exact one on any device, so distances further apart keep their order there.
_TIE_MARGIN = 1e-5


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
        memory_budget_mb (int): above it, temporaries are computed in row chunks (same result).
        return_mask_positive (bool|None): return ppdet 2.6's 4th output (mask_positive); None: the class
            default, which ``import ppassign`` sets to what the installed ppdet's heads unpack.
    """
    __shared__ = ["num_classes"]
    return_mask_positive = False  # PaddleDetection 2.7+; set by ppassign.plugin for the installed ppdet

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
        if return_mask_positive is not None:
            self.return_mask_positive = bool(return_mask_positive)

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
        check_gt_shapes(gt_labels, gt_bboxes, pad_gt_mask, gt_scores)
        bg_index = check_bg_index(bg_index, self.num_classes)
        batch, num_max = gt_bboxes.shape[:2]
        finite = []
        if pred_bboxes is not None:
            require_tensor("pred_bboxes", pred_bboxes, 3, last=4)
            require_shape("pred_bboxes", pred_bboxes, [batch, num_anchors, 4], "[B, L, 4]")
            finite.append(("pred_bboxes", pred_bboxes))
        # device-to-host copy 1
        host = HostInputs.fetch(gt_labels, gt_bboxes, pad_gt_mask, self.num_classes, extra=[anchor_bboxes],
                                finite=finite)
        anchors_host = host.extra[0].reshape(num_anchors, 4)
        if not np.isfinite(anchors_host).all():
            raise ValueError("anchor_bboxes contains NaN or inf values")
        if host.num_objects == 0:
            *targets, assigned, positive = background_outputs(batch, num_anchors, self.num_classes, gt_labels,
                                                              gt_bboxes, bg_index)
            return pack_outputs(*targets, assigned, positive, num_max, self.return_mask_positive)

        assigned, positive = self._assign(anchor_bboxes, anchors_host, counts, gt_bboxes, host)
        weights, boxes = None, assigned_boxes(gt_bboxes, assigned)
        if pred_bboxes is not None:
            weights = G.aligned_iou(boxes, pred_bboxes, eps=G.IOU_EPS_PRED)
        elif gt_scores is not None:
            weights = paddle.take_along_axis(gt_scores.squeeze(-1), assigned, axis=1)
        labels, bboxes, scores = build_targets(assigned, positive, gt_labels, gt_bboxes, bg_index,
                                               self.num_classes, weights, boxes)
        return pack_outputs(labels, bboxes, scores, assigned, positive, num_max, self.return_mask_positive)

    # --- steps ------------------------------------------------------------------------------------------------

    def _assign(self, anchor_bboxes, anchors_host, counts, gt_bboxes, host):
        """Every real object of the batch at once -> (assigned slot [B, L] int64, positive [B, L] bool)."""
        batch, num_max = gt_bboxes.shape[:2]
        num_anchors = anchor_bboxes.shape[0]
        obj_boxes = gather_rows(gt_bboxes.reshape([-1, 4]), host.image * num_max + host.slot)    # [M, 4]
        obj_centers = G.box_centers(obj_boxes)                                                  # [M, 2]
        anchor_centers = G.box_centers(anchor_bboxes)                                           # [L, 2]
        anchor_centers_host = (anchors_host[:, :2] + anchors_host[:, 2:]) / np.float32(2)
        axes = grid.level_axes(anchor_centers_host, counts)
        levels = G.level_slices(counts)

        # 1-3. k centre-nearest anchors per level, adaptive IoU threshold, centre inside; device-to-host copy 2
        if axes is None:                               # anchors off a regular grid: full levels for every object
            cand = self._full_level_candidates(obj_centers, anchor_centers, np.arange(host.num_objects), levels)
            rows = np.zeros(0, np.int64)
        else:
            centers_host = (host.obj_boxes[:, :2] + host.obj_boxes[:, 2:]) / np.float32(2)
            cand, unsettled = self._window_candidates(obj_centers, centers_host, anchor_centers_host, axes, counts)
            rows = np.nonzero(unsettled)[0]
        # objects a window cannot settle: candidates from full levels, as ppdet computes them
        cand = paddle.scatter(cand, paddle.to_tensor(rows),
                              self._full_level_candidates(obj_centers, anchor_centers, rows, levels))
        above = self._above_threshold(cand, obj_boxes, anchor_bboxes)
        cand, above = _unpack(_pack([cand, above]).numpy(), [cand, above])
        inside = G.points_inside_boxes(anchor_centers_host[cand], host.obj_boxes[:, None])   # the host's copy
        pair_obj, col = np.nonzero(above & inside)
        pair_anchor = cand[pair_obj, col]

        # 7. an anchor claimed by several objects goes to the GT slot of highest IoU
        claims = resolve_claims(host.image[pair_obj], host.slot[pair_obj], pair_anchor, num_anchors,
                                lambda f: anchors_host[f % num_anchors],
                                lambda f: gather_rows(anchor_bboxes, f % num_anchors), host.boxes, gt_bboxes,
                                G.IOU_EPS_ANCHOR, self.memory_budget_mb)
        assigned, positive = dense_assignment(claims.flat, claims.slot, batch, num_anchors)
        # 8. optionally: an anchor that is the best-IoU anchor of exactly one object goes to it
        if self.force_gt_matching:
            assigned, positive = self._force_matching(assigned, positive, obj_boxes, anchor_bboxes, host)
        return assigned, positive

    def _window_candidates(self, obj_centers, centers_host, anchor_centers_host, axes, counts):
        """The topk centre-nearest anchors of every level, looked for in a window of the grid around each object.

        The k nearest of a window are the level's k nearest, in the same order, when the window's first k + 1
        distances are distinct and the k-th is below a bound on the distance of every anchor outside the window.
        The host checks this on the same float32 centre differences the device takes the norm of, with a margin
        far above the norm's rounding (`_TIE_MARGIN`, `_WINDOW_MARGIN`), so that it holds on any device; where
        it does not (a tie, a centre far outside the grid) the object is `unsettled` and its candidates are taken
        from full levels, where Paddle's top-k breaks ties exactly as in PaddleDetection.

        Args:
            obj_centers (Tensor[M, 2]), centers_host (np.ndarray[M, 2]), anchor_centers_host (np.ndarray[L, 2]),
            axes: `grid.level_axes` of the anchor centres; counts (list[int]).
        Returns:
            candidates (Tensor[M, K] int64), K = sum of k_l; unsettled (np.ndarray[M] bool).
        """
        num_objects = centers_host.shape[0]
        windows, ks, unsettled, start = [], [], np.zeros(num_objects, bool), 0
        for (xs, ys), count in zip(axes, counts):
            k = min(self.topk, count)
            r0, r1, c0, c1, bound = grid.nearest_windows(centers_host, xs, ys, k)
            _, anchors = grid.expand_rectangles(np.arange(num_objects), start, len(xs), r0, r1, c0, c1)
            window = anchors.reshape(num_objects, -1)                                   # [M, W_l]
            offset = (anchor_centers_host[window] - centers_host[:, None]).astype(np.float64)
            near = np.sort(np.sqrt((offset ** 2).sum(-1)), axis=1)[:, :k + 1]         # exact norms, ascending
            unsettled |= (np.diff(near, axis=1) <= _TIE_MARGIN * near[:, 1:]).any(1)
            unsettled |= near[:, k - 1] >= bound * (1 - _WINDOW_MARGIN)
            windows.append(window)
            ks.append(k)
            start += count
        # one top-k over every level: windows padded to the widest with an infinitely far point
        width = max(w.shape[1] for w in windows)
        index = np.stack([np.pad(w, ((0, 0), (0, width - w.shape[1])), constant_values=-1) for w in windows], 1)
        points = np.where(index[..., None] >= 0, anchor_centers_host[index], np.float32(np.inf))
        dist = G.center_distances(obj_centers.reshape([num_objects, 1, 1, 2]), paddle.to_tensor(points))
        pos = paddle.topk(dist, max(ks), axis=-1, largest=False)[1]                    # [M, levels, k]
        cand = paddle.take_along_axis(paddle.to_tensor(index), pos, axis=-1)
        if min(ks) == max(ks):
            return cand.reshape([num_objects, -1]), unsettled
        return paddle.concat([cand[:, level, :k] for level, k in enumerate(ks)], axis=1), unsettled

    def _full_level_candidates(self, obj_centers, anchor_centers, rows, levels):
        """The topk centre-nearest anchors of every full level for objects `rows`, as ppdet computes them.

        Runs on every call (on no rows when every window settled its level), so the operators a call dispatches
        do not depend on distance ties.

        Args:
            obj_centers (Tensor[M, 2]), anchor_centers (Tensor[L, 2]), rows (np.ndarray[R]),
            levels (list of (start, stop)).
        Returns:
            Tensor[R, K] int64 anchor indices, level after level.
        """
        num_anchors = anchor_centers.shape[0]
        starts = paddle.to_tensor(np.concatenate([np.full(min(self.topk, stop - start), start)
                                                  for start, stop in levels]))
        out = []
        for i, j in row_chunks(len(rows), num_anchors * 4 * 3, self.memory_budget_mb):
            dist = G.center_distances(gather_rows(obj_centers, rows[i:j]).unsqueeze(1), anchor_centers.unsqueeze(0))
            out.append(paddle.concat([paddle.topk(dist[:, start:stop], min(self.topk, stop - start), axis=-1,
                                                  largest=False)[1] for start, stop in levels], axis=1) + starts)
        return paddle.concat(out) if len(out) > 1 else out[0]

    def _above_threshold(self, cand, obj_boxes, anchor_bboxes):
        """Candidates whose IoU with their object exceeds its threshold, mean + std of its candidates' IoUs.

        Args:
            cand (Tensor[M, K] int64), obj_boxes (Tensor[M, 4]), anchor_bboxes (Tensor[L, 4]).
        Returns:
            Tensor[M, K] bool.
        """
        cand_boxes = paddle.gather(anchor_bboxes, cand.flatten()).reshape(cand.shape + [4])
        iou = G.aligned_iou(obj_boxes.unsqueeze(1), cand_boxes, eps=G.IOU_EPS_ANCHOR)     # [M, K]
        return iou > iou.mean(axis=-1, keepdim=True) + std_unbiased(iou)

    def _force_matching(self, assigned, positive, obj_boxes, anchor_bboxes, host):
        """Give an anchor to the object whose best-IoU anchor it is, where exactly one object says so.

        Returns:
            assigned (Tensor[B, L] int64), positive (Tensor[B, L] bool).
        """
        batch, num_anchors = positive.shape
        best = []
        for i, j in row_chunks(host.num_objects, num_anchors * 4 * 12, self.memory_budget_mb):
            iou = G.aligned_iou(obj_boxes[i:j].unsqueeze(1), anchor_bboxes.unsqueeze(0), eps=G.IOU_EPS_ANCHOR)
            best.append(iou.argmax(axis=-1))
        best = paddle.concat(best) if len(best) > 1 else best[0]                       # [M]
        flat = best + paddle.to_tensor(host.image * num_anchors)
        claims = segment_reduce(paddle.ones_like(flat), flat, batch * num_anchors, "add")
        owner = segment_reduce(paddle.to_tensor(host.slot.astype(np.int64)), flat, batch * num_anchors, "add")
        forced = (claims == 1).reshape([batch, num_anchors])
        return paddle.where(forced, owner.reshape([batch, num_anchors]), assigned), positive | forced



def _pack(tensors):
    """Int/bool tensors as one flat int32 tensor, to be brought to the host by a single copy (`_unpack`)."""
    return paddle.concat([t.astype("int32").flatten() for t in tensors])


def _unpack(host, tensors):
    """The host copy of `_pack(tensors)` split back: list of np.ndarray, int64 (bool for bool tensors)."""
    out, start = [], 0
    for t in tensors:
        size = int(np.prod(t.shape))
        value = host[start:start + size].reshape(t.shape)
        out.append(value.astype(bool) if t.dtype == paddle.bool else value.astype(np.int64))
        start += size
    return out
