"""ppdet 2.6's PPYOLOEHead, PicoHeadV2 and TOODHead training on Paddle 3 with ppassign's assigners.

Covers: the tiny synthetic configs train through ppdet's Trainer across the ATSS -> task-aligned switch; a
batch without any ground truth trains a step through each head; the one-line swap and the opt-in override of
ppdet's names. (The compat shims for TOODHead and PicoHeadV2: tests/compat/test_ppdet_heads.py.)
"""
import copy
import os

import numpy as np
import paddle
import pytest
from ppdet.core.workspace import create, load_config, merge_config
from ppdet.modeling.assigners.atss_assigner import ATSSAssigner as PpdetATSS
from ppdet.modeling.assigners.task_aligned_assigner import TaskAlignedAssigner as PpdetTAL

import ppassign
from ppassign import plugin
from ppdet_tiny import CONFIGS, IMAGE_SIZE, TINY, fresh_ppdet_config, tiny_batch

PPDET_NAMES_EXAMPLE = os.path.join(CONFIGS, "swap_examples", "ppyoloe_plus_tiny_ppdet_names.yml")
# The YAML section of each architecture's head.
HEAD_SECTION = {"YOLOv3": "PPYOLOEHead", "PicoDet": "PicoHeadV2", "TOOD": "TOODHead"}


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


def _train_step(model, optimizer, inputs, epoch_id):
    """One SGD step; returns the loss dict (as floats) and whether every parameter is still finite."""
    losses = model(dict(inputs, epoch_id=epoch_id))
    losses["loss"].backward()
    optimizer.step()
    optimizer.clear_grad()
    params_finite = all(_is_finite(p) for p in model.parameters())
    return {k: float(v.sum()) for k, v in losses.items()}, params_finite


# ------------------------------------------------------------- training through ppdet's Trainer
@pytest.mark.slow
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
    empty = tiny_batch(num_max_boxes, real=0)
    for epoch_id in (0, 1):  # epoch 0: ATSS, epoch 1: task-aligned
        losses, params_finite = _train_step(model, optimizer, empty, epoch_id)
        assert all(np.isfinite(v) for v in losses.values()), (epoch_id, losses)
        assert params_finite, epoch_id
    # ... and the model still trains on a normal batch afterwards
    losses, params_finite = _train_step(model, optimizer, tiny_batch(3, real=3), 1)
    assert all(np.isfinite(v) for v in losses.values()) and params_finite, losses


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
    batch = tiny_batch(4, real=3, seed=2, size=PARITY_IMAGE_SIZE[family])
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
