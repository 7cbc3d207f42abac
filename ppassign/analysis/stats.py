"""Statistics of label assignment over a dataset split (the library of tools/assign_stats.py).

Per object and method:
  * ``positives``: for hard assigners (ATSS, task-aligned) the number of locations assigned to the object;
    for soft ones (AutoAssign, DW) the *effective* number (sum w)^2 / sum w^2 of its positive weights (equal to
    the count when the weights are equal, so both read as "how many locations the object trains").
  * ``per level``: positives x the share of the object's positive weight on each FPN level (the count of each
    level for hard assigners).
  * ``no positive``: the object's positive weights are all 0 (hard: nothing assigned; AutoAssign / DW: no
    candidate location, e.g. a box between the locations of every level).
Objects are bucketed by box area in input pixels with COCO's limits (small < 32^2 <= medium < 96^2 <= large).
"""
import json
import os

import numpy as np

# COCO's area ranges (pycocotools COCOeval Params.areaRng): small < 32^2, medium < 96^2, large otherwise.
SMALL_AREA = 32 ** 2
MEDIUM_AREA = 96 ** 2
SIZE_BUCKETS = ("small", "medium", "large")
# Histogram bins of positives per object (the last one is open).
HISTOGRAM_MAX = 30


def size_bucket(boxes):
    """np.ndarray[n] of 'small' / 'medium' / 'large' for xyxy boxes [n, 4] (area = w * h)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return np.where(area < SMALL_AREA, "small", np.where(area < MEDIUM_AREA, "medium", "large"))


def object_positives(positive, level_index, num_levels, hard):
    """Positives per object, in total and per level.

    Args:
        positive (np.ndarray[n, L]): positive weights (0/1 when `hard`).
        level_index (np.ndarray[L] int): the level of each location.
        num_levels (int).
        hard (bool): count the locations (True) or take the effective number of the weights (False).
    Returns:
        total (np.ndarray[n]), per_level (np.ndarray[n, num_levels]); both 0 for an object with no positive.
    """
    positive = np.asarray(positive, np.float64)
    if positive.ndim != 2 or positive.shape[1] != len(level_index):
        raise ValueError(f"positive must be [n, L] with L = {len(level_index)}, got {list(positive.shape)}")
    if (positive < 0).any() or not np.isfinite(positive).all():
        raise ValueError("positive weights must be finite and >= 0")
    per_level_mass = np.stack([positive[:, level_index == k].sum(1) for k in range(num_levels)], axis=1)
    mass = per_level_mass.sum(1)
    if hard:
        total = (positive > 0).sum(1).astype(np.float64)
        counts = np.stack([(positive[:, level_index == k] > 0).sum(1) for k in range(num_levels)], axis=1)
        return total, counts.astype(np.float64)
    square = (positive ** 2).sum(1)
    total = np.where(square > 0, mass ** 2 / np.where(square > 0, square, 1.0), 0.0)
    share = per_level_mass / np.where(mass > 0, mass, 1.0)[:, None]
    return total, total[:, None] * share


class StatsAccumulator:
    """Collects per-object records of every method over images, then summarises them.

    Args:
        level_strides (list[int]): strides of the levels (column names).
    """

    def __init__(self, level_strides):
        self.level_strides = [int(s) for s in level_strides]
        self.records = {}  # method -> list of (bucket, total, per_level[num_levels])

    def add(self, amap):
        """Add one image's AssignmentMap (its objects; nothing for an image without objects)."""
        if len(amap.grid.shapes) != len(self.level_strides):
            raise ValueError(f"the map has {len(amap.grid.shapes)} levels, the accumulator "
                             f"{len(self.level_strides)}")
        total, per_level = object_positives(amap.positive, amap.grid.level_index(), len(self.level_strides),
                                            amap.hard)
        rows = self.records.setdefault(amap.method, [])
        for bucket, t, levels in zip(size_bucket(amap.boxes), total, per_level):
            rows.append((str(bucket), float(t), [float(v) for v in levels]))

    def summary(self):
        """{method: {bucket ('all', 'small', 'medium', 'large'): {'objects', 'mean', 'median', 'p10', 'p90',
        'no_positive_share', 'per_level_mean' [levels]}}}; a bucket without objects has objects 0 and None values.
        """
        out = {}
        for method, rows in self.records.items():
            out[method] = {}
            for bucket in ("all",) + SIZE_BUCKETS:
                chosen = [r for r in rows if bucket == "all" or r[0] == bucket]
                out[method][bucket] = _bucket_summary(chosen, len(self.level_strides))
        return out

    def totals(self, method):
        """np.ndarray of positives per object of `method` (for histograms)."""
        return np.array([r[1] for r in self.records.get(method, [])], np.float64)


def _bucket_summary(rows, num_levels):
    if not rows:
        return {"objects": 0, "mean": None, "median": None, "p10": None, "p90": None, "no_positive_share": None,
                "per_level_mean": [None] * num_levels}
    totals = np.array([r[1] for r in rows])
    levels = np.array([r[2] for r in rows]).reshape(len(rows), num_levels)
    return {"objects": len(rows), "mean": float(totals.mean()), "median": float(np.median(totals)),
            "p10": float(np.percentile(totals, 10)), "p90": float(np.percentile(totals, 90)),
            "no_positive_share": float((totals == 0).mean()), "per_level_mean": levels.mean(0).tolist()}


def markdown_table(summary, level_strides, hard_methods=()):
    """Markdown table: one row per method and size bucket."""
    level_cols = " | ".join(f"P (stride {s})" for s in level_strides)
    lines = [f"| method | objects | size | positives / object (mean) | median | p10-p90 | no positive | "
             f"{level_cols} |",
             "| --- | --- | --- | ---: | ---: | --- | ---: | " + " | ".join("---:" for _ in level_strides) + " |"]
    for method, buckets in summary.items():
        kind = "count" if method in hard_methods else "effective"
        for bucket in ("all",) + SIZE_BUCKETS:
            s = buckets[bucket]
            if not s["objects"]:
                lines.append(f"| {method} ({kind}) | 0 | {bucket} | - | - | - | - | " +
                             " | ".join("-" for _ in level_strides) + " |")
                continue
            lines.append(f"| {method} ({kind}) | {s['objects']} | {bucket} | {s['mean']:.2f} | {s['median']:.1f} | "
                         f"{s['p10']:.1f}-{s['p90']:.1f} | {100 * s['no_positive_share']:.1f}% | " +
                         " | ".join(f"{v:.2f}" for v in s["per_level_mean"]) + " |")
    return "\n".join(lines) + "\n"


def plot_histograms(accumulator, path):
    """PNG: one histogram of positives per object per method (objects with none in the first bin)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    methods = list(accumulator.records)
    cols = min(3, max(1, len(methods)))
    rows = -(-len(methods) // cols) if methods else 1
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    bins = np.arange(0, HISTOGRAM_MAX + 2) - 0.5
    for ax in axes.ravel()[len(methods):]:
        ax.axis("off")
    for ax, method in zip(axes.ravel(), methods):
        totals = accumulator.totals(method)
        by_size = [np.clip([r[1] for r in accumulator.records[method] if r[0] == b], 0, HISTOGRAM_MAX)
                   for b in SIZE_BUCKETS]
        ax.hist(by_size, bins=bins, stacked=True, label=list(SIZE_BUCKETS))
        ax.set_title(f"{method}: {len(totals)} objects, {100 * (totals == 0).mean():.0f}% none" if len(totals)
                     else f"{method}: no objects", fontsize=9)
        ax.set_xlabel(f"positives per object (>= {HISTOGRAM_MAX} in the last bin)", fontsize=8)
        ax.set_ylabel("objects", fontsize=8)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(accumulator, output_dir, note, hard_methods=()):
    """Write assign_stats.md, assign_stats.json and assign_stats.png to `output_dir`; return the Markdown."""
    os.makedirs(output_dir, exist_ok=True)
    summary = accumulator.summary()
    text = note + "\n\n" + markdown_table(summary, accumulator.level_strides, hard_methods)
    with open(os.path.join(output_dir, "assign_stats.md"), "w", encoding="utf-8") as f:
        f.write(text)
    with open(os.path.join(output_dir, "assign_stats.json"), "w", encoding="utf-8") as f:
        json.dump({"level_strides": accumulator.level_strides, "summary": summary}, f, indent=1)
    plot_histograms(accumulator, os.path.join(output_dir, "assign_stats.png"))
    return text
