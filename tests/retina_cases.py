"""Inputs and NumPy references of the RetinaNet assigner rules (tests/assigners/test_*_assigner.py).

The references are written as plainly as possible (Python loops over objects and anchors, float32 arithmetic
like Paddle's) so that each states its rule; the Paddle assigners must agree with them exactly.
"""
import numpy as np
import paddle


def retina_anchors(image_size=96, strides=(8, 16, 32), scales=(4.0,), ratios=(1.0,)):
    """ppdet RetinaAnchorGenerator-style anchors (centres at k*stride): ([L, 4] float32, per-level counts)."""
    out, counts = [], []
    for stride in strides:
        n = int(np.ceil(image_size / stride))
        xs = np.arange(n, dtype="float32") * stride
        cy, cx = np.meshgrid(xs, xs, indexing="ij")
        cells = []
        for s in scales:
            for r in ratios:
                w = np.sqrt((s * stride) ** 2 / r)
                h = r * w
                cells.append([-w / 2, -h / 2, w / 2, h / 2])
        cells = np.asarray(cells, "float32")
        shifts = np.stack([cx.ravel(), cy.ravel(), cx.ravel(), cy.ravel()], -1)
        level = (shifts[:, None, :] + cells[None]).reshape(-1, 4)
        out.append(level)
        counts.append(len(level))
    return np.concatenate(out).astype("float32"), counts


def random_boxes(rng, num, image_size=96, min_size=2.0):
    wh = np.exp(rng.uniform(np.log(min_size), np.log(image_size * 0.8), size=(num, 2)))
    xy = rng.uniform(0, image_size, size=(num, 2)) - wh / 2
    return np.concatenate([xy, xy + wh], -1).astype("float32")


def t(array, dtype=None):
    return paddle.to_tensor(np.asarray(array, dtype=dtype) if dtype else np.asarray(array))


def np_iou(gt, anchors):
    """ppdet bbox_overlaps in float32: [n, L]."""
    gt, anchors = np.asarray(gt, "float32"), np.asarray(anchors, "float32")
    out = np.zeros((len(gt), len(anchors)), "float32")
    for i, g in enumerate(gt):
        for j, a in enumerate(anchors):
            w = max(np.float32(0), min(g[2], a[2]) - max(g[0], a[0]))
            h = max(np.float32(0), min(g[3], a[3]) - max(g[1], a[1]))
            inter = np.float32(w * h)
            if inter > 0:
                union = (g[2] - g[0]) * (g[3] - g[1]) + (a[2] - a[0]) * (a[3] - a[1]) - inter
                out[i, j] = inter / union
    return out


def np_aligned_iou(a, b, eps=1e-9):
    a, b = np.asarray(a, "float64"), np.asarray(b, "float64")
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    area = lambda x: np.clip(x[..., 2] - x[..., 0], 0, None) * np.clip(x[..., 3] - x[..., 1], 0, None)
    return w * h / (area(a) + area(b) - w * h + eps)


def np_max_iou(gt, anchors, pos, neg, low_quality):
    """Max-IoU rule: (matches, labels)."""
    num_anchors = len(anchors)
    if len(gt) == 0:
        return np.zeros(num_anchors, "int64"), np.zeros(num_anchors, "int32")
    iou = np_iou(gt, anchors)
    matches = np.zeros(num_anchors, "int64")
    labels = np.full(num_anchors, -1, "int32")
    for j in range(num_anchors):
        best = max(range(len(gt)), key=lambda i: (iou[i, j], -i))     # first object of highest IoU
        matches[j] = best
        if iou[best, j] < neg:
            labels[j] = 0
        if iou[best, j] >= pos:
            labels[j] = 1
    if low_quality:
        for i in range(len(gt)):
            top = iou[i].max()
            for j in range(num_anchors):
                if iou[i, j] > 0 and iou[i, j] == top:
                    labels[j] = 1
    return matches, labels


def np_topk(gt, anchors, k, min_iou=0.0, iou=None):
    """Top-k per object, conflicts to the highest IoU (ties: lower object), rest negative: (matches, positive)."""
    num_anchors = len(anchors)
    iou = np_iou(gt, anchors) if iou is None else iou
    wanted = [[] for _ in range(num_anchors)]
    for i in range(len(gt)):
        order = sorted(range(num_anchors), key=lambda j: (-iou[i, j], j))[:k]
        for j in order:
            if iou[i, j] > min_iou:
                wanted[j].append(i)
    matches = np.zeros(num_anchors, "int64")
    positive = np.zeros(num_anchors, bool)
    for j, objs in enumerate(wanted):
        if objs:
            matches[j] = max(objs, key=lambda i: (iou[i, j], -i))
            positive[j] = True
    return matches, positive


def np_fcos(gt, anchors, counts, strides, sizes, radius):
    """FCOS's rule on anchor centres: (matches, positive)."""
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    level = np.repeat(np.arange(len(counts)), counts)
    matches = np.zeros(len(anchors), "int64")
    positive = np.zeros(len(anchors), bool)
    for j, (x, y) in enumerate(centres):
        best, best_area = None, None
        for i, (x1, y1, x2, y2) in enumerate(gt):
            s = strides[level[j]]
            if radius > 0:
                cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
                bx1, by1 = max(cx - radius * s, x1), max(cy - radius * s, y1)
                bx2, by2 = min(cx + radius * s, x2), min(cy + radius * s, y2)
            else:
                bx1, by1, bx2, by2 = x1, y1, x2, y2
            inside = x > bx1 and y > by1 and bx2 > x and by2 > y
            largest = max(x - x1, y - y1, x2 - x, y2 - y)
            lo, hi = sizes[level[j]]
            if inside and lo < largest < hi:
                area = (x2 - x1) * (y2 - y1)
                if best is None or area < best_area:
                    best, best_area = i, area
        if best is not None:
            matches[j], positive[j] = best, True
    return matches, positive


def np_noisy(gt, gt_class, anchors, pred_boxes, pred_scores, k, alpha, gamma, normalize=True, combine="sum"):
    """Noisy-anchor targets as the authors' code computes them (normalize: statistics over the concatenated
    top-k lists, an anchor counted once per object that took it) or as the paper writes them:
    (matches, positive, soft target, cls weight, reg weight)."""
    iou = np_iou(gt, anchors)
    picked = [j for i in range(len(gt)) for j in sorted(range(len(anchors)), key=lambda j: (-iou[i, j], j))[:k]]
    positive = np.zeros(len(anchors), bool)
    positive[picked] = True
    matches = np.where(positive, iou.argmax(0), 0)
    loc = np.array([np_aligned_iou(pred_boxes[j], gt[matches[j]]) for j in picked])
    cls = np.array([pred_scores[j, gt_class[matches[j]]] for j in picked])
    f_loc, f_cls = 1 / np.maximum(1 - loc, 1e-6), 1 / np.maximum(1 - cls, 1e-6)
    if combine == "product":
        soft = loc * cls
    elif normalize:
        mixed = alpha * loc / loc.mean() + (1 - alpha) * cls / cls.mean()
        span = mixed.max() - mixed.min()
        soft = loc.mean() + (mixed - mixed.min()) * ((1 - loc.mean()) / span if span > 0 else 0.0)
    else:
        soft = alpha * loc + (1 - alpha) * cls
    if normalize:
        f_loc, f_cls = f_loc / f_loc.mean(), f_cls / f_cls.mean()
    target, weight = np.zeros(len(anchors)), np.zeros(len(anchors))
    target[picked], weight[picked] = soft, (alpha * f_loc + (1 - alpha) * f_cls) ** gamma
    return matches, positive, target, np.where(positive, weight, 1.0), weight


def np_hambox(gt, anchors, pred_boxes, thr, k, comp_iou):
    """HAMBox on one image: (matches, labels 1 / 0 / -1, cls weight, reg weight)."""
    matches, labels = np_max_iou(gt, anchors, thr, thr, False)
    matched = labels == 1
    reg = np.array([[np_aligned_iou(g, p) for p in pred_boxes] for g in gt])
    wanted = [[] for _ in range(len(anchors))]
    for i in range(len(gt)):
        have = int(np.sum(matched & (matches == i)))
        order = sorted((j for j in range(len(anchors)) if not matched[j] and reg[i, j] >= comp_iou),
                       key=lambda j: (-reg[i, j], j))
        for j in order[:max(0, k - have)]:
            wanted[j].append(i)
    added = np.zeros(len(anchors), bool)
    quality = np.zeros(len(anchors))
    for j, objs in enumerate(wanted):
        if objs:
            best = max(objs, key=lambda i: (reg[i, j], -i))
            matches[j], added[j], quality[j] = best, True, reg[best, j]
    ignored = ~matched & ~added & (reg.max(0) >= comp_iou)
    labels = np.where(matched | added, 1, np.where(ignored, -1, 0)).astype("int32")
    n1, n2 = matched.sum(), added.sum()
    total = max(1, n1 + n2)
    w1, w2 = total / max(1, n1), total / max(1, n2)
    cls_w = np.where(added, quality * w2, np.where(ignored, 0.0, w1))
    reg_w = np.where(added, w2, np.where(matched, w1, 0.0))
    return matches, labels, cls_w, reg_w


def np_atss(gt, anchors, counts, k):
    """ATSS positives before conflicts ([n, L] bool) and their IoUs, by the textbook algorithm (no ties) with
    PaddleDetection's strict IoU > mean + std, as ppassign's ATSSAssigner; k is clipped per level."""
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    iou = np_aligned_iou(gt[:, None], anchors[None], eps=1e-10)
    out = np.zeros((len(gt), len(anchors)), bool)
    for i, box in enumerate(gt):
        dist = np.linalg.norm(centres - (box[:2] + box[2:]) / 2, axis=1)
        cand, start = [], 0
        for c in counts:
            cand += list(start + np.argsort(dist[start:start + c], kind="stable")[:min(k, c)])
            start += c
        cand = np.array(cand)
        thr = iou[i, cand].mean() + iou[i, cand].std(ddof=1)
        inside = ((centres[cand] - box[:2] > 1e-9) & (box[2:] - centres[cand] > 1e-9)).all(1)
        out[i, cand[(iou[i, cand] > thr) & inside]] = True
    return out, iou


def random_batch(rng, anchors, batch=4, image_size=64, max_objects=5, num_classes=3):
    """A padded batch (image 1 without objects, padding after the real objects) and per-image predictions.

    Returns:
        dict of numpy arrays: boxes [B, n, 4], classes [B, n], mask [B, n], counts [B], pred_bboxes [B, L, 4]
        (anchors moved towards random objects), pred_scores [B, L, C].
    """
    counts = rng.integers(1, max_objects + 1, batch)
    counts[1] = 0
    num = int(counts.max())
    boxes = np.zeros((batch, num, 4), "float32")
    classes = np.zeros((batch, num), "int64")
    preds = np.repeat(anchors[None], batch, 0).astype("float32")
    for b, c in enumerate(counts):
        boxes[b, :c] = random_boxes(rng, c, image_size)
        classes[b, :c] = rng.integers(0, num_classes, c)
        if c:
            target = boxes[b, rng.integers(0, c, len(anchors))]
            mix = rng.uniform(0, 1, (len(anchors), 1))
            preds[b] = anchors * (1 - mix) + target * mix
    mask = (np.arange(num)[None] < counts[:, None])
    scores = rng.uniform(0, 1, (batch, len(anchors), num_classes)).astype("float32")
    return {"boxes": boxes, "classes": classes, "mask": mask, "counts": counts, "pred_bboxes": preds,
            "pred_scores": scores}


def assign_both_ways(assigner, anchors, num_anchors_list, case):
    """(assign_batch's fields as numpy [B, L], per-image assign's fields stacked [B, L]) on a random_batch case."""
    kwargs = {"num_anchors_list": num_anchors_list}
    batched = assigner.assign_batch(t(anchors), t(case["boxes"]), t(case["mask"]), gt_class=t(case["classes"]),
                                    pred_bboxes=t(case["pred_bboxes"]), pred_scores=t(case["pred_scores"]),
                                    **kwargs)
    single = []
    for b, c in enumerate(case["counts"]):
        out = assigner.assign(t(anchors), t(case["boxes"][b, :c]), gt_class=t(case["classes"][b, :c]),
                              pred_bboxes=t(case["pred_bboxes"][b]), pred_scores=t(case["pred_scores"][b]), **kwargs)
        single.append([f.numpy() for f in out])
    return [f.numpy() for f in batched], [np.stack(f) for f in zip(*single)]


def assert_batch_equals_per_image(assigner, seed, image_size=64, **anchor_args):
    """assign_batch on a random_batch equals per-image assign field by field; image 1 (no object) all negative."""
    anchors, counts = retina_anchors(image_size, **anchor_args)
    case = random_batch(np.random.default_rng(seed), anchors, image_size=image_size)
    batched, single = assign_both_ways(assigner, anchors, counts, case)
    for name, got, ref in zip(("matches", "labels", "cls_targets", "cls_weights", "reg_weights"), batched, single):
        np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6, err_msg=name)
    assert (batched[1][1] == 0).all() and (batched[0][1] == 0).all()
