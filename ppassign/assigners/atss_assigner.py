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
from ..ops.precision import float32_inputs
from ..ops.validation import NonFiniteError, check_bg_index, check_gt_shapes, check_num_anchors_list, \
    require_shape, require_tensor
from . import grid
from .assign_utils import HostInputs, assigned_boxes, background_outputs, build_targets, dense_assignment, \
    gather_rows, pack_outputs, resolve_claims, row_chunks, segment_reduce, std_unbiased

# Bytes of float temporaries a call may hold for [rows, L_level] distances before rows are chunked.
DEFAULT_MEMORY_BUDGET_MB = 256
# A window's k-th distance must stay this far (relatively) below the distance bound of the anchors outside
# it; float rounding of the distances is ~1e-7 relative, so this leaves a wide margin.
_WINDOW_MARGIN = 1e-4
# Window distances closer than this (relatively) count as tied: a float32 norm is within a few 1e-7 of the
# exact one on any device, so distances further apart keep their order there.
_TIE_MARGIN = 1e-5


class ATSSAssigner(nn.Layer):
    """Adaptive Training Sample Selection, as PaddleDetection computes it.

    The method (its step numbers are used in the code):

    1. Candidates: on every level, the `topk` anchors whose centres are nearest the GT centre.
    2. Threshold: mean + standard deviation of the candidates' IoUs with the GT.
    3. Positives: candidates with IoU > threshold whose centre lies inside the GT.
    4. Conflicts: an anchor that is a positive of several GTs goes to the GT slot of highest IoU (over all n
       slots of the image).
    5. Forced matches (`force_gt_matching`): an anchor that is the best-IoU anchor of exactly one GT goes to it.
    6. Targets: the GT's label and box; the score of the label's class is 1, or IoU(GT, predicted box) with
       `pred_bboxes`, or the GT's score with `gt_scores`.

    Args:
        topk (int): candidates per level (clipped to a level's anchor count).
        num_classes (int): C.
        force_gt_matching (bool): step 5.
        eps (float): kept for ppdet signature compatibility.
        sm_use (bool): ppdet's small-object variant; not supported (raises).
        memory_budget_mb (int): above it, temporaries are computed in row chunks (same result).
        return_mask_positive (bool|None): return ppdet 2.6's 4th output (mask_positive); None: the class
            default, which ``import ppassign`` sets to what the installed ppdet's heads unpack.
    Note:
        Float16 / bfloat16 inputs (mixed-precision training) are computed in float32; the outputs are float32.
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
        anchor_bboxes, gt_bboxes, gt_scores, pred_bboxes = float32_inputs(anchor_bboxes, gt_bboxes, gt_scores,
                                                                          pred_bboxes)
        counts, bg_index = self._check_inputs(anchor_bboxes, num_anchors_list, gt_labels, gt_bboxes, pad_gt_mask,
                                              bg_index, gt_scores, pred_bboxes)
        (batch, num_max), num_anchors = gt_bboxes.shape[:2], anchor_bboxes.shape[0]
        host, host_anchors = self._fetch_host(anchor_bboxes, gt_labels, gt_bboxes, pad_gt_mask,
                                              pred_bboxes)                                # host copy 1
        if host.num_objects == 0:
            return pack_outputs(*background_outputs(batch, num_anchors, self.num_classes, gt_labels, gt_bboxes,
                                                    bg_index), num_max, self.return_mask_positive)
        obj_boxes = gather_rows(gt_bboxes.reshape([-1, 4]), host.image * num_max + host.slot)    # [M, 4]
        host_centers = (host_anchors[:, :2] + host_anchors[:, 2:]) / np.float32(2)             # anchor centres
        cand = self._candidates(obj_boxes, anchor_bboxes, host_centers, counts, host)     # 1
        above = self._above_threshold(cand, obj_boxes, anchor_bboxes)                     # 2
        pair_obj, pair_anchor = _positive_pairs(cand, above, host_centers, host.obj_boxes)  # 3; host copy 2
        claims = resolve_claims(host.image[pair_obj], host.slot[pair_obj], pair_anchor, num_anchors,
                                lambda f: host_anchors[f % num_anchors],
                                lambda f: gather_rows(anchor_bboxes, f % num_anchors), host.boxes, gt_bboxes,
                                G.IOU_EPS_ANCHOR, self.memory_budget_mb)                  # 4
        assigned, positive = dense_assignment(claims.flat, claims.slot, batch, num_anchors)
        if self.force_gt_matching:
            assigned, positive = self._force_matching(assigned, positive, obj_boxes, anchor_bboxes, host)   # 5
        boxes = assigned_boxes(gt_bboxes, assigned)
        weights = _score_weights(boxes, assigned, pred_bboxes, gt_scores)                 # 6
        labels, bboxes, scores = build_targets(assigned, positive, gt_labels, gt_bboxes, bg_index,
                                               self.num_classes, weights, boxes)
        return pack_outputs(labels, bboxes, scores, assigned, positive, num_max, self.return_mask_positive)

    # --- steps ------------------------------------------------------------------------------------------------

    def _check_inputs(self, anchor_bboxes, num_anchors_list, gt_labels, gt_bboxes, pad_gt_mask, bg_index,
                      gt_scores, pred_bboxes):
        """Shapes and dtypes (no host copy) -> (anchors per level, bg_index as int); ValueError naming the argument."""
        require_tensor("anchor_bboxes", anchor_bboxes, 2, last=4)
        num_anchors = anchor_bboxes.shape[0]
        counts = check_num_anchors_list(num_anchors_list, num_anchors)
        check_gt_shapes(gt_labels, gt_bboxes, pad_gt_mask, gt_scores)
        if pred_bboxes is not None:
            require_tensor("pred_bboxes", pred_bboxes, 3, last=4)
            require_shape("pred_bboxes", pred_bboxes, [gt_bboxes.shape[0], num_anchors, 4], "[B, L, 4]")
        return counts, check_bg_index(bg_index, self.num_classes)

    def _fetch_host(self, anchor_bboxes, gt_labels, gt_bboxes, pad_gt_mask, pred_bboxes):
        """Host copy 1: the ground truth (`HostInputs`) and the anchors [L, 4], checked."""
        finite = [("pred_bboxes", pred_bboxes)] if pred_bboxes is not None else []
        host = HostInputs.fetch(gt_labels, gt_bboxes, pad_gt_mask, self.num_classes, extra=[anchor_bboxes],
                                finite=finite)
        host_anchors = host.extra[0].reshape(anchor_bboxes.shape[0], 4)
        if not np.isfinite(host_anchors).all():
            raise NonFiniteError("anchor_bboxes")
        return host, host_anchors

    def _candidates(self, obj_boxes, anchor_bboxes, host_centers, counts, host):
        """1. Each object's topk centre-nearest anchors of every level: Tensor[M, K] int64, level after level.

        On a regular grid they are looked for in a window around the object (`_window_candidates`); objects a
        window cannot settle, and every object when the anchors are off a grid, take them from full levels.
        """
        obj_centers, anchor_centers = G.box_centers(obj_boxes), G.box_centers(anchor_bboxes)   # [M, 2], [L, 2]
        levels = G.level_slices(counts)
        axes = grid.level_axes(host_centers, counts)
        if axes is None:
            cand = self._full_level_candidates(obj_centers, anchor_centers, np.arange(host.num_objects), levels)
            rows = np.zeros(0, np.int64)
        else:
            host_obj_centers = (host.obj_boxes[:, :2] + host.obj_boxes[:, 2:]) / np.float32(2)
            cand, unsettled = self._window_candidates(obj_centers, host_obj_centers, host_centers, axes, counts)
            rows = np.nonzero(unsettled)[0]
        return paddle.scatter(cand, paddle.to_tensor(rows),
                              self._full_level_candidates(obj_centers, anchor_centers, rows, levels))

    def _window_candidates(self, obj_centers, host_obj_centers, host_centers, axes, counts):
        """1. The topk centre-nearest anchors of every level, from a window of the grid around each object.

        The k nearest of a window are the level's k nearest, in the same order, when the window's first k + 1
        distances are distinct and the k-th is below a bound on the distance of every anchor outside the window.
        The host checks this on the same float32 centre differences the device takes the norm of, with a margin
        far above the norm's rounding (`_TIE_MARGIN`, `_WINDOW_MARGIN`), so that it holds on any device; where
        it does not (a tie, a centre far outside the grid) the object is `unsettled` and its candidates are taken
        from full levels, where Paddle's top-k breaks ties exactly as in PaddleDetection.

        Args:
            obj_centers (Tensor[M, 2]), host_obj_centers (np.ndarray[M, 2]): the object centres and the host's
            copy; host_centers (np.ndarray[L, 2]): the anchor centres on the host;
            axes: `grid.level_axes` of the anchor centres; counts (list[int]).
        Returns:
            candidates (Tensor[M, K] int64), K = sum of k_l; unsettled (np.ndarray[M] bool).
        """
        num_objects = host_obj_centers.shape[0]
        windows, ks, unsettled, start = [], [], np.zeros(num_objects, bool), 0
        for (xs, ys), count in zip(axes, counts):
            k = min(self.topk, count)
            r0, r1, c0, c1, bound = grid.nearest_windows(host_obj_centers, xs, ys, k)
            _, anchors = grid.expand_rectangles(np.arange(num_objects), start, len(xs), r0, r1, c0, c1)
            window = anchors.reshape(num_objects, -1)                                   # [M, W_l]
            offset = (host_centers[window] - host_obj_centers[:, None]).astype(np.float64)
            near = np.sort(np.sqrt((offset ** 2).sum(-1)), axis=1)[:, :k + 1]         # exact norms, ascending
            unsettled |= (np.diff(near, axis=1) <= _TIE_MARGIN * near[:, 1:]).any(1)
            unsettled |= near[:, k - 1] >= bound * (1 - _WINDOW_MARGIN)
            windows.append(window)
            ks.append(k)
            start += count
        # one top-k over every level: windows padded to the widest with an infinitely far point
        width = max(w.shape[1] for w in windows)
        index = np.stack([np.pad(w, ((0, 0), (0, width - w.shape[1])), constant_values=-1) for w in windows], 1)
        points = np.where(index[..., None] >= 0, host_centers[index], np.float32(np.inf))
        dist = G.center_distances(obj_centers.reshape([num_objects, 1, 1, 2]), paddle.to_tensor(points))
        pos = paddle.topk(dist, max(ks), axis=-1, largest=False)[1]                    # [M, levels, k]
        cand = paddle.take_along_axis(paddle.to_tensor(index), pos, axis=-1)
        if min(ks) == max(ks):
            return cand.reshape([num_objects, -1]), unsettled
        return paddle.concat([cand[:, level, :k] for level, k in enumerate(ks)], axis=1), unsettled

    def _full_level_candidates(self, obj_centers, anchor_centers, rows, levels):
        """1. The topk centre-nearest anchors of every full level for objects `rows`, as ppdet computes them.

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
        """2. Candidates whose IoU with their object exceeds its threshold, mean + std of its candidates' IoUs.

        Args:
            cand (Tensor[M, K] int64), obj_boxes (Tensor[M, 4]), anchor_bboxes (Tensor[L, 4]).
        Returns:
            Tensor[M, K] bool.
        """
        cand_boxes = paddle.gather(anchor_bboxes, cand.flatten()).reshape(cand.shape + [4])
        iou = G.aligned_iou(obj_boxes.unsqueeze(1), cand_boxes, eps=G.IOU_EPS_ANCHOR)     # [M, K]
        return iou > iou.mean(axis=-1, keepdim=True) + std_unbiased(iou)

    def _force_matching(self, assigned, positive, obj_boxes, anchor_bboxes, host):
        """5. Give an anchor to the object whose best-IoU anchor it is, where exactly one object says so.

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




def _positive_pairs(cand, above, host_centers, host_obj_boxes):
    """3. The (object, anchor) positives: candidates above the threshold whose centre lies inside the object.

    The centre test runs on the host, on the same float32 values the device holds (`points_inside_boxes`).

    Args:
        cand, above (Tensor[M, K]): candidates and their threshold test; host_centers (np.ndarray[L, 2]),
        host_obj_boxes (np.ndarray[M, 4]).
    Returns (host copy 2):
        pair_obj, pair_anchor (np.ndarray[P] int64).
    """
    host_cand, host_above = _unpack(_pack([cand, above]).numpy(), [cand, above])
    inside = G.points_inside_boxes(host_centers[host_cand], host_obj_boxes[:, None])
    obj, col = np.nonzero(host_above & inside)
    return obj, host_cand[obj, col]


def _score_weights(boxes, assigned, pred_bboxes, gt_scores):
    """6. Each anchor's score weight: IoU(its GT box, its predicted box), its GT's score, or None (1).

    Args:
        boxes (Tensor[B, L, 4]): each anchor's GT box; assigned (Tensor[B, L] int64): its GT slot.
    """
    if pred_bboxes is not None:
        return G.aligned_iou(boxes, pred_bboxes, eps=G.IOU_EPS_PRED)
    if gt_scores is not None:
        return paddle.take_along_axis(gt_scores.squeeze(-1), assigned, axis=1)
    return None

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
