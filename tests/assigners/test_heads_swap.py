"""ppdet 2.6's PPYOLOEHead, PicoHeadV2 and TOODHead training on Paddle 3 with ppassign's assigners.

Covers: the tiny synthetic configs train through ppdet's Trainer across the ATSS -> task-aligned switch; a
batch without any ground truth trains a step through each head; the compat shims for TOODHead and
PicoHeadV2; the one-line swap and the opt-in override of ppdet's names.
"""
import contextlib
import copy
import os

import numpy as np
import paddle
import pytest
from ppdet.core.config.schema import SchemaDict
from ppdet.core.workspace import create, global_config, load_config, merge_config
from ppdet.modeling.assigners.atss_assigner import ATSSAssigner as PpdetATSS
from ppdet.modeling.assigners.task_aligned_assigner import TaskAlignedAssigner as PpdetTAL
from ppdet.modeling.heads.pico_head import PicoHeadV2
from ppdet.modeling.heads.tood_head import TOODHead

import ppassign
from ppassign import compat, plugin

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "configs")
TINY = {
    "ppyoloe": os.path.join(CONFIGS, "ppyoloe", "ppyoloe_plus_tiny_synthetic.yml"),
    "picodet": os.path.join(CONFIGS, "picodet", "picodet_tiny_synthetic.yml"),
    "tood": os.path.join(CONFIGS, "tood", "tood_tiny_synthetic.yml"),
}
PPDET_NAMES_EXAMPLE = os.path.join(CONFIGS, "swap_examples", "ppyoloe_plus_tiny_ppdet_names.yml")
# Small enough for a 2-core CI budget: 2 images of 64 px, batch 2 -> one iteration per epoch.
IMAGE_SIZE = 64
NUM_CLASSES = 5  # the synthetic dataset's classes (configs/datasets/synthetic_detection.yml)
# The YAML section of each architecture's head.
HEAD_SECTION = {"YOLOv3": "PPYOLOEHead", "PicoDet": "PicoHeadV2", "TOOD": "TOODHead"}


# ------------------------------------------------------------------------- ppdet's process-wide config
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


# ------------------------------------------------------------------------------------------ helpers
def _head(model):
    for name in ("yolo_head", "head"):
        if hasattr(model, name):
            return getattr(model, name)
    raise AssertionError(f"no detection head on {type(model).__name__}")


def _is_finite(value):
    return bool(np.all(np.isfinite(np.asarray(value.numpy(), dtype="float64"))))


def _shrink_for_test(cfg, tmp_path):
    """Two 64 px synthetic images, batch 2, 2 epochs, ATSS for epoch 0 and task-aligned for epoch 1."""
    merge_config({"epoch": 2, "snapshot_epoch": 100, "log_iter": 1, "save_dir": str(tmp_path / "output")})
    for key in ("TrainDataset", "EvalDataset"):
        dataset = cfg[key]
        dataset.dataset_dir = str(tmp_path / "synthetic")
        dataset.num_images = 2
        dataset.image_size = IMAGE_SIZE
    cfg.TrainReader["batch_size"] = 2
    for transform in cfg.TrainReader["sample_transforms"] + cfg.TrainReader["batch_transforms"]:
        for name in ("BatchRandomResize", "Resize"):
            if name in transform:
                transform[name]["target_size"] = [IMAGE_SIZE] if name == "BatchRandomResize" else \
                    [IMAGE_SIZE, IMAGE_SIZE]


def _set_static_assigner_epoch(cfg, epochs):
    merge_config({HEAD_SECTION[cfg.architecture]: {"static_assigner_epoch": epochs}})


def _batch(num_max_boxes, real, seed=0, size=IMAGE_SIZE):
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


def _train_step(model, optimizer, inputs, epoch_id):
    """One SGD step; returns the loss dict (as floats) and whether every parameter is still finite."""
    losses = model(dict(inputs, epoch_id=epoch_id))
    losses["loss"].backward()
    optimizer.step()
    optimizer.clear_grad()
    params_finite = all(_is_finite(p) for p in model.parameters())
    return {k: float(v.sum()) for k, v in losses.items()}, params_finite


# ------------------------------------------------------------- training through ppdet's Trainer
@pytest.mark.parametrize("family", sorted(TINY))
def test_tiny_config_trains_across_the_assigner_switch(family, tmp_path):
    from ppdet.engine import Trainer
    with fresh_ppdet_config():
        cfg = load_config(TINY[family])
        _shrink_for_test(cfg, tmp_path)
        _set_static_assigner_epoch(cfg, 1)
        trainer = Trainer(cfg, mode="train")
        head = _head(trainer.model)
        assert isinstance(head.static_assigner, ppassign.ATSSAssigner)
        assert isinstance(head.assigner, ppassign.TaskAlignedAssigner)
        calls = {"static": 0, "dynamic": 0}
        for key, assigner in (("static", head.static_assigner), ("dynamic", head.assigner)):
            assigner.register_forward_post_hook(lambda *_, key=key: calls.__setitem__(key, calls[key] + 1))
        losses = []
        trainer.model.register_forward_post_hook(
            lambda layer, inputs, out: losses.append({k: float(v.sum()) for k, v in out.items()}))
        trainer.train(validate=False)
    assert calls == {"static": 1, "dynamic": 1}, calls
    assert len(losses) == 2
    for step in losses:
        assert all(np.isfinite(v) for v in step.values()), step
        assert step["loss"] > 0


# ------------------------------------------------------------------------ batches without any GT
@pytest.mark.parametrize("family", sorted(TINY))
@pytest.mark.parametrize("num_max_boxes", [0, 3], ids=["no_gt_slots", "all_padding"])
def test_batch_without_ground_truth_trains_a_step(family, num_max_boxes):
    paddle.seed(0)
    with fresh_ppdet_config():
        cfg = load_config(TINY[family])
        _set_static_assigner_epoch(cfg, 1)
        model = create(cfg.architecture)
    model.train()
    optimizer = paddle.optimizer.SGD(learning_rate=0.01, parameters=model.parameters())
    empty = _batch(num_max_boxes, real=0)
    for epoch_id in (0, 1):  # epoch 0: ATSS, epoch 1: task-aligned
        losses, params_finite = _train_step(model, optimizer, empty, epoch_id)
        assert all(np.isfinite(v) for v in losses.values()), (epoch_id, losses)
        assert params_finite, epoch_id
    # ... and the model still trains on a normal batch afterwards
    losses, params_finite = _train_step(model, optimizer, _batch(3, real=3), 1)
    assert all(np.isfinite(v) for v in losses.values()) and params_finite, losses


# ------------------------------------------------------------------------------------ compat shims
def test_tood_grid_sample_shim_is_installed():
    # installed where the ppdet's own fails on Paddle 3 (paddledet 2.6.0; v2.7.0 and develop work): tests/compat
    from ppassign.compat.ppdet_heads import tood_grid_sample_fails
    assert not tood_grid_sample_fails(TOODHead._reg_grid_sample)


def test_tood_grid_sample_reads_x_from_width_and_y_from_height():
    """Zero offsets on a 3 x 5 map sample each side map at its anchor centre (align_corners=True grid)."""
    height, width = 3, 5
    columns = paddle.arange(width, dtype="float32").reshape([1, 1, 1, width]).expand([1, 4, height, width])
    rows = paddle.arange(height, dtype="float32").reshape([1, 1, height, 1]).expand([1, 4, height, width])
    ys, xs = paddle.meshgrid(paddle.arange(height, dtype="float32") + 0.5,
                             paddle.arange(width, dtype="float32") + 0.5)
    anchors = paddle.stack([xs, ys], axis=-1).unsqueeze(0)                         # [1, h, w, 2]
    offset = paddle.zeros([1, 8, height, width])
    sampled_x = compat._tood_reg_grid_sample(None, columns, offset, anchors).numpy()
    sampled_y = compat._tood_reg_grid_sample(None, rows, offset, anchors).numpy()
    expect_x = (np.arange(width) + 0.5) / width * (width - 1)
    expect_y = (np.arange(height) + 0.5) / height * (height - 1)
    np.testing.assert_allclose(sampled_x, np.broadcast_to(expect_x, [1, 4, height, width]), atol=1e-5)
    np.testing.assert_allclose(sampled_y, np.broadcast_to(expect_y[:, None], [1, 4, height, width]), atol=1e-5)


def test_tood_grid_sample_shifts_by_the_offset():
    """An x offset of +1 (stride units) reads the next column's value, scaled by the grid's (w-1)/w."""
    height, width = 2, 4
    columns = paddle.arange(width, dtype="float32").reshape([1, 1, 1, width]).expand([2, 4, height, width])
    ys, xs = paddle.meshgrid(paddle.arange(height, dtype="float32") + 0.5,
                             paddle.arange(width, dtype="float32") + 0.5)
    anchors = paddle.stack([xs, ys], axis=-1).unsqueeze(0)
    zero = compat._tood_reg_grid_sample(None, columns, paddle.zeros([2, 8, height, width]), anchors).numpy()
    offset = paddle.zeros([2, 4, 2, height, width])
    offset[:, :, 0] = 1.0
    shifted = compat._tood_reg_grid_sample(None, columns, offset.reshape([2, 8, height, width]), anchors).numpy()
    step = (width - 1) / width
    np.testing.assert_allclose(shifted[..., :-1] - zero[..., :-1], step, atol=1e-5)


class _FakePicoHead(paddle.nn.Layer):
    """Just what the PicoHeadV2 loss shim touches: a `loss_vfl` sublayer."""

    def __init__(self):
        super().__init__()
        self.loss_vfl = create("VarifocalLoss")


def _loss_with_avg_factor(value):
    """Run the shim around a get_loss that, like PicoHeadV2's, divides the class loss and a box loss by one
    avg_factor tensor; returns (avg_factor after the call, class loss, box loss)."""
    def get_loss(self, head_outs, gt_meta):
        avg_factor = paddle.to_tensor(value)
        loss_vfl = self.loss_vfl(paddle.full([4, 2], 0.5), paddle.zeros([4, 2]), avg_factor=avg_factor)
        return float(avg_factor), float(loss_vfl), float(paddle.to_tensor(2.0) / avg_factor)
    return compat._pico_get_loss_with_min_avg_factor(get_loss)(_FakePicoHead(), None, None)


def test_pico_loss_shim_clips_a_zero_avg_factor_to_one_for_every_division():
    avg_factor, loss_vfl, loss_box = _loss_with_avg_factor(0.0)
    assert avg_factor == 1.0 and loss_box == 2.0
    _, unclipped, _ = _loss_with_avg_factor(1.0)
    assert np.isfinite(loss_vfl) and loss_vfl == pytest.approx(unclipped)


def test_pico_loss_shim_keeps_an_avg_factor_above_one():
    avg_factor, loss_vfl, loss_box = _loss_with_avg_factor(2.5)
    assert avg_factor == 2.5 and loss_box == pytest.approx(0.8)
    _, at_one, _ = _loss_with_avg_factor(1.0)
    assert loss_vfl == pytest.approx(at_one / 2.5)


def test_pico_loss_shim_restores_the_loss_layer():
    head = _FakePicoHead()
    compat._pico_get_loss_with_min_avg_factor(lambda self, *_: None)(head, None, None)
    assert "forward" not in vars(head.loss_vfl)


def test_pico_loss_without_positives_is_finite_and_has_no_box_terms():
    paddle.seed(0)
    with fresh_ppdet_config():
        cfg = load_config(TINY["picodet"])
        model = create(cfg.architecture)
    model.train()
    losses = model(dict(_batch(0, real=0), epoch_id=0))
    assert np.isfinite(float(losses["loss_vfl"])) and float(losses["loss_vfl"]) > 0
    assert float(losses["loss_bbox"].sum()) == 0.0
    assert float(losses["loss_dfl"].sum()) == 0.0


def test_shims_are_idempotent():
    before = (TOODHead._reg_grid_sample, PicoHeadV2.get_loss)
    compat.apply()
    compat.fix_tood_and_pico_heads()
    assert (TOODHead._reg_grid_sample, PicoHeadV2.get_loss) == before
    assert PicoHeadV2.get_loss.__wrapped__.__module__ == "ppdet.modeling.heads.pico_head"


# ---------------------------------------------------------------------------- the one-line swap
def _assigner_types(config):
    with fresh_ppdet_config():
        cfg = load_config(config)
        head = _head(create(cfg.architecture))
    return type(head.static_assigner), type(head.assigner)


def test_ppdet_names_build_ppdet_assigners_by_default():
    static, dynamic = _assigner_types(PPDET_NAMES_EXAMPLE)
    assert static is PpdetATSS and dynamic is PpdetTAL


def test_ppdet_names_build_ppassign_assigners_after_opt_in_then_restore():
    try:
        plugin.use_ppassign_for_ppdet_names()
        static, dynamic = _assigner_types(PPDET_NAMES_EXAMPLE)
        assert issubclass(static, ppassign.ATSSAssigner) and issubclass(dynamic, ppassign.TaskAlignedAssigner)
    finally:
        plugin.restore_ppdet_names()
    static, dynamic = _assigner_types(PPDET_NAMES_EXAMPLE)
    assert static is PpdetATSS and dynamic is PpdetTAL


def test_swap_example_differs_from_ours_only_in_the_assigner_names():
    """The PaddleDetection-style example and ppassign's tiny config are the same but for `name:` lines."""
    with open(PPDET_NAMES_EXAMPLE, encoding="utf-8") as f:
        text = f.read()
    assert "name: ATSSAssigner" in text and "name: TaskAlignedAssigner" in text
    with fresh_ppdet_config():
        ours = load_config(TINY["ppyoloe"])
        ours_head = copy.deepcopy(dict(ours["PPYOLOEHead"]))
    with fresh_ppdet_config():
        theirs = load_config(PPDET_NAMES_EXAMPLE)
        theirs_head = copy.deepcopy(dict(theirs["PPYOLOEHead"]))
    assert theirs_head["static_assigner"].pop("name") == "ATSSAssigner"
    assert theirs_head["assigner"].pop("name") == "TaskAlignedAssigner"
    assert ours_head["static_assigner"].pop("name") == "PPAssignATSSAssigner"
    assert ours_head["assigner"].pop("name") == "PPAssignTaskAlignedAssigner"
    assert theirs_head == ours_head


# ppdet's ATSSAssigner needs every FPN level to hold >= topk (9) anchors, i.e. a 3 x 3 map at the largest
# stride (ppassign's clips topk per level): 96 px for stride 32, 192 px for 64, 384 px for 128.
PARITY_IMAGE_SIZE = {"ppyoloe": 96, "picodet": 192, "tood": 384}


def _losses_over_the_switch(family, static_name, dynamic_name):
    """Seeded model with the given assigner names -> (its assigner types, losses of 3 SGD steps: ATSS, then
    task-aligned twice)."""
    with fresh_ppdet_config():
        cfg = load_config(TINY[family])
        _set_static_assigner_epoch(cfg, 1)
        merge_config({HEAD_SECTION[cfg.architecture]: {"static_assigner": {"name": static_name},
                                                       "assigner": {"name": dynamic_name}}})
        paddle.seed(0)
        model = create(cfg.architecture)
    model.train()
    optimizer = paddle.optimizer.SGD(learning_rate=0.01, parameters=model.parameters())
    batch = _batch(4, real=3, seed=2, size=PARITY_IMAGE_SIZE[family])
    head = _head(model)
    types = (type(head.static_assigner), type(head.assigner))
    return types, [_train_step(model, optimizer, batch, epoch_id)[0] for epoch_id in (0, 1, 1)]


@pytest.mark.parametrize("family", sorted(TINY))
def test_swapping_the_assigners_leaves_training_unchanged(family):
    """Same seed, same batch: ppdet's assigners and ppassign's give the same losses, step after step."""
    their_types, theirs = _losses_over_the_switch(family, "ATSSAssigner", "TaskAlignedAssigner")
    our_types, ours = _losses_over_the_switch(family, "PPAssignATSSAssigner", "PPAssignTaskAlignedAssigner")
    assert their_types == (PpdetATSS, PpdetTAL)
    assert issubclass(our_types[0], ppassign.ATSSAssigner)
    assert issubclass(our_types[1], ppassign.TaskAlignedAssigner)
    for step, (a, b) in enumerate(zip(theirs, ours)):
        assert a.keys() == b.keys()
        assert a.get("loss_iou", a.get("loss_bbox")) > 0, (step, a)  # there are positives to compare
        for key in a:
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), (step, key)
