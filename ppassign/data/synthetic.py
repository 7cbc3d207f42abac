"""A seeded, built-in COCO-format detection dataset that exercises label assignment.

No data can be downloaded here, so ppassign ships a generator. Each image is a noisy gradient background with
clutter that is *not* annotated (lines, specks, scribbles) and objects of five shape classes:

====== ============ ================================================================================
id     name         why it is there
====== ============ ================================================================================
1      ellipse      solid, mass at the box centre; aspect ratio thin (1:4) to square
2      frame        hollow rectangle: the box centre is empty background
3      ell          an "L": mass in one corner of the box (4 orientations)
4      crescent     a disk minus a shifted disk: mass on one side of the box
5      stripes      striped rectangle (texture class); aspect ratio thin to square
====== ============ ================================================================================

Object sizes are log-uniform from `min_object_size` px to `MAX_OBJECT_FRACTION` of the image, so every FPN
level (strides 8-32) gets objects; half of the images also hold a crowded cluster of overlapping small objects.
Objects are drawn largest first so that small ones stay visible on top of large ones.

Boxes are tight around each object's drawn mask; ``area`` is the mask's pixel count (as COCO's segment area).
Everything is a pure function of (split, seed, generation parameters): image i of a split depends on
(seed, split, i) only, and the files are rewritten only when missing or generated with other parameters.
"""
import json
import os
import zlib

import cv2
import numpy as np

__all__ = ["CLASS_NAMES", "make_synthetic_coco", "render_image", "dataset_paths"]

CLASS_NAMES = ("ellipse", "frame", "ell", "crescent", "stripes")

# Object size sqrt(w * h) is log-uniform in [min_object_size, MAX_OBJECT_FRACTION * image_size].
MAX_OBJECT_FRACTION = 0.8
# Aspect ratio w / h is log-uniform in [1 / MAX_ASPECT, MAX_ASPECT] for the elongation-friendly classes
# ("ellipse", "frame", "stripes") and in [1 / MAX_ASPECT_COMPACT, MAX_ASPECT_COMPACT] for the others.
MAX_ASPECT = 4.0
MAX_ASPECT_COMPACT = 1.6
ELONGATED_CLASSES = ("ellipse", "frame", "stripes")
# A new object is rejected when its box overlaps an earlier one by more than this IoU (keeps every object
# recognisable while still producing overlaps); `MAX_PLACEMENT_TRIES` bounds the rejection sampling.
MAX_OVERLAP_IOU = 0.4
MAX_PLACEMENT_TRIES = 20
# Probability that an image holds a crowded cluster, and the cluster's object count range.
CLUSTER_PROBABILITY = 0.5
CLUSTER_SIZE = (3, 6)
# Minimum grey-level distance between an object's colour and the background under it.
MIN_CONTRAST = 70
# Bumped whenever the drawing code changes, so that cached files are regenerated.
GENERATOR_VERSION = 1


def dataset_paths(root, split):
    """(image_dir, anno_json) of `split` under `root`: ``root/images/<split>``, ``root/annotations/<split>.json``."""
    root = os.path.abspath(os.fspath(root))
    return os.path.join(root, "images", split), os.path.join(root, "annotations", f"{split}.json")


def make_synthetic_coco(root, split="train", num_images=64, image_size=256, seed=0, min_object_size=6,
                        max_objects=10, num_clutter=6):
    """Write (or reuse) a split of the synthetic dataset and return ``(image_dir, anno_json)``.

    Args:
        root (str | PathLike): dataset root; the split goes to ``root/images/<split>/*.png`` and
            ``root/annotations/<split>.json``.
        split (str): split name; it is mixed into the seed, so "train" and "val" differ for the same `seed`.
        num_images (int): number of images (>= 1).
        image_size (int): side of the square images in px (>= 32).
        seed (int): base seed (>= 0).
        min_object_size (int): smallest object size sqrt(w * h) in px (>= 2).
        max_objects (int): most objects per image outside the cluster (>= 1).
        num_clutter (int): mean number of unannotated clutter items per image (>= 0).

    Returns:
        (str, str): absolute image directory and annotation json path (pycocotools-loadable).

    The files are regenerated only when the json is missing, an image is missing, or the json was written with
    other parameters (they are stored in its ``info.ppassign_params``).
    """
    params = _check_params(split, num_images, image_size, seed, min_object_size, max_objects, num_clutter)
    image_dir, anno_json = dataset_paths(root, split)
    if _cache_is_valid(image_dir, anno_json, params):
        return image_dir, anno_json
    os.makedirs(image_dir, exist_ok=True)
    os.makedirs(os.path.dirname(anno_json), exist_ok=True)
    images, annotations = [], []
    for index in range(num_images):
        image, objects = render_image(index, **{k: v for k, v in params.items() if k != "version"})
        file_name = f"{index:06d}.png"
        _atomic_imwrite(os.path.join(image_dir, file_name), image)
        images.append({"id": index + 1, "file_name": file_name, "width": image_size, "height": image_size})
        for class_id, (x1, y1, x2, y2), area in objects:
            annotations.append({"id": len(annotations) + 1, "image_id": index + 1, "category_id": class_id + 1,
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": area, "iscrowd": 0})
    coco = {"info": {"description": "ppassign synthetic detection dataset", "ppassign_params": params},
            "images": images, "annotations": annotations,
            "categories": [{"id": i + 1, "name": name, "supercategory": "shape"}
                           for i, name in enumerate(CLASS_NAMES)]}
    _atomic_write_text(anno_json, json.dumps(coco))
    return image_dir, anno_json


def render_image(index, split="train", num_images=None, image_size=256, seed=0, min_object_size=6,
                 max_objects=10, num_clutter=6):
    """Draw image `index` of a split.

    Returns:
        image (np.ndarray): [image_size, image_size, 3] uint8 (BGR, as cv2 writes it).
        objects (list): (class_index, (x1, y1, x2, y2), area) per object; box in px, xyxy, x2/y2 exclusive.
    """
    rng = np.random.default_rng([seed, zlib.crc32(split.encode("utf-8")), index])
    size = image_size
    image = _background(rng, size)
    _draw_clutter(rng, image, rng.poisson(num_clutter))
    specs = _sample_layout(rng, size, min_object_size, max_objects)
    objects = []
    for class_index, (x, y, w, h) in sorted(specs, key=lambda s: -s[1][2] * s[1][3]):
        mask, texture = _shape_mask(rng, CLASS_NAMES[class_index], w, h)
        box = _paint(rng, image, mask, texture, x, y)
        if box is not None:
            objects.append((class_index, box, int(mask.sum())))
    return image, objects


# ----------------------------------------------------------------------------------------------- layout

def _sample_layout(rng, size, min_object_size, max_objects):
    """[(class_index, (x, y, w, h))]: free objects plus (maybe) one crowded cluster, few heavy overlaps."""
    max_size = MAX_OBJECT_FRACTION * size
    boxes = []

    def try_add(class_index, w, h, centre=None, spread=0.0):
        for _ in range(MAX_PLACEMENT_TRIES):
            if centre is None:
                x, y = rng.integers(0, size - w + 1), rng.integers(0, size - h + 1)
            else:
                x = int(np.clip(centre[0] + rng.normal(0, spread) - w / 2, 0, size - w))
                y = int(np.clip(centre[1] + rng.normal(0, spread) - h / 2, 0, size - h))
            box = (int(x), int(y), w, h)
            if all(_iou_xywh(box, other) <= MAX_OVERLAP_IOU for _, other in boxes):
                boxes.append((class_index, box))
                return

    for _ in range(rng.integers(1, max_objects + 1)):
        class_index = int(rng.integers(len(CLASS_NAMES)))
        w, h = _sample_wh(rng, class_index, min_object_size, max_size, size)
        try_add(class_index, w, h)
    if rng.random() < CLUSTER_PROBABILITY:
        object_size = float(np.exp(rng.uniform(np.log(max(min_object_size, 8)), np.log(max(size / 5, 9)))))
        centre = rng.uniform(object_size, size - object_size, 2)
        for _ in range(rng.integers(CLUSTER_SIZE[0], CLUSTER_SIZE[1] + 1)):
            class_index = int(rng.integers(len(CLASS_NAMES)))
            w, h = _sample_wh(rng, class_index, object_size * 0.8, object_size * 1.25, size)
            try_add(class_index, w, h, centre=centre, spread=0.6 * object_size)
    return boxes


def _sample_wh(rng, class_index, low, high, size):
    """Box (w, h) in px with sqrt(w * h) log-uniform in [low, high] and a class-dependent aspect ratio."""
    scale = float(np.exp(rng.uniform(np.log(low), np.log(max(high, low * 1.01)))))
    limit = MAX_ASPECT if CLASS_NAMES[class_index] in ELONGATED_CLASSES else MAX_ASPECT_COMPACT
    aspect = float(np.exp(rng.uniform(-np.log(limit), np.log(limit))))
    w = int(np.clip(round(scale * np.sqrt(aspect)), 2, size))
    h = int(np.clip(round(scale / np.sqrt(aspect)), 2, size))
    return w, h


def _iou_xywh(a, b):
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / float(a[2] * a[3] + b[2] * b[3] - inter)


# ----------------------------------------------------------------------------------------------- shapes

def _shape_mask(rng, name, w, h):
    """(mask, texture) of one object of class `name` filling (most of) a w x h box.

    mask: [h, w] bool, the object's pixels; texture: [h, w] bool (pixels painted in the full colour, the rest
    of the mask darker) or None for a solid object.
    """
    mask = np.zeros((h, w), np.uint8)
    if name == "ellipse":
        cv2.ellipse(mask, (((w - 1) / 2.0, (h - 1) / 2.0), (float(w), float(h)), 0.0), 1, -1)
    elif name == "frame":
        t = max(1, int(round(0.2 * min(w, h))))
        mask[:] = 1
        mask[t:h - t, t:w - t] = 0
    elif name == "ell":
        tw, th = max(1, int(round(0.35 * w))), max(1, int(round(0.35 * h)))
        mask[:, :tw] = 1
        mask[h - th:, :] = 1
        if rng.random() < 0.5:
            mask = mask[:, ::-1]
        if rng.random() < 0.5:
            mask = mask[::-1, :]
    elif name == "crescent":
        cv2.ellipse(mask, (((w - 1) / 2.0, (h - 1) / 2.0), (float(w), float(h)), 0.0), 1, -1)
        angle = rng.uniform(0, 2 * np.pi)
        shift = 0.45
        centre = ((w - 1) / 2.0 + shift * w * np.cos(angle), (h - 1) / 2.0 + shift * h * np.sin(angle))
        cv2.ellipse(mask, (centre, (float(w), float(h)), 0.0), 0, -1)
    elif name == "stripes":
        period = max(2, int(round(min(w, h) / rng.uniform(2.5, 4.0))))
        along_x = w >= h
        coord = np.arange(w if along_x else h)
        band = ((coord // max(1, period // 2)) % 2 == 0).astype(np.uint8)
        mask[:] = 1
        texture = band[None, :] if along_x else band[:, None]
        return mask.astype(bool), np.broadcast_to(texture, (h, w)).astype(bool)
    else:
        raise ValueError(f"name must be one of {CLASS_NAMES}, got {name!r}")
    return np.ascontiguousarray(mask).astype(bool), None


def _paint(rng, image, mask, texture, x, y):
    """Paint `mask` at (x, y) in a colour that contrasts with the background there (see `_shape_mask`).

    Returns the tight xyxy box of the painted pixels, or None when the mask is empty.
    """
    h, w = mask.shape
    region = image[y:y + h, x:x + w]
    local = float(region.mean())
    colour = _contrasting_colour(rng, local)
    if texture is None:
        region[mask] = colour
    else:
        region[mask & texture] = colour
        region[mask & ~texture] = (np.asarray(colour) * 0.35).astype(np.uint8)
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return (int(x + xs.min()), int(y + ys.min()), int(x + xs.max() + 1), int(y + ys.max() + 1))


def _contrasting_colour(rng, grey):
    """A random saturated BGR colour whose mean is at least MIN_CONTRAST away from `grey`."""
    for _ in range(MAX_PLACEMENT_TRIES):
        colour = rng.integers(0, 256, 3)
        colour[rng.integers(3)] = rng.integers(200, 256) if grey < 128 else rng.integers(0, 40)
        if abs(float(colour.mean()) - grey) >= MIN_CONTRAST:
            return colour.astype(np.uint8)
    return np.full(3, 255 if grey < 128 else 0, np.uint8)


# ------------------------------------------------------------------------------------- background, clutter

def _background(rng, size):
    """[size, size, 3] uint8: a random linear colour gradient plus mild Gaussian noise."""
    ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    t = np.cos(angle) * ramp[None, :] + np.sin(angle) * ramp[:, None]
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    start, end = rng.uniform(40, 170, 3), rng.uniform(40, 170, 3)
    image = start[None, None, :] + (end - start)[None, None, :] * t[:, :, None]
    image += rng.normal(0, 6, (size, size, 1))
    return np.clip(image, 0, 255).astype(np.uint8)


def _draw_clutter(rng, image, count):
    """Unannotated distractors: thin lines, small specks and open scribbles."""
    size = image.shape[0]
    for _ in range(count):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = rng.integers(3)
        if kind == 0:
            p, q = rng.integers(0, size, 2), rng.integers(0, size, 2)
            cv2.line(image, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), colour, 1, cv2.LINE_AA)
        elif kind == 1:
            for _ in range(rng.integers(3, 10)):
                c = rng.integers(0, size, 2)
                cv2.circle(image, (int(c[0]), int(c[1])), int(rng.integers(1, 3)), colour, -1)
        else:
            start = rng.integers(0, size, 2)
            steps = rng.normal(0, size / 12.0, (int(rng.integers(3, 7)), 2))
            points = np.clip(start + np.cumsum(steps, axis=0), 0, size - 1).astype(np.int32)
            cv2.polylines(image, [points], False, colour, 1, cv2.LINE_AA)


# ------------------------------------------------------------------------------------------- file cache

def _check_params(split, num_images, image_size, seed, min_object_size, max_objects, num_clutter):
    def integer(name, value, low):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        return int(value)

    if not isinstance(split, str) or not split or os.sep in split:
        raise ValueError(f"split must be a non-empty name without '{os.sep}', got {split!r}")
    params = {"split": split, "num_images": integer("num_images", num_images, 1),
              "image_size": integer("image_size", image_size, 32), "seed": integer("seed", seed, 0),
              "min_object_size": integer("min_object_size", min_object_size, 2),
              "max_objects": integer("max_objects", max_objects, 1),
              "num_clutter": integer("num_clutter", num_clutter, 0), "version": GENERATOR_VERSION}
    if params["min_object_size"] >= MAX_OBJECT_FRACTION * params["image_size"]:
        raise ValueError(f"min_object_size must be below {MAX_OBJECT_FRACTION} * image_size, "
                         f"got {min_object_size} for image_size {image_size}")
    return params


def _cache_is_valid(image_dir, anno_json, params):
    try:
        with open(anno_json, encoding="utf-8") as f:
            coco = json.load(f)
    except (OSError, ValueError):
        return False
    if coco.get("info", {}).get("ppassign_params") != params:
        return False
    return all(os.path.isfile(os.path.join(image_dir, im["file_name"])) for im in coco.get("images", []))


def _atomic_imwrite(path, image):
    """Write via a temporary file + rename so that concurrent readers (2 trainer ranks) never see half a PNG."""
    tmp = f"{path}.{os.getpid()}.tmp.png"
    if not cv2.imwrite(tmp, image):
        raise OSError(f"could not write image {path}")
    os.replace(tmp, path)


def _atomic_write_text(path, text):
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
