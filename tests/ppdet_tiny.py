"""Shared by the tests that build ppdet's own heads from the tiny synthetic configs (tests/assigners/test_heads_swap.py,
tests/compat/): the configs, a fresh ppdet global config per test, a synthetic training batch."""
import contextlib
import copy
import os

import numpy as np
import paddle
from ppdet.core.config.schema import SchemaDict
from ppdet.core.workspace import global_config

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
TINY = {
    "ppyoloe": os.path.join(CONFIGS, "ppyoloe", "ppyoloe_plus_tiny_synthetic.yml"),
    "picodet": os.path.join(CONFIGS, "picodet", "picodet_tiny_synthetic.yml"),
    "tood": os.path.join(CONFIGS, "tood", "tood_tiny_synthetic.yml"),
}
# Small enough for a 2-core CI budget: 2 images of 64 px, batch 2 -> one iteration per epoch.
IMAGE_SIZE = 64
NUM_CLASSES = 5  # the synthetic dataset's classes (configs/datasets/synthetic_detection.yml)


def _snapshot():
    """Copy of ppdet's global config: every load_config/merge_config merges into that one dict in place."""
    out = {}
    for key, value in global_config.items():
        if isinstance(value, SchemaDict):
            out[key] = (value, copy.deepcopy(dict(value)))
        else:
            out[key] = (None, copy.deepcopy(value))
    return out


def _restore(snapshot, keep_registrations=False):
    """Put back `snapshot`'s YAML values; with keep_registrations, keep the classes registered now (e.g. the
    opt-in override of ppdet's names) and reset only their values."""
    for key in list(global_config):
        registered = isinstance(global_config[key], SchemaDict)
        if key not in snapshot and not (keep_registrations and registered):
            del global_config[key]
    for key, (schema, items) in snapshot.items():
        if schema is None:
            global_config[key] = copy.deepcopy(items)
            continue
        current = global_config.get(key)
        if keep_registrations and isinstance(current, SchemaDict):
            schema = current
        schema.clear()
        schema.update(copy.deepcopy(items))
        global_config[key] = schema


# Taken at collection time, before any test loads a YAML.
_PRISTINE = _snapshot()


@contextlib.contextmanager
def fresh_ppdet_config():
    """Run with ppdet's config as right after import (no other test's YAML keys), and put it back after."""
    saved = _snapshot()
    _restore(_PRISTINE, keep_registrations=True)
    try:
        yield
    finally:
        _restore(saved)


def tiny_batch(num_max_boxes, real, seed=0, size=IMAGE_SIZE):
    """A training batch of 2 images of `size` px with `num_max_boxes` GT slots, the first `real` filled."""
    rng = np.random.RandomState(seed)
    batch = 2
    boxes = np.zeros([batch, num_max_boxes, 4], "float32")
    labels = np.zeros([batch, num_max_boxes, 1], "int32")
    pad = np.zeros([batch, num_max_boxes, 1], "float32")
    for b in range(batch):
        for j in range(real):
            x, y = rng.uniform(0, size / 2, 2)
            w, h = rng.uniform(12, size / 2, 2)
            boxes[b, j] = [x, y, x + w, y + h]
            labels[b, j] = rng.randint(NUM_CLASSES)
            pad[b, j] = 1
    return {
        "image": paddle.to_tensor(rng.rand(batch, 3, size, size).astype("float32")),
        "im_id": paddle.to_tensor(np.arange(batch).reshape([batch, 1])),
        "im_shape": paddle.to_tensor(np.full([batch, 2], size, "float32")),
        "scale_factor": paddle.ones([batch, 2]),
        "gt_bbox": paddle.to_tensor(boxes), "gt_class": paddle.to_tensor(labels),
        "pad_gt_mask": paddle.to_tensor(pad), "curr_iter": 0,
    }
