"""Detect objects in images with trained weights (dygraph) or an exported model (Paddle Inference)."""
import glob
import json
import os

import numpy as np
import yaml

import paddle

from .. import compat
from . import checks
from .common import PipelineError, checking, load_weights_strict, resolve_weights, select_device
from .config import CATEGORY_IDS_KEY, build_model, categories, load_config, sync_test_categories

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
# Where `infer` writes without an output_dir: <INFER_ROOT>/<config name or exported model folder name>/.
INFER_ROOT = os.path.join("output", "infer")
# Detections with a score below this are neither drawn nor written by `infer` (PaddleDetection's default).
DRAW_THRESHOLD = 0.5


def list_images(infer_img=None, infer_dir=None):
    """Image paths from one file or a folder (sorted); PipelineError when there are none."""
    if infer_img:
        if not os.path.isfile(infer_img):
            raise PipelineError(f"image not found: {infer_img}")
        return [infer_img]
    if not infer_dir:
        raise PipelineError("pass --infer_img <image> or --infer_dir <folder>")
    if not os.path.isdir(infer_dir):
        raise PipelineError(f"image folder not found: {infer_dir}")
    images = sorted(p for p in glob.glob(os.path.join(infer_dir, "*"))
                    if p.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(p))
    if not images:
        raise PipelineError(f"no images ({'/'.join(IMAGE_EXTENSIONS)}) in folder {infer_dir}")
    return images


def infer(config=None, overrides=(), weights=None, model_dir=None, infer_img=None, infer_dir=None,
          output_dir=None, draw_threshold=DRAW_THRESHOLD, cpu_threads=None):
    """Detect objects in images with trained weights (`config`) or an exported model (`model_dir`).

    Writes ``<output_dir>/<image name>`` with the boxes drawn and ``<output_dir>/detections.json`` (a list of
    {image, category_id, category, score, bbox [x1, y1, x2, y2]} in original-image pixels, clipped to the image)
    and returns that list; `output_dir` defaults to ``output/infer/<config name>`` (``<model_dir name>`` for an
    exported model). ``category_id`` is the dataset's COCO category id (as in ppdet's bbox.json), not the model's
    class index.
    """
    images = list_images(infer_img, infer_dir)
    if model_dir:
        predictor = ExportedPredictor(model_dir, cpu_threads=cpu_threads)
        name = os.path.basename(os.path.normpath(model_dir))
    elif config:
        predictor = DygraphPredictor(config, overrides, weights)
        name = os.path.splitext(os.path.basename(config))[0]
    else:
        raise PipelineError("pass -c <config> (with -o weights=...) or --model_dir <exported model>")
    output_dir = output_dir or os.path.join(INFER_ROOT, name)
    os.makedirs(output_dir, exist_ok=True)
    detections = []
    for path in images:
        image = read_image(path)
        boxes = predictor.predict(image)
        kept = boxes[boxes[:, 1] >= draw_threshold]
        detections.extend(_to_records(path, kept, predictor.label_list, predictor.category_ids))
        _draw(image, kept, predictor.label_list, os.path.join(output_dir, os.path.basename(path)))
    out_json = os.path.join(output_dir, "detections.json")
    with open(out_json, "w", encoding="utf-8") as f:
        json.dump(detections, f, indent=1)
    print(f"ppassign: {len(detections)} detections in {len(images)} images -> {output_dir}", flush=True)
    return detections


def clip_to_image(boxes, height, width):
    """[N, 6] rows (class, score, x1, y1, x2, y2) with the boxes clipped to a `height` x `width` image; rows whose
    box lies wholly outside it (nothing left after clipping) are dropped."""
    boxes = boxes.copy()
    boxes[:, [2, 4]] = boxes[:, [2, 4]].clip(0, width)
    boxes[:, [3, 5]] = boxes[:, [3, 5]].clip(0, height)
    return boxes[(boxes[:, 4] > boxes[:, 2]) & (boxes[:, 5] > boxes[:, 3])]


def read_image(path):
    import cv2
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise PipelineError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _to_records(path, boxes, labels, category_ids):
    """[N, 6] rows -> detection dicts; class index i is reported as category_ids[i] and named labels[i]."""
    records = []
    for row in boxes:
        index = int(row[0])
        known = 0 <= index < len(labels)
        records.append({"image": os.path.basename(path),
                        "category_id": category_ids[index] if 0 <= index < len(category_ids) else index,
                        "category": labels[index] if known else str(index),
                        "score": round(float(row[1]), 5), "bbox": [round(float(v), 2) for v in row[2:6]]})
    return records


def _draw(image_rgb, boxes, labels, out_path):
    import cv2
    canvas = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)
    for cls, score, x1, y1, x2, y2 in boxes.tolist():
        colour = tuple(int(c) for c in np.random.default_rng(int(cls)).integers(64, 256, 3))
        cv2.rectangle(canvas, (int(x1), int(y1)), (int(x2), int(y2)), colour, 1)
        name = labels[int(cls)] if 0 <= int(cls) < len(labels) else str(int(cls))
        cv2.putText(canvas, f"{name} {score:.2f}", (int(x1), max(int(y1) - 2, 8)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.35, colour, 1)
    if not cv2.imwrite(out_path, canvas):
        raise PipelineError(f"cannot write {out_path}")


def preprocess(image_rgb, transforms):
    """Apply reader transforms (ppdet TestReader or infer_cfg.yml ``Preprocess``; Decode skipped) to one image.

    `transforms` is a list of {OpName: kwargs}; ``PadStride`` (the deploy name of ppdet's ``PadBatch``) pads
    the CHW image with zeros at the bottom/right to a multiple of its stride.
    Returns the model inputs {'image': [1, 3, H, W], 'im_shape': [1, 2], 'scale_factor': [1, 2]} as numpy.
    """
    from ppdet.data import transform as ppdet_transform
    sample = {"image": image_rgb.copy(), "im_shape": np.array(image_rgb.shape[:2], np.float32),
              "scale_factor": np.ones(2, np.float32), "h": image_rgb.shape[0], "w": image_rgb.shape[1]}
    for item in transforms:
        (name, kwargs), = item.items()
        if name == "Decode":
            continue
        if name == "PadStride":
            sample["image"] = _pad_to_stride(sample["image"], int(kwargs.get("stride", 0)))
            continue
        if not hasattr(ppdet_transform, name):
            raise PipelineError(f"unknown preprocessing op {name!r}")
        sample = getattr(ppdet_transform, name)(**(kwargs or {}))(sample)
    return {"image": sample["image"][None].astype(np.float32),
            "im_shape": np.asarray(sample["im_shape"], np.float32)[None],
            "scale_factor": np.asarray(sample["scale_factor"], np.float32)[None]}


def _pad_to_stride(image_chw, stride):
    """[C, H, W] -> [C, ceil(H / stride) * stride, ceil(W / stride) * stride], zero padded (stride <= 0: as is)."""
    if stride <= 0:
        return image_chw
    c, h, w = image_chw.shape
    out = np.zeros((c, -(-h // stride) * stride, -(-w // stride) * stride), image_chw.dtype)
    out[:, :h, :w] = image_chw
    return out


def test_transforms(reader_cfg):
    """A TestReader's per-image transforms: sample_transforms plus PadBatch as PadStride (deploy naming)."""
    transforms = list(reader_cfg["sample_transforms"])
    for item in reader_cfg.get("batch_transforms") or ():
        (name, kwargs), = item.items()
        if name == "PadBatch" and (kwargs or {}).get("pad_to_stride", 0) > 0:
            transforms.append({"PadStride": {"stride": kwargs["pad_to_stride"]}})
    return transforms


class DygraphPredictor:
    """The config's model with trained weights, predicting one image at a time: [N, 6] numpy rows (boxes in
    the image's pixels, clipped to it)."""

    def __init__(self, config, overrides=(), weights=None):
        with checking():
            cfg = load_config(config, overrides)
            weights = resolve_weights(cfg, weights)
            sync_test_categories(cfg)
            checks.check_num_classes(cfg, ["TestDataset"])
        select_device(cfg)
        self.model = build_model(cfg)
        self.model.load_meanstd(cfg["TestReader"]["sample_transforms"])
        load_weights_strict(self.model, weights)
        self.model.eval()
        self.transforms = test_transforms(cfg["TestReader"])
        self.category_ids, self.label_list = categories(cfg)

    def predict(self, image_rgb):
        inputs = {k: paddle.to_tensor(v) for k, v in preprocess(image_rgb, self.transforms).items()}
        with paddle.no_grad():
            out = self.model(inputs)
        rows = _valid_rows(out["bbox"].numpy(), int(out["bbox_num"].numpy().sum()))
        return clip_to_image(rows, *image_rgb.shape[:2])


class ExportedPredictor:
    """A Paddle Inference predictor over an exported model folder: [N, 6] numpy rows per image (boxes in the
    image's pixels, clipped to it)."""

    def __init__(self, model_dir, cpu_threads=None):
        cfg_path = os.path.join(model_dir, "infer_cfg.yml")
        if not os.path.isfile(cfg_path):
            raise PipelineError(f"model_dir {model_dir!r} has no infer_cfg.yml (export it with tools/export_model.py)")
        with open(cfg_path, encoding="utf-8") as f:
            self.infer_cfg = yaml.safe_load(f)
        try:
            config = compat.inference_config(model_dir, cpu_threads)
        except FileNotFoundError as e:
            raise PipelineError(str(e)) from None
        self.predictor = paddle.inference.create_predictor(config)
        self.transforms = [{item.pop("type"): item} for item in
                           (dict(step) for step in self.infer_cfg.get("Preprocess", []))]
        self.label_list = list(self.infer_cfg.get("label_list", []))
        # written by ppassign's export (ppdet's infer_cfg.yml has names only); else the class indices
        self.category_ids = list(self.infer_cfg.get(CATEGORY_IDS_KEY) or range(len(self.label_list)))

    def predict(self, image_rgb):
        inputs = preprocess(image_rgb, self.transforms)
        for name in self.predictor.get_input_names():
            handle = self.predictor.get_input_handle(name)
            handle.reshape(inputs[name].shape)
            handle.copy_from_cpu(inputs[name])
        self.predictor.run()
        names = self.predictor.get_output_names()
        boxes = self.predictor.get_output_handle(names[0]).copy_to_cpu()
        count = int(self.predictor.get_output_handle(names[1]).copy_to_cpu().sum()) if len(names) > 1 \
            else len(boxes)
        return clip_to_image(_valid_rows(boxes, count), *image_rgb.shape[:2])


def _valid_rows(boxes, count):
    """The first `count` rows of [K, 6] boxes, dropping ppdet's [-1, ...] filler rows; float32 [N, 6]."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 6)[:count]
    return boxes[boxes[:, 0] >= 0]

