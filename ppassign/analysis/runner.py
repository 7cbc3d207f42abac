"""The calls behind tools/vis_assign.py and tools/assign_stats.py.

Both take a ppdet config (its model decides which methods can be shown, see `models.METHODS_BY_HEAD`; its
datasets give the images) and ``-o`` overrides (``weights=<path>`` for a trained model).
"""
import json
import os

import cv2
import numpy as np

from ..engine.common import PipelineError
from . import drawing, models, stats

# Grey level of the canvas when a boxes file names no image.
BLANK_GREY = 128
SPLITS = {"train": "TrainDataset", "eval": "EvalDataset"}


def load_boxes_file(path):
    """Read a boxes JSON: {"image_size": [H, W] (or "image": path), "boxes": [[x1, y1, x2, y2], ...],
    "labels": [0-based class per box]}. Returns (image_rgb [H, W, 3] uint8, boxes [n, 4], labels [n])."""
    if not os.path.isfile(path):
        raise PipelineError(f"boxes file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise PipelineError(f"boxes file {path} is not valid JSON: {e}") from None
    if not isinstance(spec, dict) or "boxes" not in spec or "labels" not in spec:
        raise PipelineError(f"boxes file {path} must hold an object with 'boxes' and 'labels'")
    if spec.get("image"):
        image_path = os.path.join(os.path.dirname(os.path.abspath(path)), spec["image"])
        image = _read_rgb(image_path)
    elif "image_size" in spec:
        size = spec["image_size"]
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
            raise PipelineError(f"boxes file {path}: image_size must be [H, W] positive ints, got {size}")
        image = np.full([size[0], size[1], 3], BLANK_GREY, np.uint8)
    else:
        raise PipelineError(f"boxes file {path} needs 'image' (a path) or 'image_size' [H, W]")
    boxes = np.asarray(spec["boxes"], np.float32).reshape(-1, 4) if spec["boxes"] else np.zeros([0, 4], np.float32)
    return image, boxes, np.asarray(spec["labels"], np.int64).reshape(-1)


def _read_rgb(path):
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise PipelineError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def dataset_records(cfg, split):
    """The roidb records of the config's train/eval dataset (ppdet dicts with im_file, gt_bbox, gt_class)."""
    if split not in SPLITS:
        raise PipelineError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    dataset = cfg.get(SPLITS[split])
    if dataset is None:
        raise PipelineError(f"the config has no {SPLITS[split]}")
    # ppdet keeps only the fields named in data_fields (eval splits name 'image' only): ask for the boxes too.
    dataset.data_fields = list(dict.fromkeys(list(dataset.data_fields) + ["gt_bbox", "gt_class"]))
    dataset.check_or_download_dataset()
    dataset.parse_dataset()
    return dataset.roidbs


def _record_objects(record):
    boxes = np.asarray(record.get("gt_bbox", np.zeros([0, 4])), np.float32).reshape(-1, 4)
    labels = np.asarray(record.get("gt_class", np.zeros([0, 1])), np.int64).reshape(-1)
    return boxes, labels


def _input_image(inputs):
    """The network input as uint8 RGB (undoing a mean/std normalisation roughly, for display only)."""
    image = inputs["image"].numpy()[0].transpose(1, 2, 0)
    low, high = np.percentile(image, 1), np.percentile(image, 99)
    return (np.clip((image - low) / max(high - low, 1e-6), 0, 1) * 255).astype(np.uint8)


def visualize(config, overrides=(), methods=None, boxes_file=None, split="eval", image_index=0,
              output_dir="output/vis_assign"):
    """Write one PNG per method (and AutoAssign's learned priors) for one image.

    Args:
        config (str): ppdet YAML whose head is one of models.METHODS_BY_HEAD.
        overrides (list[str]): ``-o`` items (``weights=...`` for trained weights).
        methods (list[str] | None): default: all the head supports.
        boxes_file (str | None): JSON boxes (see `load_boxes_file`); otherwise image `image_index` of `split`.
    Returns:
        list of written PNG paths.
    """
    model = models.AnalysisModel(config, overrides)
    methods = _checked_methods(model, methods)
    if boxes_file:
        image, boxes, labels = load_boxes_file(boxes_file)
        stem = os.path.splitext(os.path.basename(boxes_file))[0]
    else:
        records = dataset_records(model.cfg, split)
        if not 0 <= image_index < len(records):
            raise PipelineError(f"image_index must be in [0, {len(records)}), got {image_index}")
        image = _read_rgb(records[image_index]["im_file"])
        boxes, labels = _record_objects(records[image_index])
        stem = f"{split}_{image_index}"
    inputs, boxes_in = model.prepare(image, boxes)
    try:
        maps = model.assignment_maps(inputs, boxes_in, labels, methods)
    except ValueError as e:
        raise PipelineError(str(e)) from None
    os.makedirs(output_dir, exist_ok=True)
    shown = _input_image(inputs)
    state = "trained weights" if model.trained else "random init"
    paths = []
    for method, amap in maps.items():
        path = os.path.join(output_dir, f"{stem}_{method}.png")
        drawing.draw_assignment(amap, shown, path, f"{method} ({model.head_name}, {state}): {len(boxes)} objects")
        paths.append(path)
    if model.head_name == "AutoAssignHead":
        path = os.path.join(output_dir, "autoassign_center_priors.png")
        drawing.draw_center_priors(model.head.mu.numpy(), model.head.sigma.numpy(), _class_names(model.cfg), path)
        paths.append(path)
    for path in paths:
        print(f"ppassign: wrote {path}", flush=True)
    return paths


def _checked_methods(model, methods):
    try:
        return model.check_methods(methods)
    except ValueError as e:
        raise PipelineError(str(e)) from None


def _class_names(cfg):
    try:
        dataset = cfg.get("EvalDataset")
        anno = dataset.get_anno() if dataset is not None else None
        from ppdet.data.source.category import get_categories
        _, catid2name = get_categories(cfg.metric, anno)
        return [str(v) for v in catid2name.values()]
    except Exception:  # names are decoration only: fall back to class indices
        return []


def assignment_stats(config, overrides=(), methods=None, split="train", max_images=None,
                     output_dir="output/assign_stats"):
    """Positives per object (by size and FPN level) and the share of objects without any, per method.

    Args:
        config (str | list[str]): one or more configs; their methods go into one table (their FPN strides
            must agree). Each config's own dataset split is read.
        overrides (list[str]): ``-o`` items for every config (``weights=...`` only makes sense with one).
        methods (list[str] | None): default: every method of every config's head; otherwise each config
            shows those of `methods` its head supports, and each of `methods` must be supported by one.
        split (str): 'train' or 'eval'. max_images (int | None): only the first images of the split.
    Writes assign_stats.md / .json / .png to `output_dir` and returns the summary dict.
    """
    configs = [config] if isinstance(config, str) else list(config)
    if max_images is not None and max_images < 1:
        raise PipelineError(f"max_images must be >= 1, got {max_images}")
    acc, notes, shown = None, [], []
    for path in configs:
        model = models.AnalysisModel(path, overrides)
        chosen = _checked_methods(model, methods) if len(configs) == 1 or not methods else \
            [m for m in methods if m in model.methods]
        if not chosen:
            continue
        if acc is None:
            acc = stats.StatsAccumulator(model.strides)
        elif acc.level_strides != model.strides:
            raise PipelineError(f"{path}: FPN strides {model.strides} differ from "
                                f"{acc.level_strides} of the configs before it")
        records = dataset_records(model.cfg, split)[:max_images]
        every = max(1, len(records) // 10)
        for index, record in enumerate(records):
            if index % every == 0:
                print(f"ppassign: {os.path.basename(path)}: image {index + 1}/{len(records)} ({', '.join(chosen)})",
                      flush=True)
            boxes, labels = _record_objects(record)
            if len(boxes) == 0:
                continue
            inputs, boxes_in = model.prepare(_read_rgb(record["im_file"]), boxes)
            for amap in model.assignment_maps(inputs, boxes_in, labels, chosen).values():
                acc.add(amap)
        shown += chosen
        notes.append(f"`{path}` ({model.head_name}, {'trained weights' if model.trained else 'random init'}, "
                     f"{split} split, {len(records)} images): {', '.join(chosen)}")
    missing = [m for m in (methods or ()) if m not in shown]
    if missing or acc is None:
        raise PipelineError(f"method {(missing or ['?'])[0]!r} is not supported by the head of any "
                            f"given config")
    hard = [m for m in shown if m not in ("autoassign", "dw")]
    note = ("Configs: " + "; ".join(notes) + ". Boxes in network-input pixels. Hard assigners: positives "
            "counted; AutoAssign / DW: effective number (sum w)^2 / sum w^2 of the positive weights. tal / "
            "ppdet_tal use the model's predictions; tal_proxy uses anchor boxes as predictions with equal scores.")
    text = stats.write_report(acc, output_dir, note, hard)
    print(text, flush=True)
    print(f"ppassign: wrote {output_dir}/assign_stats.md, .json, .png", flush=True)
    return acc.summary()
