"""Steps shared by ATSSAssigner and TaskAlignedAssigner, batched over every image of a call.

Both assigners work on the real objects of the whole batch at once: M objects flattened image after image,
each known by its image ``b`` and GT slot ``j``. The helpers here

- bring what the host needs in one device-to-host copy (`HostInputs.fetch`),
- resolve anchors claimed by several objects (`resolve_claims`, as PaddleDetection: highest IoU over all GT
  slots of the image),
- build PaddleDetection's dense outputs with static-shape scatters (`build_targets`, `mask_positive_dense`),

so that the number of Paddle operators a call dispatches does not grow with the batch size. Index work is
host-side NumPy (uploads cost no operator); every float that decides an assignment is computed by Paddle ops
in the same order as PaddleDetection's, so outputs stay identical.
"""
import functools

import numpy as np
import paddle

from ..ops import geometry as G
from ..ops.validation import fetch_gt

# Paddle's CPU top-k (phi/kernels/cpu/top_k_kernel.cc) runs std::partial_sort when k * 64 < width.
_PARTIAL_SORT_FACTOR = 64


def row_chunks(num_rows, row_bytes, budget_mb):
    """[(start, stop)] splitting `num_rows` rows of `row_bytes` temporaries each into pieces within the budget."""
    step = max(1, int(budget_mb * 2**20) // max(int(row_bytes), 1))
    return [(i, min(i + step, num_rows)) for i in range(0, num_rows, step)]


class HostInputs:
    """The ground truth (and anchors) on the host, brought by one device-to-host copy, and checked.

    Attributes:
        valid (np.ndarray[B, n] bool), boxes (np.ndarray[B, n, 4] float32), labels (np.ndarray[B, n] int64),
        extra (list of np.ndarray): the `extra` tensors, flattened; image (np.ndarray[M]), slot (np.ndarray[M]):
        image and GT slot of each real object, image after image; obj_boxes (np.ndarray[M, 4]), obj_labels [M].
    """

    @classmethod
    def fetch(cls, gt_labels, gt_bboxes, pad_gt_mask, num_classes, extra=(), finite=()):
        """One copy of GT boxes, mask, labels, `extra` tensors and the finiteness of each (name, tensor) in `finite`.

        Raises ValueError naming the argument for NaN/inf values, x2 < x1, labels outside [0, num_classes).
        """
        self = cls()
        self.valid, self.boxes, self.labels, self.extra = fetch_gt(gt_labels, gt_bboxes, pad_gt_mask, num_classes,
                                                                   extra, finite)
        self.image, self.slot = np.nonzero(self.valid)
        self.obj_boxes = self.boxes[self.image, self.slot]
        self.obj_labels = self.labels[self.image, self.slot]
        return self

    @property
    def num_objects(self):
        return len(self.image)


def std_unbiased(x):
    """Unbiased standard deviation over the last axis, keepdim: Tensor[..., K] -> Tensor[..., 1].

    The operations of ``paddle.std`` (mean, squared deviations, sum, divide by K - 1, sqrt), so the values are
    bit-identical, without its host round-trip (``paddle.std`` checks ``any(K - 1 <= 0)`` on the host).
    """
    deviation = paddle.pow(x - x.mean(axis=-1, keepdim=True), 2)
    total = paddle.sum(deviation, axis=-1, keepdim=True, dtype=x.dtype)
    return paddle.sqrt(total / paddle.full([], max(x.shape[-1] - 1, 0), x.dtype))


def gather_rows(x, index):
    """x[index] along axis 0 for a NumPy index (uploaded, no operator): Tensor[len(index), ...]."""
    return paddle.gather(x, paddle.to_tensor(np.asarray(index, np.int64)))


def resolve_claims(pair_image, pair_slot, pair_anchor, num_anchors, boxes_of, gt_bboxes, eps, budget_mb):
    """One GT per anchor from positive (object, anchor) pairs of the whole batch.

    An anchor claimed by one object goes to it. An anchor claimed by several goes, as in PaddleDetection, to the
    GT slot of its image whose box overlaps it most (argmax of IoU over *all* n slots, padding included, the
    first on ties), which may be an object that did not claim it.

    Args:
        pair_image, pair_slot, pair_anchor (np.ndarray[P] int64): positive pairs.
        num_anchors (int): L.
        boxes_of (callable): np.ndarray[Q] flat anchor index (b * L + a) -> Tensor[Q, 4] boxes IoU is measured
            with (anchors for ATSS, predictions for TAL).
        gt_bboxes (Tensor[B, n, 4]); eps (float): IoU epsilon; budget_mb: memory budget for [Q, n] temporaries.
    Returns:
        flat (np.ndarray[F] int64): positive anchors b * L + a, sorted; slot (Tensor[F] int64): their GT slot.
    """
    batch, num_max = gt_bboxes.shape[:2]
    flat_pairs = pair_image * num_anchors + pair_anchor
    flat, first, counts = np.unique(flat_pairs, return_index=True, return_counts=True)
    slot = paddle.to_tensor(np.where(counts == 1, pair_slot[first], 0).astype(np.int64))
    multi = np.nonzero(counts > 1)[0]
    if len(multi):
        anchors_flat = flat[multi]
        winners = []
        for start, stop in row_chunks(len(multi), num_max * 4 * 12, budget_mb):
            rows = anchors_flat[start:stop]
            boxes = boxes_of(rows).unsqueeze(1)                                    # [q, 1, 4]
            gts = gather_rows(gt_bboxes, rows // num_anchors)                     # [q, n, 4]
            winners.append(G.aligned_iou(gts, boxes, eps=eps).argmax(axis=-1))    # [q]
        winners = paddle.concat(winners) if len(winners) > 1 else winners[0]
        slot = paddle.scatter(slot, paddle.to_tensor(multi), winners)
    return flat, slot


def dense_assignment(flat, slot, batch, num_anchors):
    """Dense (assigned GT slot, positive) from positive anchors.

    Args:
        flat (np.ndarray[F]): positive anchors b * L + a; slot (Tensor[F] int64): their GT slots.
    Returns:
        assigned (Tensor[B, L] int64): slot of each anchor, 0 for negatives (as ppdet's argmax gives);
        positive (Tensor[B, L] bool).
    """
    positive = np.zeros(batch * num_anchors, bool)
    positive[flat] = True
    assigned = paddle.zeros([batch * num_anchors], "int64")
    if len(flat):
        assigned = paddle.scatter(assigned, paddle.to_tensor(flat), slot)
    return assigned.reshape([batch, num_anchors]), paddle.to_tensor(positive.reshape(batch, num_anchors))


def build_targets(assigned_gt, positive, gt_labels, gt_bboxes, bg_index, num_classes, weights=None):
    """Dense targets from each anchor's GT, with static shapes (no data-dependent operator).

    Args:
        assigned_gt (Tensor[B, L], int64): GT slot per anchor (any valid slot where not positive).
        positive (Tensor[B, L], bool).
        gt_labels (Tensor[B, n, 1], int), gt_bboxes (Tensor[B, n, 4]).
        bg_index (int): label of negatives; its column is left out of the scores.
        num_classes (int): C.
        weights (Tensor[B, L] | None): score of each positive anchor (1 when None).
    Returns:
        labels (Tensor[B, L], gt_labels.dtype), bboxes (Tensor[B, L, 4]),
        scores (Tensor[B, L, C]): `weights` at the label's column (ppdet's one-hot over C + 1 labels without the
        bg_index column, times the weight), 0 elsewhere and for negatives.
    """
    batch, num_anchors = positive.shape
    labels = paddle.take_along_axis(gt_labels.squeeze(-1), assigned_gt, axis=1)
    labels = paddle.where(positive, labels, paddle.full_like(labels, bg_index))
    bboxes = paddle.take_along_axis(gt_bboxes, assigned_gt.unsqueeze(-1), axis=1, broadcast=True)
    # ppdet's one-hot over C + 1 labels without the bg column: one write per anchor into a zero [B * L * C]
    column = labels.astype("int64")
    column = column - (column > bg_index).astype("int64")
    value = (positive & (labels != bg_index)).astype(gt_bboxes.dtype)
    if weights is not None:
        value = value * weights
    base = paddle.to_tensor(np.arange(batch * num_anchors, dtype=np.int64).reshape(batch, num_anchors) * num_classes)
    index = (base + column.clip(0, num_classes - 1)).flatten()
    scores = paddle.zeros([batch * num_anchors * num_classes], gt_bboxes.dtype)
    scores.scatter_(index, value.flatten())                     # in place: the [B, L, C] output exists once
    scores = scores.reshape([batch, num_anchors, num_classes])
    return labels, bboxes, scores


def mask_positive_dense(assigned_gt, positive, num_max_boxes, dtype):
    """ppdet 2.6's fourth output: 1 where anchor l is a positive of GT j.

    Args:
        assigned_gt (Tensor[B, L], int64), positive (Tensor[B, L], bool), num_max_boxes (int): n.
    Returns:
        Tensor[B, n, L] of `dtype`.
    """
    batch, num_anchors = positive.shape
    if num_max_boxes == 0:
        return paddle.zeros([batch, 0, num_anchors], dtype)
    # one write per anchor, at (b, its slot, a), of 1 for positives and 0 for negatives
    image, anchor = np.divmod(np.arange(batch * num_anchors, dtype=np.int64).reshape(batch, num_anchors), num_anchors)
    index = assigned_gt * num_anchors + paddle.to_tensor(image * num_max_boxes * num_anchors + anchor)
    mask = paddle.zeros([batch * num_max_boxes * num_anchors], dtype)
    mask.scatter_(index.flatten(), positive.astype(dtype).flatten())     # in place: [B, n, L] exists once
    return mask.reshape([batch, num_max_boxes, num_anchors])


def background_outputs(batch, num_anchors, num_classes, gt_labels, gt_bboxes, bg_index):
    """Outputs for a batch without any real object: every anchor negative (as ppdet's, slot 0's box)."""
    assigned = paddle.zeros([batch, num_anchors], "int64")
    positive = paddle.zeros([batch, num_anchors], "bool")
    if gt_bboxes.shape[1] == 0:
        labels = paddle.full([batch, num_anchors], bg_index, gt_labels.dtype)
        return (labels, paddle.zeros([batch, num_anchors, 4], gt_bboxes.dtype),
                paddle.zeros([batch, num_anchors, num_classes], gt_bboxes.dtype), assigned, positive)
    return build_targets(assigned, positive, gt_labels, gt_bboxes, bg_index, num_classes) + (assigned, positive)


def pack_outputs(labels, bboxes, scores, assigned_gt, positive, num_max_boxes, return_mask_positive):
    """Return 4 values (ppdet 2.6 heads) or 3 (ppdet 2.7+), whatever the input."""
    if not return_mask_positive:
        return labels, bboxes, scores
    return labels, bboxes, scores, mask_positive_dense(assigned_gt, positive, num_max_boxes, bboxes.dtype)


@functools.lru_cache(maxsize=None)
def _probe_zero_ties(k, width, place):
    """Whether this device's paddle.topk, on a row of zeros with a few positives, takes its zeros from the
    row's first k entries only (std::partial_sort's heap selection; see `zero_ties_come_from_prefix`)."""
    rng = np.random.default_rng(0)
    positives = max(1, k // 2)
    row = np.zeros(width, np.float32)
    where = rng.choice(np.arange(k, width), size=positives, replace=False)
    row[where] = rng.uniform(0.1, 1.0, size=positives).astype(np.float32)
    row[: k // 2] = 0.5                        # positives inside the prefix too
    picked = paddle.topk(paddle.to_tensor(row), k)[1].numpy()
    zeros = picked[row[picked] == 0]
    return bool(np.isin(np.nonzero(row)[0], picked).all() and (zeros < k).all())


def zero_ties_come_from_prefix(k, width):
    """True when a top-k of `width` non-negative values picks its zero-valued entries among the first k only.

    Paddle's CPU kernel uses std::partial_sort when k * 64 < width. Its heap selection keeps k entries and
    lets a later entry in only when it is strictly greater than the smallest kept one, so a 0 found after the
    first k entries never enters. Then which zeros a full-row top-k picks depends on the row's first k entries
    alone. Checked once per (k, width, device) by a probe; False on devices whose kernel differs (GPU), where
    the assigner uses the full row instead.
    """
    place = str(paddle.get_device())
    if not place.startswith("cpu") or k * _PARTIAL_SORT_FACTOR >= width:
        return False
    return _probe_zero_ties(int(k), int(width), place)
