"""How many of DW's refinement boundary points fall outside the feature map (tools/dw_refine_stats.py).

With the official 'zeros' sampling such a point reads 0, so that side of the refined box is clipped to 0 and
passes no gradient to the coarse box or the offsets (`ppassign.heads.dw_head.refine_points_outside`). The
share is counted per FPN level and side, over all locations and over the locations inside a ground-truth box
(the DW candidates, whose boxes the loss trains), on a config's images at random init or with trained weights.
"""
import numpy as np

from ..engine.common import PipelineError
from ..heads import dw_head
from . import models
from .runner import _read_rgb, _record_objects, dataset_records

SIDES = ("left", "top", "right", "bottom")


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
            px, py = px.reshape(-1, 1), py.reshape(-1, 1)
            inside = ((px > boxes_in[:, 0]) & (px < boxes_in[:, 2]) & (py > boxes_in[:, 1]) &
                      (py < boxes_in[:, 3])).any(axis=1)                                               # [H*W]
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
