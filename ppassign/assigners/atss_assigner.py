"""ATSS: Adaptive Training Sample Selection (Zhang et al., CVPR 2020), a drop-in for ppdet's ATSSAssigner.

Outputs equal PaddleDetection's ATSSAssigner (tests/assigners/test_atss_assigner.py checks parity). One call
handles the real objects of every image together, so the operators it dispatches do not grow with the batch
size, and it needs 2 device-to-host copies (3 when a distance tie needs a full level):

1. ground truth + anchors (validation and the host-side grid index work);
2. candidates and positive flags (to resolve anchors claimed by several objects), with the tie flags.

On a regular anchor grid the k centre-nearest anchors of an object lie in a small window of each level, so
distances are computed for the window only: no [B, n, L] distance/IoU matrix, no [B, n, k, L] one-hot.
"""
import numpy as np
import paddle
import paddle.nn as nn

from ..ops import geometry as G
from ..ops.validation import check_bg_index, check_gt_shapes, check_num_anchors_list, require_shape, \
    require_tensor
from . import grid
from .assign_utils import HostInputs, background_outputs, build_targets, dense_assignment, gather_rows, \
    pack_outputs, resolve_claims, row_chunks, std_unbiased

# Bytes of float temporaries a call may hold for [rows, L_level] distances before rows are chunked.
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
        weights = None
        if pred_bboxes is not None:
            gt_of_anchor = paddle.take_along_axis(gt_bboxes, assigned.unsqueeze(-1), axis=1, broadcast=True)
            weights = G.aligned_iou(gt_of_anchor, pred_bboxes, eps=G.IOU_EPS_PRED)
        elif gt_scores is not None:
            weights = paddle.take_along_axis(gt_scores.squeeze(-1), assigned, axis=1)
        labels, bboxes, scores = build_targets(assigned, positive, gt_labels, gt_bboxes, bg_index,
                                               self.num_classes, weights)
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

        # 1-3. k centre-nearest anchors per level -> candidate blocks [M, k_l]
        if axes is None:                               # anchors off a regular grid: full levels for every object
            rows = np.arange(host.num_objects)
            blocks = [self._level_candidates(obj_centers, anchor_centers, rows, level) for level in levels]
            ambiguous = None
        else:
            centers_host = (host.obj_boxes[:, :2] + host.obj_boxes[:, 2:]) / np.float32(2)
            blocks, ambiguous = self._window_candidates(obj_centers, anchor_centers, centers_host, axes, counts)
        # 4-6. adaptive IoU threshold, centre inside the object; device-to-host copy 2 (3 after a tie)
        cand, keep, ambiguous = self._fetch_positives(blocks, ambiguous, obj_boxes, anchor_bboxes, anchor_centers)
        if ambiguous is not None and ambiguous.any():
            for level, (start, stop) in enumerate(levels):
                rows = np.nonzero(ambiguous[:, level])[0]
                if len(rows):
                    fixed = self._level_candidates(obj_centers, anchor_centers, rows, (start, stop))
                    blocks[level] = paddle.scatter(blocks[level], paddle.to_tensor(rows), fixed)
            cand, keep, _ = self._fetch_positives(blocks, None, obj_boxes, anchor_bboxes, anchor_centers)

        # 7. an anchor claimed by several objects goes to the GT slot of highest IoU
        obj, col = np.nonzero(keep)
        flat, slot = resolve_claims(host.image[obj], host.slot[obj], cand[obj, col], num_anchors,
                                    lambda f: gather_rows(anchor_bboxes, f % num_anchors), gt_bboxes,
                                    G.IOU_EPS_ANCHOR, self.memory_budget_mb)
        assigned, positive = dense_assignment(flat, slot, batch, num_anchors)
        # 8. optionally: an anchor that is the best-IoU anchor of exactly one object goes to it
        if self.force_gt_matching:
            assigned, positive = self._force_matching(assigned, positive, obj_boxes, anchor_bboxes, host)
        return assigned, positive

    def _window_candidates(self, obj_centers, anchor_centers, centers_host, axes, counts):
        """The topk centre-nearest anchors of every level, looked for in a window around each object.

        The k nearest of a window are the level's k nearest when they are unique: the k-th distance is below
        the (k+1)-th and below a bound on the distance of every anchor outside the window. Where not (a tie at
        the k-th place, a centre far outside the grid) the (object, level) is flagged for the full level, where
        Paddle's top-k breaks the tie exactly as in PaddleDetection.

        Args:
            obj_centers (Tensor[M, 2]), anchor_centers (Tensor[L, 2]), centers_host (np.ndarray[M, 2]),
            axes: `grid.level_axes` of the anchor centres; counts (list[int]).
        Returns:
            blocks (list of Tensor[M, k_l] int64), ambiguous (Tensor[M, levels] bool).
        """
        num_objects = centers_host.shape[0]
        windows, bounds, widths, start = [], [], [], 0
        for (xs, ys), count in zip(axes, counts):
            k = min(self.topk, count)
            r0, r1, c0, c1, bound = grid.nearest_windows(centers_host, xs, ys, k)
            _, anchors = grid.expand_rectangles(np.arange(num_objects), start, len(xs), r0, r1, c0, c1)
            windows.append(anchors.reshape(num_objects, -1))
            bounds.append(bound * (1 - _WINDOW_MARGIN))
            widths.append(windows[-1].shape[1])
            start += count
        window = np.concatenate(windows, axis=1)                                      # [M, W]
        window_t = paddle.to_tensor(window)
        window_centers = paddle.gather(anchor_centers, window_t.flatten()).reshape(list(window.shape) + [2])
        dist = G.center_distances(obj_centers.unsqueeze(1), window_centers)          # [M, W]
        blocks, ambiguous, offset = [], [], 0
        for level, width in enumerate(widths):
            k = min(self.topk, counts[level])
            part = dist[:, offset:offset + width]
            values, pos = paddle.topk(part, min(k + 1, width), axis=-1, largest=False)
            blocks.append(paddle.take_along_axis(window_t[:, offset:offset + width], pos[:, :k], axis=1))
            kth = values[:, k - 1]
            flag = kth >= paddle.to_tensor(bounds[level].astype(np.float32))
            if width > k:
                flag = flag | (kth >= values[:, k])
            ambiguous.append(flag)
            offset += width
        return blocks, paddle.stack(ambiguous, axis=1)

    def _level_candidates(self, obj_centers, anchor_centers, rows, level):
        """The topk centre-nearest anchors of one full level for objects `rows`, as ppdet computes them.

        Args:
            obj_centers (Tensor[M, 2]), anchor_centers (Tensor[L, 2]), rows (np.ndarray[R]),
            level ((start, stop)).
        Returns:
            Tensor[R, k_l] int64 anchor indices.
        """
        start, stop = level
        k = min(self.topk, stop - start)
        level_centers = anchor_centers[start:stop].unsqueeze(0)
        out = []
        for i, j in row_chunks(len(rows), (stop - start) * 4 * 3, self.memory_budget_mb):
            dist = G.center_distances(gather_rows(obj_centers, rows[i:j]).unsqueeze(1), level_centers)
            out.append(paddle.topk(dist, k, axis=-1, largest=False)[1] + start)
        return paddle.concat(out) if len(out) > 1 else out[0]

    def _fetch_positives(self, blocks, ambiguous, obj_boxes, anchor_bboxes, anchor_centers):
        """Candidates' IoU threshold and centre test, brought to the host in one copy.

        Args:
            blocks (list of Tensor[M, k_l]), ambiguous (Tensor[M, levels] bool | None),
            obj_boxes (Tensor[M, 4]), anchor_bboxes (Tensor[L, 4]), anchor_centers (Tensor[L, 2]).
        Returns:
            cand (np.ndarray[M, K] int64), keep (np.ndarray[M, K] bool), ambiguous (np.ndarray[M, levels] | None).
        """
        cand = paddle.concat(blocks, axis=1)                                             # [M, K]
        shape = cand.shape
        flat = cand.flatten()
        cand_boxes = paddle.gather(anchor_bboxes, flat).reshape(shape + [4])
        iou = G.aligned_iou(obj_boxes.unsqueeze(1), cand_boxes, eps=G.IOU_EPS_ANCHOR)     # [M, K]
        threshold = iou.mean(axis=-1, keepdim=True) + std_unbiased(iou)
        cand_centers = paddle.gather(anchor_centers, flat).reshape(shape + [2])
        keep = (iou > threshold) & G.points_inside_boxes(cand_centers, obj_boxes.unsqueeze(1))
        parts = [cand.astype("int32").flatten(), keep.astype("int32").flatten()]
        if ambiguous is not None:
            parts.append(ambiguous.astype("int32").flatten())
        host = paddle.concat(parts).numpy()
        size = shape[0] * shape[1]
        flags = host[2 * size:].reshape(shape[0], -1).astype(bool) if ambiguous is not None else None
        return (host[:size].reshape(shape).astype(np.int64), host[size:2 * size].reshape(shape).astype(bool),
                flags)

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
        zeros = paddle.zeros([batch * num_anchors], "int64")
        claims = paddle.put_along_axis(zeros, flat, paddle.ones_like(flat), axis=0, reduce="add")
        owner = paddle.put_along_axis(zeros, flat, paddle.to_tensor(host.slot.astype(np.int64)), axis=0,
                                      reduce="add")
        forced = (claims == 1).reshape([batch, num_anchors])
        return paddle.where(forced, owner.reshape([batch, num_anchors]), assigned), positive | forced
