"""Positives per object of the prediction-free RetinaNet assigners over a COCO-format split (the library of
tools/retina_assign_stats.py): how many anchors each rule gives small / medium / large objects, with one and
with nine anchors per location, and the share of objects left without any positive.

Anchors are ppdet's ``RetinaAnchorGenerator``'s (what ``PPAssignRetinaHead`` trains on). The prediction-aware
rules (noisy anchors, HAMBox) depend on a trained model and are not counted here.
"""
import json

import numpy as np
import paddle

from ..assigners import ATSSRetinaAssigner, FCOSRuleAssigner, MaxIoUAssigner, TopKAssigner
from .stats import SIZE_BUCKETS, size_bucket

# The anchor settings of benchmarks/configs/retina_*.yml (A = 1) and retina9_*.yml (A = 9).
ANCHORS = {"A=1": {"octave_base_scale": 4, "scales_per_octave": 1, "aspect_ratios": [1.0]},
           "A=9": {"octave_base_scale": 4, "scales_per_octave": 3, "aspect_ratios": [0.5, 1.0, 2.0]}}


def default_rules(strides):
    """The four prediction-free assigners with the comparison's settings (benchmarks/configs/_base_retina.yml)."""
    sizes = [[-1, 64], [64, 128], [128, np.inf]][:len(strides)]
    sizes[-1][1] = np.inf
    return {"max-IoU": MaxIoUAssigner(0.5, 0.4, True), "top-k": TopKAssigner(9), "ATSS": ATSSRetinaAssigner(9),
            "FCOS rule": FCOSRuleAssigner(strides, sizes, 1.5)}


def retina_anchors(image_size, strides, octave_base_scale, scales_per_octave, aspect_ratios):
    """ppdet RetinaAnchorGenerator's anchors for a square image: (Tensor[L, 4], anchors per level)."""
    from ppdet.modeling.proposal_generator.anchor_generator import RetinaAnchorGenerator
    generator = RetinaAnchorGenerator(octave_base_scale, scales_per_octave, aspect_ratios,
                                      [float(s) for s in strides])
    maps = [paddle.zeros([1, 1, int(np.ceil(image_size / s)), int(np.ceil(image_size / s))]) for s in strides]
    levels = generator(maps)
    return paddle.concat(levels), [int(a.shape[0]) for a in levels]


def load_boxes(annotation_file):
    """{image id: [n, 4] xyxy float32} from a COCO json (crowd boxes left out), and the image sizes."""
    with open(annotation_file, encoding="utf-8") as f:
        data = json.load(f)
    boxes = {img["id"]: [] for img in data["images"]}
    for ann in data["annotations"]:
        if not ann.get("iscrowd", 0):
            x, y, w, h = ann["bbox"]
            boxes[ann["image_id"]].append([x, y, x + w, y + h])
    sizes = {max(img["width"], img["height"]) for img in data["images"]}
    return {k: np.asarray(v, "float32").reshape(-1, 4) for k, v in boxes.items()}, sizes


def positive_stats(annotation_file, strides=(8, 16, 32), anchors=None, rules=None):
    """Rows {anchors, rule, mean positives per size bucket, share without positive, objects}.

    All images must share one size (the synthetic splits do), so that one anchor set serves all.
    """
    boxes, sizes = load_boxes(annotation_file)
    if len(sizes) != 1:
        raise ValueError(f"annotation_file images must share one size, got sizes {sorted(sizes)}")
    image_size = sizes.pop()
    rules = rules or default_rules(list(strides))
    rows = []
    for anchor_name, setting in (anchors or ANCHORS).items():
        anchor_boxes, counts = retina_anchors(image_size, strides, **setting)
        for rule_name, rule in rules.items():
            found = {b: [] for b in SIZE_BUCKETS}
            for gt in boxes.values():
                if not len(gt):
                    continue
                matches, labels = rule(anchor_boxes, paddle.to_tensor(gt), num_anchors_list=counts)
                matches, positive = matches.numpy(), labels.numpy() == 1
                count = (positive[None, :] & (matches[None, :] == np.arange(len(gt))[:, None])).sum(1)
                for bucket, k in zip(size_bucket(gt), count):
                    found[bucket].append(int(k))
            every = sum(found.values(), [])
            rows.append({"anchors": anchor_name, "rule": rule_name, "objects": len(every),
                         "no_positive": float(np.mean([k == 0 for k in every])) if every else None,
                         **{b: (float(np.mean(v)) if v else None) for b, v in found.items()}})
    return rows


def markdown(rows):
    """The rows as a Markdown table."""
    fmt = lambda v: "-" if v is None else f"{v:.2f}"
    lines = ["| anchors | rule | positives / object: small | medium | large | objects without positive |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        share = "-" if r["no_positive"] is None else f"{100 * r['no_positive']:.1f}%"
        lines.append(f"| {r['anchors']} | {r['rule']} | {fmt(r['small'])} | {fmt(r['medium'])} | {fmt(r['large'])} "
                     f"| {share} |")
    return "\n".join(lines) + f"\n\n({rows[0]['objects'] if rows else 0} objects)\n"
