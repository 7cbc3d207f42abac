"""Inputs for the assigner tests: anchor grids, random GTs and the corner cases of issue 2.

Kept as plain functions (no fixtures) so the benchmark tool can reuse the random-case generator.
"""
import numpy as np
import paddle

STRIDES = (8, 16, 32)


def anchor_grid(image_size=160, strides=STRIDES, cell=5.0, offset=0.5):
    """PP-YOLOE-style anchors: ([L, 4] boxes, [L, 2] points, per-level counts)."""
    boxes, points, counts = [], [], []
    for stride in strides:
        n = int(np.ceil(image_size / stride))
        xs = (np.arange(n) + offset) * stride
        cy, cx = np.meshgrid(xs, xs, indexing="ij")
        pts = np.stack([cx.ravel(), cy.ravel()], -1)
        half = cell * stride / 2
        boxes.append(np.concatenate([pts - half, pts + half], -1))
        points.append(pts)
        counts.append(len(pts))
    to = lambda a: paddle.to_tensor(np.concatenate(a).astype("float32"))
    return to(boxes), to(points), counts


def random_gt(rng, batch, num_max, image_size=160, num_classes=5, fill=None, min_size=1.0, label_dtype="int32"):
    """Padded GTs: labels [B, n, 1], boxes [B, n, 4], mask [B, n, 1]; image b holds fill[b] real boxes."""
    if fill is None:
        fill = rng.integers(0, num_max + 1, size=batch)
    labels = np.zeros((batch, num_max, 1), label_dtype)
    boxes = np.zeros((batch, num_max, 4), "float32")
    mask = np.zeros((batch, num_max, 1), "float32")
    for b in range(batch):
        k = int(fill[b])
        wh = np.exp(rng.uniform(np.log(min_size), np.log(image_size * 0.8), size=(k, 2)))
        xy = rng.uniform(0, image_size, size=(k, 2)) - wh / 2
        boxes[b, :k] = np.concatenate([xy, xy + wh], -1)
        labels[b, :k, 0] = rng.integers(0, num_classes, size=k)
        mask[b, :k] = 1
    return paddle.to_tensor(labels), paddle.to_tensor(boxes), paddle.to_tensor(mask)


def random_predictions(rng, batch, points, num_classes=5, image_size=160):
    """Predicted scores [B, L, C] in (0, 1) and boxes [B, L, 4] around the anchor points."""
    pts = points.numpy()
    num = len(pts)
    scores = rng.uniform(0.01, 0.99, size=(batch, num, num_classes)).astype("float32")
    half = rng.uniform(2, image_size / 3, size=(batch, num, 2)).astype("float32")
    shift = rng.normal(0, 4, size=(batch, num, 2)).astype("float32")
    centers = pts[None] + shift
    boxes = np.concatenate([centers - half, centers + half], -1).astype("float32")
    return paddle.to_tensor(scores), paddle.to_tensor(boxes)


def reference_assigners():
    """PaddleDetection's own assigners (index dtype fixed by ppassign.compat) — the parity reference."""
    import ppassign  # noqa: F401  (applies compat.fix_ppdet_assigners)
    from ppdet.modeling.assigners.atss_assigner import ATSSAssigner
    from ppdet.modeling.assigners.task_aligned_assigner import TaskAlignedAssigner
    return ATSSAssigner, TaskAlignedAssigner


def assert_same_assignment(ref, out, score_atol=1e-5):
    """Labels, boxes and mask exactly equal, scores to `score_atol`; same arity."""
    assert len(ref) == len(out)
    np.testing.assert_array_equal(out[0].numpy(), ref[0].numpy(), err_msg="assigned_labels")
    np.testing.assert_array_equal(out[1].numpy(), ref[1].numpy(), err_msg="assigned_bboxes")
    np.testing.assert_allclose(out[2].numpy(), ref[2].numpy(), rtol=0, atol=score_atol, err_msg="assigned_scores")
    if len(ref) == 4:
        np.testing.assert_array_equal(out[3].numpy(), ref[3].numpy(), err_msg="mask_positive")


def tie_gt(batch=2, stride=8, label_dtype="int32"):
    """GTs whose centres sit exactly between anchor centres of every level (distance ties)."""
    boxes = np.array([[8.0, 8.0, 24.0, 24.0],      # centre (16, 16): between stride-8 centres 12 and 20
                      [32.0, 0.0, 64.0, 32.0],     # centre (48, 16)
                      [40.0, 56.0, 88.0, 104.0],   # centre (64, 80)
                      [0.0, 0.0, 128.0, 128.0]],   # centre (64, 64): between centres of all three levels
                     "float32")
    labels = np.array([[0], [1], [2], [3]], label_dtype)
    to = paddle.to_tensor
    return (to(np.repeat(labels[None], batch, 0)), to(np.repeat(boxes[None], batch, 0)),
            to(np.ones((batch, len(boxes), 1), "float32")))


def early_predictions(rng, batch, points, num_classes=5, image_size=256):
    """Predictions as at the start of training: small boxes anywhere, low scores (most metrics exactly 0)."""
    num = points.shape[0]
    scores = rng.uniform(0.0, 0.05, size=(batch, num, num_classes)).astype("float32")
    centers = rng.uniform(0, image_size, size=(batch, num, 2))
    half = rng.uniform(1, 6, size=(batch, num, 2))
    boxes = np.concatenate([centers - half, centers + half], -1).astype("float32")
    return paddle.to_tensor(scores), paddle.to_tensor(boxes)


def one_object_per_image(batch, image_size=160, label_dtype="int32"):
    """The same single object in every image, so that nothing but B changes between two calls."""
    boxes = np.tile(np.array([[[30.0, 40.0, 90.0, 110.0]]], "float32"), (batch, 1, 1)) * image_size / 160
    return (paddle.to_tensor(np.ones((batch, 1, 1), label_dtype)), paddle.to_tensor(boxes),
            paddle.ones([batch, 1, 1]))
