"""How many of DW's refinement boundary points fall outside the feature map (tools/dw_refine_stats.py).

With the official 'zeros' sampling such a point reads 0, so that side of the refined box is clipped to 0 and
passes no gradient to the coarse box or the offsets (`ppassign.heads.dw_head.refine_points_outside`). The
share is counted per FPN level and side, over all locations and over the locations inside a ground-truth box
(the DW candidates, whose boxes the loss trains), on a config's images at random init or with trained weights.

`refine_iou` asks whether the refinement helps a model: for each object, the IoU with it of the coarse box and
of the refined box at its best-scoring candidates (the boxes that become its detections).
"""
import numpy as np
import paddle
import paddle.nn.functional as F

from ..engine.common import PipelineError
from ..heads import dw_head, fcos_base
from . import models
from .runner import _read_rgb, _record_objects, dataset_records

SIDES = ("left", "top", "right", "bottom")
# COCO's object size classes, here by box area (w x h, original image pixels); COCOeval uses the annotation's
# `area` instead, which for the built-in dataset's shapes is smaller than their box
SIZE_CLASSES = (("small", 0.0, 32.0 ** 2), ("medium", 32.0 ** 2, 96.0 ** 2), ("large", 96.0 ** 2, float("inf")))


def refine_stats(config, overrides=(), split="eval", max_images=32):
    """Per level: share of boundary points outside the map, per side, over all locations and candidates.

    Args:
        config (str): a DWHead config with ``with_refine: true``. overrides (list[str]): ``-o`` items
            (``weights=...`` for a trained model). split (str): 'train' or 'eval'. max_images (int).
    Returns:
        list of dicts per level: stride, map (H, W), all [4], candidates [4] (None when no candidate).
    """
    if max_images < 1:
        raise PipelineError(f"max_images must be >= 1, got {max_images}")
    model = models.AnalysisModel(config, overrides)
    head = model.head
    if not isinstance(head, dw_head.DWHead) or not head.with_refine:
        raise PipelineError(f"{config}: needs a DWHead with with_refine: true, got {type(head).__name__}")
    totals = [{"all": np.zeros(4), "n_all": 0, "cand": np.zeros(4), "n_cand": 0} for _ in head.fpn_stride]
    shapes = [None] * len(head.fpn_stride)
    for record in dataset_records(model.cfg, split)[:max_images]:
        boxes, _ = _record_objects(record)
        inputs, boxes_in = model.prepare(_read_rgb(record["im_file"]), boxes)
        levels = head.forward_coarse(model.features(inputs))
        for k, ((_, ltrb, _, offsets), stride) in enumerate(zip(levels, head.fpn_stride)):
            outside = dw_head.refine_points_outside(ltrb, offsets, stride).numpy()[0].reshape(4, -1)  # [4, H*W]
            height, width = ltrb.shape[2], ltrb.shape[3]
            shapes[k] = (height, width)
            xs, ys = (np.arange(width) + 0.5) * stride, (np.arange(height) + 0.5) * stride
            px, py = np.meshgrid(xs, ys)
            inside = _points_in_boxes(np.stack([px.reshape(-1), py.reshape(-1)], axis=1), boxes_in).any(axis=1)
            totals[k]["all"] += outside.sum(axis=1)
            totals[k]["n_all"] += outside.shape[1]
            totals[k]["cand"] += outside[:, inside].sum(axis=1)
            totals[k]["n_cand"] += int(inside.sum())
    return [{"stride": s, "map": shapes[k], "all": list(t["all"] / max(t["n_all"], 1)),
             "candidates": list(t["cand"] / t["n_cand"]) if t["n_cand"] else None, "num_candidates": t["n_cand"]}
            for k, (s, t) in enumerate(zip(head.fpn_stride, totals))]


def markdown(rows):
    """The table of `refine_stats` in percent."""
    head = ("| stride | map | " + " | ".join(f"{s} (all)" for s in SIDES) + " | " +
            " | ".join(f"{s} (candidates)" for s in SIDES) + " | candidates |\n|" + " ---: |" * 11 + "\n")
    lines = []
    for row in rows:
        cand = row["candidates"] or [None] * 4
        cells = [f"{100 * v:.0f}%" for v in row["all"]] + ["-" if v is None else f"{100 * v:.0f}%" for v in cand]
        lines.append(f"| {row['stride']} | {row['map'][0]}x{row['map'][1]} | " + " | ".join(cells) +
                     f" | {row['num_candidates']} |")
    return head + "\n".join(lines) + "\n"


def _points_in_boxes(points, boxes):
    """Which points lie strictly inside which boxes: points [L, 2] (x, y), boxes [n, 4] xyxy -> bool [L, n]."""
    x, y = points[:, 0:1], points[:, 1:2]
    return (x > boxes[:, 0]) & (x < boxes[:, 2]) & (y > boxes[:, 1]) & (y < boxes[:, 3])


def _iou_rows(boxes, gt_box):
    """IoU of boxes [K, 4] with one box [4] (xyxy), as [K]."""
    lo = np.maximum(boxes[:, :2], gt_box[:2])
    hi = np.minimum(boxes[:, 2:], gt_box[2:])
    overlap = np.clip(hi - lo, 0, None).prod(axis=1)
    area = np.clip(boxes[:, 2:] - boxes[:, :2], 0, None).prod(axis=1)
    gt_area = np.prod(np.clip(gt_box[2:] - gt_box[:2], 0, None))
    return overlap / np.maximum(area + gt_area - overlap, 1e-9)


def object_box_ious(points, coarse_ltrb, refined_ltrb, scores, gt_boxes, gt_labels, topk=9):
    """Per object: mean IoU with it of the coarse and of the refined boxes at its top-k scoring candidates.

    A candidate of an object is a location inside its box (all levels), ranked by the score of the object's
    class; each object counts its own candidates, also where objects overlap.

    Args:
        points (np.ndarray[L, 2]): locations (x, y), all levels. coarse_ltrb, refined_ltrb (np.ndarray[L, 4]):
            distances in pixels. scores (np.ndarray[L, C]). gt_boxes (np.ndarray[n, 4]) xyxy. gt_labels
            (np.ndarray[n]) 0-based. topk (int): candidates per object (fewer when it has fewer).
    Returns:
        list of dicts per object with candidates: index (into gt_boxes), area, coarse, refined (mean IoUs),
        top1_coarse, top1_refined (at the single best-scoring candidate).
    """
    def decode(ltrb):
        return np.concatenate([points - ltrb[:, :2], points + ltrb[:, 2:]], axis=1)

    coarse, refined = decode(coarse_ltrb), decode(refined_ltrb)
    inside_any = _points_in_boxes(points, gt_boxes)                                                   # [L, n]
    out = []
    for index, (box, label) in enumerate(zip(gt_boxes, gt_labels)):
        inside = np.nonzero(inside_any[:, index])[0]
        if inside.size == 0:
            continue
        best = inside[np.argsort(-scores[inside, int(label)], kind="stable")[:topk]]
        iou_c, iou_r = _iou_rows(coarse[best], box), _iou_rows(refined[best], box)
        out.append({"index": index, "area": float(np.prod(box[2:] - box[:2])), "coarse": float(iou_c.mean()),
                    "refined": float(iou_r.mean()), "top1_coarse": float(iou_c[0]), "top1_refined": float(iou_r[0])})
    return out


def refine_iou(config, overrides=(), split="eval", max_images=32, topk=9):
    """`object_box_ious` over a config's images: does the refinement bring the boxes closer to the objects?

    Args: as `refine_stats` (a DWHead with or without refinement: without, both boxes are its coarse boxes, so
        that models can be compared); topk (int): candidates per object.
    Returns:
        list of dicts per size class (all, small, medium, large): size, objects, coarse, refined, refined_better
        (share of objects whose top-k mean IoU rose), top1_coarse, top1_refined; None IoUs for an empty class.
    """
    if max_images < 1:
        raise PipelineError(f"max_images must be >= 1, got {max_images}")
    if topk < 1:
        raise PipelineError(f"topk must be >= 1, got {topk}")
    model = models.AnalysisModel(config, overrides)
    head = model.head
    if not isinstance(head, dw_head.DWHead):
        raise PipelineError(f"{config}: needs a DWHead, got {type(head).__name__}")
    objects = []
    with paddle.no_grad():
        for record in dataset_records(model.cfg, split)[:max_images]:
            objects += _image_box_ious(model, head, record, topk)
    rows = []
    for name, low, high in (("all", 0.0, float("inf")),) + SIZE_CLASSES:
        chosen = [o for o in objects if low <= o["area"] < high]
        row = {"size": name, "objects": len(chosen)}
        for key in ("coarse", "refined", "top1_coarse", "top1_refined"):
            row[key] = float(np.mean([o[key] for o in chosen])) if chosen else None
        row["refined_better"] = float(np.mean([o["refined"] > o["coarse"] for o in chosen])) if chosen else None
        rows.append(row)
    return rows


def _image_box_ious(model, head, record, topk):
    """`object_box_ious` of one dataset record, from the head's coarse and refined outputs on every level."""
    boxes, labels = _record_objects(record)
    inputs, boxes_in = model.prepare(_read_rgb(record["im_file"]), boxes)
    per_level = {"points": [], "coarse": [], "refined": [], "scores": []}
    for (cls_logits, ltrb, ctr, offsets), stride in zip(head.forward_coarse(model.features(inputs)),
                                                        head.fpn_stride):
        points = fcos_base.level_points(ltrb.shape[2], ltrb.shape[3], stride)
        refined = (dw_head.refine_ltrb(ltrb, offsets, points, stride, head.refine_sampling == "clamp")
                   if offsets is not None else ltrb)
        score = F.sigmoid(cls_logits) * F.sigmoid(ctr)
        per_level["points"].append(points.numpy())
        for key, value in (("coarse", ltrb), ("refined", refined), ("scores", score)):
            per_level[key].append(value.numpy()[0].reshape(value.shape[1], -1).T)  # [H*W, channels]
    flat = {key: np.concatenate(value) for key, value in per_level.items()}
    objects = object_box_ious(flat["points"], flat["coarse"], flat["refined"], flat["scores"], boxes_in, labels,
                              topk)
    for obj in objects:  # size classes in the original image, as COCO's
        obj["area"] = float(np.prod(boxes[obj["index"], 2:] - boxes[obj["index"], :2]))
    return objects


def iou_markdown(rows, topk=9):
    """The table of `refine_iou` (IoUs in percent)."""
    lines = [f"| objects | count | IoU coarse (top-{topk}) | IoU refined (top-{topk}) | refined better | "
             "IoU coarse (top-1) | IoU refined (top-1) |", "| --- |" + " ---: |" * 6]
    for row in rows:
        cells = ["-" if row[k] is None else f"{100 * row[k]:.1f}"
                 for k in ("coarse", "refined", "refined_better", "top1_coarse", "top1_refined")]
        lines.append(f"| {row['size']} | {row['objects']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
